//! Layers of the reference networks (reference §7.1–7.2).

pub mod blocks;
pub mod fir;
pub mod init;

use burn::nn::Linear;
use burn::nn::conv::Conv2d;

use burn::prelude::*;
use init::GroupNorm;
use sgm_conv::{ConvBackend, conv2d_module, linear};

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
/// With [`Cursor::traced`] it also records every module's output (the per-module comparison of
/// backends, docs/gpu.md).
pub struct Cursor<'a, B: Backend> {
    modules: &'a [Layer<B>],
    idx: usize,
    trace: Option<Vec<TraceEntry<B>>>,
}

/// The output of one module of a traced forward pass.
#[derive(Debug, Clone)]
pub struct TraceEntry<B: Backend> {
    /// Index in `all_modules`.
    pub index: usize,
    /// Reference class name.
    pub class: &'static str,
    /// Output shape.
    pub dims: Vec<usize>,
    /// Output values, flattened row-major.
    pub values: Tensor<B, 1>,
}

impl<'a, B: ConvBackend> Cursor<'a, B> {
    /// Cursor at module 0.
    pub fn new(modules: &'a [Layer<B>]) -> Self {
        Self {
            modules,
            idx: 0,
            trace: None,
        }
    }

    /// Cursor at module 0 that records every module's output ([`Cursor::into_trace`]).
    pub fn traced(modules: &'a [Layer<B>]) -> Self {
        Self {
            trace: Some(Vec::new()),
            ..Self::new(modules)
        }
    }

    /// The recorded module outputs (empty unless built with [`Cursor::traced`]).
    pub fn into_trace(self) -> Vec<TraceEntry<B>> {
        self.trace.unwrap_or_default()
    }

    /// Records `out` as the output of the module just applied.
    fn record<const D: usize>(&mut self, out: Tensor<B, D>) -> Tensor<B, D> {
        if let Some(trace) = &mut self.trace {
            let dims = out.dims().to_vec();
            let n: usize = dims.iter().product();
            trace.push(TraceEntry {
                index: self.idx - 1,
                class: self.modules[self.idx - 1].class(),
                dims,
                values: out.clone().reshape([n]),
            });
        }
        out
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
        let out = match self.next_layer() {
            Layer::Conv(c) => conv2d_module(c, x),
            Layer::Norm(n) => n.forward(x),
            Layer::Attn(a) => a.forward(x),
            Layer::Resample(r) => r.forward(x),
            _ => self.mismatch("a conv / norm / attention / resampler"),
        };
        self.record(out)
    }

    /// Applies the next module as a residual block.
    pub fn block(&mut self, x: Tensor<B, 4>, temb: Option<&Tensor<B, 2>>) -> Tensor<B, 4> {
        let out = match self.next_layer() {
            Layer::BigGan(b) => b.forward(x, temb),
            Layer::Ddpm(b) => b.forward(x, temb),
            _ => self.mismatch("a residual block"),
        };
        self.record(out)
    }

    /// Applies the next module as a dense layer.
    pub fn dense(&mut self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let out = match self.next_layer() {
            Layer::Dense(d) => linear(d, x),
            _ => self.mismatch("Linear"),
        };
        self.record(out)
    }

    /// Applies the next module as the Fourier projection.
    pub fn fourier(&mut self, x: Tensor<B, 1>) -> Tensor<B, 2> {
        let out = match self.next_layer() {
            Layer::Fourier(f) => f.forward(x),
            _ => self.mismatch("GaussianFourierProjection"),
        };
        self.record(out)
    }

    /// Applies the next module as a Combine of pyramid `x` into `y`.
    pub fn combine(&mut self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Tensor<B, 4> {
        let out = match self.next_layer() {
            Layer::Combine(c) => c.forward(x, y),
            _ => self.mismatch("Combine"),
        };
        self.record(out)
    }
}
