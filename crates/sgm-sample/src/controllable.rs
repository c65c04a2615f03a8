//! Controllable generation (reference `controllable_generation.py`; paper §5 and App. I):
//! inpainting and colorization as [`Projection`]s of the one PC loop ([`crate::pc::pc_sample`]).
//!
//! After every corrector and predictor update the known part is replaced by a fresh sample of
//! its forward marginal `p_0t(x(t) | data)`. Reference quirk kept for parity: the returned
//! `x_mean` takes its unknown part from the *noisy* `x`, so `denoise` only removes noise on the
//! known part.

use burn::prelude::*;
use sde_core::{AnySde, NoiseSource, ScoreFunction, Sde, per_sample};

use crate::error::Result;
use crate::pc::{PcConfig, Projection, SampleOutput, Update, pc_sample};
use crate::util::check_shape;

/// The reference's orthonormal colour-decoupling matrix `M` (rows: RGB input channels,
/// columns: latent channels; column 0 is the grey direction (1,1,1)/√3). Digits as written in
/// `controllable_generation.py`.
#[allow(clippy::excessive_precision)]
pub const COLORIZATION_M: [[f32; 3]; 3] = [
    [5.7735014e-01, -8.1649649e-01, 4.7008697e-08],
    [5.7735026e-01, 4.0824834e-01, 7.0710671e-01],
    [5.7735026e-01, 4.0824822e-01, -7.0710683e-01],
];

/// Inverse of a 3×3 matrix (adjugate / determinant, float64, rounded to float32).
pub fn inverse3(m: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let a = |i: usize, j: usize| m[i][j] as f64;
    let det = a(0, 0) * (a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1))
        - a(0, 1) * (a(1, 0) * a(2, 2) - a(1, 2) * a(2, 0))
        + a(0, 2) * (a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0));
    let mut inv = [[0f32; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // cofactor C_ji / det
            let (r0, r1) = ((j + 1) % 3, (j + 2) % 3);
            let (c0, c1) = ((i + 1) % 3, (i + 2) % 3);
            *v = ((a(r0, c0) * a(r1, c1) - a(r0, c1) * a(r1, c0)) / det) as f32;
        }
    }
    inv
}

/// Per-pixel channel mixing `y_j = Σ_i x_i m_ij` (`einsum('bihw,ij->bjhw', x, m)`); `x` must
/// have 3 channels (checked by the public callers).
fn mix_channels<B: Backend>(x: Tensor<B, 4>, m: &[[f32; 3]; 3]) -> Tensor<B, 4> {
    let ch: Vec<Tensor<B, 4>> = (0..3).map(|i| x.clone().narrow(1, i, 1)).collect(); // 3 × [B,1,H,W]
    let out: Vec<Tensor<B, 4>> = (0..3)
        .map(|j| {
            ch[0].clone().mul_scalar(m[0][j])
                + ch[1].clone().mul_scalar(m[1][j])
                + ch[2].clone().mul_scalar(m[2][j])
        })
        .collect();
    Tensor::cat(out, 1) // [B, 3, H, W]
}

/// `x · (1 − mask) + known · mask`.
fn blend<B: Backend>(x: Tensor<B, 4>, known: Tensor<B, 4>, mask: &Tensor<B, 4>) -> Tensor<B, 4> {
    x * mask.clone().neg().add_scalar(1.0) + known * mask.clone()
}

/// `mean + z · std` of the marginal of `data` at `t` (one draw).
fn marginal_sample<B: Backend, N: NoiseSource<B>>(
    sde: &AnySde,
    data: &Tensor<B, 4>,
    t: &[f32],
    noise: &mut N,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
    let (mean, std) = sde.marginal_prob(data.clone(), t)?;
    let z = noise.normal(data.dims(), &data.device())?;
    let sample = mean.clone() + z.mul(per_sample::<B, 4>(&std, &data.device()));
    Ok((mean, sample))
}

/// Inpainting (`get_pc_inpainter`): `mask` = 1 on known pixels, same shape as `data`.
#[derive(Debug, Clone)]
pub struct Inpaint<B: Backend> {
    /// Known image (model space) `[B, C, H, W]`.
    pub data: Tensor<B, 4>,
    /// 1 = known, 0 = to fill; `[B, C, H, W]`.
    pub mask: Tensor<B, 4>,
}

impl<B: Backend> Projection<B> for Inpaint<B> {
    /// `x = data · mask + prior · (1 − mask)`.
    fn init(&self, prior: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_shape("inpaint: prior", &prior.dims(), &self.data.dims())?;
        check_shape("inpaint: mask", &self.mask.dims(), &self.data.dims())?;
        Ok(self.data.clone() * self.mask.clone() + prior * self.mask.clone().neg().add_scalar(1.0))
    }
    fn project<N: NoiseSource<B>>(
        &self,
        sde: &AnySde,
        (x, _): Update<B>,
        t: &[f32],
        noise: &mut N,
    ) -> Result<Update<B>> {
        let (mean, known) = marginal_sample(sde, &self.data, t, noise)?;
        let x = blend(x, known, &self.mask);
        let x_mean = blend(x.clone(), mean, &self.mask);
        Ok((x, x_mean))
    }
}

/// Colorization (`get_pc_colorizer`): `gray` is an RGB image with R = G = B; the grey channel
/// of the decoupled space (`decouple(x) = x M`) is known.
#[derive(Debug, Clone)]
pub struct Colorize<B: Backend> {
    /// Grey-scale image (model space) `[B, 3, H, W]`.
    pub gray: Tensor<B, 4>,
    m: [[f32; 3]; 3],
    inv_m: [[f32; 3]; 3],
    mask: Tensor<B, 4>,
}

impl<B: Backend> Colorize<B> {
    /// Colorization of `gray` `[B, 3, H, W]` with the reference matrix [`COLORIZATION_M`].
    pub fn new(gray: Tensor<B, 4>) -> Result<Self> {
        let [b, c, h, w] = gray.dims();
        check_shape("colorize: gray", &[c], &[3])?;
        let device = gray.device();
        // mask = 1 on decoupled channel 0, 0 on channels 1, 2
        let mask = Tensor::cat(
            vec![
                Tensor::<B, 4>::ones([b, 1, h, w], &device),
                Tensor::<B, 4>::zeros([b, 2, h, w], &device),
            ],
            1,
        );
        Ok(Self {
            gray,
            m: COLORIZATION_M,
            inv_m: inverse3(&COLORIZATION_M),
            mask,
        })
    }
    /// `decouple(x) = einsum('bihw,ij->bjhw', x, M)` for `x` of the shape of `gray`.
    pub fn decouple(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_shape("colorize: decouple input", &x.dims(), &self.gray.dims())?;
        Ok(mix_channels(x, &self.m))
    }
    /// `couple(x) = einsum('bihw,ij->bjhw', x, M⁻¹)` for `x` of the shape of `gray`.
    pub fn couple(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_shape("colorize: couple input", &x.dims(), &self.gray.dims())?;
        Ok(mix_channels(x, &self.inv_m))
    }
}

impl<B: Backend> Projection<B> for Colorize<B> {
    /// `couple(decouple(gray) · mask + decouple(prior · (1 − mask)))` — the reference applies
    /// `(1 − mask)` to the prior in RGB space (quirk kept).
    fn init(&self, prior: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_shape("colorize: prior", &prior.dims(), &self.gray.dims())?;
        let inv = self.mask.clone().neg().add_scalar(1.0);
        self.couple(
            self.decouple(self.gray.clone())? * self.mask.clone() + self.decouple(prior * inv)?,
        )
    }
    fn project<N: NoiseSource<B>>(
        &self,
        sde: &AnySde,
        (x, _): Update<B>,
        t: &[f32],
        noise: &mut N,
    ) -> Result<Update<B>> {
        let (mean, known) = marginal_sample(sde, &self.decouple(self.gray.clone())?, t, noise)?;
        let x = self.couple(blend(self.decouple(x)?, known, &self.mask))?;
        let x_mean = self.couple(blend(self.decouple(x.clone())?, mean, &self.mask))?;
        Ok((x, x_mean))
    }
}

/// The `eps` of the reference's controllable samplers (`get_pc_inpainter`,
/// `get_pc_colorizer`): 1e-5 for every SDE, unlike the per-SDE `sampling_eps` of `run_lib`.
pub const CONTROLLABLE_EPS: f64 = 1e-5;

/// PC inpainting of `data` (model space) with `mask` (1 = known). Set `cfg.eps` to
/// [`CONTROLLABLE_EPS`] for the reference's inpainter.
pub fn pc_inpaint<B: Backend, N: NoiseSource<B>>(
    sde: &AnySde,
    score: &dyn ScoreFunction<B>,
    cfg: &PcConfig,
    data: Tensor<B, 4>,
    mask: Tensor<B, 4>,
    noise: &mut N,
) -> Result<SampleOutput<B>> {
    check_shape("pc_inpaint: mask", &mask.dims(), &data.dims())?;
    let device = data.device();
    let shape = data.dims();
    pc_sample(
        sde,
        score,
        cfg,
        shape,
        &Inpaint { data, mask },
        noise,
        &device,
    )
}

/// PC colorization of `gray` `[B, 3, H, W]` (model space, R = G = B).
pub fn pc_colorize<B: Backend, N: NoiseSource<B>>(
    sde: &AnySde,
    score: &dyn ScoreFunction<B>,
    cfg: &PcConfig,
    gray: Tensor<B, 4>,
    noise: &mut N,
) -> Result<SampleOutput<B>> {
    let device = gray.device();
    let shape = gray.dims();
    let proj = Colorize::new(gray)?;
    pc_sample(sde, score, cfg, shape, &proj, noise, &device)
}
