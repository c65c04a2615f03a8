//! Layers of the reference networks (reference §7.1–7.2).

pub mod blocks;
pub mod fir;
pub mod init;

use burn::nn::Linear;
use burn::nn::conv::Conv2d;

use burn::prelude::*;
use init::GroupNorm;
use sgm_conv::{ConvBackend, conv2d_module};

pub use blocks::{
    AttnBlock, BlockKnobs, Combine, FirConv, FourierProjection, Nin, Resample, Resampler,
    ResnetBlockBigGan, ResnetBlockDdpm, timestep_embedding,
};

/// One entry of the reference's `all_modules` list. The variant name is not part of the
/// weight path (`all_modules.<i>.<attr>…`).
#[derive(Module, Debug)]
pub enum Layer<B: Backend> {
    /// `GaussianFourierProjection`.
    Fourier(FourierProjection<B>),
    /// `nn.Linear` (time embedding).
    Dense(Linear<B>),
    /// `nn.Conv2d` (input / output / pyramid convs).
    Conv(Conv2d<B>),
    /// `nn.GroupNorm` (output side).
    Norm(GroupNorm<B>),
    /// `ResnetBlockBigGANpp`.
    BigGan(ResnetBlockBigGan<B>),
    /// `ResnetBlockDDPMpp` / `ResnetBlockDDPM`.
    Ddpm(ResnetBlockDdpm<B>),
    /// `AttnBlockpp` / `AttnBlock`.
    Attn(AttnBlock<B>),
    /// `Upsample` / `Downsample`.
    Resample(Resampler<B>),
    /// `Combine`.
    Combine(Combine<B>),
}

impl<B: Backend> Layer<B> {
    /// Reference class name (for messages).
    pub fn class(&self) -> &'static str {
        match self {
            Layer::Fourier(_) => "GaussianFourierProjection",
            Layer::Dense(_) => "Linear",
            Layer::Conv(_) => "Conv2d",
            Layer::Norm(_) => "GroupNorm",
            Layer::BigGan(_) => "ResnetBlockBigGANpp",
            Layer::Ddpm(_) => "ResnetBlockDDPM",
            Layer::Attn(_) => "AttnBlock",
            Layer::Resample(_) => "Up/Downsample",
            Layer::Combine(_) => "Combine",
        }
    }
}

/// Walks `all_modules` in call order, as the reference's `m_idx` counter does. The module list
/// is built by this crate, so a kind mismatch is an internal invariant violation.
pub struct Cursor<'a, B: Backend> {
    modules: &'a [Layer<B>],
    idx: usize,
}

impl<'a, B: ConvBackend> Cursor<'a, B> {
    /// Cursor at module 0.
    pub fn new(modules: &'a [Layer<B>]) -> Self {
        Self { modules, idx: 0 }
    }

    /// The next module.
    pub fn next_layer(&mut self) -> &'a Layer<B> {
        let m = &self.modules[self.idx];
        self.idx += 1;
        m
    }

    /// Number of modules consumed.
    pub fn position(&self) -> usize {
        self.idx
    }

    fn mismatch(&self, want: &str) -> ! {
        panic!(
            "internal module-list error: all_modules.{} is {}, expected {want}",
            self.idx - 1,
            self.modules[self.idx - 1].class()
        )
    }

    /// Applies the next module as a 4-D → 4-D map (convs, norms, attention, resamplers).
    pub fn apply(&mut self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.next_layer() {
            Layer::Conv(c) => conv2d_module(c, x),
            Layer::Norm(n) => n.forward(x),
            Layer::Attn(a) => a.forward(x),
            Layer::Resample(r) => r.forward(x),
            _ => self.mismatch("a conv / norm / attention / resampler"),
        }
    }

    /// Applies the next module as a residual block.
    pub fn block(&mut self, x: Tensor<B, 4>, temb: Option<&Tensor<B, 2>>) -> Tensor<B, 4> {
        match self.next_layer() {
            Layer::BigGan(b) => b.forward(x, temb),
            Layer::Ddpm(b) => b.forward(x, temb),
            _ => self.mismatch("a residual block"),
        }
    }

    /// Applies the next module as a dense layer.
    pub fn dense(&mut self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.next_layer() {
            Layer::Dense(d) => d.forward(x),
            _ => self.mismatch("Linear"),
        }
    }

    /// Applies the next module as the Fourier projection.
    pub fn fourier(&mut self, x: Tensor<B, 1>) -> Tensor<B, 2> {
        match self.next_layer() {
            Layer::Fourier(f) => f.forward(x),
            _ => self.mismatch("GaussianFourierProjection"),
        }
    }

    /// Applies the next module as a Combine of pyramid `x` into `y`.
    pub fn combine(&mut self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.next_layer() {
            Layer::Combine(c) => c.forward(x, y),
            _ => self.mismatch("Combine"),
        }
    }
}
