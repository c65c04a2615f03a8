//! Where random numbers come from. Production code draws from the backend's RNG
//! ([`BackendNoise`]); tests replay the reference's recorded draws ([`RecordedNoise`]), so every
//! stochastic function of the project takes a `&mut impl NoiseSource<B>`.

use std::collections::VecDeque;

use burn::prelude::*;
use burn::tensor::Distribution;

use crate::error::{Result, SdeError};

/// A source of the four kinds of draws the reference makes.
pub trait NoiseSource<B: Backend> {
    /// Standard normal draws (`torch.randn` / `randn_like`).
    fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>>;
    /// Uniform draws on `[0, 1)` (`torch.rand`).
    fn uniform(&mut self, n: usize, device: &B::Device) -> Result<Tensor<B, 1>>;
    /// Integers uniform on `[low, high)` (`torch.randint`).
    fn randint(
        &mut self,
        low: i64,
        high: i64,
        n: usize,
        device: &B::Device,
    ) -> Result<Tensor<B, 1, Int>>;
    /// Rademacher ±1 draws (the reference's `randint_like(x, 0, 2) * 2 − 1`).
    fn rademacher<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>>;
}

/// Draws from the backend's RNG (seed it with `B::seed(device, seed)`).
#[derive(Debug, Default, Clone, Copy)]
pub struct BackendNoise;

impl<B: Backend> NoiseSource<B> for BackendNoise {
    fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        Ok(Tensor::random(
            shape,
            Distribution::Normal(0.0, 1.0),
            device,
        ))
    }
    fn uniform(&mut self, n: usize, device: &B::Device) -> Result<Tensor<B, 1>> {
        Ok(Tensor::random([n], Distribution::Uniform(0.0, 1.0), device))
    }
    fn randint(
        &mut self,
        low: i64,
        high: i64,
        n: usize,
        device: &B::Device,
    ) -> Result<Tensor<B, 1, Int>> {
        if high <= low {
            return Err(SdeError::Replay(format!(
                "randint: empty range [{low}, {high})"
            )));
        }
        // Uniform on [low, high) then floor: exact for the ranges used here (N ≤ 2^24).
        let u: Tensor<B, 1> =
            Tensor::random([n], Distribution::Uniform(low as f64, high as f64), device);
        Ok(u.floor().int().clamp(low, high - 1))
    }
    fn rademacher<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let b: Tensor<B, D> = Tensor::random(shape, Distribution::Bernoulli(0.5), device);
        Ok(b.mul_scalar(2.0).sub_scalar(1.0))
    }
}

/// The kind of a recorded draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawKind {
    /// N(0, 1).
    Normal,
    /// U[0, 1).
    Uniform,
    /// Integers in `[low, high)`.
    RandInt,
    /// Raw 0/1 values of `randint_like(x, 0, 2)`; replayed as Rademacher `2v − 1`.
    Bernoulli01,
}

/// One recorded draw: kind, shape and values (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedDraw {
    /// Kind of the draw.
    pub kind: DrawKind,
    /// Shape of the draw.
    pub shape: Vec<usize>,
    /// Values (integers stored exactly as f64).
    pub values: Vec<f64>,
    /// Where the reference made it (e.g. `sampling.py:275:LangevinCorrector.update_fn`).
    pub caller: String,
}

/// Replays recorded draws in order; each request must match the next draw's kind and shape.
#[derive(Debug, Clone, Default)]
pub struct RecordedNoise {
    queue: VecDeque<RecordedDraw>,
    consumed: usize,
}

impl RecordedNoise {
    /// A replay queue holding `draws` in call order.
    pub fn new(draws: impl IntoIterator<Item = RecordedDraw>) -> Self {
        Self {
            queue: draws.into_iter().collect(),
            consumed: 0,
        }
    }
    /// Number of draws handed out so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
    /// Number of draws still queued.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
    /// True when every recorded draw has been used.
    pub fn is_exhausted(&self) -> bool {
        self.queue.is_empty()
    }

    fn pop(&mut self, kind: DrawKind, shape: &[usize]) -> Result<RecordedDraw> {
        let index = self.consumed;
        let Some(next) = self.queue.pop_front() else {
            return Err(SdeError::Replay(format!(
                "draw #{index} ({kind:?} {shape:?}) requested but all {index} recorded draws are used"
            )));
        };
        if next.kind != kind || next.shape != shape {
            return Err(SdeError::Replay(format!(
                "draw #{index}: requested {kind:?} {shape:?}, recorded {:?} {:?} (from {})",
                next.kind, next.shape, next.caller
            )));
        }
        self.consumed += 1;
        Ok(next)
    }
}

fn float_tensor<B: Backend, const D: usize>(
    values: Vec<f64>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    let v: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

impl<B: Backend> NoiseSource<B> for RecordedNoise {
    fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let d = self.pop(DrawKind::Normal, &shape)?;
        Ok(float_tensor(d.values, shape, device))
    }
    fn uniform(&mut self, n: usize, device: &B::Device) -> Result<Tensor<B, 1>> {
        let d = self.pop(DrawKind::Uniform, &[n])?;
        Ok(float_tensor(d.values, [n], device))
    }
    fn randint(
        &mut self,
        low: i64,
        high: i64,
        n: usize,
        device: &B::Device,
    ) -> Result<Tensor<B, 1, Int>> {
        let d = self.pop(DrawKind::RandInt, &[n])?;
        let v: Vec<i64> = d.values.iter().map(|&v| v as i64).collect();
        if let Some(bad) = v.iter().find(|&&v| v < low || v >= high) {
            return Err(SdeError::Replay(format!(
                "recorded randint value {bad} outside [{low}, {high})"
            )));
        }
        Ok(Tensor::from_data(TensorData::new(v, [n]), device))
    }
    fn rademacher<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let d = self.pop(DrawKind::Bernoulli01, &shape)?;
        let v = d.values.into_iter().map(|v| 2.0 * v - 1.0).collect();
        Ok(float_tensor(v, shape, device))
    }
}
