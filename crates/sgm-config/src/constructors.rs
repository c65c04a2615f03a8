//! What a config defines: the SDE, the network, the loss, the PC / ODE samplers and the
//! likelihood settings, each built from the reference's keys (`run_lib.train`,
//! `run_lib.evaluate`, `sampling.get_sampling_fn`).

use std::path::Path;

use burn::prelude::Backend;
use sde_core::{AnySde, LossConfig, NoiseSource, ScoreFunction};
use sgm_nets::{CheckpointWeights, ModelConfig, ScoreNet};
use sgm_sample::{
    CONTROLLABLE_EPS, DataScaler, LikelihoodConfig, OdeConfig, OdeSampler, PcConfig, PcSampler,
    SampleOutput, Sampler,
};

use crate::error::{ConfigError, Result};
use crate::experiment::ExperimentConfig;
use crate::model::ModelSection;
use crate::sections::SamplingMethod;

impl ExperimentConfig {
    /// The forward SDE of `run_lib`: `VESDE(model.sigma_min, model.sigma_max,
    /// model.num_scales)`, `VPSDE` / `subVPSDE(model.beta_min, model.beta_max,
    /// model.num_scales)` as `training.sde` says.
    pub fn sde(&self) -> Result<AnySde> {
        self.sde_with_steps(None)
    }

    /// [`sde`](Self::sde) with `steps` (if given) in place of `model.num_scales` — more or
    /// fewer sampling steps without touching the network's `sigmas` table.
    pub fn sde_with_steps(&self, steps: Option<usize>) -> Result<AnySde> {
        let m = &self.model;
        AnySde::from_reference(
            self.training.sde,
            m.sigma_min(),
            m.sigma_max(),
            m.beta_min(),
            m.beta_max(),
            steps.unwrap_or(m.num_scales()),
        )
        .map_err(|source| match source {
            // Name the config key of the parameter.
            sde_core::SdeError::InvalidParameter {
                name,
                value,
                reason,
            } => ConfigError::Invalid {
                origin: self.origin.clone(),
                key: match name {
                    "N" if steps.is_some() => "steps".to_string(),
                    "N" => "model.num_scales".to_string(),
                    other => format!("model.{other}"),
                },
                message: format!("= {value}: {reason}"),
            },
            source => ConfigError::Sde {
                origin: self.origin.clone(),
                source,
            },
        })
    }

    /// The data scaler (`data.centered`: [-1, 1] or [0, 1]).
    pub fn scaler(&self) -> DataScaler {
        if self.data.image.centered {
            DataScaler::Centered
        } else {
            DataScaler::Identity
        }
    }

    /// The training objective (`get_step_fn`): `training.continuous`, `reduce_mean`,
    /// `likelihood_weighting`, and the reference's `eps = 1e-5` of `t ~ U[eps, T)`. Use with
    /// [`sde_core::training_loss`].
    pub fn loss_config(&self) -> LossConfig {
        LossConfig {
            reduce_mean: self.training.reduce_mean,
            continuous: self.training.continuous,
            likelihood_weighting: self.training.likelihood_weighting,
            ..LossConfig::default()
        }
    }

    /// `sgm-nets`' network config: `[model]` with the network keys of `[data]`. An error for
    /// the NCSN / NCSNv2 models, which sgm-nets does not provide.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let ModelSection::Net(knobs) = &self.model else {
            return Err(ConfigError::NoNetwork {
                origin: self.origin.clone(),
                name: self.model.name().to_string(),
            });
        };
        let cfg = ModelConfig {
            model: knobs.clone(),
            data: self.data.image.clone(),
        };
        cfg.validate().map_err(|source| self.nets_error(source))?;
        Ok(cfg)
    }

    /// A freshly initialised network of this config on `device`.
    pub fn network<B: Backend>(&self, device: &B::Device) -> Result<ScoreNet<B>> {
        ScoreNet::new(&self.model_config()?, device).map_err(|source| self.nets_error(source))
    }

    /// The network of this config with the weights of `checkpoint`, for sampling and evaluation
    /// (dropout off: the reference's `model.eval()`, also on autodiff backends). Reads an
    /// official `.pth` / `.pt` training checkpoint (`weights`: its EMA or raw model weights)
    /// or a flat `.safetensors` state dict with the reference's key names (sgm's own format).
    pub fn load_network<B: Backend>(
        &self,
        checkpoint: &Path,
        weights: CheckpointWeights,
        device: &B::Device,
    ) -> Result<ScoreNet<B>> {
        let mut cfg = self.model_config()?;
        cfg.model.dropout = 0.0;
        let fail = |reason: String| ConfigError::Checkpoint {
            path: checkpoint.to_path_buf(),
            reason,
        };
        if !checkpoint.is_file() {
            return Err(fail("does not exist".into()));
        }
        let ext = checkpoint.extension().and_then(|e| e.to_str());
        match ext.unwrap_or_default() {
            "pth" | "pt" => sgm_nets::load_checkpoint::<B>(&cfg, checkpoint, weights, device),
            "safetensors" => sgm_nets::load_safetensors::<B>(&cfg, checkpoint, device),
            _ => {
                return Err(fail(
                    "unknown format (expected an official .pth checkpoint or a .safetensors state dict)"
                        .into(),
                ));
            }
        }
        .map_err(|e| fail(e.to_string()))
    }

    fn nets_error(&self, source: sgm_nets::NetsError) -> ConfigError {
        ConfigError::Nets {
            origin: self.origin.clone(),
            source,
        }
    }

    fn sample_error(&self, source: sgm_sample::SampleError) -> ConfigError {
        ConfigError::Sample {
            origin: self.origin.clone(),
            source,
        }
    }

    /// PC sampler options of `[sampling]` for `sde` (normally [`sde`](Self::sde), or
    /// [`sde_with_steps`](Self::sde_with_steps)): predictor, corrector, `snr`,
    /// `n_steps_each`, `probability_flow`, `noise_removal`, the SDE's sampling eps (1e-5 VE,
    /// 1e-3 VP / sub-VP) and the data scaler; validated against `sde`.
    pub fn pc_config(&self, sde: &AnySde) -> Result<PcConfig> {
        let s = &self.sampling;
        let mut cfg = PcConfig::new(s.predictor, s.corrector, sde);
        cfg.snr = s.snr as f32;
        cfg.n_steps = s.n_steps_each;
        cfg.probability_flow = s.probability_flow;
        cfg.denoise = s.noise_removal;
        cfg.scaler = self.scaler();
        cfg.validate(sde).map_err(|e| self.sample_error(e))?;
        Ok(cfg)
    }

    /// [`pc_config`](Self::pc_config) with the controllable samplers' eps
    /// ([`CONTROLLABLE_EPS`], the reference's inpainter / colorizer), for
    /// [`sgm_sample::pc_inpaint`] and [`sgm_sample::pc_colorize`].
    pub fn controllable_config(&self, sde: &AnySde) -> Result<PcConfig> {
        let mut cfg = self.pc_config(sde)?;
        cfg.eps = CONTROLLABLE_EPS;
        cfg.validate(sde).map_err(|e| self.sample_error(e))?;
        Ok(cfg)
    }

    /// Probability-flow ODE sampler options (`get_ode_sampler`): RK45 with rtol = atol = 1e-5,
    /// `denoise = sampling.noise_removal`, the SDE's sampling eps, the data scaler.
    pub fn ode_config(&self, sde: &AnySde) -> OdeConfig {
        let mut cfg = OdeConfig::new(sde);
        cfg.denoise = self.sampling.noise_removal;
        cfg.scaler = self.scaler();
        cfg
    }

    /// The sampler `sampling.method` names, on the config's SDE.
    pub fn sampler(&self) -> Result<ConfigSampler> {
        let sde = self.sde()?;
        self.sampler_for(sde)
    }

    /// The sampler `sampling.method` names, on `sde`.
    pub fn sampler_for(&self, sde: AnySde) -> Result<ConfigSampler> {
        Ok(match self.sampling.method {
            SamplingMethod::Pc => ConfigSampler::Pc {
                sampler: PcSampler {
                    config: self.pc_config(&sde)?,
                    sde,
                },
                continuous: self.training.continuous,
            },
            SamplingMethod::Ode => ConfigSampler::Ode(OdeSampler {
                config: self.ode_config(&sde),
                sde,
            }),
        })
    }

    /// Likelihood settings (`likelihood.get_likelihood_fn` as `run_lib.evaluate` calls it):
    /// Rademacher probes, RK45 rtol = atol = 1e-5, eps 1e-5, the config's data scaler (which
    /// sets the bits/dim offset). The score is continuous (`ScoreFn::new(&sde, &net, true)`).
    pub fn likelihood_config(&self) -> LikelihoodConfig {
        LikelihoodConfig::new(self.scaler())
    }
}

/// The sampler a config names (`sampling.method`), with the score flavour it needs.
#[derive(Debug, Clone)]
pub enum ConfigSampler {
    /// Predictor–corrector.
    Pc {
        /// SDE and options.
        sampler: PcSampler,
        /// Score labels of the trained model (`training.continuous`).
        continuous: bool,
    },
    /// Probability-flow ODE.
    Ode(OdeSampler),
}

impl ConfigSampler {
    /// The SDE it samples.
    pub fn sde(&self) -> &AnySde {
        match self {
            ConfigSampler::Pc { sampler, .. } => &sampler.sde,
            ConfigSampler::Ode(s) => &s.sde,
        }
    }

    /// Whether the score function must use continuous labels: `training.continuous` for PC,
    /// always for the ODE (reference `get_ode_sampler`).
    pub fn continuous_score(&self) -> bool {
        match self {
            ConfigSampler::Pc { continuous, .. } => *continuous,
            ConfigSampler::Ode(_) => true,
        }
    }

    /// Network calls a run will make, when known in advance (PC; the ODE solver is adaptive).
    pub fn planned_calls(&self) -> Option<u64> {
        match self {
            ConfigSampler::Pc { sampler, .. } => {
                Some(sampler.config.network_calls(&sampler.sde) as u64)
            }
            ConfigSampler::Ode(_) => None,
        }
    }
}

impl<B: Backend> Sampler<B> for ConfigSampler {
    fn sample<N: NoiseSource<B>>(
        &self,
        score: &dyn ScoreFunction<B>,
        shape: [usize; 4],
        noise: &mut N,
        device: &B::Device,
    ) -> sgm_sample::Result<SampleOutput<B>> {
        match self {
            ConfigSampler::Pc { sampler, .. } => sampler.sample(score, shape, noise, device),
            ConfigSampler::Ode(s) => s.sample(score, shape, noise, device),
        }
    }
}
