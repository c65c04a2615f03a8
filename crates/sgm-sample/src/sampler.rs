//! One interface for every sampler: [`Sampler::sample`] takes the score function, the batch
//! shape and a noise source, and returns samples and NFE — PC and ODE samplers swap freely.

use burn::prelude::*;
use sde_core::{AnySde, NoiseSource, ScoreFunction};

use crate::error::Result;
use crate::ode::{OdeConfig, ode_sample};
use crate::pc::{NoProjection, PcConfig, SampleOutput, pc_sample};

/// A sampler of `p_0` driven by a score function.
pub trait Sampler<B: Backend> {
    /// Draws a batch of `shape` `[B, C, H, W]`.
    fn sample<N: NoiseSource<B>>(
        &self,
        score: &dyn ScoreFunction<B>,
        shape: [usize; 4],
        noise: &mut N,
        device: &B::Device,
    ) -> Result<SampleOutput<B>>;
}

/// Predictor–corrector sampler (`config.sampling.method = 'pc'`).
#[derive(Debug, Clone)]
pub struct PcSampler {
    /// The forward SDE.
    pub sde: AnySde,
    /// Predictor, corrector and options.
    pub config: PcConfig,
}

impl<B: Backend> Sampler<B> for PcSampler {
    fn sample<N: NoiseSource<B>>(
        &self,
        score: &dyn ScoreFunction<B>,
        shape: [usize; 4],
        noise: &mut N,
        device: &B::Device,
    ) -> Result<SampleOutput<B>> {
        pc_sample(
            &self.sde,
            score,
            &self.config,
            shape,
            &NoProjection,
            noise,
            device,
        )
    }
}

/// Probability-flow ODE sampler (`config.sampling.method = 'ode'`).
#[derive(Debug, Clone)]
pub struct OdeSampler {
    /// The forward SDE.
    pub sde: AnySde,
    /// Solver options.
    pub config: OdeConfig,
}

impl<B: Backend> Sampler<B> for OdeSampler {
    fn sample<N: NoiseSource<B>>(
        &self,
        score: &dyn ScoreFunction<B>,
        shape: [usize; 4],
        noise: &mut N,
        device: &B::Device,
    ) -> Result<SampleOutput<B>> {
        ode_sample(&self.sde, score, &self.config, shape, None, noise, device)
    }
}
