//! Analytic checks with Gaussian data and its exact score: bits/dim against the exact
//! log-density, sample moments of the PC and ODE samplers, encode → decode round trips,
//! inpainting / colorization keeping the known part, and exact class guidance.

use burn::prelude::*;
use sde_core::analytic::{GaussianData, GaussianScoreModel};
use sde_core::{AnySde, NoiseSource, ScoreFn, ScoreFunction, Sde, SubVpSde, VeSde, VpSde};
use sgm_sample::{
    Colorize, Corrector, DataScaler, GuidedScore, Hutchinson, LikelihoodConfig,
    NoiseConditionalClassifier, OdeConfig, OdeSampler, PcConfig, PcSampler, Predictor, Rk45Options,
    Sampler, decode, encode, likelihood, pc_colorize, pc_inpaint, slerp,
};
use sgm_testkit::{SeededNoise, TestAutodiff, TestBackend, device, host};

type B = TestBackend;

fn sdes() -> Vec<AnySde> {
    vec![
        VeSde::new(0.01, 50.0, 1000).unwrap().into(),
        VpSde::new(0.1, 20.0, 1000).unwrap().into(),
        SubVpSde::new(0.1, 20.0, 1000).unwrap().into(),
    ]
}

fn gaussian_batch<BK: Backend>(
    data: GaussianData,
    shape: [usize; 4],
    seed: u64,
    dev: &BK::Device,
) -> Tensor<BK, 4> {
    let z: Tensor<BK, 4> = SeededNoise::new(seed).normal(shape, dev).unwrap();
    z.mul_scalar(data.data_std).add_scalar(data.mean)
}

/// Probability-flow bits/dim (Rademacher probe: the trace of the diagonal Jacobian is exact)
/// within 0.01 bits of the exact log-density of the Gaussian marginal at `eps`, for every SDE.
#[test]
fn pf_ode_bpd_matches_exact_gaussian_log_density() {
    let dev = device();
    let data = GaussianData {
        mean: 0.0,
        data_std: 0.5,
    };
    let shape = [2, 3, 8, 8];
    let d = 3 * 8 * 8;
    for sde in sdes() {
        let model = GaussianScoreModel::new(sde.clone(), data);
        let score = ScoreFn::new(&sde, &model, true);
        let x = gaussian_batch::<TestAutodiff>(data, shape, 11, &dev);
        let (_, xh) = host(x.clone());
        let exact = data.log_prob(&sde, 1e-5, &xh, d);
        for per_sample_control in [false, true] {
            let mut cfg = LikelihoodConfig::new(DataScaler::Centered);
            cfg.hutchinson = Hutchinson::Rademacher;
            cfg.per_sample_control = per_sample_control;
            let out = likelihood(&sde, &score, x.clone(), &cfg, &mut SeededNoise::new(3)).unwrap();
            let (_, bpd) = host(out.bpd);
            assert_eq!(bpd.len(), 2);
            for (b, lp) in bpd.iter().zip(&exact) {
                let want = -lp / std::f64::consts::LN_2 / d as f64 + 7.0;
                assert!(
                    (b - want).abs() < 0.01,
                    "{:?} (per-sample control {per_sample_control}): bpd {b} vs exact {want}",
                    sde.kind()
                );
            }
        }
    }
}

fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0),
    )
}

fn check_moments<S: Sampler<B>>(
    what: &str,
    sampler: &S,
    score: &dyn ScoreFunction<B>,
    data: GaussianData,
) {
    let dev = device();
    let shape = [16, 3, 8, 8];
    let out = sampler
        .sample(score, shape, &mut SeededNoise::new(5), &dev)
        .unwrap();
    let (_, v) = host(out.sample);
    let (m, var) = moments(&v);
    let n = v.len() as f64;
    let s2 = (data.data_std * data.data_std) as f64;
    // 5 standard errors of the sample mean / variance, plus 2% discretisation bias on the variance
    let m_tol = 5.0 * (s2 / n).sqrt();
    let v_tol = 5.0 * s2 * (2.0 / n).sqrt() + 0.02 * s2;
    eprintln!("{what}: mean {m:.4}, variance {var:.4}, nfe {}", out.nfe);
    assert!(
        (m - data.mean as f64).abs() < m_tol,
        "{what}: mean {m} vs {} (±{m_tol})",
        data.mean
    );
    assert!(
        (var - s2).abs() < v_tol,
        "{what}: variance {var} vs {s2} (±{v_tol})"
    );
}

/// PC (every SDE, several predictor/corrector pairs) and ODE samples of Gaussian data have the
/// data's mean and variance within statistical tolerance — through the one `Sampler` interface.
#[test]
fn samplers_reproduce_gaussian_moments() {
    let data = GaussianData {
        mean: 0.3,
        data_std: 0.5,
    };
    for sde in sdes() {
        let model = GaussianScoreModel::new(sde.clone(), data);
        let score = ScoreFn::new(&sde, &model, true);
        let mut pairs = vec![
            (Predictor::ReverseDiffusion, Corrector::None),
            (Predictor::EulerMaruyama, Corrector::None),
        ];
        if !matches!(sde, AnySde::SubVp(_)) {
            pairs.push((Predictor::AncestralSampling, Corrector::None));
            pairs.push((Predictor::AncestralSampling, Corrector::Langevin));
            pairs.push((Predictor::ReverseDiffusion, Corrector::Langevin));
        }
        for (p, c) in pairs {
            let pc = PcSampler {
                sde: sde.clone(),
                config: PcConfig::new(p, c, &sde),
            };
            check_moments(&format!("{:?} {p:?}+{c:?}", sde.kind()), &pc, &score, data);
        }
        let ode = OdeSampler {
            sde: sde.clone(),
            config: OdeConfig::new(&sde),
        };
        check_moments(&format!("{:?} ODE", sde.kind()), &ode, &score, data);
    }
}

/// encode (eps → T) then decode (T → eps) returns the data within 1e-3.
#[test]
fn encode_decode_round_trip() {
    let dev = device();
    let data = GaussianData {
        mean: 0.0,
        data_std: 0.5,
    };
    let opts = Rk45Options {
        rtol: 1e-6,
        atol: 1e-6,
        ..Rk45Options::default()
    };
    for sde in sdes() {
        let model = GaussianScoreModel::new(sde.clone(), data);
        let score = ScoreFn::new(&sde, &model, true);
        let x = gaussian_batch::<B>(data, [2, 3, 8, 8], 21, &dev);
        let eps = sde.default_sampling_eps() as f64;
        let (z, _) = encode(&sde, &score, x.clone(), eps, opts).unwrap();
        let (x2, _) = decode(&sde, &score, z, eps, opts).unwrap();
        let err = (x2 - x).abs().max().into_scalar();
        assert!(err <= 1e-3, "{:?}: round-trip error {err}", sde.kind());
    }
}

/// Inpainting with denoise returns the known pixels exactly (VE: the marginal mean is the data
/// itself); colorization keeps the grey channel of the decoupled space.
#[test]
fn inpainting_and_colorization_keep_the_known_part() {
    let dev = device();
    let data_dist = GaussianData {
        mean: 0.0,
        data_std: 0.5,
    };
    let sde: AnySde = VeSde::new(0.01, 50.0, 100).unwrap().into();
    let model = GaussianScoreModel::new(sde.clone(), data_dist);
    let score = ScoreFn::new(&sde, &model, true);
    let shape = [2, 3, 8, 8];
    let data = gaussian_batch::<B>(data_dist, shape, 31, &dev);
    let u: Tensor<B, 4> = SeededNoise::new(32)
        .uniform(2 * 3 * 64, &dev)
        .unwrap()
        .reshape(shape);
    let mask = u.lower_elem(0.5).float();
    let mut cfg = PcConfig::new(Predictor::ReverseDiffusion, Corrector::Langevin, &sde);
    cfg.eps = 1e-5;
    let out = pc_inpaint(
        &sde,
        &score,
        &cfg,
        data.clone(),
        mask.clone(),
        &mut SeededNoise::new(33),
    )
    .unwrap();
    let (_, o) = host(out.sample);
    let (_, d) = host(data);
    let (_, m) = host(mask);
    let mut known = 0;
    for i in 0..o.len() {
        if m[i] == 1.0 {
            assert_eq!(o[i], d[i], "known pixel {i} changed");
            known += 1;
        }
    }
    assert!(known > 0);
    assert!(o.iter().all(|v| v.is_finite()));

    let gray_src = gaussian_batch::<B>(data_dist, shape, 41, &dev);
    let gray = gray_src.mean_dim(1).repeat_dim(1, 3); // R = G = B
    let out = pc_colorize(&sde, &score, &cfg, gray.clone(), &mut SeededNoise::new(42)).unwrap();
    let proj = Colorize::new(gray.clone()).unwrap();
    let got = proj.decouple(out.sample).unwrap().narrow(1, 0, 1);
    let want = proj.decouple(gray).unwrap().narrow(1, 0, 1);
    // a wrongly shaped input is an error, not a panic
    assert!(
        proj.decouple(Tensor::<B, 4>::zeros([2, 3, 4, 4], &dev))
            .is_err()
    );
    assert!(Colorize::new(Tensor::<B, 4>::zeros([2, 1, 8, 8], &dev)).is_err());
    let err = (got - want).abs().max().into_scalar();
    assert!(err < 1e-4, "grey channel changed by {err}");
}

/// Exact posterior classifier of a two-component Gaussian mixture `½ N(−μ, s²) + ½ N(μ, s²)`.
struct MixtureClassifier {
    sde: AnySde,
    means: [f32; 2],
    s: f32,
}

impl MixtureClassifier {
    /// `(m(t), v(t))`: marginal scaling and variance of each component.
    fn kernel(&self, t: f32) -> (f32, f32) {
        let (m, sigma) = GaussianData::kernel(&self.sde, t);
        (m, m * m * self.s * self.s + sigma * sigma)
    }
    /// Per-component log-density up to a shared constant, `[B, 2]`.
    fn log_components<BK: Backend>(&self, x: Tensor<BK, 4>, t: &[f32]) -> Tensor<BK, 2> {
        let (m, v) = self.kernel(t[0]);
        let [b, c, h, w] = x.dims();
        let cols: Vec<Tensor<BK, 2>> = self
            .means
            .iter()
            .map(|&mu| {
                (x.clone().sub_scalar(m * mu))
                    .square()
                    .reshape([b, c * h * w])
                    .sum_dim(1)
                    .div_scalar(-2.0 * v)
            })
            .collect();
        Tensor::cat(cols, 1)
    }
}

impl NoiseConditionalClassifier<TestAutodiff> for MixtureClassifier {
    fn logits(&self, x: Tensor<TestAutodiff, 4>, t: &[f32]) -> Tensor<TestAutodiff, 2> {
        self.log_components(x, t)
    }
}

/// Mixture score + ∇ log p_t(y | x) from the exact classifier = the class-conditional score
/// `−(x − m μ_y) / v` (paper eq. 14).
#[test]
fn guidance_with_exact_classifier_gives_conditional_score() {
    let dev = device();
    let sde: AnySde = VpSde::new(0.1, 20.0, 1000).unwrap().into();
    let clf = MixtureClassifier {
        sde: sde.clone(),
        means: [-1.0, 1.0],
        s: 0.5,
    };
    let t = 0.3f32;
    let (m, v) = clf.kernel(t);
    // unconditional mixture score Σ_k w_k (−(x − m μ_k)/v)
    let mixture = |x: Tensor<B, 4>, t: &[f32]| -> sde_core::Result<Tensor<B, 4>> {
        let w = burn::tensor::activation::softmax(clf.log_components(x.clone(), t), 1); // [B, 2]
        let [b, ..] = x.dims();
        let mut acc = x.zeros_like();
        for (k, &mu) in clf.means.iter().enumerate() {
            let wk = w.clone().narrow(1, k, 1).reshape([b, 1, 1, 1]);
            acc = acc + x.clone().sub_scalar(m * mu).div_scalar(-v).mul(wk);
        }
        Ok(acc)
    };
    let guided = GuidedScore::<TestAutodiff> {
        score: &mixture,
        classifier: &clf,
        labels: vec![0, 1, 1],
        scale: 1.0,
    };
    let x = gaussian_batch::<B>(
        GaussianData {
            mean: 0.0,
            data_std: 0.8,
        },
        [3, 3, 4, 4],
        51,
        &dev,
    );
    let got = guided.score(x.clone(), &[t; 3]).unwrap();
    for (i, &y) in [0usize, 1, 1].iter().enumerate() {
        let xi = x.clone().narrow(0, i, 1);
        let want = xi.sub_scalar(m * clf.means[y]).div_scalar(-v);
        let err = (got.clone().narrow(0, i, 1) - want.clone())
            .abs()
            .max()
            .into_scalar();
        let scale = want.abs().max().into_scalar();
        assert!(err <= 1e-4 * (1.0 + scale), "sample {i}: error {err}");
    }
    // a label outside the classes is an error, not a panic
    let bad = GuidedScore::<TestAutodiff> {
        score: &mixture,
        classifier: &clf,
        labels: vec![0, 2, 1],
        scale: 1.0,
    };
    assert!(bad.score(x, &[t; 3]).is_err());
}

/// slerp returns its end points at λ = 0 and 1 and keeps the norm of equal-norm codes.
#[test]
fn slerp_interpolates_on_the_sphere() {
    let dev = device();
    let mut noise = SeededNoise::new(61);
    let z0: Tensor<B, 4> = noise.normal([2, 3, 4, 4], &dev).unwrap();
    let z1: Tensor<B, 4> = noise.normal([2, 3, 4, 4], &dev).unwrap();
    let a = slerp(z0.clone(), z1.clone(), 0.0).unwrap();
    let b = slerp(z0.clone(), z1.clone(), 1.0).unwrap();
    assert!((a - z0.clone()).abs().max().into_scalar() < 1e-5);
    assert!((b - z1.clone()).abs().max().into_scalar() < 1e-5);
    // equal norms: scale z1 to the norm of z0 per sample, the midpoint keeps it
    let n0 = z0.clone().reshape([2, 48]).square().sum_dim(1).sqrt(); // [2, 1]
    let n1 = z1.clone().reshape([2, 48]).square().sum_dim(1).sqrt();
    let z1s = z1.mul((n0.clone() / n1).reshape([2, 1, 1, 1]));
    let mid = slerp(z0, z1s, 0.5).unwrap();
    let nm = mid.reshape([2, 48]).square().sum_dim(1).sqrt();
    assert!((nm - n0).abs().max().into_scalar() < 1e-4);
    assert!(
        slerp(
            Tensor::<B, 4>::zeros([1, 1, 2, 2], &dev),
            Tensor::zeros([2, 1, 2, 2], &dev),
            0.5
        )
        .is_err()
    );
}

/// The device-state solver (only the error norm to the host) agrees with the float64 host
/// solver: same samples within 1e-3 and NFE within the README §3 network slack.
#[test]
fn device_state_ode_matches_host_state() {
    let dev = device();
    let data = GaussianData {
        mean: 0.0,
        data_std: 0.5,
    };
    for sde in sdes() {
        let model = GaussianScoreModel::new(sde.clone(), data);
        let score = ScoreFn::new(&sde, &model, true);
        let mut outs: Vec<sgm_sample::SampleOutput<B>> = Vec::new();
        for device_state in [false, true] {
            let mut cfg = OdeConfig::new(&sde);
            cfg.solver.device_state = device_state;
            let out = sgm_sample::ode_sample(
                &sde,
                &score,
                &cfg,
                [2, 3, 8, 8],
                None,
                &mut SeededNoise::new(71),
                &dev,
            )
            .unwrap();
            outs.push(out);
        }
        let (a, b) = (outs[0].clone(), outs[1].clone());
        let slack = 12.max((a.reference_nfe as f64 * 0.1).ceil() as usize);
        assert!(
            a.reference_nfe.abs_diff(b.reference_nfe) <= slack,
            "{:?}: nfe {} (host) vs {} (device)",
            sde.kind(),
            a.reference_nfe,
            b.reference_nfe
        );
        let err = (a.sample - b.sample).abs().max().into_scalar();
        assert!(
            err <= 1e-3,
            "{:?}: device vs host state differ by {err}",
            sde.kind()
        );
    }
}
