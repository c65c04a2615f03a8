//! Ground truth for the fast samplers: on Gaussian data the denoiser is exact and the
//! probability-flow ODE `dx/dσ = (x − D(x, σ))/σ` has the closed-form solution
//! `x(σ) − μ = (x(σ₀) − μ)·√((v + σ²)/(v + σ₀²))`. Every deterministic sampler's error at
//! σ_min must shrink with the step count at the method's order (log–log slope in a stated band),
//! in float64 so rounding does not floor the error.

use burn::prelude::*;
use sde_core::analytic::{GaussianData, GaussianScoreModel};
use sde_core::{AnySde, ScoreFn, Sde, SdeKind};
use sgm_sample::sigma::{
    ALL_KINDS, Denoiser, GaussianDenoiser, ScoreDenoiser, SigmaKind, SigmaMethod, SigmaSampler,
    sample_sigma, schedule, sigma_at, sigma_range, time_and_scale,
};
use sgm_sample::{DataScaler, Sampler};
use sgm_testkit::SeededNoise;

type B64 = sgm_testkit::TestBackend;

const SIGMA_MAX: f64 = 80.0;
const SIGMA_MIN: f64 = 0.02;
const SHAPE: [usize; 4] = [2, 2, 4, 4];

fn gaussian(dev: &burn::tensor::Device<B64>) -> GaussianDenoiser<B64> {
    let n = SHAPE[1] * SHAPE[2] * SHAPE[3];
    let mu: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
    let var: Vec<f32> = (0..n)
        .map(|i| 0.05 + ((i * 5) % 13) as f32 / 13.0)
        .collect();
    let t = |v: Vec<f32>| Tensor::<B64, 3>::from_data(TensorData::new(v, [2, 4, 4]), dev);
    GaussianDenoiser::new(t(mu), t(var)).unwrap()
}

/// Max-abs error at σ_min of `method` with `steps` steps (schedule without the final 0).
fn error(method: &SigmaMethod, steps: usize) -> f64 {
    let dev = Default::default();
    let den = gaussian(&dev);
    let mut noise = SeededNoise::new(3);
    let x0: Tensor<B64, 4> = sde_core::NoiseSource::<B64>::normal(&mut noise, SHAPE, &dev).unwrap();
    let x0 = x0.mul_scalar(SIGMA_MAX);
    let mut sigmas = schedule::karras(steps, SIGMA_MIN, SIGMA_MAX, 7.0);
    sigmas.pop(); // end at σ_min, where the exact solution is known
    let mut m = *method;
    if m.kind == SigmaKind::DpmFast {
        // `steps` DPM-Solver steps of orders 3, …, 3, 2 (NFE 3k + 2)
        m.options.n = Some(3 * steps - 1);
    }
    let out = sample_sigma(
        &m,
        &den as &dyn Denoiser<B64>,
        x0.clone(),
        &sigmas,
        &mut noise,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", m.kind.name()));
    let exact = den.ode_solution(x0, SIGMA_MAX, SIGMA_MIN);
    let diff: Vec<f32> = (out.x - exact).abs().into_data().to_vec::<f32>().unwrap();
    diff.into_iter().fold(0.0, |a, b| a.max(b as f64))
}

/// Least-squares slope of −log(error) against log(steps).
fn order_of(method: &SigmaMethod, steps: &[usize]) -> (f64, Vec<f64>) {
    let errs: Vec<f64> = steps.iter().map(|&n| error(method, n)).collect();
    let xs: Vec<f64> = steps.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| -e.ln()).collect();
    let (mx, my) = (
        xs.iter().sum::<f64>() / xs.len() as f64,
        ys.iter().sum::<f64>() / ys.len() as f64,
    );
    let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    (num / den, errs)
}

fn with(kind: SigmaKind, kwargs: &[(&str, &str)]) -> SigmaMethod {
    let mut m = SigmaMethod::new(kind);
    for (k, v) in kwargs {
        m.set(k, v).unwrap();
    }
    m
}

/// Step counts of the fit: the asymptotic range, above float32 rounding.
const LOW_ORDER: &[usize] = &[16, 32, 64, 128];
const HIGH_ORDER: &[usize] = &[4, 8, 16, 32];

/// Every deterministic sampler (the stochastic ones with η = 0) converges at its order.
/// Bands: Euler 1, the second-order methods 2, LMS(4) 4 (3.5 measured: its first steps run at
/// lower order), DPM-Solver-fast 3 (steps of order 3, 3, …, 2). `dpmpp_3m_sde` with η = 0 is
/// only second order: k-diffusion's (and diffusers') update uses `D2 ≈ h²D''/2` where the φ₃
/// term needs `h²D''`, so its third-order term is halved (measured 2.06; a faithful port keeps it).
#[test]
fn deterministic_samplers_converge_at_their_order() {
    let cases: Vec<(SigmaMethod, &[usize], f64, f64)> = vec![
        // (method, step counts, lowest and highest accepted slope)
        (with(SigmaKind::Euler, &[]), LOW_ORDER, 0.9, 1.2),
        (
            with(SigmaKind::EulerAncestral, &[("eta", "0")]),
            LOW_ORDER,
            0.9,
            1.2,
        ),
        (with(SigmaKind::Heun, &[]), LOW_ORDER, 1.8, 2.4),
        (with(SigmaKind::Dpm2, &[]), LOW_ORDER, 1.8, 2.4),
        (
            with(SigmaKind::Dpm2Ancestral, &[("eta", "0")]),
            LOW_ORDER,
            1.8,
            2.4,
        ),
        (with(SigmaKind::Lms, &[("order", "4")]), LOW_ORDER, 3.0, 4.5),
        (with(SigmaKind::Dpmpp2m, &[]), LOW_ORDER, 1.8, 2.4),
        (
            with(SigmaKind::Dpmpp2sAncestral, &[("eta", "0")]),
            LOW_ORDER,
            1.8,
            2.4,
        ),
        (
            with(SigmaKind::DpmppSde, &[("eta", "0")]),
            LOW_ORDER,
            1.8,
            2.4,
        ),
        (
            with(SigmaKind::Dpmpp2mSde, &[("eta", "0")]),
            LOW_ORDER,
            1.8,
            2.4,
        ),
        (
            with(
                SigmaKind::Dpmpp2mSde,
                &[("eta", "0"), ("solver_type", "heun")],
            ),
            LOW_ORDER,
            1.8,
            2.4,
        ),
        (
            with(SigmaKind::Dpmpp3mSde, &[("eta", "0")]),
            LOW_ORDER,
            1.8,
            2.6,
        ),
        (with(SigmaKind::DpmFast, &[]), HIGH_ORDER, 2.7, 3.6),
    ];
    let mut failures = Vec::new();
    for (m, steps, lo, hi) in &cases {
        let (slope, errs) = order_of(m, steps);
        eprintln!(
            "{:<20} eta {}: slope {slope:.3} (band {lo}–{hi}), errors {:?}",
            m.kind.name(),
            m.options.eta,
            errs.iter().map(|e| format!("{e:.2e}")).collect::<Vec<_>>()
        );
        if !(slope >= *lo && slope <= *hi) {
            failures.push(format!(
                "{}: slope {slope:.3} outside [{lo}, {hi}]",
                m.kind.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The score→denoiser adapters are exact: for data N(0, s²) the exact VE / VP / sub-VP scores
/// give the exact denoiser `s²/(s² + σ²)·x` over each SDE's σ range.
#[test]
fn score_adapters_give_the_exact_gaussian_denoiser() {
    let dev = Default::default();
    let exact = centered_gaussian(&dev);
    let mut noise = SeededNoise::new(5);
    for sde in sdes() {
        let model = gaussian_score_model(&sde);
        let score = ScoreFn::new(&sde, &model, true);
        let den = ScoreDenoiser::new(&sde, &score);
        let (lo, hi) = sigma_range(&sde);
        for sigma in [lo, (lo * hi).sqrt(), 1.0, hi] {
            // σ ↔ t round trip
            let (t, _) = time_and_scale(&sde, sigma);
            assert!(
                (sigma_at(&sde, t) / sigma - 1.0).abs() < 1e-9,
                "{sde:?}: σ {sigma} → t {t}"
            );
            let x: Tensor<B64, 4> =
                sde_core::NoiseSource::<B64>::normal(&mut noise, SHAPE, &dev).unwrap();
            let x = x.mul_scalar(sigma.max(1.0));
            let sig = [sigma as f32; SHAPE[0]];
            let a = den.denoise(x.clone(), &sig).unwrap();
            let b = exact.denoise(x, &sig).unwrap();
            let scale: f32 = b.clone().abs().max().into_scalar();
            let err: f32 = (a - b).abs().max().into_scalar();
            assert!(
                err <= 1e-4 * scale.max(1.0),
                "{:?} σ = {sigma}: adapter error {err} (scale {scale})",
                sde.kind()
            );
        }
        // outside the SDE's range: one clear error, no extrapolation
        let x = Tensor::<B64, 4>::zeros(SHAPE, &dev);
        let e = den.denoise(x, &[(hi * 2.0) as f32; SHAPE[0]]).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }
}

/// Data std of the SDE-level Gaussian checks.
const DATA_STD: f32 = 0.5;

/// The exact denoiser of N(0, DATA_STD²).
fn centered_gaussian(dev: &burn::tensor::Device<B64>) -> GaussianDenoiser<B64> {
    let v = DATA_STD * DATA_STD;
    GaussianDenoiser::new(
        Tensor::zeros([2, 4, 4], dev),
        Tensor::full([2, 4, 4], v, dev),
    )
    .unwrap()
}

/// The exact score model of N(0, DATA_STD²) under `sde`.
fn gaussian_score_model(sde: &AnySde) -> GaussianScoreModel<AnySde> {
    let data = GaussianData {
        mean: 0.0,
        data_std: DATA_STD,
    };
    GaussianScoreModel::new(sde.clone(), data)
}

fn sdes() -> Vec<AnySde> {
    vec![
        AnySde::from_reference(SdeKind::Ve, 0.01, 50.0, 0.0, 0.0, 1000).unwrap(),
        AnySde::from_reference(SdeKind::Vp, 0.0, 0.0, 0.1, 20.0, 1000).unwrap(),
        AnySde::from_reference(SdeKind::SubVp, 0.0, 0.0, 0.1, 20.0, 1000).unwrap(),
    ]
}

/// Through the `Sampler` interface: prior draw `N(0, I)·σ₀`, Heun on 64 Karras steps over the
/// SDE's range, NFE 127, and the exact ODE end point of Gaussian data (the only error is the
/// solver's) — for VE, VP and sub-VP score functions.
#[test]
fn sigma_sampler_reaches_the_exact_ode_solution() {
    let dev = Default::default();
    let exact = centered_gaussian(&dev);
    for sde in sdes() {
        let model = gaussian_score_model(&sde);
        let score = ScoreFn::new(&sde, &model, true);
        let sampler = SigmaSampler::new(
            &sde,
            SigmaMethod::from_name("heun").unwrap(),
            "karras",
            64,
            None,
            DataScaler::Identity,
        )
        .unwrap();
        let out = sampler
            .sample(&score, SHAPE, &mut SeededNoise::new(11), &dev)
            .unwrap();
        assert_eq!(out.nfe, 127, "{:?}", sde.kind());
        let smax = sampler.sigmas[0];
        let smin = sampler.sigmas[sampler.sigmas.len() - 2];
        let x0: Tensor<B64, 4> =
            sde_core::NoiseSource::<B64>::normal(&mut SeededNoise::new(11), SHAPE, &dev).unwrap();
        // exact ODE to σ_min, then the sampler's last (Euler) step to 0 is D(x, σ_min)
        let at_min = exact.ode_solution(x0.mul_scalar(smax), smax, smin);
        let want = exact.denoise(at_min, &[smin as f32; SHAPE[0]]).unwrap();
        let scale: f32 = want.clone().abs().max().into_scalar();
        let err: f32 = (out.sample - want).abs().max().into_scalar();
        eprintln!("{:?}: error {err:.3e} (scale {scale:.3})", sde.kind());
        assert!(
            err < 1e-2 * scale,
            "{:?}: error {err} (scale {scale})",
            sde.kind()
        );
    }
}

/// Options: k-diffusion's names and defaults; unknown options and bad values are clear errors.
#[test]
fn options_are_checked() {
    let mut m = SigmaMethod::from_name("dpmpp_2m_sde").unwrap();
    assert_eq!(m.options.eta, 1.0);
    m.set("solver_type", "heun").unwrap();
    assert!(m.set("solver_type", "rk4").is_err());
    let e = m.set("s_churn", "1").unwrap_err().to_string();
    assert!(e.contains("takes no option `s_churn`"), "{e}");
    let mut a = SigmaMethod::from_name("DPM-Adaptive").unwrap();
    assert_eq!((a.options.order, a.options.eta), (3, 0.0));
    assert!(a.set("order", "4").is_err());
    assert!(SigmaMethod::from_name("ddim").is_err());
    let mut h = SigmaMethod::from_name("heun").unwrap();
    h.set("s_tmax", "inf").unwrap();
    assert!(h.set("s_churn", "x").is_err());
    assert_eq!(ALL_KINDS.len(), 13);
    for k in ALL_KINDS {
        assert_eq!(SigmaKind::from_name(k.name()).unwrap(), k);
    }
    // schedules must decrease and may end with 0 only
    let dev = Default::default();
    let den = gaussian(&dev);
    let x = Tensor::<B64, 4>::zeros(SHAPE, &dev);
    let mut noise = SeededNoise::new(1);
    for bad in [
        vec![1.0],
        vec![1.0, 2.0, 0.0],
        vec![1.0, 0.0, 0.0],
        vec![f64::NAN, 0.0],
    ] {
        assert!(
            sample_sigma(&h, &den as &dyn Denoiser<B64>, x.clone(), &bad, &mut noise).is_err(),
            "{bad:?}"
        );
    }
}

/// The schedules agree with each other and with the SDEs: `vp` is σ(t) = std/α of score_sde's
/// VP SDE on `t = linspace(1, eps, n)`, polyexponential with ρ = 1 is exponential, Karras and
/// exponential start at σ_max and end at σ_min then 0.
#[test]
fn schedules_agree_with_the_sdes() {
    let n = 12;
    let vp_sde = &sdes()[1];
    let got = schedule::vp(n, 19.9, 0.1, 1e-3);
    for (i, s) in got[..n].iter().enumerate() {
        let t = 1.0 + (1e-3 - 1.0) * i as f64 / (n - 1) as f64;
        let want = sigma_at(vp_sde, t);
        assert!(
            (s / want - 1.0).abs() < 1e-12,
            "vp[{i}] {s} vs σ({t}) = {want}"
        );
    }
    assert_eq!(got[n], 0.0);
    let e = schedule::exponential(n, 0.002, 80.0);
    let p = schedule::polyexponential(n, 0.002, 80.0, 1.0);
    for (a, b) in e.iter().zip(&p) {
        assert!((a - b).abs() <= 1e-12 * a.abs(), "{a} vs {b}");
    }
    for s in [e, schedule::karras(n, 0.002, 80.0, 7.0)] {
        assert_eq!(s.len(), n + 1);
        assert!((s[0] - 80.0).abs() < 1e-9 && (s[n - 1] - 0.002).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
    }
    // the default range of SigmaSampler is the SDE's sampling interval
    let (lo, hi) = sigma_range(vp_sde);
    let eps = vp_sde.default_sampling_eps() as f64; // 1e-3 as f32
    assert!((hi - 152.1669702839464).abs() < 1e-6, "{hi}");
    assert!((lo - sigma_at(vp_sde, eps)).abs() < 1e-15, "{lo}");
}
