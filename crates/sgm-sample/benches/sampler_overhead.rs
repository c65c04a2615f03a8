//! Sampler overhead on the test backend (flex): wall time / (NFE × one model forward at the
//! same batch), goal ≤ 1.05, for PC, ODE and the fast σ-space samplers; and likelihood cost per
//! NFE / one forward + backward.
//! Run: `cargo bench -p sgm-sample --bench sampler_overhead`. Uses the first fixture network
//! config (random weights); skipped without fixtures.

use std::time::Instant;

use burn::prelude::*;
use sde_core::{AnySde, Labels, NoiseSource, ScoreFn, ScoreModel, VpSde};
use sgm_sample::{
    Corrector, DataScaler, LikelihoodConfig, NoProjection, OdeConfig, PcConfig, Predictor,
    Rk45Options, Sampler, SigmaMethod, SigmaSampler, likelihood, ode_sample, pc_sample,
};
use sgm_testkit::{SeededNoise, TestAutodiff, TestBackend, cases, device};

fn main() {
    let Some(case) = cases("nets").into_iter().next() else {
        eprintln!("no fixtures: benchmark skipped");
        return;
    };
    let cfg = sgm_nets::ModelConfig::from_fixture_model(&case.json["model"]).expect("model config");
    let dev = device();
    let net = sgm_nets::ScoreNet::<TestBackend>::new(&cfg, &dev).expect("net");
    let x0 = case.tensor("x").tensor::<TestBackend, 4>(&dev);
    let shape: [usize; 4] = x0.dims();
    let sde: AnySde = VpSde::new(0.1, 20.0, 20).unwrap().into();
    let score = ScoreFn::new(&sde, &net, true);

    // one forward at this batch
    let reps = 10;
    let labels =
        || Labels::Float(Tensor::<TestBackend, 1>::ones([shape[0]], &dev).mul_scalar(500.0));
    let _ = net.forward(x0.clone(), labels()).into_data();
    // fastest of `reps` single forwards (the machine is shared)
    let fwd = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let _ = net.forward(x0.clone(), labels()).into_data();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "net {} batch {shape:?}: forward {:.2} ms",
        case.name,
        fwd * 1e3
    );

    let pc = PcConfig {
        scaler: DataScaler::Identity,
        ..PcConfig::new(Predictor::ReverseDiffusion, Corrector::Langevin, &sde)
    };
    let t = Instant::now();
    let out = pc_sample(
        &sde,
        &score,
        &pc,
        shape,
        &NoProjection,
        &mut SeededNoise::new(1),
        &dev,
    )
    .expect("pc");
    let _ = out.sample.into_data();
    let wall = t.elapsed().as_secs_f64();
    println!(
        "PC (reverse_diffusion + langevin, N = 20): nfe {}, wall {:.3} s, overhead {:.3}",
        out.nfe,
        wall,
        wall / (out.nfe as f64 * fwd)
    );

    let ode = OdeConfig {
        solver: Rk45Options {
            rtol: 1e-3,
            atol: 1e-3,
            ..Rk45Options::default()
        },
        ..OdeConfig::new(&sde)
    };
    for device_state in [false, true] {
        let mut ode = ode;
        ode.solver.device_state = device_state;
        let t = Instant::now();
        let out = ode_sample(
            &sde,
            &score,
            &ode,
            shape,
            None,
            &mut SeededNoise::new(2),
            &dev,
        )
        .expect("ode");
        let _ = out.sample.into_data();
        let wall = t.elapsed().as_secs_f64();
        println!(
            "ODE (RK45, tol 1e-3, device state {device_state}): nfe {}, wall {:.3} s, overhead {:.3}",
            out.nfe,
            wall,
            wall / (out.nfe as f64 * fwd)
        );
    }

    // fast σ-space samplers through the Sampler interface
    for (name, steps) in [("heun", 18), ("dpmpp_2m", 10)] {
        let method = SigmaMethod::from_name(name).expect("method");
        let sampler = SigmaSampler::new(&sde, method, "karras", steps, None, DataScaler::Identity)
            .expect("sampler");
        let t = Instant::now();
        let out = sampler
            .sample(&score, shape, &mut SeededNoise::new(4), &dev)
            .expect("fast sampler");
        let _ = out.sample.into_data();
        let wall = t.elapsed().as_secs_f64();
        println!(
            "{name} ({steps} Karras steps): nfe {}, wall {:.3} s, overhead {:.3}",
            out.nfe,
            wall,
            wall / (out.nfe as f64 * fwd)
        );
    }

    // likelihood: cost per NFE vs one forward + backward
    let net_ad = sgm_nets::ScoreNet::<TestAutodiff>::new(&cfg, &dev).expect("net");
    let xa = case.tensor("x").tensor::<TestAutodiff, 4>(&dev);
    let fb = || {
        let x = xa.clone().require_grad();
        let l = Labels::Float(Tensor::<TestAutodiff, 1>::ones([shape[0]], &dev).mul_scalar(500.0));
        let g = net_ad.forward(x.clone(), l).sum().backward();
        let _ = x.grad(&g).map(|g| g.into_data());
    };
    fb();
    let fwd_bwd = (0..reps)
        .map(|_| {
            let t = Instant::now();
            fb();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let score_ad = ScoreFn::new(&sde, &net_ad, true);
    let mut lcfg = LikelihoodConfig::new(DataScaler::Centered);
    lcfg.solver.rtol = 1e-3;
    lcfg.solver.atol = 1e-3;
    let mut noise = SeededNoise::new(3);
    let data: Tensor<TestAutodiff, 4> = noise.normal(shape, &dev).expect("data").mul_scalar(0.5);
    let t = Instant::now();
    let out = likelihood(&sde, &score_ad, data, &lcfg, &mut noise).expect("likelihood");
    let wall = t.elapsed().as_secs_f64();
    println!(
        "likelihood (tol 1e-3): nfe {}, wall {:.3} s, forward+backward {:.2} ms, cost per NFE / (fwd+bwd) {:.3}",
        out.nfe,
        wall,
        fwd_bwd * 1e3,
        wall / (out.nfe as f64 * fwd_bwd)
    );
}
