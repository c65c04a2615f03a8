//! Op-level reproducer of the CubeCL matmul fault of docs/gpu.md, and the regression test of
//! sgm's workaround (`sgm_conv`'s CubeCL routing). wgpu builds only
//! (`cargo test -p sgm-testkit --features wgpu --test gpu_matmul_fault`); on other builds the file
//! is empty.
//!
//! * [`double_unit_reproducer`] launches CubeCL's double-buffered unit matmul
//!   (`Strategy::DoubleUnit`, what Burn's matmul autotune may pick) and the single-buffered one
//!   (`Strategy::SimpleUnit`, what sgm runs on devices without cooperative matrices) at the
//!   reproducer shapes, and compares both with an f64 product on the host. `SimpleUnit` must be
//!   right; with `SGM_EXPECT_DOUBLE_UNIT_FAULT=1` (set by `.ci/gpu-lane` on lavapipe) the
//!   `DoubleUnit` result must be *wrong* — when a CubeCL or Mesa upgrade fixes the kernel this
//!   fails, saying the workaround can go.
//! * [`routed_matmul_matches_the_host`]: `sgm_conv::matmul` on the test backend (Fusion over
//!   CubeCL) and its gradients agree with the host at the same shapes.
//! * [`sgm_products_never_reach_the_matmul_autotune`]: sgm's products and 1×1 convolutions,
//!   forward and backward, leave no entry in CubeCL's matmul autotune caches — removing the
//!   workaround fails here deterministically, whatever kernel autotune would have timed fastest.
#![cfg(all(feature = "wgpu", not(feature = "cuda")))]

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::backend::Autodiff;
use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::ConvOptions;
use burn_cubecl::cubecl::ir::{ElemType, FloatKind, StorageType};
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
use cubek::matmul::launch::{Strategy, launch_ref};
use cubek::matmul::routines::double_unit::DoubleUnitSelectionArgs;
use cubek::matmul::routines::simple_unit::SimpleUnitSelectionArgs;
use cubek::matmul::routines::{BlueprintStrategy, TileSizeSelection};
use cubek::std::InputBinding;
use sgm_testkit::{GPU_TOLERANCE_SCALE, TestBackend};

/// Burn's CubeCL backend under the test backend's Fusion.
type Raw = CubeBackend<WgpuRuntime, f32, i32, u32>;

/// Reproducer shapes `(m, k, n, rhs_transposed)` of `[m, k] · [k, n]`; `rhs_transposed`: the
/// right operand is a transposed view of a row-major `[n, k]` (the layout of Burn's 1×1
/// convolution, `conv_im2col_1x1`). docs/gpu.md has the sweep that found them.
const SHAPES: &[(usize, usize, usize, bool)] = &[(1152, 24, 24, true), (24, 24, 1152, false)];

/// The `nets` tolerance of the fixtures (rtol = atol = 1e-4) times the GPU bound.
fn allowance(want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    GPU_TOLERANCE_SCALE * (1e-4 + 1e-4 * scale)
}

/// `max |got − want|` over the allowance (≤ 1 passes).
fn excess(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |a, (g, w)| a.max((*g as f64 - w).abs()));
    err / allowance(want)
}

/// The device, with CubeCL's caches in a fresh directory of this process (the autotune check
/// reads it).
fn device() -> WgpuDevice {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sgm-matmul-fault-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // SAFETY: runs once, before any GPU work of this process and while every other test
        // thread waits on this OnceLock (they all call `device()` first).
        unsafe { std::env::set_var(sgm_conv::cubecl_cache::CACHE_ENV, &dir) };
        dir
    });
    sgm_testkit::device()
}

/// Deterministic operands in [−1, 1): `lhs` `[m, k]`, `rhs` `[k, n]`, both row-major.
fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut draw = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    };
    (draw(m * k), draw(k * n))
}

/// `lhs · rhs` in f64 on the host.
fn host_product(lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let a = lhs[i * k + p] as f64;
            for j in 0..n {
                out[i * n + j] += a * rhs[p * n + j] as f64;
            }
        }
    }
    out
}

/// The product the double-buffered kernel computes when it runs one stage of `stage_k` past `K`
/// (docs/gpu.md): `Σ_{p < K + stage_k} lhs[i·K + p] · rhsᵀ[j·K + p]` over the flat row-major
/// `lhs` and the flat row-major transposed `rhs`, where an index past the buffer reads 0 (robust
/// buffer access) — for `p ≥ K` that is the next row of `lhs` times the next column of `rhs`.
fn overrun_model(
    lhs: &[f32],
    rhs: &[f32],
    m: usize,
    k: usize,
    n: usize,
    stage_k: usize,
) -> Vec<f64> {
    let at = |v: &[f32], i: usize| v.get(i).map_or(0.0, |x| *x as f64);
    let mut rhs_t = vec![0.0f32; k * n];
    for p in 0..k {
        for j in 0..n {
            rhs_t[j * k + p] = rhs[p * n + j];
        }
    }
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k + stage_k)
                .map(|p| at(lhs, i * k + p) * at(&rhs_t, j * k + p))
                .sum();
        }
    }
    out
}

/// `[k, n]` operand on a backend: row-major, or the transposed view of a row-major `[n, k]`.
fn rhs_tensor<B: Backend>(
    rhs: &[f32],
    k: usize,
    n: usize,
    transposed: bool,
    d: &B::Device,
) -> Tensor<B, 2> {
    if transposed {
        let mut t = vec![0.0f32; k * n];
        for p in 0..k {
            for j in 0..n {
                t[j * k + p] = rhs[p * n + j];
            }
        }
        Tensor::<B, 2>::from_data(TensorData::new(t, [n, k]), d).transpose()
    } else {
        Tensor::from_data(TensorData::new(rhs.to_vec(), [k, n]), d)
    }
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().expect("f32 data")
}

/// One CubeCL matmul kernel, launched directly (no autotune).
fn launch(strategy: &Strategy, m: usize, k: usize, n: usize, transposed: bool) -> Vec<f32> {
    let d = device();
    let (lhs, rhs) = operands(m, k, n);
    let lhs = Tensor::<Raw, 2>::from_data(TensorData::new(lhs, [m, k]), &d);
    let rhs = rhs_tensor::<Raw>(&rhs, k, n, transposed, &d);
    let out = Tensor::<Raw, 2>::zeros([m, n], &d);
    let (lhs, rhs, out) = (
        lhs.into_primitive().tensor(),
        rhs.into_primitive().tensor(),
        out.into_primitive().tensor(),
    );
    let f32_ty = StorageType::Scalar(ElemType::Float(FloatKind::F32));
    let mut elems = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: f32_ty,
        rhs: f32_ty,
        out: f32_ty,
    });
    let client = out.client.clone();
    launch_ref(
        strategy,
        &client,
        InputBinding::new(lhs.binding(), f32_ty),
        InputBinding::new(rhs.binding(), f32_ty),
        out.clone().binding(),
        &mut elems,
    )
    .unwrap_or_else(|e| panic!("{strategy} does not launch at [{m}, {k}] x [{k}, {n}]: {e:?}"));
    values(Tensor::<Raw, 2>::from_primitive(TensorPrimitive::Float(
        out,
    )))
}

/// Shapes to run: [`SHAPES`], or `SGM_MATMUL_SHAPES="m,k,n,t;…"` (t = 1: transposed rhs) for
/// a sweep.
fn shapes() -> Vec<(usize, usize, usize, bool)> {
    let Ok(list) = std::env::var("SGM_MATMUL_SHAPES") else {
        return SHAPES.to_vec();
    };
    list.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let v: Vec<usize> = s
                .split(',')
                .map(|x| x.trim().parse().expect("SGM_MATMUL_SHAPES: m,k,n,t"))
                .collect();
            (v[0], v[1], v[2], v[3] == 1)
        })
        .collect()
}

#[test]
fn double_unit_reproducer() {
    let expect_fault = std::env::var("SGM_EXPECT_DOUBLE_UNIT_FAULT").is_ok_and(|v| v == "1");
    let mut faulty = Vec::new();
    for (m, k, n, t) in shapes() {
        let (lhs, rhs) = operands(m, k, n);
        let want = host_product(&lhs, &rhs, m, k, n);
        for tile_size in [
            TileSizeSelection::MinTileSize,
            TileSizeSelection::MaxTileSize,
        ] {
            let simple =
                Strategy::SimpleUnit(BlueprintStrategy::Inferred(SimpleUnitSelectionArgs {
                    tile_size,
                }));
            let double =
                Strategy::DoubleUnit(BlueprintStrategy::Inferred(DoubleUnitSelectionArgs {
                    tile_size,
                }));
            let e_simple = excess(&launch(&simple, m, k, n, t), &want);
            let got = launch(&double, m, k, n, t);
            let e_double = excess(&got, &want);
            let e_model = if t {
                excess(&got, &overrun_model(&lhs, &rhs, m, k, n, 8))
            } else {
                f64::NAN
            };
            println!(
                "[{m}, {k}] x [{k}, {n}] rhs_transposed={t}: {simple} {e_simple:.3e}, {double} {e_double:.3e} (of the allowance; vs the one-stage-overrun model {e_model:.3e})"
            );
            assert!(
                e_simple <= 1.0,
                "{simple} wrong at [{m}, {k}] x [{k}, {n}]: {e_simple:.3e} x the allowance"
            );
            if e_double > 1.0 {
                faulty.push(format!(
                    "{double} at [{m}, {k}] x [{k}, {n}] ({e_double:.1e}x)"
                ));
            }
        }
    }
    if expect_fault {
        assert!(
            !faulty.is_empty(),
            "the double-buffered unit matmul is right at every reproducer shape on this device: \
             the fault of docs/gpu.md is gone here (re-check it, then the routing in sgm_conv's \
             cube.rs may go)"
        );
    }
    println!("wrong: {faulty:?}");
}

#[test]
fn routed_matmul_matches_the_host() {
    let d = device();
    for &(m, k, n, t) in SHAPES {
        let (lhs, rhs) = operands(m, k, n);
        let want = host_product(&lhs, &rhs, m, k, n);
        let l =
            Tensor::<Autodiff<TestBackend>, 2>::from_data(TensorData::new(lhs.clone(), [m, k]), &d)
                .require_grad();
        let r = rhs_tensor::<Autodiff<TestBackend>>(&rhs, k, n, t, &d);
        let out = sgm_conv::matmul(l.clone(), r);
        let e = excess(&values(out.clone()), &want);
        assert!(
            e <= 1.0,
            "sgm_conv::matmul wrong at [{m}, {k}] x [{k}, {n}]: {e:.3e} x the allowance"
        );
        // ∂ sum(out) / ∂lhs[i, p] = Σ_j rhs[p, j]
        let grads = out.sum().backward();
        let gl = values(l.grad(&grads).expect("lhs gradient"));
        let row_sums: Vec<f64> = (0..k)
            .map(|p| (0..n).map(|j| rhs[p * n + j] as f64).sum())
            .collect();
        let want_gl: Vec<f64> = (0..m * k).map(|i| row_sums[i % k]).collect();
        let e = excess(&gl, &want_gl);
        assert!(
            e <= 1.0,
            "gradient of sgm_conv::matmul wrong at [{m}, {k}] x [{k}, {n}]: {e:.3e} x"
        );
    }
}

#[test]
fn sgm_products_never_reach_the_matmul_autotune() {
    type B = Autodiff<TestBackend>;
    let d = device();
    let x = Tensor::<B, 4>::random([2, 24, 24, 24], burn::tensor::Distribution::Default, &d)
        .require_grad();
    let w1 = Tensor::<B, 4>::random([16, 24, 1, 1], burn::tensor::Distribution::Default, &d)
        .require_grad();
    let w3 = Tensor::<B, 4>::random([16, 24, 3, 3], burn::tensor::Distribution::Default, &d)
        .require_grad();
    let b = Tensor::<B, 1>::random([16], burn::tensor::Distribution::Default, &d).require_grad();
    let wl =
        Tensor::<B, 2>::random([24, 24], burn::tensor::Distribution::Default, &d).require_grad();
    let y1 = sgm_conv::conv2d(
        x.clone(),
        w1,
        Some(b.clone()),
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    );
    let y3 = sgm_conv::conv2d(
        x.clone(),
        w3,
        Some(b),
        ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
    );
    let rows = x.clone().permute([0, 2, 3, 1]).reshape([2 * 24 * 24, 24]);
    let y2 = sgm_conv::matmul(rows, wl);
    let loss = y1.sum() + y3.sum() + y2.sum();
    let grads = loss.backward();
    let _ = values(x.grad(&grads).expect("input gradient"));
    let dir = std::env::temp_dir().join(format!("sgm-matmul-fault-{}", std::process::id()));
    let mut tuned = Vec::new();
    for entry in walk(&dir) {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.contains("matmul") {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            if !text.trim().is_empty() {
                tuned.push(format!(
                    "{} ({} entries)",
                    entry.display(),
                    text.lines().count()
                ));
            }
        }
    }
    assert!(
        tuned.is_empty(),
        "sgm's products ran through CubeCL's matmul autotune, which may pick the faulty \
         double-buffered unit matmul (docs/gpu.md): {tuned:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
