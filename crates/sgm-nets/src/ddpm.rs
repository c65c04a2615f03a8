//! Reference `models/ddpm.py` (`DDPM`, registered `ddpm`): Ho et al.'s U-Net (reference §7.5).

use burn::prelude::*;
use sgm_conv::ConvBackend;

use crate::config::ModelConfig;
use crate::layers::init::{act, conv3x3, dense, group_norm};
use crate::layers::{
    AttnBlock, BlockKnobs, Cursor, Layer, Resampler, ResnetBlockDdpm, timestep_embedding,
};

/// DDPM network. `all_modules` mirrors the reference's module list.
#[derive(Module, Debug)]
pub struct Ddpm<B: Backend> {
    /// The reference's `all_modules`.
    pub all_modules: Vec<Layer<B>>,
    /// The config it was built from.
    pub cfg: ModelConfig,
    /// The reference's float64 `sigmas` buffer (descending, `get_sigmas`).
    pub sigmas: Vec<f64>,
}

fn groups32(_c: usize) -> usize {
    32
}

impl<B: Backend> Ddpm<B> {
    /// Builds the module list as `DDPM.__init__`. With `conditional = false` the reference
    /// raises NameError (reference §7.3 item 4); here the list simply has no embedding
    /// Dense layers, as the JAX original intends.
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let m = &cfg.model;
        let nf = m.nf;
        let channels = cfg.data.num_channels;
        let res = cfg.all_resolutions();
        let levels = cfg.num_resolutions();
        let knobs = BlockKnobs {
            act: m.nonlinearity,
            dropout: m.dropout,
            fir_kernel: None,
            skip_rescale: false,
            init_scale: 0.0,
            temb_dim: Some(4 * nf),
        };
        let block = |c_in: usize, c_out: usize| {
            Layer::Ddpm(ResnetBlockDdpm::new(c_in, c_out, groups32, &knobs, device))
        };
        let attn = |c: usize| Layer::Attn(AttnBlock::new(c, 32, false, 0.0, device));
        let mut mods = Vec::new();
        if m.conditional {
            mods.push(Layer::Dense(dense(nf, 4 * nf, device)));
            mods.push(Layer::Dense(dense(4 * nf, 4 * nf, device)));
        }
        mods.push(Layer::Conv(conv3x3(channels, nf, 1.0, device)));
        let mut hs_c = vec![nf];
        let mut in_ch = nf;
        for (l, &size) in res.iter().enumerate() {
            for _ in 0..m.num_res_blocks {
                let out_ch = nf * m.ch_mult[l];
                mods.push(block(in_ch, out_ch));
                in_ch = out_ch;
                if m.attn_resolutions.contains(&size) {
                    mods.push(attn(in_ch));
                }
                hs_c.push(in_ch);
            }
            if l != levels - 1 {
                mods.push(Layer::Resample(Resampler::new(
                    in_ch,
                    in_ch,
                    false,
                    m.resamp_with_conv,
                    None,
                    device,
                )));
                hs_c.push(in_ch);
            }
        }
        in_ch = *hs_c.last().unwrap_or(&nf);
        mods.push(block(in_ch, in_ch));
        mods.push(attn(in_ch));
        mods.push(block(in_ch, in_ch));
        for l in (0..levels).rev() {
            for _ in 0..=m.num_res_blocks {
                let out_ch = nf * m.ch_mult[l];
                let skip = hs_c.pop().unwrap_or(0);
                mods.push(block(in_ch + skip, out_ch));
                in_ch = out_ch;
            }
            if m.attn_resolutions.contains(&res[l]) {
                mods.push(attn(in_ch));
            }
            if l != 0 {
                mods.push(Layer::Resample(Resampler::new(
                    in_ch,
                    in_ch,
                    true,
                    m.resamp_with_conv,
                    None,
                    device,
                )));
            }
        }
        mods.push(Layer::Norm(group_norm(32, in_ch, device)));
        mods.push(Layer::Conv(conv3x3(in_ch, channels, 0.0, device)));
        Self {
            all_modules: mods,
            cfg: cfg.clone(),
            sigmas: crate::net::get_sigmas(cfg),
        }
    }
}

impl<B: ConvBackend> Ddpm<B> {
    /// Reference `DDPM.forward(x, labels)` without the `scale_by_sigma` division.
    pub fn forward_unscaled(&self, x: Tensor<B, 4>, labels: Tensor<B, 1>) -> Tensor<B, 4> {
        let m = &self.cfg.model;
        let a = m.nonlinearity;
        let levels = self.cfg.num_resolutions();
        let mut cur = Cursor::new(&self.all_modules);
        let temb = if m.conditional {
            // sinusoidal embedding of the label, Dense, act, Dense
            let t = cur.dense(timestep_embedding(labels, m.nf));
            Some(cur.dense(act(t, a)))
        } else {
            None
        };
        let temb = temb.as_ref();
        let h = if self.cfg.data.centered {
            x
        } else {
            x.mul_scalar(2.0).sub_scalar(1.0)
        };
        let mut hs = vec![cur.apply(h)];
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
                hs.push(cur.apply(last));
            }
        }
        let mut h = hs[hs.len() - 1].clone();
        h = cur.block(h, temb);
        h = cur.apply(h);
        h = cur.block(h, temb);
        for l in (0..levels).rev() {
            for _ in 0..=m.num_res_blocks {
                let skip = hs.pop().unwrap_or_else(|| h.clone());
                h = cur.block(Tensor::cat(vec![h, skip], 1), temb);
            }
            if m.attn_resolutions.contains(&h.dims()[3]) {
                h = cur.apply(h);
            }
            if l != 0 {
                h = cur.apply(h);
            }
        }
        let n = cur.apply(h);
        cur.apply(act(n, a))
    }
}
