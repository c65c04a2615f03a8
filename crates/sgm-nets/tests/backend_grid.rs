//! CPU-vs-GPU comparison of NCSN++ / DDPM++ over a grid of network configurations
//! (docs/gpu.md): the CPU (Flex) path is proven against the reference, so agreement with it is
//! the test of a GPU backend. For every configuration the same re-drawn weights, images and
//! labels go through both backends; forward outputs, the input gradient and every parameter
//! gradient of `sum(out · w)` are compared with the scale-relative rule (fixtures README §3) at
//! the `nets` tolerance times the GPU bound ([`sgm_testkit::ALLOWANCE_SCALE`]). A failing
//! configuration names the first module (`all_modules.<i>`) whose output diverges. The compared
//! output is the network's before the `scale_by_sigma` division (one host-side scalar division).
//!
//! Only meaningful on a GPU build (`--features sgm-testkit/wgpu` or `/cuda`); on the CPU build it
//! says so and returns. `SGM_GRID=full` runs the whole grid; the default is the part CI runs
//! (the configurations that met the CubeCL fault of docs/gpu.md, plus the shapes around them);
//! `SGM_GRID_ONLY=<substring>` runs the matching configurations, among them the two full-size
//! official networks (`official`), which no other selection runs.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use sgm_nets::{ConvAutodiffBackend, ModelConfig, ScoreNet, StateDict, state_dict};
use sgm_testkit::{ALLOWANCE_SCALE, GPU, SeededNoise, TestBackend};

type Cpu = Autodiff<Flex>;
type Gpu = Autodiff<TestBackend>;

/// `nets` tolerance of the fixtures (rtol = atol = 1e-4).
const NETS_TOL: f64 = 1e-4;

/// One grid entry: a name, knob overrides on [`BASE`], `data` keys, batch size, CI subset flag.
struct GridCase {
    name: &'static str,
    knobs: &'static str,
    image_size: usize,
    batch: usize,
    ci: bool,
    /// A full-size official network: runs only when `SGM_GRID_ONLY` names it.
    big: bool,
}

/// Small NCSN++ (cifar10 `ncsnpp_continuous` knobs at nf 8, one block per level).
const BASE: &str = r#"{"name": "ncsnpp", "nf": 8, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 1,
 "attn_resolutions": [16], "dropout": 0.0, "fir": true, "resblock_type": "biggan",
 "progressive": "none", "progressive_input": "residual", "progressive_combine": "sum",
 "embedding_type": "fourier", "init_scale": 0.0, "scale_by_sigma": true}"#;

const GRID: &[GridCase] = &[
    GridCase {
        name: "base-32",
        knobs: "{}",
        image_size: 32,
        batch: 2,
        ci: false,
        big: false,
    },
    GridCase {
        name: "nf16-nonuniform-1234-32",
        knobs: r#"{"nf": 16, "ch_mult": [1, 2, 3, 4]}"#,
        image_size: 32,
        batch: 2,
        ci: true,
        big: false,
    },
    GridCase {
        name: "nf8-213-blocks2-attn12-48",
        knobs: r#"{"ch_mult": [2, 1, 3], "num_res_blocks": 2, "attn_resolutions": [12]}"#,
        image_size: 48,
        batch: 2,
        ci: true,
        big: false,
    },
    GridCase {
        name: "nf8-11222-nofir-attn16-64",
        knobs: r#"{"ch_mult": [1, 1, 2, 2, 2], "fir": false}"#,
        image_size: 64,
        batch: 1,
        ci: true,
        big: false,
    },
    GridCase {
        name: "outputskip-inputskip-cat-32",
        knobs: r#"{"progressive": "output_skip", "progressive_input": "input_skip",
                   "progressive_combine": "cat"}"#,
        image_size: 32,
        batch: 2,
        ci: false,
        big: false,
    },
    GridCase {
        name: "residual-residual-nofir-48",
        knobs: r#"{"progressive": "residual", "fir": false, "ch_mult": [1, 2, 2],
                   "attn_resolutions": [24]}"#,
        image_size: 48,
        batch: 3,
        ci: false,
        big: false,
    },
    GridCase {
        name: "ddpmpp-positional-32",
        knobs: r#"{"resblock_type": "ddpm", "fir": false, "progressive_input": "none",
                   "embedding_type": "positional", "scale_by_sigma": false, "nf": 16,
                   "ch_mult": [1, 2, 2]}"#,
        image_size: 32,
        batch: 2,
        ci: false,
        big: false,
    },
    GridCase {
        name: "nf32-12-attn16-8-16",
        knobs: r#"{"nf": 32, "ch_mult": [1, 2], "attn_resolutions": [16, 8]}"#,
        image_size: 16,
        batch: 1,
        ci: false,
        big: false,
    },
    GridCase {
        name: "nf12-122-attn24-48-b5",
        knobs: r#"{"nf": 12, "ch_mult": [1, 2, 2], "attn_resolutions": [24]}"#,
        image_size: 48,
        batch: 5,
        ci: false,
        big: false,
    },
    GridCase {
        name: "nf8-13-blocks3-attn32-64",
        knobs: r#"{"ch_mult": [1, 3], "num_res_blocks": 3, "attn_resolutions": [32]}"#,
        image_size: 64,
        batch: 1,
        ci: false,
        big: false,
    },
    // The official CIFAR-10 networks at full size (`SGM_GRID_ONLY=official`): NCSN++ cont. deep
    // (ve/cifar10_ncsnpp_deep_continuous) and DDPM++ cont. (vp/cifar10_ddpmpp_continuous).
    GridCase {
        name: "official-ncsnpp-deep-cont-32",
        knobs: r#"{"nf": 128, "num_res_blocks": 8}"#,
        image_size: 32,
        batch: 2,
        ci: false,
        big: true,
    },
    GridCase {
        name: "official-ddpmpp-cont-32",
        knobs: r#"{"nf": 128, "num_res_blocks": 4, "fir": false, "progressive_input": "none",
                   "embedding_type": "positional", "scale_by_sigma": false}"#,
        image_size: 32,
        batch: 2,
        ci: false,
        big: true,
    },
];

fn config(case: &GridCase) -> ModelConfig {
    let mut knobs: serde_json::Value = serde_json::from_str(BASE).expect("base knobs");
    let over: serde_json::Value = serde_json::from_str(case.knobs).expect("grid knobs");
    for (k, v) in over.as_object().expect("knob object") {
        knobs[k] = v.clone();
    }
    let doc = serde_json::json!({
        "model": knobs,
        "data": {"image_size": case.image_size, "num_channels": 3, "centered": false},
    });
    ModelConfig::from_json_str(&doc.to_string()).unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// Re-draws every float weight as the fixtures do (README §1), so outputs are O(1): GroupNorm
/// weights `1 + 0.25u`, other 1-D tensors `0.1u`, ≥ 2-D `u·sqrt(3 / mean fan)`; the frozen Fourier
/// `W` and the `sigmas` buffer keep their values.
fn redraw(sd: &mut StateDict, noise: &mut SeededNoise) {
    let mut keys: Vec<String> = sd.tensors.keys().cloned().collect();
    keys.sort();
    for key in keys {
        if key.ends_with(".W") || key == sgm_nets::weights::SIGMAS_KEY {
            continue;
        }
        let t = sd.tensors.get_mut(&key).expect("key");
        let sgm_nets::weights::HostData::F32(v) = &mut t.data else {
            continue;
        };
        let area: usize = t.shape.iter().skip(2).product();
        let scale = if t.shape.len() >= 2 {
            let fan = (t.shape[0] + t.shape[1]) as f64 * area as f64 / 2.0;
            (3.0 / fan).sqrt()
        } else {
            0.1
        };
        for x in v.iter_mut() {
            let u = 2.0 * noise.next_f64() - 1.0;
            *x = if t.shape.len() == 1 && key.contains("GroupNorm") && key.ends_with("weight") {
                (1.0 + 0.25 * u) as f32
            } else {
                (scale * u) as f32
            };
        }
    }
}

/// Everything compared between backends.
struct Run {
    out: Vec<f64>,
    trace: Vec<(usize, &'static str, Vec<usize>, Vec<f64>)>,
    x_grad: Vec<f64>,
    param_grads: Vec<Vec<f64>>,
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    sgm_testkit::host(t).1
}

/// Collects every parameter's gradient in visiting order (the same on every backend).
struct Grads<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    out: Vec<Vec<f64>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            self.out.push(host(g));
        }
    }
}

struct Inputs {
    x: Vec<f32>,
    labels: Vec<f32>,
    w: Vec<f32>,
}

fn run<B: AutodiffBackend + ConvAutodiffBackend>(
    cfg: &ModelConfig,
    sd: &StateDict,
    inp: &Inputs,
    batch: usize,
) -> Run {
    let dev = B::Device::default();
    let net = ScoreNet::<B>::new(cfg, &dev).expect("net");
    let net = sgm_nets::weights::apply_state_dict(net, sd).expect("weights");
    let s = cfg.data.image_size;
    let shape = [batch, cfg.data.num_channels, s, s];
    let x = Tensor::<B, 4>::from_data(TensorData::new(inp.x.clone(), shape), &dev).require_grad();
    let labels = Tensor::<B, 1>::from_data(TensorData::new(inp.labels.clone(), [batch]), &dev);
    let w = Tensor::<B, 4>::from_data(TensorData::new(inp.w.clone(), shape), &dev);
    // the unscaled network output (σ scaling is one host-side division, the same on every
    // backend) and every module's output
    let (out, trace) = match &net {
        ScoreNet::Ncsnpp(n) => n.forward_traced(x.clone(), labels),
        ScoreNet::Ddpm(_) => unreachable!("the grid holds NCSN++ configurations only"),
    };
    let trace = trace
        .into_iter()
        .map(|e| (e.index, e.class, e.dims, host(e.values)))
        .collect();
    let grads = (out.clone() * w).sum().backward();
    let x_grad = host(x.grad(&grads).expect("input gradient"));
    let mut g = Grads::<B> {
        grads: &grads,
        out: Vec::new(),
    };
    net.visit(&mut g);
    Run {
        out: host(out),
        trace,
        x_grad,
        param_grads: g.out,
    }
}

/// Scale-relative error over allowance (fixtures README §3) of `a` against reference `e`.
fn ratio(a: &[f64], e: &[f64]) -> f64 {
    assert_eq!(a.len(), e.len(), "length mismatch");
    let scale = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = a.iter().zip(e).fold(0.0f64, |m, (x, y)| {
        m.max((x - y).abs())
            .max(if x.is_finite() { 0.0 } else { f64::INFINITY })
    });
    err / (NETS_TOL + NETS_TOL * scale)
}

#[test]
fn gpu_matches_cpu_over_the_network_grid() {
    if !GPU {
        eprintln!(
            "backend_grid: CPU build, nothing to compare (run with --features sgm-testkit/wgpu)"
        );
        return;
    }
    let full = std::env::var("SGM_GRID").is_ok_and(|v| v == "full");
    let only = std::env::var("SGM_GRID_ONLY").ok();
    sgm_testkit::device(); // GPU caches where sgm keeps them (docs/gpu.md)
    let mut failures = Vec::new();
    let mut ran = 0;
    for (k, case) in GRID.iter().enumerate() {
        if let Some(o) = &only {
            if !case.name.contains(o.as_str()) {
                continue;
            }
        } else if case.big || (!full && !case.ci) {
            continue;
        }
        ran += 1;
        let cfg = config(case);
        let mut noise = SeededNoise::new(1000 + k as u64);
        let mut sd = state_dict(&ScoreNet::<Flex>::new(&cfg, &Default::default()).expect("net"));
        redraw(&mut sd, &mut noise);
        let s = cfg.data.image_size;
        let n = case.batch * 3 * s * s;
        let inp = Inputs {
            x: (0..n).map(|_| noise.next_f64() as f32).collect(),
            // log-uniform σ in [0.01, 50]
            labels: (0..case.batch)
                .map(|_| (0.01f64 * 5000f64.powf(noise.next_f64())) as f32)
                .collect(),
            w: noise.normals(n),
        };
        let start = std::time::Instant::now();
        let c = run::<Cpu>(&cfg, &sd, &inp, case.batch);
        let g = run::<Gpu>(&cfg, &sd, &inp, case.batch);
        let fwd = ratio(&g.out, &c.out);
        let xg = ratio(&g.x_grad, &c.x_grad);
        assert_eq!(g.param_grads.len(), c.param_grads.len());
        let (pg, pi) = g
            .param_grads
            .iter()
            .zip(&c.param_grads)
            .enumerate()
            .map(|(i, (a, e))| (ratio(a, e), i))
            .fold((0.0, 0), |m, v| if v.0 > m.0 { v } else { m });
        let first = g
            .trace
            .iter()
            .zip(&c.trace)
            .map(|(a, e)| (a.0, a.1, &a.2, ratio(&a.3, &e.3)))
            .find(|t| t.3 > ALLOWANCE_SCALE);
        let where_ = first.map_or("none".to_string(), |(i, class, dims, r)| {
            format!("all_modules.{i} ({class}, out {dims:?}) error/allowance {r:.3e}")
        });
        eprintln!(
            "grid {:<32} forward {fwd:.3e}  input-grad {xg:.3e}  param-grad {pg:.3e} (#{pi})  first diverging module: {where_}  [{:.1} s]",
            case.name,
            start.elapsed().as_secs_f64()
        );
        let worst = fwd.max(xg).max(pg);
        if worst.is_nan() || worst > ALLOWANCE_SCALE {
            failures.push(format!(
                "{}: worst error/allowance {worst:.3e} > GPU bound {ALLOWANCE_SCALE}; first diverging module {where_}",
                case.name
            ));
        }
    }
    assert!(ran > 0, "SGM_GRID_ONLY matched no grid configuration");
    assert!(
        failures.is_empty(),
        "GPU differs from CPU:\n{}",
        failures.join("\n")
    );
}
