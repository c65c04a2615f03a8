//! The reference's optimizer (`losses.get_optimizer` + `optimization_manager`, catalog §2),
//! exactly: linear warm-up including the lr-0 first step, **global** L2 gradient clipping as
//! `torch.nn.utils.clip_grad_norm_`, then Adam as torch's single-tensor path.
//!
//! Burn's `Adam` cannot be used as is: its epsilon is added differently (same math, other
//! rounding), `GradientClippingConfig::Norm` clips each tensor by its own norm, and its state is
//! keyed by `ParamId` (not stable across a weight load). This optimizer keeps the moments in
//! parameter registration order (= torch's `state[i]`), so checkpoints map by index and name.

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use sgm_config::{ADAM_BETA2, OptimConfig};

use crate::error::{Result, TrainError};

/// Learning rate of the optimizer step taken when `step` steps are done
/// (`optimization_manager`: `lr · min(step / warmup, 1)`, so the first step uses 0).
pub fn lr_at(config: &OptimConfig, step: u64) -> f64 {
    if config.warmup > 0 {
        config.lr * (step as f64 / config.warmup as f64).min(1.0)
    } else {
        config.lr
    }
}

/// Adam moments of one parameter (torch `state[i]`: `step`, `exp_avg`, `exp_avg_sq`), flat.
#[derive(Debug, Clone)]
pub struct Moments<B: Backend> {
    /// Number of Adam updates of this parameter.
    pub step: u64,
    /// First moment `m`, flattened.
    pub exp_avg: Tensor<B, 1>,
    /// Second moment `v`, flattened.
    pub exp_avg_sq: Tensor<B, 1>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimStats {
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
}

/// Adam + warm-up + global clipping with state in parameter order.
#[derive(Debug, Clone)]
pub struct Optimizer<B: Backend> {
    /// Hyper-parameters (`config.optim`; β2 is the reference's fixed [`ADAM_BETA2`]).
    pub config: OptimConfig,
    /// Moments per parameter index (None: never had a gradient, e.g. the frozen Fourier `W`).
    pub state: Vec<Option<Moments<B>>>,
}

/// Per-tensor squared gradient norms, in parameter order.
struct SqNorms<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    out: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SqNorms<'_, B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(p.id) {
            self.out.push(g.square().sum());
        }
    }
}

/// Hyper-parameters of one step, as f32 scalars the way torch casts them.
struct StepScalars {
    clip_coef: Option<f64>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

struct AdamMapper<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    state: &'a mut Vec<Option<Moments<B::InnerBackend>>>,
    index: usize,
    s: StepScalars,
}

impl<B: AutodiffBackend> ModuleMapper<B> for AdamMapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let i = self.index;
        self.index += 1;
        if self.state.len() <= i {
            self.state.resize(i + 1, None);
        }
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let p = tensor.inner();
        let dims = p.dims();
        let n = dims.iter().product::<usize>();
        let mut g = grad.reshape([n]); // [n]
        if let Some(c) = self.s.clip_coef {
            g = g.mul_scalar(c); // clip_grad_norm_: grads *= clip_coef_clamped
        }
        let p_flat = p.reshape([n]); // [n]
        if self.s.weight_decay != 0.0 {
            g = g + p_flat.clone().mul_scalar(self.s.weight_decay);
        }
        let prev = self.state[i].take();
        let (step, m, v) = match prev {
            Some(mo) => (mo.step, mo.exp_avg, mo.exp_avg_sq),
            None => (0, g.zeros_like(), g.zeros_like()),
        };
        let step = step + 1;
        // torch _single_tensor_adam: m.lerp_(g, 1 − β1); v = β2 v + (1 − β2) g²
        let m = m.clone() + (g.clone() - m).mul_scalar(1.0 - self.s.beta1);
        let v = v.mul_scalar(self.s.beta2) + g.square().mul_scalar(1.0 - self.s.beta2);
        // step_size = lr / (1 − β1^s); denom = sqrt(v) / sqrt(1 − β2^s) + eps
        let bc1 = 1.0 - self.s.beta1.powf(step as f64);
        let bc2_sqrt = (1.0 - self.s.beta2.powf(step as f64)).sqrt();
        let step_size = self.s.lr / bc1;
        let denom = v.clone().sqrt().div_scalar(bc2_sqrt).add_scalar(self.s.eps);
        // p.addcdiv_(m, denom, value = −step_size)
        let p_new = p_flat - m.clone().div(denom).mul_scalar(step_size);
        self.state[i] = Some(Moments {
            step,
            exp_avg: m,
            exp_avg_sq: v,
        });
        let mut t = Tensor::<B, D>::from_inner(p_new.reshape(dims));
        if require_grad {
            t = t.require_grad();
        }
        Param::from_mapped_value(id, t, mapper)
    }
}

impl<B: Backend> Optimizer<B> {
    /// A fresh optimizer (no moments yet).
    pub fn new(config: OptimConfig) -> Self {
        Self {
            config,
            state: Vec::new(),
        }
    }
}

impl<IB: Backend> Optimizer<IB> {
    /// One `optimize_fn` call for a model that has taken `step` optimizer steps so far:
    /// warm-up learning rate, global clipping of `grads`, Adam update. Non-finite gradients are
    /// an error naming the step (the model is returned untouched inside the error path by the
    /// caller keeping its copy).
    pub fn step<B, M>(
        &mut self,
        model: M,
        mut grads: GradientsParams,
        step: u64,
    ) -> Result<(M, OptimStats)>
    where
        B: AutodiffBackend<InnerBackend = IB>,
        M: AutodiffModule<B>,
    {
        let lr = lr_at(&self.config, step);
        let mut sq = SqNorms::<B> {
            grads: &grads,
            out: Vec::new(),
        };
        model.visit(&mut sq);
        // clip_grad_norm_: per-tensor norms (f32), then the norm of the norms.
        let grad_norm = if sq.out.is_empty() {
            0.0
        } else {
            let host = Tensor::cat(sq.out, 0)
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| TrainError::Internal(format!("gradient norms: {e:?}")))?;
            let total: f32 = host.iter().map(|s| s.sqrt().powi(2)).sum::<f32>().sqrt();
            total as f64
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                what: "gradient norm",
                value: grad_norm,
            });
        }
        let clip_coef = if self.config.grad_clip >= 0.0 {
            // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to ≤ 1 (float32)
            let c = (self.config.grad_clip as f32) / (grad_norm as f32 + 1e-6f32);
            Some(c.min(1.0) as f64)
        } else {
            None
        };
        let c = &self.config;
        let mut mapper = AdamMapper::<B> {
            grads: &mut grads,
            state: &mut self.state,
            index: 0,
            s: StepScalars {
                clip_coef,
                lr,
                beta1: c.beta1,
                beta2: ADAM_BETA2,
                eps: c.eps,
                weight_decay: c.weight_decay,
            },
        };
        let model = model.map(&mut mapper);
        Ok((model, OptimStats { lr, grad_norm }))
    }
}
