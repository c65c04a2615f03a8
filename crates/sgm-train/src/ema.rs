//! Exponential moving average of the weights (reference `models/ema.py`, with `num_updates`):
//! `n += 1; d = min(decay, (1 + n) / (10 + n)); shadow −= (1 − d)(shadow − param)` over the
//! trainable parameters. The shadow is kept as a whole inner-backend module, so evaluation and
//! sampling use it directly (the reference's `store` / `copy_to` / `restore` dance is not
//! needed); frozen parameters (the Fourier `W`) are copied from the model, as they never change.

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// The reference's EMA decay after `num_updates` updates: `min(decay, (1 + n) / (10 + n))`.
pub fn ema_decay(decay: f64, num_updates: u64) -> f64 {
    let n = num_updates as f64;
    decay.min((1.0 + n) / (10.0 + n))
}

/// EMA state: the shadow module, the configured decay and the update count.
#[derive(Debug, Clone)]
pub struct Ema<M> {
    /// The shadow weights, a module on the inner (non-autodiff) backend.
    pub shadow: M,
    /// Configured decay (`model.ema_rate`).
    pub decay: f64,
    /// Number of updates so far.
    pub num_updates: u64,
}

/// Current values of a model's trainable parameters, flattened, in registration order
/// (None for frozen ones).
struct Gather<B: AutodiffBackend> {
    out: Vec<Option<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Gather<B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let t = p.val();
        if t.is_require_grad() {
            let n = t.dims().iter().product::<usize>();
            self.out.push(Some(t.inner().reshape([n])));
        } else {
            self.out.push(None);
        }
    }
}

struct Blend<'a, B: Backend> {
    src: &'a mut [Option<Tensor<B, 1>>],
    index: usize,
    one_minus_decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<'_, B> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let i = self.index;
        self.index += 1;
        let Some(new) = self.src.get_mut(i).and_then(Option::take) else {
            return p;
        };
        let omd = self.one_minus_decay;
        p.map(|s| {
            let dims = s.dims();
            let new = new.reshape(dims); // [same as shadow]
            // shadow.sub_((1 − decay) · (shadow − param))
            s.clone() - (s - new).mul_scalar(omd)
        })
    }
}

impl<M> Ema<M> {
    /// Starts the EMA at the model's current weights (`shadow = param.clone()`).
    pub fn new<B, AM>(model: &AM, decay: f64) -> Self
    where
        B: AutodiffBackend,
        AM: AutodiffModule<B, InnerModule = M>,
    {
        Self {
            shadow: model.valid(),
            decay,
            num_updates: 0,
        }
    }

    /// One reference `ema.update(model.parameters())`.
    pub fn update<B, AM>(&mut self, model: &AM)
    where
        B: AutodiffBackend,
        AM: AutodiffModule<B, InnerModule = M>,
        M: Module<B::InnerBackend>,
    {
        self.num_updates += 1;
        let d = ema_decay(self.decay, self.num_updates);
        let mut g = Gather::<B> { out: Vec::new() };
        model.visit(&mut g);
        let mut blend = Blend {
            src: &mut g.out,
            index: 0,
            one_minus_decay: 1.0 - d,
        };
        self.shadow = self.shadow.clone().map(&mut blend);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_ramp_matches_the_reference() {
        assert!((ema_decay(0.999, 1) - 2.0 / 11.0).abs() < 1e-15);
        assert!((ema_decay(0.999, 2) - 3.0 / 12.0).abs() < 1e-15);
        assert_eq!(ema_decay(0.999, 1_000_000), 0.999);
        assert_eq!(ema_decay(0.0, 5), 0.0);
    }
}
