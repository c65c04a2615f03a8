//! Data parallelism on several devices of one process (any backend): each batch is split into
//! contiguous shards, one per device; every device runs the forward and backward pass of its
//! shard on its own copy of the model; the gradients are moved to the main device (the first),
//! summed with weights `n_i / B` (the shard's share of the batch, so the result is the gradient
//! of the batch-mean loss), and one optimizer step (warm-up, global clipping, Adam) and one EMA
//! update are taken there.
//!
//! The random draws of the loss (times / noise levels and Gaussian noise) are the draws the
//! whole batch would take on one device, sliced per shard ([`ShardDraws`]), so a parallel step
//! equals the single-device step on the union batch up to float rounding (tested). Dropout
//! masks are drawn per device and differ.
//!
//! Burn's own strategies (`../shared/reference/burn-0.21.md` §8: burn-train's multi-device
//! strategy, DDP over NCCL) are not used: burn-train is not in the default build (only in the
//! optional `learner` feature; `docs/architecture.md`), and the `distributed` feature breaks `Autodiff<Flex>`. Peers of a
//! burn-collective collective: `crate::collective` (feature `collective`), the same shard step
//! with burn-collective's all-reduce.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::{AutodiffBackend, DeviceId, DeviceOps};
use sde_core::{NoiseSource, training_loss};
use sgm_conv::ConvAutodiffBackend;
use sgm_nets::ScoreNet;

use crate::data::BatchHost;
use crate::error::{Result, TrainError};
use crate::run::{Objective, to_tensor};
use crate::trainer::{StepOutput, Stepper, TrainState};

/// Sizes of `n` contiguous shards of a batch of `batch` (as even as possible, the larger ones
/// first; empty shards are dropped).
pub fn shard_sizes(batch: usize, n: usize) -> Vec<usize> {
    let n = n.max(1);
    (0..n)
        .map(|i| batch / n + usize::from(i < batch % n))
        .filter(|&s| s > 0)
        .collect()
}

/// The first `n` devices of the backend of `main`'s kind (`main` = the backend's default
/// device when `None`). An error when the backend has fewer.
pub fn devices<B: Backend>(n: usize) -> Result<Vec<B::Device>> {
    let main = B::Device::default();
    let id = main.id();
    let count = B::device_count(id.type_id);
    if n == 0 || n > count {
        return Err(TrainError::Config {
            key: "devices".into(),
            msg: format!(
                "{n} devices asked for; the backend has {count} device(s) of the default kind {main:?}"
            ),
        });
    }
    Ok((0..n)
        .map(|i| {
            <B::Device as burn::tensor::backend::Device>::from_id(DeviceId::new(
                id.type_id, i as u16,
            ))
        })
        .collect())
}

enum Cached<B: Backend> {
    Float(Tensor<B, 2>),
    Int(Tensor<B, 2, Int>),
}

/// A [`NoiseSource`] for one shard at a time: the `k`-th draw of a shard is rows
/// `offset..offset + size` of the `k`-th draw the whole batch takes from `inner` (drawn once,
/// on the main device, when the first shard asks for it).
pub struct ShardDraws<'a, B: Backend, N> {
    inner: &'a mut N,
    main: B::Device,
    total: usize,
    cache: Vec<Cached<B>>,
    call: usize,
    offset: usize,
    size: usize,
    device: B::Device,
}

impl<'a, B: Backend, N: NoiseSource<B>> ShardDraws<'a, B, N> {
    /// Draws for a batch of `total` items from `inner` on `main`.
    pub fn new(inner: &'a mut N, total: usize, main: B::Device) -> Self {
        Self {
            inner,
            device: main.clone(),
            main,
            total,
            cache: Vec::new(),
            call: 0,
            offset: 0,
            size: total,
        }
    }

    /// The next shard: items `offset..offset + size`, its draws on `device`.
    pub fn shard(&mut self, offset: usize, size: usize, device: &B::Device) {
        self.call = 0;
        self.offset = offset;
        self.size = size;
        self.device = device.clone();
    }

    fn check(&self, n: usize) -> sde_core::Result<()> {
        if n != self.size || self.offset + n > self.total {
            return Err(sde_core::SdeError::BatchMismatch {
                what: "sharded draws",
                got: n,
                batch: self.size,
            });
        }
        Ok(())
    }

    /// The current call's union draw (`[total, rest]`), drawn by `draw` if not cached yet.
    fn float(
        &mut self,
        draw: impl FnOnce(&mut N, &B::Device) -> sde_core::Result<Tensor<B, 2>>,
    ) -> sde_core::Result<Tensor<B, 2>> {
        let k = self.call;
        self.call += 1;
        if k == self.cache.len() {
            let t = draw(self.inner, &self.main)?;
            self.cache.push(Cached::Float(t));
        }
        match &self.cache[k] {
            Cached::Float(t) => {
                let rest = t.dims()[1];
                Ok(t.clone()
                    .slice([self.offset..self.offset + self.size, 0..rest])
                    .to_device(&self.device))
            }
            Cached::Int(_) => Err(mismatch()),
        }
    }

    /// A per-item draw of `shape` (`[n_i, …]`): rows of the union draw `draw([total, …])`.
    fn per_item<const D: usize>(
        &mut self,
        shape: [usize; D],
        draw: impl FnOnce(&mut N, [usize; D], &B::Device) -> sde_core::Result<Tensor<B, D>>,
    ) -> sde_core::Result<Tensor<B, D>> {
        self.check(shape[0])?;
        let mut union = shape;
        union[0] = self.total;
        let rest: usize = shape[1..].iter().product();
        let total = self.total;
        let t = self.float(|n, d| Ok(draw(n, union, d)?.reshape([total, rest])))?;
        Ok(t.reshape(shape))
    }
}

fn mismatch() -> sde_core::SdeError {
    sde_core::SdeError::Unsupported("shards drew in different orders".into())
}

impl<B: Backend, N: NoiseSource<B>> NoiseSource<B> for ShardDraws<'_, B, N> {
    fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        _device: &B::Device,
    ) -> sde_core::Result<Tensor<B, D>> {
        self.per_item(shape, |n, s, d| n.normal(s, d))
    }

    fn uniform(&mut self, n: usize, _device: &B::Device) -> sde_core::Result<Tensor<B, 1>> {
        self.per_item([n], |s, [total], d| s.uniform(total, d))
    }

    fn randint(
        &mut self,
        low: i64,
        high: i64,
        n: usize,
        _device: &B::Device,
    ) -> sde_core::Result<Tensor<B, 1, Int>> {
        self.check(n)?;
        let k = self.call;
        self.call += 1;
        if k == self.cache.len() {
            let t = self.inner.randint(low, high, self.total, &self.main)?;
            self.cache.push(Cached::Int(t.reshape([self.total, 1])));
        }
        match &self.cache[k] {
            Cached::Int(t) => Ok(t
                .clone()
                .slice([self.offset..self.offset + n, 0..1])
                .reshape([n])
                .to_device(&self.device)),
            Cached::Float(_) => Err(mismatch()),
        }
    }

    fn rademacher<const D: usize>(
        &mut self,
        shape: [usize; D],
        _device: &B::Device,
    ) -> sde_core::Result<Tensor<B, D>> {
        self.per_item(shape, |n, s, d| n.rademacher(s, d))
    }
}

/// Sums the shards' (already weighted, main-device) gradients per parameter.
struct SumGrads<'a, B: AutodiffBackend> {
    shards: &'a [GradientsParams],
    out: GradientsParams,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let mut sum: Option<Tensor<B::InnerBackend, D>> = None;
        for g in self.shards {
            if let Some(g) = g.get::<B::InnerBackend, D>(p.id) {
                sum = Some(match sum {
                    Some(s) => s + g,
                    None => g,
                });
            }
        }
        if let Some(s) = sum {
            self.out.register::<B::InnerBackend, D>(p.id, s);
        }
    }
}

/// The step stops on a NaN / Inf batch loss (before any state changes).
pub(crate) fn check_loss(step: u64, loss_value: f64) -> Result<()> {
    if loss_value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFinite {
            step,
            what: "loss",
            value: loss_value,
        })
    }
}

impl Stepper {
    /// Forward and backward pass of one shard `x` (`[n_i, C, H, W]` on `model`'s device, the
    /// draws of `draws` already pointed at it) of a batch of `total` items, for train step
    /// `step`. The loss is weighted by `n_i / total`, so the shards' losses and gradients sum to
    /// the batch-mean loss and its gradient. Returns the weighted loss and the gradients, both
    /// moved to `to`.
    pub(crate) fn shard_grads<B: ConvAutodiffBackend, N: NoiseSource<B>>(
        &self,
        model: &ScoreNet<B>,
        x: Tensor<B, 4>,
        total: usize,
        step: u64,
        draws: &mut ShardDraws<'_, B, N>,
        to: &B::Device,
    ) -> Result<(Tensor<B::InnerBackend, 1>, GradientsParams)> {
        let device = x.device();
        let n = x.dims()[0];
        self.seed_dropout::<B>(&device, step);
        // the batch-mean loss is Σ_i (n_i / B) · mean_i
        let w = n as f64 / total as f64;
        let loss = training_loss(&self.sde, model, x, &self.loss, draws)?.mul_scalar(w); // [1]
        let value = loss.clone().inner().to_device(to);
        let grads = GradientsParams::from_grads(loss.backward(), model).to_device(to, model);
        Ok((value, grads))
    }

    /// One train step on `batch` (`[B, C, H, W]` on `devices[0]`) split across `devices`
    /// (see the module docs): the same result as [`Stepper::train_step`] on the whole batch on
    /// one device, up to float rounding. On error `state` is unchanged.
    pub fn train_step_parallel<B: ConvAutodiffBackend>(
        &self,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
        devices: &[B::Device],
    ) -> Result<StepOutput> {
        let Some(main) = devices.first().cloned() else {
            return Err(TrainError::Config {
                key: "devices".into(),
                msg: "no device".into(),
            });
        };
        let step = state.step + 1;
        let b = batch.dims()[0];
        let sizes = shard_sizes(b, devices.len());
        let mut rng = state.rng.clone();
        let mut draws = ShardDraws::new(&mut rng, b, main.clone());
        let mut grads = Vec::with_capacity(sizes.len());
        let mut losses = Vec::with_capacity(sizes.len());
        let mut offset = 0;
        for (size, device) in sizes.iter().zip(devices) {
            let x = batch.clone().narrow(0, offset, *size).to_device(device); // [n_i, C, H, W]
            let model = state.model.clone().fork(device);
            draws.shard(offset, *size, device);
            let (loss, g) = self.shard_grads(&model, x, b, step, &mut draws, &main)?;
            // read after the loop: a host read here would make each device wait for the last
            losses.push(loss);
            grads.push(g);
            offset += size;
        }
        let mut loss_value = 0.0;
        for l in losses {
            loss_value += crate::trainer::scalar(l)?;
        }
        check_loss(step, loss_value)?;
        let mut sum = SumGrads::<B> {
            shards: &grads,
            out: GradientsParams::new(),
            _b: std::marker::PhantomData,
        };
        state.model.visit(&mut sum);
        let out = state.apply(sum.out, loss_value)?;
        state.rng = rng;
        Ok(out)
    }
}

/// A way to split the train step of a batch: across the devices of this process
/// ([`Devices`]) or across the peers of a burn-collective collective
/// (`crate::collective::Peer`, feature `collective`).
pub trait StepSplit<B: ConvAutodiffBackend> {
    /// One train step of `stepper` on `batch` (`[B, C, H, W]`), split this way.
    fn train_step(
        &self,
        stepper: &Stepper,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
    ) -> Result<StepOutput>;
}

/// Devices of this process, the main one first.
#[derive(Debug, Clone)]
pub struct Devices<B: Backend>(pub Vec<B::Device>);

impl<B: ConvAutodiffBackend> StepSplit<B> for Devices<B> {
    fn train_step(
        &self,
        stepper: &Stepper,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
    ) -> Result<StepOutput> {
        stepper.train_step_parallel(state, batch, &self.0)
    }
}

/// The score objective with split train steps (the run loop's [`Objective`]); eval runs on
/// the loop's device.
#[derive(Debug, Clone)]
pub struct SplitStepper<S> {
    /// The step functions.
    pub stepper: Stepper,
    /// How each train step is split.
    pub split: S,
}

/// The score objective split across devices.
pub type ParallelStepper<B> = SplitStepper<Devices<B>>;

impl<B: ConvAutodiffBackend, S: StepSplit<B>> Objective<B, ScoreNet<B>> for SplitStepper<S> {
    fn train_batch(
        &self,
        state: &mut TrainState<B>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<StepOutput> {
        self.split
            .train_step(&self.stepper, state, to_tensor::<B>(batch, device))
    }
    fn eval_batch(
        &self,
        state: &mut TrainState<B>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<f64> {
        <Stepper as Objective<B, ScoreNet<B>>>::eval_batch(&self.stepper, state, batch, device)
    }
}
