//! Data parallelism: a step split across two (or three, unevenly) devices equals the
//! single-device step on the union batch — same draws, loss, gradient norm, parameters, Adam
//! moments and EMA (to float rounding). On CPU the "devices" are the same device used twice,
//! which exercises the sharding, the gradient transfer and the weighted reduction.

use burn::prelude::*;
use sde_core::NoiseSource;
use sgm_nets::weights::state_dict;
use sgm_testkit::{TestAutodiff, device};
use sgm_train::parallel::{devices, shard_sizes};
use sgm_train::{StepOutput, Stepper, TrainConfig, TrainState, init_model};

#[path = "common/tiny.rs"]
mod tiny;

fn config() -> TrainConfig {
    tiny::tiny_ncsnpp(serde_json::json!({
        "training": { "sde": "vesde", "batch_size": 5, "continuous": true },
        "optim": { "warmup": 2, "lr": 1e-3 }
    }))
}

fn max_rel_diff(a: &sgm_nets::StateDict, b: &sgm_nets::StateDict) -> f64 {
    let mut worst = 0.0f64;
    for (k, ta) in &a.tensors {
        let tb = &b.tensors[k];
        let (va, vb) = match (&ta.data, &tb.data) {
            (sgm_nets::weights::HostData::F32(x), sgm_nets::weights::HostData::F32(y)) => (
                x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                y.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            ),
            (sgm_nets::weights::HostData::F64(x), sgm_nets::weights::HostData::F64(y)) => {
                (x.clone(), y.clone())
            }
            _ => panic!("dtype of {k} differs"),
        };
        for (x, y) in va.iter().zip(&vb) {
            worst = worst.max((x - y).abs() / (1e-3 + x.abs()));
        }
    }
    worst
}

#[test]
fn shards_are_even_and_devices_are_checked() {
    assert_eq!(shard_sizes(5, 3), [2, 2, 1]);
    assert_eq!(shard_sizes(6, 2), [3, 3]);
    assert_eq!(shard_sizes(2, 4), [1, 1]);
    assert_eq!(shard_sizes(7, 1), [7]);
    assert_eq!(devices::<TestAutodiff>(1).unwrap().len(), 1);
    let e = devices::<TestAutodiff>(2).unwrap_err().to_string();
    assert!(e.contains("devices") && e.contains("1 device"), "{e}");
}

/// Three random batches of 5 and a fresh state of [`config`].
fn setup() -> (
    Stepper,
    TrainState<TestAutodiff>,
    Vec<Tensor<TestAutodiff, 4>>,
) {
    let dev = device();
    let cfg = config();
    let stepper = Stepper::new(&cfg).unwrap();
    let init = TrainState::new(&cfg, init_model::<TestAutodiff>(&cfg, &dev).unwrap());
    // from the trainer's own RNG, not Burn's global one: the same in every process
    let mut rng = sgm_train::TrainRng::new(1234, 5);
    let batches: Vec<Tensor<TestAutodiff, 4>> = (0..3)
        .map(|k| {
            let u: Tensor<TestAutodiff, 1> =
                NoiseSource::uniform(&mut rng, 5 * 3 * 8 * 8, &dev).unwrap();
            u.reshape([5, 3, 8, 8])
                .mul_scalar(2.0)
                .sub_scalar(1.0 - 0.1 * k as f64) // U(-1, 1) + 0.1 k
        })
        .collect();
    (stepper, init, batches)
}

/// The parallel run `par` (its step outputs `outs`) equals the single-device run `single`
/// (outputs `want`): same step, lr and draws; loss, gradient norm, parameters, EMA and Adam
/// moments to float rounding.
fn assert_same_run(
    what: &str,
    par: &TrainState<TestAutodiff>,
    outs: &[StepOutput],
    single: &TrainState<TestAutodiff>,
    want: &[StepOutput],
) {
    assert_eq!(outs.len(), want.len());
    for (got, want) in outs.iter().zip(want) {
        assert_eq!((got.step, got.optim.lr), (want.step, want.optim.lr));
        assert!(
            (got.loss - want.loss).abs() <= 1e-5 * want.loss.abs(),
            "{what}: loss {} vs {}",
            got.loss,
            want.loss
        );
        assert!(
            (got.optim.grad_norm - want.optim.grad_norm).abs() <= 1e-4 * want.optim.grad_norm,
            "{what}: grad norm {} vs {}",
            got.optim.grad_norm,
            want.optim.grad_norm
        );
    }
    // the same draws were consumed
    assert_eq!(par.rng.state(), single.rng.state());
    let d = max_rel_diff(&state_dict(&par.model), &state_dict(&single.model));
    let e = max_rel_diff(
        &state_dict(&par.ema.shadow),
        &state_dict(&single.ema.shadow),
    );
    eprintln!("{what}: max relative difference params {d:.2e}, EMA {e:.2e}");
    assert!(d < 5e-4 && e < 5e-4, "{what}: params {d}, EMA {e}");
    for (a, b) in par.optim.state.iter().zip(&single.optim.state) {
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(a.step, b.step);
            let (va, vb) = (
                a.exp_avg.to_data().to_vec::<f32>().unwrap(),
                b.exp_avg.to_data().to_vec::<f32>().unwrap(),
            );
            for (x, y) in va.iter().zip(&vb) {
                assert!((x - y).abs() <= 1e-4 * y.abs() + 1e-7, "exp_avg {x} vs {y}");
            }
        }
    }
}

/// The single-device run over `batches` from `init`.
fn single_run(
    stepper: &Stepper,
    init: &TrainState<TestAutodiff>,
    batches: &[Tensor<TestAutodiff, 4>],
) -> (TrainState<TestAutodiff>, Vec<StepOutput>) {
    let mut single = init.clone();
    let outs = batches
        .iter()
        .map(|x| stepper.train_step(&mut single, x.clone()).unwrap())
        .collect();
    (single, outs)
}

#[test]
fn a_step_split_across_devices_equals_the_union_step() {
    let dev = device();
    let (stepper, init, batches) = setup();
    let (single, single_out) = single_run(&stepper, &init, &batches);
    for n in [2usize, 3] {
        let devs = vec![dev; n];
        let mut par = init.clone();
        let outs: Vec<StepOutput> = batches
            .iter()
            .map(|x| {
                stepper
                    .train_step_parallel(&mut par, x.clone(), &devs)
                    .unwrap()
            })
            .collect();
        assert_same_run(&format!("{n} devices"), &par, &outs, &single, &single_out);
    }
    // A control: a different split of draws (one device, other RNG) does differ, so the
    // tolerance above is far below what a wrong reduction or wrong draws would give.
    let mut other = init.clone();
    other.rng = sgm_train::TrainRng::new(999, 0);
    let o = stepper.train_step(&mut other, batches[0].clone()).unwrap();
    assert!((o.loss - single_out[0].loss).abs() > 1e-3 * single_out[0].loss.abs());
}

/// Data parallelism through burn-collective (feature `collective`): two peers that are
/// threads of this process (burn-collective's local all-reduce; the multi-node level is the
/// ignored test below), each computing its shard of a batch of 5 (3 + 2 items), take the same
/// steps as one process on the union batch — and stay bitwise identical to each other.
#[cfg(feature = "collective")]
#[test]
fn two_collective_peers_equal_one_process_on_the_union_batch() {
    use sgm_testkit::TestBackend;
    use sgm_train::collective::Peer;

    let (stepper, init, batches) = setup();
    let (single, single_out) = single_run(&stepper, &init, &batches);
    let world = 2;
    let peers: Vec<_> = (0..world)
        .map(|rank| {
            let (stepper, mut state, batches) = (stepper.clone(), init.clone(), batches.clone());
            std::thread::spawn(move || {
                let peer = Peer::local(rank, world).unwrap();
                peer.register::<TestBackend>(&device()).unwrap();
                let outs: Vec<StepOutput> = batches
                    .iter()
                    .map(|x| {
                        stepper
                            .train_step_collective(&mut state, x.clone(), &peer)
                            .unwrap()
                    })
                    .collect();
                peer.finish::<TestBackend>().unwrap();
                (state, outs)
            })
        })
        .collect();
    let runs: Vec<_> = peers.into_iter().map(|h| h.join().unwrap()).collect();
    for (rank, (state, outs)) in runs.iter().enumerate() {
        assert_same_run(
            &format!("collective peer {rank}"),
            state,
            outs,
            &single,
            &single_out,
        );
    }
    let (a, b) = (state_dict(&runs[0].0.model), state_dict(&runs[1].0.model));
    assert_eq!(max_rel_diff(&a, &b), 0.0, "the peers' replicas diverged");
    assert_eq!(runs[0].1, runs[1].1);
    // a rank outside the collective and a batch smaller than the peers are clear errors
    let e = Peer::local(2, 2).unwrap_err().to_string();
    assert!(e.contains("rank 2 of 2"), "{e}");
    let e = Peer::local(0, 6).unwrap().shard(5).unwrap_err().to_string();
    assert!(e.contains("batch_size") && e.contains("6 peers"), "{e}");
}

/// The run loop of a peer (`train_collective`): two peers (threads) train 4 steps, each into
/// its own run directory, from the same initial checkpoint as a one-process `train` run —
/// their final checkpoints equal each other bitwise and the one-process run's to float
/// rounding. Peers on several nodes are refused with the reason.
#[cfg(feature = "collective")]
#[test]
fn collective_peers_run_the_training_loop_like_one_process() {
    use sgm_train::checkpoint::{self, Checkpoint};
    use sgm_train::collective::{Peer, train_collective};
    use sgm_train::data::DataPosition;
    use sgm_train::demo::generated_discs;
    use sgm_train::{RunData, RunHooks, train};
    use std::path::Path;
    use std::sync::Arc;

    let dev = device();
    let mut cfg = config();
    let t = &mut cfg.training;
    (t.n_iters, t.log_freq, t.eval_freq) = (3, 1, 2);
    (t.snapshot_freq, t.snapshot_freq_for_preemption) = (100, 100);
    t.snapshot_sampling = false;
    cfg.eval_batch_size = 4;
    let data = || RunData {
        train: Arc::new(generated_discs(20, 8, 1)),
        eval: Arc::new(generated_discs(8, 8, 2)),
    };
    let root = std::env::temp_dir().join(format!("sgm-collective-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // one initial state for all (Burn's global RNG is shared by the test threads)
    let init = root.join("init.safetensors");
    let state = TrainState::new(&cfg, init_model::<TestAutodiff>(&cfg, &dev).unwrap());
    let pos = DataPosition::default();
    checkpoint::save(&state, pos, pos, &init).unwrap();

    let single = train::<TestAutodiff>(
        &cfg,
        &root.join("single"),
        data(),
        Some(&init),
        &dev,
        RunHooks::default(),
    )
    .unwrap();
    let peers: Vec<_> = (0..2)
        .map(|rank| {
            let (cfg, init, dir, data) = (
                cfg.clone(),
                init.clone(),
                root.join(format!("peer{rank}")),
                data(),
            );
            std::thread::spawn(move || {
                let peer = Peer::local(rank, 2).unwrap();
                train_collective::<TestAutodiff>(
                    &cfg,
                    &dir,
                    data,
                    Some(&init),
                    &device(),
                    &peer,
                    RunHooks::default(),
                )
                .unwrap()
            })
        })
        .collect();
    let summaries: Vec<_> = peers.into_iter().map(|h| h.join().unwrap()).collect();
    let load = |dir: &str| {
        Checkpoint::read(
            &root
                .join(dir)
                .join("checkpoints-meta/checkpoint.safetensors"),
        )
        .unwrap()
        .train_state::<TestAutodiff>(&cfg.model, &cfg.optim, &dev)
        .unwrap()
    };
    let (s, p0, p1) = (load("single"), load("peer0"), load("peer1"));
    for (rank, (p, sum)) in [(&p0, &summaries[0]), (&p1, &summaries[1])]
        .into_iter()
        .enumerate()
    {
        assert_eq!((sum.step, p.step), (single.step, 4), "peer {rank}");
        assert!(
            (sum.last_loss - single.last_loss).abs() <= 1e-5 * single.last_loss.abs(),
            "peer {rank}: last loss {} vs {}",
            sum.last_loss,
            single.last_loss
        );
        assert_eq!(p.rng.state(), s.rng.state());
        let d = max_rel_diff(&state_dict(&p.model), &state_dict(&s.model));
        let e = max_rel_diff(&state_dict(&p.ema.shadow), &state_dict(&s.ema.shadow));
        eprintln!("run loop, peer {rank}: max relative difference params {d:.2e}, EMA {e:.2e}");
        assert!(d < 5e-4 && e < 5e-4, "peer {rank}: params {d}, EMA {e}");
    }
    assert_eq!(
        max_rel_diff(&state_dict(&p0.model), &state_dict(&p1.model)),
        0.0,
        "the peers' replicas diverged"
    );
    let node = Peer::node(0, 2, "ws://127.0.0.1:9", "ws://127.0.0.1:10", 10).unwrap();
    let e = train_collective::<TestAutodiff>(
        &cfg,
        Path::new(&root.join("node")),
        data(),
        None,
        &dev,
        &node,
        RunHooks::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("2 nodes") && e.contains("hangs"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

/// The same over WebSocket, as on several machines (feature `collective`): an orchestrator
/// (a thread of this test) and two nodes, each a child process of this test binary on its
/// own port, against a third child process that runs the union batch alone. Each child writes
/// its final state as a training checkpoint and its step outputs as JSON.
///
/// Ignored: with burn-collective 0.21.0 both nodes finish step 1 and hang in the second
/// all-reduce (`sgm_train::collective` module docs); run it with `--ignored` to check a Burn
/// upgrade (it fails after 120 s while the bug is there).
#[cfg(feature = "collective")]
#[test]
#[ignore = "burn-collective 0.21.0: the second multi-node all-reduce hangs (tracel-ai/burn#4549)"]
fn two_collective_nodes_over_websocket_equal_one_process() {
    use sgm_train::checkpoint::{self, Checkpoint};
    use sgm_train::collective::{Peer, run_orchestrator};
    use sgm_train::data::DataPosition;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const NAME: &str = "two_collective_nodes_over_websocket_equal_one_process";
    // Child: SGM_COLLECTIVE_CHILD = "single" | "RANK ORCHESTRATOR_PORT DATA_PORT", output dir.
    if let (Ok(role), Ok(out)) = (
        std::env::var("SGM_COLLECTIVE_CHILD"),
        std::env::var("SGM_COLLECTIVE_OUT"),
    ) {
        let out = std::path::PathBuf::from(out);
        let (stepper, init, batches) = setup();
        let (state, outs) = if role == "single" {
            single_run(&stepper, &init, &batches)
        } else {
            let v: Vec<u16> = role.split(' ').map(|x| x.parse().unwrap()).collect();
            let (rank, orch, port) = (v[0] as usize, v[1], v[2]);
            let peer = Peer::node(
                rank,
                2,
                &format!("ws://127.0.0.1:{orch}"),
                &format!("ws://127.0.0.1:{port}"),
                port,
            )
            .unwrap();
            peer.register::<sgm_testkit::TestBackend>(&device())
                .unwrap();
            let mut state = init.clone();
            let outs = batches
                .iter()
                .map(|x| {
                    let o = stepper
                        .train_step_collective(&mut state, x.clone(), &peer)
                        .unwrap();
                    eprintln!("node {rank}: step {} done", o.step);
                    o
                })
                .collect();
            peer.finish::<sgm_testkit::TestBackend>().unwrap();
            (state, outs)
        };
        let pos = DataPosition::default();
        checkpoint::save(&state, pos, pos, &out.join(format!("{role}.safetensors"))).unwrap();
        let rows: Vec<[f64; 4]> = outs
            .iter()
            .map(|o| [o.step as f64, o.loss, o.optim.lr, o.optim.grad_norm])
            .collect();
        std::fs::write(
            out.join(format!("{role}.json")),
            serde_json::to_string(&rows).unwrap(),
        )
        .unwrap();
        return;
    }

    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (orch, p0, p1) = (free_port(), free_port(), free_port());
    // the orchestrator thread ends with the test process
    std::thread::spawn(move || run_orchestrator(orch));
    let out = std::env::temp_dir().join(format!("sgm-collective-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let roles = [
        "single".to_string(),
        format!("0 {orch} {p0}"),
        format!("1 {orch} {p1}"),
    ];
    let mut children: Vec<_> = roles
        .iter()
        .map(|role| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    NAME,
                    "--exact",
                    "--include-ignored",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env("SGM_COLLECTIVE_CHILD", role)
                .env("SGM_COLLECTIVE_OUT", &out)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    for (role, child) in roles.iter().zip(&mut children) {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "child `{role}` failed: {status}");
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                for c in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("child `{role}` did not finish in 120 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let cfg = config();
    let load = |role: &str| -> (TrainState<TestAutodiff>, Vec<StepOutput>) {
        let ck = Checkpoint::read(&out.join(format!("{role}.safetensors"))).unwrap();
        let state = ck.train_state(&cfg.model, &cfg.optim, &device()).unwrap();
        let rows: Vec<[f64; 4]> = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{role}.json"))).unwrap(),
        )
        .unwrap();
        let outs = rows
            .iter()
            .map(|r| StepOutput {
                step: r[0] as u64,
                loss: r[1],
                optim: sgm_train::OptimStats {
                    lr: r[2],
                    grad_norm: r[3],
                },
            })
            .collect();
        (state, outs)
    };
    let (single, single_out) = load(&roles[0]);
    let nodes = [load(&roles[1]), load(&roles[2])];
    for (rank, (state, outs)) in nodes.iter().enumerate() {
        assert_same_run(
            &format!("collective node {rank}"),
            state,
            outs,
            &single,
            &single_out,
        );
    }
    let (a, b) = (state_dict(&nodes[0].0.model), state_dict(&nodes[1].0.model));
    assert_eq!(max_rel_diff(&a, &b), 0.0, "the nodes' replicas diverged");
    let _ = std::fs::remove_dir_all(&out);
}
