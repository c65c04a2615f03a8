//! [`AnySde`]: the three SDEs of the paper behind one type, chosen at run time (configs).

use crate::error::Result;
use crate::sde::{LinearMap, ScoreLabels, ScoreScaling, Sde, SdeKind};
use crate::{SubVpSde, VeSde, VpSde};

/// One of the paper's SDEs, picked at run time (e.g. from `training.sde` of a config).
#[derive(Debug, Clone, PartialEq)]
pub enum AnySde {
    /// VE SDE.
    Ve(VeSde),
    /// VP SDE.
    Vp(VpSde),
    /// Sub-VP SDE.
    SubVp(SubVpSde),
}

impl AnySde {
    /// Builds an SDE from the reference's config names: `training.sde` ∈ {`vesde`, `vpsde`,
    /// `subvpsde`} with `model.sigma_min/sigma_max` (VE) or `model.beta_min/beta_max` (VP, sub-VP)
    /// and `model.num_scales`.
    pub fn from_reference(
        kind: SdeKind,
        sigma_min: f64,
        sigma_max: f64,
        beta_min: f64,
        beta_max: f64,
        num_scales: usize,
    ) -> Result<Self> {
        Ok(match kind {
            SdeKind::Ve => AnySde::Ve(VeSde::new(sigma_min, sigma_max, num_scales)?),
            SdeKind::Vp => AnySde::Vp(VpSde::new(beta_min, beta_max, num_scales)?),
            SdeKind::SubVp => AnySde::SubVp(SubVpSde::new(beta_min, beta_max, num_scales)?),
        })
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySde::Ve($s) => $e,
            AnySde::Vp($s) => $e,
            AnySde::SubVp($s) => $e,
        }
    };
}

impl Sde for AnySde {
    fn kind(&self) -> SdeKind {
        delegate!(self, s => s.kind())
    }
    fn t_max(&self) -> f32 {
        delegate!(self, s => s.t_max())
    }
    fn num_steps(&self) -> usize {
        delegate!(self, s => s.num_steps())
    }
    fn default_sampling_eps(&self) -> f32 {
        delegate!(self, s => s.default_sampling_eps())
    }
    fn drift_map(&self, t: &[f32]) -> LinearMap {
        delegate!(self, s => s.drift_map(t))
    }
    fn diffusion_coefs(&self, t: &[f32]) -> Vec<f32> {
        delegate!(self, s => s.diffusion_coefs(t))
    }
    fn marginal_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        delegate!(self, s => s.marginal_coefs(t))
    }
    fn discretize_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        delegate!(self, s => s.discretize_coefs(t))
    }
    fn prior_std(&self) -> f32 {
        delegate!(self, s => s.prior_std())
    }
    fn score_parameterisation(&self, t: &[f32], continuous: bool) -> (ScoreLabels, ScoreScaling) {
        delegate!(self, s => s.score_parameterisation(t, continuous))
    }
}

impl From<VeSde> for AnySde {
    fn from(s: VeSde) -> Self {
        AnySde::Ve(s)
    }
}
impl From<VpSde> for AnySde {
    fn from(s: VpSde) -> Self {
        AnySde::Vp(s)
    }
}
impl From<SubVpSde> for AnySde {
    fn from(s: SubVpSde) -> Self {
        AnySde::SubVp(s)
    }
}
