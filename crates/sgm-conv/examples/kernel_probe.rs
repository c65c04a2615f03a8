//! Times the Flex kernel's three passes (forward, input gradient, weight gradient) on one shape,
//! without Burn, plus raw `gemm` / `matrixmultiply` GEMM throughput:
//! `cargo run -p sgm-conv --example kernel_probe -- [N C H W O K STRIDE PAD]` (default the
//! 3×3 128→128 conv at [8,128,32,32]). `PROBE_ONLY=dw` runs the weight gradient alone 30 times, `PROBE_ONLY=fwd` the forward 300 times
//! (for `perf record`). `PROBE_SHAPES=FILE` times forward and both gradients of every line
//! `COUNT N C H W O K STRIDE PAD` of FILE instead (a network's conv shapes with their counts) and
//! prints the count-weighted totals.

use std::time::Instant;

use burn::tensor::ops::ConvOptions;
use sgm_conv::flex::kernel::{Geometry, backward, forward};

fn median(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..9)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[4]
}

fn shape_table(path: &str) {
    let text = std::fs::read_to_string(path).expect("PROBE_SHAPES file");
    let (mut tf, mut tb) = (0.0, 0.0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Vec<usize> = line
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let [cnt, n, c, h, w, o, k, s, p] = v[..] else {
            panic!("line `{line}`: COUNT N C H W O K STRIDE PAD")
        };
        let opts = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let g = Geometry::new([n, c, h, w], [o, c, k, k], &opts).unwrap();
        let x = values(n * c * h * w, 1);
        let wt = values(o * c * k * k, 2);
        let dy = values(n * o * g.ho * g.wo, 3);
        let fwd = median(|| drop(forward::<f32>(&g, &x, &wt, None)));
        let bwd = median(|| drop(backward::<f32>(&g, &x, &wt, &dy, true, true)));
        let gf = 2.0 * (n * o * g.p() * g.k()) as f64 / fwd / 1e6;
        println!(
            "{cnt:3} x[{n},{c},{h},{w}] w[{o},{c},{k},{k}] s{s} p{p}: fwd {fwd:.3} ms bwd {bwd:.3} ms ({gf:.0} GF/s fwd) total {:.1}",
            cnt as f64 * (fwd + bwd)
        );
        tf += cnt as f64 * fwd;
        tb += cnt as f64 * bwd;
    }
    println!(
        "total: forward {tf:.1} ms, backward {tb:.1} ms, both {:.1} ms",
        tf + tb
    );
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed) % 251) as f32) / 125.5 - 1.0)
        .collect()
}

/// `PROBE_ONLY=elementwise`: the fused GroupNorm and SiLU kernels on `[8, C, 32, 32]`.
fn elementwise() {
    use sgm_conv::flex::{act, norm};
    for c in [32, 128] {
        let (n, hw) = (8, 32 * 32);
        let g = norm::NormGeometry {
            n,
            c,
            hw,
            groups: (c / 4).min(32),
        };
        let x = values(n * c * hw, 1);
        let dy = values(n * c * hw, 2);
        let (gamma, beta) = (values(c, 3), values(c, 4));
        let (_, _, rstd) = norm::forward(&g, &x, &gamma, &beta, 1e-6);
        let gf = median(|| drop(norm::forward(&g, &x, &gamma, &beta, 1e-6)));
        let gb = median(|| drop(norm::backward(&g, &x, &gamma, &rstd, &dy)));
        let sf = median(|| drop(act::forward(&x)));
        let sb = median(|| drop(act::backward(&x, &dy)));
        println!("C={c}: GN fwd {gf:.3} bwd {gb:.3}  SiLU fwd {sf:.3} bwd {sb:.3} ms");
    }
    // the attention scores of a 16×16 level at batch 8: [8·256, 256]
    let (rows, n) = (8 * 256, 256);
    let x = values(rows * n, 5);
    let dy = values(rows * n, 6);
    let p = sgm_conv::Precision::Fast;
    let y = sgm_conv::flex::softmax::forward(&x, n, p);
    let f = median(|| drop(sgm_conv::flex::softmax::forward(&x, n, p)));
    let b = median(|| drop(sgm_conv::flex::softmax::backward(&y, &dy, n, p)));
    println!("softmax [{rows}, {n}]: fwd {f:.3} bwd {b:.3} ms");
}

fn main() {
    if std::env::var("PROBE_ONLY").is_ok_and(|v| v == "elementwise") {
        return elementwise();
    }
    if let Ok(path) = std::env::var("PROBE_SHAPES") {
        return shape_table(&path);
    }
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let [n, c, h, w, o, k, s, p] = if a.len() == 8 {
        [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]
    } else {
        [8, 128, 32, 32, 128, 3, 1, 1]
    };
    let opts = ConvOptions::new([s, s], [p, p], [1, 1], 1);
    let g = Geometry::new([n, c, h, w], [o, c, k, k], &opts).unwrap();
    let val = values;
    let x = val(n * c * h * w, 1);
    let wt = val(o * c * k * k, 2);
    let dy = val(n * o * g.ho * g.wo, 3);
    let flop = 2.0 * (n * o * g.p() * g.k()) as f64;
    match std::env::var("PROBE_ONLY").as_deref() {
        Ok("dw") => {
            for _ in 0..30 {
                drop(backward::<f32>(&g, &x, &wt, &dy, false, true));
            }
            return;
        }
        Ok("fwd") => {
            for _ in 0..300 {
                drop(forward::<f32>(&g, &x, &wt, None));
            }
            return;
        }
        _ => {}
    }
    let fwd = median(|| drop(forward::<f32>(&g, &x, &wt, None)));
    let dx = median(|| drop(backward::<f32>(&g, &x, &wt, &dy, true, false)));
    let dw = median(|| drop(backward::<f32>(&g, &x, &wt, &dy, false, true)));
    let both = median(|| drop(backward::<f32>(&g, &x, &wt, &dy, true, true)));
    let gf = |ms: f64| flop / ms / 1e6;
    println!("{g:?}");
    println!("forward     {fwd:7.2} ms  {:6.1} GFLOP/s", gf(fwd));
    println!("input grad  {dx:7.2} ms  {:6.1} GFLOP/s", gf(dx));
    println!("weight grad {dw:7.2} ms  {:6.1} GFLOP/s", gf(dw));
    println!("both grads  {both:7.2} ms  {:6.1} GFLOP/s", 2.0 * gf(both));
    for (m, kk, nn) in [(128, 1152, 1024), (128, 1152, 512), (256, 2304, 256)] {
        for t in [1, 2] {
            println!(
                "raw gemm {m}x{kk}x{nn} on {t} thread(s): {:.1} GFLOP/s each",
                raw_gemm(m, kk, nn, t)
            );
            println!(
                "raw matrixmultiply {m}x{kk}x{nn} on {t} thread(s): {:.1} GFLOP/s each",
                raw_mm(m, kk, nn, t)
            );
        }
    }
}

/// Raw `gemm` throughput of `[m, k] · [k, n]` (row-major, contiguous), on `threads` threads at
/// once (each its own matrices).
#[allow(dead_code)]
pub fn raw_gemm(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    let run = move || {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        median(|| unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        })
    };
    let hs: Vec<_> = (0..threads).map(|_| std::thread::spawn(run)).collect();
    let ms: f64 = hs.into_iter().map(|h| h.join().unwrap()).sum::<f64>() / threads as f64;
    2.0 * (m * k * n) as f64 / ms / 1e6
}

/// Raw `matrixmultiply::sgemm` throughput, as [`raw_gemm`].
#[allow(dead_code)]
pub fn raw_mm(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    let run = move || {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        median(|| unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        })
    };
    let hs: Vec<_> = (0..threads).map(|_| std::thread::spawn(run)).collect();
    let ms: f64 = hs.into_iter().map(|h| h.join().unwrap()).sum::<f64>() / threads as f64;
    2.0 * (m * k * n) as f64 / ms / 1e6
}
