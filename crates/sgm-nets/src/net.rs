//! [`ScoreNet`]: the network a config names (NCSN++/DDPM++ or DDPM), as an
//! [`sde_core::ScoreModel`].

use burn::prelude::*;
use sde_core::{Labels, ScoreModel};
use sgm_conv::ConvBackend;

use crate::config::{EmbeddingType, ModelConfig, ModelName};
use crate::ddpm::Ddpm;
use crate::error::{LabelOutOfRange, Result};
use crate::ncsnpp::Ncsnpp;

/// Reference `models/utils.get_sigmas`: `exp(linspace(ln σ_max, ln σ_min, num_scales))`,
/// float64, descending (index 0 = σ_max).
pub fn get_sigmas(cfg: &ModelConfig) -> Vec<f64> {
    let m = &cfg.model;
    let n = m.num_scales;
    let (a, b) = (m.sigma_max.ln(), m.sigma_min.ln());
    if n == 1 {
        return vec![a.exp()];
    }
    let step = (b - a) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            // numpy linspace: i·step + start, last element = stop
            let v = if i == n - 1 { b } else { i as f64 * step + a };
            v.exp()
        })
        .collect()
}

/// A score network of the reference: NCSN++ / DDPM++ (`ncsnpp`) or DDPM (`ddpm`).
#[derive(Module, Debug)]
pub enum ScoreNet<B: Backend> {
    /// `models/ncsnpp.py`.
    Ncsnpp(Ncsnpp<B>),
    /// `models/ddpm.py`.
    Ddpm(Ddpm<B>),
}

impl<B: Backend> ScoreNet<B> {
    /// Builds the network of `cfg` with the reference's initialisation (parameters are lazy:
    /// nothing is allocated until a forward pass or a weight load).
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Result<Self> {
        cfg.validate()?;
        Ok(match cfg.model.name {
            ModelName::Ncsnpp => ScoreNet::Ncsnpp(Ncsnpp::new(cfg, device)),
            ModelName::Ddpm => ScoreNet::Ddpm(Ddpm::new(cfg, device)),
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &ModelConfig {
        match self {
            ScoreNet::Ncsnpp(n) => &n.cfg,
            ScoreNet::Ddpm(n) => &n.cfg,
        }
    }

    /// The float64 `sigmas` buffer.
    pub fn sigmas(&self) -> &[f64] {
        match self {
            ScoreNet::Ncsnpp(n) => &n.sigmas,
            ScoreNet::Ddpm(n) => &n.sigmas,
        }
    }

    pub(crate) fn set_sigmas(&mut self, s: Vec<f64>) {
        match self {
            ScoreNet::Ncsnpp(n) => n.sigmas = s,
            ScoreNet::Ddpm(n) => n.sigmas = s,
        }
    }

    /// Number of modules in `all_modules`.
    pub fn num_modules(&self) -> usize {
        match self {
            ScoreNet::Ncsnpp(n) => n.all_modules.len(),
            ScoreNet::Ddpm(n) => n.all_modules.len(),
        }
    }

    /// `(total, trainable)` parameter counts, as the reference's `sum(p.numel())` over
    /// `parameters()` (total includes the frozen Fourier `W`). Counts shapes only: no
    /// parameter is initialised.
    pub fn param_counts(&self) -> (usize, usize) {
        let entries = crate::weights::param_entries(self);
        let n = |e: &crate::weights::ParamEntry| e.shape.iter().product::<usize>();
        let total = entries.iter().map(n).sum();
        let trainable = entries.iter().filter(|e| e.trainable).map(n).sum();
        (total, trainable)
    }
}

impl<B: ConvBackend> ScoreNet<B> {
    /// Network output `[B, C, H, W]` for images `x` and labels, as the reference's
    /// `model(x, labels)`; with `scale_by_sigma` the output is divided by σ: the label itself
    /// (Fourier embedding) or `sigmas[floor(label)]` (positional embedding, DDPM). A label
    /// outside the table is an error.
    pub fn try_forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Result<Tensor<B, 4>> {
        let float_labels = labels.to_float();
        let h = match self {
            ScoreNet::Ncsnpp(n) => n.forward_unscaled(x, float_labels.clone()),
            ScoreNet::Ddpm(n) => n.forward_unscaled(x, float_labels.clone()),
        };
        let cfg = self.config();
        if !cfg.model.scale_by_sigma {
            return Ok(h);
        }
        let b = h.dims()[0];
        let fourier = cfg.model.name == ModelName::Ncsnpp
            && cfg.model.embedding_type == EmbeddingType::Fourier;
        let used = if fourier {
            // used_sigmas = time_cond (the label is σ itself)
            float_labels
        } else {
            // used_sigmas = sigmas[time_cond.long()] (float64 table, applied in float32)
            let host: Vec<f64> = match &labels {
                Labels::Int(t) => t
                    .clone()
                    .into_data()
                    .convert::<i64>()
                    .to_vec::<i64>()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v as f64)
                    .collect(),
                Labels::Float(t) => t
                    .clone()
                    .into_data()
                    .convert::<f64>()
                    .to_vec::<f64>()
                    .unwrap_or_default(),
            };
            let table = self.sigmas();
            let mut used = Vec::with_capacity(host.len());
            for l in host {
                let i = l.trunc();
                if !(i >= 0.0 && (i as usize) < table.len()) {
                    return Err(LabelOutOfRange {
                        label: l,
                        len: table.len(),
                    }
                    .into());
                }
                used.push(table[i as usize] as f32);
            }
            Tensor::from_data(TensorData::new(used, [b]), &h.device())
        };
        Ok(h / used.reshape([b, 1, 1, 1]))
    }
}

impl<B: ConvBackend> ScoreModel<B> for ScoreNet<B> {
    /// [`ScoreNet::try_forward`]; panics (with the error message) on a label outside the
    /// `sigmas` table. Samplers built on `sde_core` only produce in-range labels.
    fn forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Tensor<B, 4> {
        self.try_forward(x, labels)
            .unwrap_or_else(|e| panic!("ScoreNet: {e}"))
    }
}
