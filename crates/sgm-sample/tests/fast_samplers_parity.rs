//! Parity of the fast σ-space samplers with every `fast_samplers/` case (k-diffusion
//! `sample_*`, fixtures `fast_samplers/README.md`): sample (case tolerance, scale-relative),
//! exact NFE, `dpm_adaptive` info, every recorded draw consumed in order — and the schedule
//! functions against each case's `sigmas` input.

mod common;

use common::{check_exhausted, load_net, shape4};
use sde_core::ScoreFn;
use sgm_sample::sigma::{
    Denoiser, GaussianDenoiser, ScoreDenoiser, SigmaMethod, sample_sigma, schedule,
};
use sgm_testkit::{Case, Checker, TestBackend, Tolerance, cases, device, sde_from_json};

type B = TestBackend;

/// `kwargs` of a case as k-diffusion keyword options.
fn method(case: &Case) -> Result<SigmaMethod, String> {
    let name = case.json["sampler"].as_str().ok_or("`sampler` missing")?;
    let mut m = SigmaMethod::from_name(name).map_err(|e| e.to_string())?;
    if let Some(kw) = case.json["kwargs"].as_object() {
        for (k, v) in kw {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            m.set(k, &text).map_err(|e| e.to_string())?;
        }
    }
    if case.json["call"].as_str() == Some("range") {
        // dpm_fast / dpm_adaptive: σ range = (sigmas[-2], sigmas[0]) — what sample_sigma uses
        let s = case.tensor("sigmas");
        let positive = s.data.iter().filter(|&&v| v > 0.0).count();
        if positive != s.data.len() - 1 {
            return Err("`range` call: sigmas must be positive and end with 0".into());
        }
    }
    Ok(m)
}

fn run_case(case: &Case, checker: &mut Checker) -> Result<(), String> {
    let dev = device();
    let m = method(case)?;
    let sigmas: Vec<f64> = case.tensor("sigmas").data.clone();
    let x_init = case.tensor("x_init").tensor::<B, 4>(&dev);
    if x_init.dims() != shape4(case) {
        return Err(format!("x_init {:?} ≠ shape", x_init.dims()));
    }
    let model = &case.json["model"];
    let mut noise = case.recorded_noise();
    let out = match model["kind"].as_str() {
        Some("analytic_gaussian") => {
            let den = GaussianDenoiser::new(
                case.tensor("gaussian_mu").tensor::<B, 3>(&dev),
                case.tensor("gaussian_var").tensor::<B, 3>(&dev),
            )
            .map_err(|e| e.to_string())?;
            sample_sigma(&m, &den as &dyn Denoiser<B>, x_init, &sigmas, &mut noise)
        }
        Some("network") => {
            let key = model["net"].as_str().ok_or("model.net missing")?;
            let net = load_net::<B>(case, key, &dev)?;
            let sde = sde_from_json(&model["sde"])?;
            // the reference's get_score_fn(sde, model, train=False, continuous=True)
            let score = ScoreFn::new(&sde, &net, true);
            let den = ScoreDenoiser::new(&sde, &score);
            sample_sigma(&m, &den as &dyn Denoiser<B>, x_init, &sigmas, &mut noise)
        }
        other => return Err(format!("unknown model.kind {other:?}")),
    }
    .map_err(|e| format!("sample_sigma: {e}"))?;
    let ratio = checker.check_tensor(case, "sample", out.x);
    eprintln!(
        "{}: sample error/allowance {ratio:?}, nfe {} (reference {})",
        case.id(),
        out.nfe,
        case.json["expected"]["nfe"]
    );
    let exp = &case.json["expected"];
    let nfe = exp["nfe"].as_i64().ok_or("expected.nfe missing")?;
    checker.check_count(case, "nfe", out.nfe as i64, nfe, case.nfe_slack(nfe));
    if let Some(info) = exp.get("dpm_adaptive_info") {
        let Some(got) = out.adaptive else {
            return Err("dpm_adaptive_info expected but the sampler reported none".into());
        };
        for (what, actual) in [
            ("steps", got.steps),
            ("nfe", got.nfe),
            ("n_accept", got.n_accept),
            ("n_reject", got.n_reject),
        ] {
            let e = info[what].as_i64().ok_or(format!("info.{what} missing"))?;
            checker.check_count(
                case,
                &format!("dpm_adaptive_info.{what}"),
                actual as i64,
                e,
                0,
            );
        }
    }
    check_exhausted(checker, case, &noise);
    Ok(())
}

/// Every case: sample within the case tolerance, exact NFE, `dpm_adaptive` info, draws.
#[test]
fn fast_samplers_match_every_case() {
    let mut checker = Checker::new();
    for case in cases("fast_samplers") {
        if let Err(e) = run_case(&case, &mut checker) {
            checker.fail(&case, e);
        }
    }
    checker.finish("fast_samplers");
}

/// Float64 schedule vs the reference's float32 tensor: a few float32 ulps (ρ = 7 amplifies the
/// rounding of the ramp and of `σ^{1/ρ}` sevenfold).
const SCHEDULE_TOL: Tolerance = Tolerance {
    rtol: 2e-6,
    atol: 0.0,
};

/// Every case's `schedule` description rebuilds its `sigmas` input.
#[test]
fn schedules_reproduce_every_case_sigmas() {
    let mut checker = Checker::new();
    for case in cases("fast_samplers") {
        let s = &case.json["schedule"];
        let n = s["n"].as_u64().unwrap_or(0) as usize;
        let f = |k: &str, default: f64| s[k].as_f64().unwrap_or(default);
        let got = match s["schedule"].as_str() {
            Some("karras") => schedule::karras(
                n,
                f("sigma_min", f64::NAN),
                f("sigma_max", f64::NAN),
                f("rho", 7.0),
            ),
            Some("exponential") => {
                schedule::exponential(n, f("sigma_min", f64::NAN), f("sigma_max", f64::NAN))
            }
            Some("polyexponential") => schedule::polyexponential(
                n,
                f("sigma_min", f64::NAN),
                f("sigma_max", f64::NAN),
                f("rho", 1.0),
            ),
            Some("vp") => schedule::vp(n, f("beta_d", 19.9), f("beta_min", 0.1), f("eps_s", 1e-3)),
            other => {
                checker.fail(&case, format!("unknown schedule {other:?}"));
                continue;
            }
        };
        let shape = [got.len()];
        checker.check_values(&case, "sigmas", &shape, &got, Some(SCHEDULE_TOL));
        // the elementwise view too: every σ, not only the largest, within a few ulps
        let exp = &case.tensor("sigmas").data;
        if let Some((i, (a, e))) = got
            .iter()
            .zip(exp)
            .enumerate()
            .find(|(_, (a, e))| (*a - *e).abs() > SCHEDULE_TOL.rtol * e.abs())
        {
            checker.fail(&case, format!("sigmas[{i}]: {a} vs {e}"));
        }
    }
    checker.finish("fast_samplers schedules");
}
