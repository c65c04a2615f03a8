//! Reference `models/ncsnpp.py` (`NCSNpp`, registered `ncsnpp`): NCSN++ and DDPM++ (reference §7.4).

use burn::prelude::*;
use sgm_conv::ConvBackend;

use crate::config::{EmbeddingType, ModelConfig, Progressive, ProgressiveInput, ResblockType};
use crate::layers::init::{act, conv3x3, dense, group_norm_pp};
use crate::layers::{
    AttnBlock, BlockKnobs, Combine, Cursor, FourierProjection, Layer, Resample, Resampler,
    ResnetBlockBigGan, ResnetBlockDdpm, TraceEntry, fir, timestep_embedding,
};

const SQRT2: f64 = std::f64::consts::SQRT_2;

/// NCSN++ / DDPM++ network. `all_modules` mirrors the reference's module list entry for entry.
#[derive(Module, Debug)]
pub struct Ncsnpp<B: Backend> {
    /// The reference's `all_modules`.
    pub all_modules: Vec<Layer<B>>,
    /// The config it was built from.
    pub cfg: ModelConfig,
    /// The reference's float64 `sigmas` buffer (descending, `get_sigmas`).
    pub sigmas: Vec<f64>,
}

fn groups_pp(c: usize) -> usize {
    (c / 4).clamp(1, 32)
}

impl<B: Backend> Ncsnpp<B> {
    /// Builds the module list exactly as the reference constructor (`NCSNpp.__init__`).
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let m = &cfg.model;
        let nf = m.nf;
        let channels = cfg.data.num_channels;
        let res = cfg.all_resolutions();
        let levels = cfg.num_resolutions();
        let fir_k = m.fir.then(|| m.fir_kernel.clone());
        let knobs = BlockKnobs {
            act: m.nonlinearity,
            dropout: m.dropout,
            fir_kernel: fir_k.clone(),
            skip_rescale: m.skip_rescale,
            init_scale: m.init_scale,
            // the reference passes temb_dim = 4 nf even when unconditional
            temb_dim: Some(4 * nf),
        };
        let block = |c_in: usize, c_out: usize, rs: Resample| -> Layer<B> {
            match m.resblock_type {
                ResblockType::Biggan => {
                    Layer::BigGan(ResnetBlockBigGan::new(c_in, c_out, rs, &knobs, device))
                }
                ResblockType::Ddpm => {
                    Layer::Ddpm(ResnetBlockDdpm::new(c_in, c_out, groups_pp, &knobs, device))
                }
            }
        };
        let attn = |c: usize| {
            Layer::Attn(AttnBlock::new(
                c,
                groups_pp(c),
                m.skip_rescale,
                m.init_scale,
                device,
            ))
        };
        let mut mods: Vec<Layer<B>> = Vec::new();
        let embed_dim = match m.embedding_type {
            EmbeddingType::Fourier => {
                mods.push(Layer::Fourier(FourierProjection::new(
                    nf,
                    m.fourier_scale,
                    device,
                )));
                2 * nf
            }
            EmbeddingType::Positional => nf,
        };
        if m.conditional {
            mods.push(Layer::Dense(dense(embed_dim, 4 * nf, device)));
            mods.push(Layer::Dense(dense(4 * nf, 4 * nf, device)));
        }
        let mut pyr_ch = channels;
        mods.push(Layer::Conv(conv3x3(channels, nf, 1.0, device)));
        let mut hs_c = vec![nf];
        let mut in_ch = nf;
        // Down path
        for (l, &size) in res.iter().enumerate() {
            for _ in 0..m.num_res_blocks {
                let out_ch = nf * m.ch_mult[l];
                mods.push(block(in_ch, out_ch, Resample::None));
                in_ch = out_ch;
                if m.attn_resolutions.contains(&size) {
                    mods.push(attn(in_ch));
                }
                hs_c.push(in_ch);
            }
            if l != levels - 1 {
                match m.resblock_type {
                    ResblockType::Ddpm => mods.push(Layer::Resample(Resampler::new(
                        in_ch,
                        in_ch,
                        false,
                        m.resamp_with_conv,
                        fir_k.as_deref(),
                        device,
                    ))),
                    ResblockType::Biggan => mods.push(block(in_ch, in_ch, Resample::Down)),
                }
                match m.progressive_input {
                    ProgressiveInput::InputSkip => {
                        mods.push(Layer::Combine(Combine::new(
                            pyr_ch,
                            in_ch,
                            m.progressive_combine,
                            device,
                        )));
                        if m.progressive_combine == crate::config::CombineMethod::Cat {
                            in_ch *= 2;
                        }
                    }
                    ProgressiveInput::Residual => {
                        mods.push(Layer::Resample(Resampler::new(
                            pyr_ch,
                            in_ch,
                            false,
                            true,
                            fir_k.as_deref(),
                            device,
                        )));
                        pyr_ch = in_ch;
                    }
                    ProgressiveInput::None => {}
                }
                hs_c.push(in_ch);
            }
        }
        // Middle
        in_ch = *hs_c.last().unwrap_or(&nf);
        mods.push(block(in_ch, in_ch, Resample::None));
        mods.push(attn(in_ch));
        mods.push(block(in_ch, in_ch, Resample::None));
        // Up path
        let mut out_pyr_ch = 0;
        for l in (0..levels).rev() {
            for _ in 0..=m.num_res_blocks {
                let out_ch = nf * m.ch_mult[l];
                let skip = hs_c.pop().unwrap_or(0);
                mods.push(block(in_ch + skip, out_ch, Resample::None));
                in_ch = out_ch;
            }
            if m.attn_resolutions.contains(&res[l]) {
                mods.push(attn(in_ch));
            }
            match (m.progressive, l == levels - 1) {
                (Progressive::None, _) => {}
                (Progressive::OutputSkip, _) => {
                    mods.push(Layer::Norm(group_norm_pp(in_ch, device)));
                    mods.push(Layer::Conv(conv3x3(in_ch, channels, m.init_scale, device)));
                    out_pyr_ch = channels;
                }
                (Progressive::Residual, true) => {
                    mods.push(Layer::Norm(group_norm_pp(in_ch, device)));
                    mods.push(Layer::Conv(conv3x3(in_ch, in_ch, 1.0, device)));
                    out_pyr_ch = in_ch;
                }
                (Progressive::Residual, false) => {
                    mods.push(Layer::Resample(Resampler::new(
                        out_pyr_ch,
                        in_ch,
                        true,
                        true,
                        fir_k.as_deref(),
                        device,
                    )));
                    out_pyr_ch = in_ch;
                }
            }
            if l != 0 {
                match m.resblock_type {
                    ResblockType::Ddpm => mods.push(Layer::Resample(Resampler::new(
                        in_ch,
                        in_ch,
                        true,
                        m.resamp_with_conv,
                        fir_k.as_deref(),
                        device,
                    ))),
                    ResblockType::Biggan => mods.push(block(in_ch, in_ch, Resample::Up)),
                }
            }
        }
        if m.progressive != Progressive::OutputSkip {
            mods.push(Layer::Norm(group_norm_pp(in_ch, device)));
            mods.push(Layer::Conv(conv3x3(in_ch, channels, m.init_scale, device)));
        }
        Self {
            all_modules: mods,
            cfg: cfg.clone(),
            sigmas: crate::net::get_sigmas(cfg),
        }
    }
}

impl<B: ConvBackend> Ncsnpp<B> {
    /// Reference `NCSNpp.forward(x, time_cond)` without the final `scale_by_sigma` division
    /// (done by the caller, which owns the `sigmas` table). `labels` are float
    /// (σ for Fourier, the timestep for positional embeddings).
    pub fn forward_unscaled(&self, x: Tensor<B, 4>, labels: Tensor<B, 1>) -> Tensor<B, 4> {
        self.run(&mut Cursor::new(&self.all_modules), x, labels)
    }

    /// [`Ncsnpp::forward_unscaled`] that also returns every module's output, in call order
    /// (the per-module comparison of backends, docs/gpu.md).
    pub fn forward_traced(
        &self,
        x: Tensor<B, 4>,
        labels: Tensor<B, 1>,
    ) -> (Tensor<B, 4>, Vec<TraceEntry<B>>) {
        let mut cur = Cursor::traced(&self.all_modules);
        let out = self.run(&mut cur, x, labels);
        (out, cur.into_trace())
    }

    fn run(&self, cur: &mut Cursor<'_, B>, x: Tensor<B, 4>, labels: Tensor<B, 1>) -> Tensor<B, 4> {
        let m = &self.cfg.model;
        let a = m.nonlinearity;
        let levels = self.cfg.num_resolutions();
        let temb = match m.embedding_type {
            // temb = GFP(log σ)
            EmbeddingType::Fourier => cur.fourier(labels.log()),
            EmbeddingType::Positional => timestep_embedding(labels, m.nf),
        };
        let temb = if m.conditional {
            let t = cur.dense(temb);
            Some(cur.dense(act(t, a)))
        } else {
            None
        };
        let temb = temb.as_ref();
        // uncentered data: x → 2x − 1
        let x = if self.cfg.data.centered {
            x
        } else {
            x.mul_scalar(2.0).sub_scalar(1.0)
        };
        let mut input_pyramid = (m.progressive_input != ProgressiveInput::None).then(|| x.clone());
        let mut hs = vec![cur.apply(x)];
        for l in 0..levels {
            for _ in 0..m.num_res_blocks {
                let mut h = cur.block(hs[hs.len() - 1].clone(), temb);
                if m.attn_resolutions.contains(&h.dims()[3]) {
                    h = cur.apply(h);
                }
                hs.push(h);
            }
            if l != levels - 1 {
                let last = hs[hs.len() - 1].clone();
                let mut h = match m.resblock_type {
                    ResblockType::Ddpm => cur.apply(last),
                    ResblockType::Biggan => cur.block(last, temb),
                };
                match (m.progressive_input, input_pyramid.take()) {
                    (ProgressiveInput::InputSkip, Some(p)) => {
                        let p = match m.fir {
                            true => fir::downsample_2d(p, &m.fir_kernel),
                            false => fir::naive_downsample_2d(p),
                        };
                        h = cur.combine(p.clone(), h);
                        input_pyramid = Some(p);
                    }
                    (ProgressiveInput::Residual, Some(p)) => {
                        let p = cur.apply(p);
                        // (pyramid + h) / √2 with skip_rescale
                        let p = if m.skip_rescale {
                            (p + h).div_scalar(SQRT2)
                        } else {
                            p + h
                        };
                        h = p.clone();
                        input_pyramid = Some(p);
                    }
                    (_, p) => input_pyramid = p,
                }
                hs.push(h);
            }
        }
        let mut h = hs[hs.len() - 1].clone();
        h = cur.block(h, temb);
        h = cur.apply(h);
        h = cur.block(h, temb);
        let mut pyramid: Option<Tensor<B, 4>> = None;
        for l in (0..levels).rev() {
            for _ in 0..=m.num_res_blocks {
                let skip = hs.pop().unwrap_or_else(|| h.clone());
                h = cur.block(Tensor::cat(vec![h, skip], 1), temb);
            }
            if m.attn_resolutions.contains(&h.dims()[3]) {
                h = cur.apply(h);
            }
            match (m.progressive, pyramid.take()) {
                (Progressive::None, _) => {}
                (Progressive::OutputSkip, prev) => {
                    let p = cur.apply(h.clone());
                    let p = cur.apply(act(p, a));
                    pyramid = Some(match prev {
                        // pyramid = upsample(pyramid) + conv(act(GN(h)))
                        Some(prev) => {
                            let up = match m.fir {
                                true => fir::upsample_2d(prev, &m.fir_kernel),
                                false => fir::naive_upsample_2d(prev),
                            };
                            up + p
                        }
                        None => p,
                    });
                }
                (Progressive::Residual, None) => {
                    let p = cur.apply(h.clone());
                    pyramid = Some(cur.apply(act(p, a)));
                }
                (Progressive::Residual, Some(prev)) => {
                    let p = cur.apply(prev);
                    let p = if m.skip_rescale {
                        (p + h).div_scalar(SQRT2)
                    } else {
                        p + h
                    };
                    h = p.clone();
                    pyramid = Some(p);
                }
            }
            if l != 0 {
                h = match m.resblock_type {
                    ResblockType::Ddpm => cur.apply(h),
                    ResblockType::Biggan => cur.block(h, temb),
                };
            }
        }
        match (m.progressive, pyramid) {
            (Progressive::OutputSkip, Some(p)) => p,
            _ => {
                let n = cur.apply(h);
                cur.apply(act(n, a))
            }
        }
    }
}
