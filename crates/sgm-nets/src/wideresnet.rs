//! The noise-conditional classifier of score_sde's class-conditional sampling (JAX reference
//! `models/wideresnet_noise_conditional.py`, `WideResnet(blocks_per_group = 4,
//! channel_multiplier = 10, num_outputs = 10)` = WideResNet 28-10, and the CIFAR-10 input
//! normalisation of `models/utils.py: get_logit_fn`). Paper §5 / App. I: `p_t(y | x(t))`
//! conditioned on the noise level σ(t) through Gaussian Fourier features of `log σ`.
//!
//! Layout differences from the JAX module (none change the function): tensors are NCHW, the
//! stride-2 convolutions use TF `SAME` padding as flax does (0 before, 1 after on even sizes).
//! Initialisation follows the reference's choices (He-normal fan-out convolutions, the
//! `U[-1, 1]/sqrt(K)` head); flax's `Dense` default (truncated LeCun normal) is a plain
//! LeCun normal here.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, silu};
use burn::tensor::module::avg_pool2d;
use serde::{Deserialize, Serialize};
use sgm_conv::{ConvBackend, conv2d_module, linear};

use crate::error::{NetsError, Result};
use crate::layers::blocks::FourierProjection;
use crate::layers::init::{GroupNorm, group_norm, zeros_param};

/// CIFAR-10 channel means of `get_logit_fn`'s `preprocess`.
pub const CIFAR10_MEAN: [f64; 3] = [0.49139968, 0.48215841, 0.44653091];
/// CIFAR-10 channel standard deviations of `get_logit_fn`'s `preprocess`.
pub const CIFAR10_STD: [f64; 3] = [0.24703223, 0.24348513, 0.26158784];

/// Knobs of the classifier. The defaults are score_sde's CIFAR-10 classifier (WideResNet 28-10,
/// 128 Fourier features of `log σ` with scale 16, a 512-wide noise embedding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WideResNetConfig {
    /// Depth `6 n + 4` (`n` = blocks per group; 28 → 4).
    pub depth: usize,
    /// Channel multiplier `k` (groups of `16k`, `32k`, `64k` channels).
    pub widen_factor: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Channels of the first convolution and unit of the groups (16 in the reference).
    pub base_channels: usize,
    /// Image channels.
    pub in_channels: usize,
    /// Fourier features of `log σ` (128; the embedding has twice as many).
    pub embedding_size: usize,
    /// Standard deviation of the Fourier frequencies (16).
    pub fourier_scale: f64,
    /// Width of the noise embedding (`4 · 128`).
    pub temb_dim: usize,
    /// Per-channel means subtracted from the input (empty: none).
    pub input_mean: Vec<f64>,
    /// Per-channel standard deviations the input is divided by (empty: none).
    pub input_std: Vec<f64>,
}

impl Default for WideResNetConfig {
    fn default() -> Self {
        Self {
            depth: 28,
            widen_factor: 10,
            num_classes: 10,
            base_channels: 16,
            in_channels: 3,
            embedding_size: 128,
            fourier_scale: 16.0,
            temb_dim: 512,
            input_mean: CIFAR10_MEAN.to_vec(),
            input_std: CIFAR10_STD.to_vec(),
        }
    }
}

impl WideResNetConfig {
    /// Blocks per group, `(depth − 4) / 6`.
    pub fn blocks_per_group(&self) -> usize {
        self.depth.saturating_sub(4) / 6
    }

    /// Checks the knobs; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, msg: String| Err(NetsError::InvalidKnob { key, msg });
        if self.depth < 10 || !(self.depth - 4).is_multiple_of(6) || self.depth > 1000 {
            return bad(
                "classifier.depth",
                format!("{} is not 6n + 4 with 1 ≤ n", self.depth),
            );
        }
        for (key, v) in [
            ("classifier.widen_factor", self.widen_factor),
            ("classifier.num_classes", self.num_classes),
            ("classifier.in_channels", self.in_channels),
            ("classifier.embedding_size", self.embedding_size),
            ("classifier.temb_dim", self.temb_dim),
        ] {
            if v == 0 || v > 1 << 16 {
                return bad(key, format!("{v} is not in 1..=65536"));
            }
        }
        if self.base_channels < 4 || self.base_channels > 1 << 12 {
            return bad(
                "classifier.base_channels",
                format!("{} is not in 4..=4096", self.base_channels),
            );
        }
        if !(self.fourier_scale.is_finite() && self.fourier_scale > 0.0) {
            return bad("classifier.fourier_scale", "must be positive".into());
        }
        for (key, v) in [
            ("classifier.input_mean", &self.input_mean),
            ("classifier.input_std", &self.input_std),
        ] {
            if !v.is_empty() && v.len() != self.in_channels {
                return bad(
                    key,
                    format!("has {} values for {} channels", v.len(), self.in_channels),
                );
            }
        }
        if self.input_std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad("classifier.input_std", "values must be positive".into());
        }
        Ok(())
    }

    /// The classifier with the reference's initialisation (parameters are lazy).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<WideResNet<B>> {
        WideResNet::new(self, device)
    }
}

/// `variance_scaling(2.0, 'fan_out', 'normal')` `k × k` convolution without bias, TF `SAME`
/// padding.
fn he_conv<B: Backend>(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    d: &B::Device,
) -> Conv2d<B> {
    let std = (2.0 / (c_out * k * k) as f64).sqrt();
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(d)
}

/// flax `nn.Dense` (LeCun normal weight, zero bias).
fn dense<B: Backend>(d_in: usize, d_out: usize, d: &B::Device) -> Linear<B> {
    let mut l = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: (1.0 / d_in as f64).sqrt(),
        })
        .init(d);
    l.bias = Some(zeros_param([d_out], d));
    l
}

/// The reference `activation`: GroupNorm (`min(C / 4, 32)` groups, ε 1e-5).
fn norm<B: Backend>(c: usize, d: &B::Device) -> GroupNorm<B> {
    let mut g = group_norm((c / 4).clamp(1, 32), c, d);
    g.epsilon = 1e-5;
    g
}

/// `WideResnetBlock`: (norm, relu) → conv → + Dense(swish(temb)) → norm, relu → conv, plus the
/// identity / pooled zero-padded shortcut (`_output_add`).
#[derive(Module, Debug)]
pub struct WrnBlock<B: Backend> {
    /// `init_bn`.
    pub norm1: GroupNorm<B>,
    /// `conv1` (carries the block's stride).
    pub conv1: Conv2d<B>,
    /// Noise-embedding projection.
    pub temb: Linear<B>,
    /// `bn_2`.
    pub norm2: GroupNorm<B>,
    /// `conv2`.
    pub conv2: Conv2d<B>,
    /// Stride of the block.
    pub stride: usize,
    /// `activate_before_residual`: the shortcut takes the normalised input.
    pub activate_before_residual: bool,
}

impl<B: Backend> WrnBlock<B> {
    fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        activate_before_residual: bool,
        temb_dim: usize,
        d: &B::Device,
    ) -> Self {
        Self {
            norm1: norm(c_in, d),
            conv1: he_conv(c_in, c_out, 3, stride, d),
            temb: dense(temb_dim, c_out, d),
            norm2: norm(c_out, d),
            conv2: he_conv(c_out, c_out, 3, 1, d),
            stride,
            activate_before_residual,
        }
    }
}

impl<B: ConvBackend> WrnBlock<B> {
    /// `x` `[B, C_in, H, W]`, `temb` `[B, T]` → `[B, C_out, H / s, W / s]`.
    pub fn forward(&self, x: Tensor<B, 4>, temb: &Tensor<B, 2>) -> Tensor<B, 4> {
        let (orig, h) = if self.activate_before_residual {
            let a = relu(self.norm1.forward(x));
            (a.clone(), a)
        } else {
            (x.clone(), relu(self.norm1.forward(x)))
        };
        let h = conv2d_module(&self.conv1, h); // [B, C_out, H/s, W/s]
        let c_out = h.dims()[1];
        let t = linear(&self.temb, silu(temb.clone())); // [B, C_out]
        let h = h + t.reshape([0, 0, 1, 1]);
        let h = relu(self.norm2.forward(h));
        let h = conv2d_module(&self.conv2, h);
        // _output_add: pool the shortcut by the stride and zero-pad its channels
        let [b, c_in, _, _] = orig.dims();
        let orig = if c_in != c_out {
            let s = self.stride;
            let pooled = if s > 1 {
                avg_pool2d(orig, [s, s], [s, s], [0, 0], true, false)
            } else {
                orig
            };
            let [_, _, ph, pw] = pooled.dims();
            let zeros = Tensor::zeros([b, c_out - c_in, ph, pw], &pooled.device());
            Tensor::cat(vec![pooled, zeros], 1)
        } else {
            orig
        };
        h + orig
    }
}

/// The noise-conditional WideResNet (`WideResnet` of score_sde's JAX code).
#[derive(Module, Debug)]
pub struct WideResNet<B: Backend> {
    /// `GaussianFourierProjection(128, scale 16)` of `log σ` (frozen `W`).
    pub fourier: FourierProjection<B>,
    /// First noise-embedding layer.
    pub temb0: Linear<B>,
    /// Second noise-embedding layer (after swish).
    pub temb1: Linear<B>,
    /// `init_conv`.
    pub init_conv: Conv2d<B>,
    /// The three groups' blocks, in order.
    pub blocks: Vec<WrnBlock<B>>,
    /// `pre-pool-bn`.
    pub final_norm: GroupNorm<B>,
    /// The classification head.
    pub head: Linear<B>,
    /// The knobs.
    #[module(skip)]
    pub config: WideResNetConfig,
}

impl<B: Backend> WideResNet<B> {
    /// The classifier of `cfg` (checked) with the reference's initialisation.
    pub fn new(cfg: &WideResNetConfig, d: &B::Device) -> Result<Self> {
        cfg.validate()?;
        let n = cfg.blocks_per_group();
        let base = cfg.base_channels;
        let widths = [
            base * cfg.widen_factor,
            2 * base * cfg.widen_factor,
            4 * base * cfg.widen_factor,
        ];
        let mut blocks = Vec::with_capacity(3 * n);
        let mut c_in = base;
        for (g, &c) in widths.iter().enumerate() {
            for i in 0..n {
                let stride = if g > 0 && i == 0 { 2 } else { 1 };
                blocks.push(WrnBlock::new(
                    c_in,
                    c,
                    stride,
                    g == 0 && i == 0,
                    cfg.temb_dim,
                    d,
                ));
                c_in = c;
            }
        }
        let k = cfg.num_classes;
        let bound = 1.0 / (k as f64).sqrt();
        let mut head = LinearConfig::new(widths[2], k)
            .with_initializer(Initializer::Uniform {
                min: -bound,
                max: bound,
            })
            .init(d);
        head.bias = Some(zeros_param([k], d));
        Ok(Self {
            fourier: FourierProjection::new(cfg.embedding_size, cfg.fourier_scale, d),
            temb0: dense(2 * cfg.embedding_size, cfg.temb_dim, d),
            temb1: dense(cfg.temb_dim, cfg.temb_dim, d),
            init_conv: he_conv(cfg.in_channels, base, 3, 1, d),
            blocks,
            final_norm: norm(widths[2], d),
            head,
            config: cfg.clone(),
        })
    }

    /// The knobs this classifier was built with.
    pub fn config(&self) -> &WideResNetConfig {
        &self.config
    }
}

impl<B: ConvBackend> WideResNet<B> {
    /// Logits `[B, K]` of images `x` `[B, C, H, W]` (the sampler's data space) at noise levels
    /// `sigma` `[B]` (the VE noise scale, `sde.marginal_prob(x, t)[1]`).
    pub fn forward(&self, x: Tensor<B, 4>, sigma: Tensor<B, 1>) -> Tensor<B, 2> {
        let cfg = self.config();
        let device = x.device();
        let [b, c, h, w] = x.dims();
        // get_logit_fn.preprocess: (x − mean) / std per channel
        let mut x = x;
        if !cfg.input_mean.is_empty() {
            let m: Vec<f32> = cfg.input_mean.iter().map(|&v| v as f32).collect();
            x = x - Tensor::<B, 1>::from_data(TensorData::new(m, [c]), &device)
                .reshape([1, c, 1, 1]);
        }
        if !cfg.input_std.is_empty() {
            let s: Vec<f32> = cfg.input_std.iter().map(|&v| v as f32).collect();
            x = x / Tensor::<B, 1>::from_data(TensorData::new(s, [c]), &device)
                .reshape([1, c, 1, 1]);
        }
        // per-image standardisation: (x − mean) / max(std, 1 / sqrt(N)), population std
        let n = c * h * w;
        let flat = x.reshape([b, n]); // [B, N]
        let mean = flat.clone().mean_dim(1); // [B, 1]
        let centered = flat - mean;
        let std = centered.clone().square().mean_dim(1).sqrt(); // [B, 1]
        let std = std.clamp_min(1.0 / (n as f64).sqrt());
        let x = (centered / std).reshape([b, c, h, w]);
        // noise embedding of log σ
        let temb = self.fourier.forward(sigma.log()); // [B, 2E]
        let temb = linear(&self.temb0, temb);
        let temb = linear(&self.temb1, silu(temb)); // [B, T]
        let mut h = conv2d_module(&self.init_conv, x); // [B, base, H, W]
        for blk in &self.blocks {
            h = blk.forward(h, &temb);
        }
        let h = relu(self.final_norm.forward(h)); // [B, 64k, H/4, W/4]
        let [_, ch, hh, ww] = h.dims();
        let pooled = h.reshape([b, ch, hh * ww]).mean_dim(2).reshape([b, ch]); // global average pool
        linear(&self.head, pooled) // [B, K]
    }
}
