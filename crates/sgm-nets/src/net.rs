//! [`ScoreNet`]: the network a config names (NCSN++/DDPM++ or DDPM), as an
//! [`sde_core::ScoreModel`].

use burn::prelude::*;
use sde_core::{Labels, ScoreModel};
use sgm_conv::ConvBackend;

use crate::config::{EmbeddingType, ModelConfig, ModelName};
use crate::ddpm::Ddpm;
use crate::error::{LabelOutOfRange, NetsError, Result};
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
    /// outside the table is an error, and so are images that are not
    /// `[B ≥ 1, num_channels, image_size, image_size]` of the config or a label count ≠ B.
    pub fn try_forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Result<Tensor<B, 4>> {
        let [b, c, h, w] = x.dims();
        let data = &self.config().data;
        let want = [data.num_channels, data.image_size, data.image_size];
        if b == 0 || [c, h, w] != want || labels.len() != b {
            return Err(NetsError::Input(format!(
                "images {:?} with {} labels; the network takes [B ≥ 1, {}, {}, {}] with B labels",
                [b, c, h, w],
                labels.len(),
                want[0],
                want[1],
                want[2]
            )));
        }
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
    /// `sigmas` table or a bad image shape. Score functions and losses of `sde_core` call
    /// [`ScoreModel::try_forward`], which returns the error instead.
    fn forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Tensor<B, 4> {
        ScoreNet::try_forward(self, x, labels).unwrap_or_else(|e| panic!("ScoreNet: {e}"))
    }
    /// [`ScoreNet::try_forward`]: bad shapes and labels are errors.
    fn try_forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> sde_core::Result<Tensor<B, 4>> {
        ScoreNet::try_forward(self, x, labels).map_err(|e| sde_core::SdeError::Model(e.to_string()))
    }
}
