//! The optimizer and EMA formulas on one hand-computable parameter: Adam's first step is
//! `lr · g / (|g| + eps)`, global clipping scales every gradient by `max / (norm + 1e-6)`,
//! warm-up starts at lr 0, weight decay adds `λ p`, the EMA follows the `num_updates` ramp, and
//! a non-finite gradient is an error naming the step that leaves nothing changed.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use sgm_testkit::{TestAutodiff, device};
use sgm_train::{Ema, OptimConfig, Optimizer, TrainError, ema_decay, lr_at};

#[derive(Module, Debug)]
struct Two<B: Backend> {
    a: Param<Tensor<B, 1>>,
    b: Param<Tensor<B, 1>>,
}

type AB = TestAutodiff;

fn model(a: [f32; 2], b: [f32; 1]) -> Two<AB> {
    let dev = device();
    Two {
        a: Param::from_tensor(Tensor::from_floats(a, &dev)),
        b: Param::from_tensor(Tensor::from_floats(b, &dev)),
    }
}

/// Gradients of `Σ ca·a + Σ cb·b` (= ca, cb).
fn grads(m: &Two<AB>, ca: [f32; 2], cb: [f32; 1]) -> GradientsParams {
    let dev = device();
    let loss = (m.a.val() * Tensor::from_floats(ca, &dev)).sum()
        + (m.b.val() * Tensor::from_floats(cb, &dev)).sum();
    GradientsParams::from_grads(loss.backward(), m)
}

fn values(t: Tensor<AB, 1>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// First Adam moment of parameter `i`.
fn exp_avg(opt: &Optimizer<sgm_testkit::TestBackend>, i: usize) -> Vec<f32> {
    let m = opt.state[i].as_ref().expect("moments");
    m.exp_avg.clone().into_data().to_vec::<f32>().unwrap()
}

fn cfg(lr: f64, warmup: u64, clip: f64, wd: f64) -> OptimConfig {
    OptimConfig {
        lr,
        warmup,
        grad_clip: clip,
        weight_decay: wd,
        ..OptimConfig::default()
    }
}

#[test]
fn first_adam_step_moves_each_weight_by_lr_times_the_gradient_sign() {
    let m = model([1.0, -2.0], [0.5]);
    let g = grads(&m, [0.3, -4.0], [2e-3]);
    let mut opt = Optimizer::new(cfg(0.1, 0, -1.0, 0.0));
    let (m, stats) = opt.step(m, g, 0).unwrap();
    assert_eq!(stats.lr, 0.1);
    let want = |p: f32, g: f32| p - 0.1 * g / (g.abs() + 1e-8);
    let a = values(m.a.val());
    assert!(
        (a[0] - want(1.0, 0.3)).abs() < 1e-6 && (a[1] - want(-2.0, -4.0)).abs() < 1e-6,
        "{a:?}"
    );
    assert!((values(m.b.val())[0] - want(0.5, 2e-3)).abs() < 1e-6);
    // moments: m = 0.1 g, v = 0.001 g², one step
    let mo = opt.state[0].as_ref().unwrap();
    assert_eq!(mo.step, 1);
    let ea = mo.exp_avg.clone().into_data().to_vec::<f32>().unwrap();
    assert!((ea[1] - (-0.4)).abs() < 1e-7, "{ea:?}");
}

#[test]
fn global_clipping_scales_all_gradients_by_one_coefficient() {
    let m = model([0.0, 0.0], [0.0]);
    let g = grads(&m, [3.0, 0.0], [4.0]); // global norm 5 (per-tensor norms 3 and 4)
    let mut opt = Optimizer::new(cfg(1e-3, 0, 1.0, 0.0));
    let (_, stats) = opt.step(m, g, 10).unwrap();
    assert!((stats.grad_norm - 5.0).abs() < 1e-6);
    let coef = 1.0 / (5.0 + 1e-6);
    let ma = exp_avg(&opt, 0);
    let mb = exp_avg(&opt, 1);
    assert!((ma[0] as f64 - 0.1 * 3.0 * coef).abs() < 1e-7, "{ma:?}");
    assert!((mb[0] as f64 - 0.1 * 4.0 * coef).abs() < 1e-7, "{mb:?}");
}

#[test]
fn warmup_starts_at_zero_and_still_advances_the_moments() {
    let c = cfg(2e-4, 2, 1.0, 0.0);
    assert_eq!(
        (lr_at(&c, 0), lr_at(&c, 1), lr_at(&c, 2), lr_at(&c, 9)),
        (0.0, 1e-4, 2e-4, 2e-4)
    );
    let m = model([1.0, 2.0], [3.0]);
    let g = grads(&m, [1.0, 1.0], [1.0]);
    let mut opt = Optimizer::new(c);
    let (m, stats) = opt.step(m, g, 0).unwrap();
    assert_eq!(stats.lr, 0.0);
    assert_eq!(values(m.a.val()), vec![1.0, 2.0]);
    assert_eq!(opt.state[0].as_ref().unwrap().step, 1);
}

#[test]
fn weight_decay_is_added_to_the_gradient() {
    let m = model([2.0, 0.0], [0.0]);
    let g = grads(&m, [0.0, 0.0], [0.0]);
    let mut opt = Optimizer::new(cfg(0.1, 0, -1.0, 0.5));
    opt.step(m, g, 0).unwrap();
    let ma = exp_avg(&opt, 0);
    assert!((ma[0] - 0.1 * 0.5 * 2.0).abs() < 1e-7, "{ma:?}");
}

#[test]
fn non_finite_gradients_are_an_error_naming_the_step() {
    let m = model([1.0, 1.0], [1.0]);
    let g = grads(&m, [f32::NAN, 1.0], [1.0]);
    let mut opt = Optimizer::new(cfg(0.1, 0, 1.0, 0.0));
    match opt.step(m, g, 6) {
        Err(TrainError::NonFinite { step: 7, what, .. }) => assert_eq!(what, "gradient norm"),
        other => panic!("expected a non-finite error at step 7, got {other:?}"),
    }
    assert!(opt.state.is_empty(), "no moment was touched");
}

#[test]
fn ema_follows_the_num_updates_ramp() {
    let m = model([0.0, 0.0], [0.0]);
    let mut ema = Ema::new(&m, 0.999);
    let m2 = model([1.0, 1.0], [1.0]);
    ema.update(&m2);
    let d1 = ema_decay(0.999, 1); // 2/11
    let s = ema.shadow.a.val().into_data().to_vec::<f32>().unwrap();
    assert!((s[0] as f64 - (1.0 - d1)).abs() < 1e-7, "{s:?}");
    ema.update(&m2);
    let d2 = ema_decay(0.999, 2); // 3/12
    let want = (1.0 - d1) + (1.0 - d2) * d1;
    let s = ema.shadow.b.val().into_data().to_vec::<f32>().unwrap();
    assert!((s[0] as f64 - want).abs() < 1e-6, "{s:?} vs {want}");
    assert_eq!(ema.num_updates, 2);
}
