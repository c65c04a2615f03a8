//! Parity with the reference `sde_lib` on every `sde/` fixture case (fixtures README §5.1):
//! forward SDE, marginals, discretisations, reverse SDE, probability-flow ODE, prior, tables.

use std::collections::HashMap;

use burn::prelude::*;
use sde_core::f32math::discrete_index;
use sde_core::{AnySde, Result, Sde};
use sgm_testkit::{Case, Checker, TestBackend, cases, device, host};

type B = TestBackend;

/// name → (shape, values).
type Outputs = HashMap<String, (Vec<usize>, Vec<f64>)>;

/// Everything the fixture can ask for, computed for one case.
fn compute(case: &Case) -> Result<Outputs> {
    let dev = device();
    let sde = case.sde();
    let x: Tensor<B, 4> = case.tensor("x").tensor(&dev);
    let z: Tensor<B, 4> = case.tensor("z").tensor(&dev);
    let score: Tensor<B, 4> = case.tensor("score").tensor(&dev);
    let mut out = HashMap::new();
    let put_t = |out: &mut HashMap<_, _>, name: String, t: Tensor<B, 4>| {
        out.insert(name, host(t));
    };
    let put_v = |out: &mut Outputs, name: String, v: &[f32]| {
        out.insert(name, (vec![v.len()], v.iter().map(|&a| a as f64).collect()));
    };
    // `score_fn(x, t) := score` for every call.
    let const_score = |_x: Tensor<B, 4>, _t: &[f32]| -> Result<Tensor<B, 4>> { Ok(score.clone()) };
    let rsde = sde.reverse(const_score, false);
    let pflow = sde.reverse(const_score, true);
    let n_t = case.json["n_t_vectors"].as_u64().unwrap_or(0) as usize;
    assert!(n_t > 0, "{}: n_t_vectors missing", case.id());
    for j in 0..n_t {
        let t = case.tensor(&format!("t_{j}")).f32();
        let idx: Vec<f64> = t
            .iter()
            .map(|&t| discrete_index(t, sde.num_steps(), sde.t_max()) as f64)
            .collect();
        out.insert(format!("index_{j}"), (vec![t.len()], idx));
        let (drift, g) = sde.sde(x.clone(), &t)?;
        put_t(&mut out, format!("drift_{j}"), drift);
        put_v(&mut out, format!("diffusion_{j}"), &g);
        let (mean, std) = sde.marginal_prob(x.clone(), &t)?;
        put_t(&mut out, format!("marginal_mean_{j}"), mean);
        put_v(&mut out, format!("marginal_std_{j}"), &std);
        let (f, g) = sde.discretize(x.clone(), &t)?;
        put_t(&mut out, format!("discretize_f_{j}"), f);
        put_v(&mut out, format!("discretize_G_{j}"), &g);
        let (d, g) = rsde.sde(x.clone(), &t)?;
        put_t(&mut out, format!("rsde_drift_{j}"), d);
        put_v(&mut out, format!("rsde_diffusion_{j}"), &g);
        let (f, g) = rsde.discretize(x.clone(), &t)?;
        put_t(&mut out, format!("rsde_discretize_f_{j}"), f);
        put_v(&mut out, format!("rsde_discretize_G_{j}"), &g);
        let (d, g) = pflow.sde(x.clone(), &t)?;
        put_t(&mut out, format!("pflow_drift_{j}"), d);
        put_v(&mut out, format!("pflow_diffusion_{j}"), &g);
        let (f, g) = pflow.discretize(x.clone(), &t)?;
        put_t(&mut out, format!("pflow_discretize_f_{j}"), f);
        put_v(&mut out, format!("pflow_discretize_G_{j}"), &g);
    }
    out.insert("prior_logp_z".into(), host(sde.prior_logp(z.clone())));
    let mut noise = case.recorded_noise();
    let prior: Tensor<B, 4> = sde.prior_sampling(x.dims(), &mut noise, &dev)?;
    assert!(noise.is_exhausted(), "{}: draws left unused", case.id());
    put_t(&mut out, "prior_sample".into(), prior);
    match &sde {
        AnySde::Ve(ve) => put_v(&mut out, "discrete_sigmas".into(), ve.discrete_sigmas()),
        AnySde::Vp(vp) => {
            let tb = vp.tables();
            put_v(&mut out, "discrete_betas".into(), &tb.discrete_betas);
            put_v(&mut out, "alphas".into(), &tb.alphas);
            put_v(&mut out, "alphas_cumprod".into(), &tb.alphas_cumprod);
            put_v(
                &mut out,
                "sqrt_alphas_cumprod".into(),
                &tb.sqrt_alphas_cumprod,
            );
            put_v(
                &mut out,
                "sqrt_1m_alphas_cumprod".into(),
                &tb.sqrt_1m_alphas_cumprod,
            );
        }
        AnySde::SubVp(_) => {}
    }
    Ok(out)
}

#[test]
fn every_sde_case_matches_the_reference() {
    let mut checker = Checker::new();
    for case in cases("sde") {
        checker.visit(&case);
        let got = match compute(&case) {
            Ok(g) => g,
            Err(e) => {
                checker.fail(&case, format!("error: {e}"));
                continue;
            }
        };
        for name in case.outputs() {
            match got.get(&name) {
                Some((shape, values)) => {
                    checker.check_values(&case, &name, shape, values, None);
                }
                None if case.is_informational(&name) => {}
                None => checker.fail(&case, format!("output `{name}` not computed")),
            }
        }
        // The probability-flow diffusion is the Python float 0.0 (stored in JSON, not a tensor).
        for (key, v) in case.json.as_object().unwrap() {
            if let Some(expected) = key
                .strip_prefix("pflow_diffusion_")
                .and(v["python_float"].as_f64())
            {
                let (_, got_v) = &got[key];
                if got_v.iter().any(|&g| g != expected) {
                    checker.fail(&case, format!("{key}: {got_v:?} ≠ {expected}"));
                }
            }
        }
        // `reverse_N_T`: the reverse objects keep N and T.
        if let Some(nt) = case.json["reverse_N_T"].as_array() {
            let sde = case.sde();
            let r = sde.reverse((), false);
            for pair in nt {
                let n = pair[0].as_u64().unwrap() as i64;
                let t = pair[1].as_f64().unwrap();
                checker.check_count(&case, "reverse N", r.num_steps() as i64, n, 0);
                checker.check_scalar(
                    &case,
                    "reverse T",
                    r.t_max() as f64,
                    t,
                    sgm_testkit::Tolerance {
                        rtol: 0.0,
                        atol: 0.0,
                    },
                );
            }
        }
    }
    checker.finish("sde parity");
}
