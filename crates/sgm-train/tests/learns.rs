//! It learns: a small DDPM++-style network (VP SDE, continuous DSM) trained for 45 steps on the
//! real CIFAR-10 of `../shared/data/cifar10` clearly lowers the held-out denoising loss on test
//! images (fixed noise, before vs after). About 2 CPU minutes on 2 cores, so it runs only with
//! `SGM_LONG_TESTS=1` (CI skips it, loudly).

use std::path::Path;
use std::sync::Arc;

use sgm_testkit::{TestAutodiff, device};
use sgm_train::checkpoint::Checkpoint;
use sgm_train::data::{Cifar10, DataPosition, DataStream, ImageSource, InMemoryImages, Transforms};
use sgm_train::{RunData, RunHooks, Stepper, TrainRng, TrainState, init_model, train};

#[path = "common/learns.rs"]
mod learns;
use learns::config;

/// Mean EMA-weight loss (ema_rate 0: the model itself) over `batches` held-out batches with
/// the same images and noise every time.
fn held_out_loss(
    stepper: &Stepper,
    state: &TrainState<TestAutodiff>,
    test: &Arc<dyn ImageSource>,
) -> f64 {
    let tf = Transforms {
        random_flip: false,
        uniform_dequantization: false,
        centered: true,
    };
    let mut stream = DataStream::new(test.clone(), 32, 1, 9, tf, DataPosition::default()).unwrap();
    let mut noise = TrainRng::new(7, 99);
    let mut sum = 0.0;
    for _ in 0..4 {
        let b = stream.next_batch().unwrap();
        let x = burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(b.data, b.shape),
            &device(),
        );
        sum += stepper.eval_step_with(state, x, &mut noise).unwrap();
    }
    sum / 4.0
}

#[test]
fn training_on_cifar10_lowers_the_held_out_loss() {
    if std::env::var_os("SGM_LONG_TESTS").is_none() {
        eprintln!(
            "\n*** SKIPPING training_on_cifar10_lowers_the_held_out_loss (~2 CPU min): set SGM_LONG_TESTS=1 ***\n"
        );
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10");
    let (train_file, test_file) = (data.join("data_batch_1.bin"), data.join("test_batch.bin"));
    assert!(
        train_file.is_file() && test_file.is_file(),
        "SGM_LONG_TESTS=1 needs {}",
        data.display()
    );
    let cfg = config();
    let stepper = Stepper::new(&cfg).unwrap();
    let train_set: Arc<dyn ImageSource> = Arc::new(Cifar10::load_files(&[train_file]).unwrap());
    let test: InMemoryImages = Cifar10::load_files(&[test_file]).unwrap();
    let test: Arc<dyn ImageSource> = Arc::new(test.truncate(128));
    let dev = device();
    let before = held_out_loss(
        &stepper,
        &TrainState::new(&cfg, init_model::<TestAutodiff>(&cfg, &dev).unwrap()),
        &test,
    );

    let dir = std::env::temp_dir().join(format!("sgm-train-learns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = std::time::Instant::now();
    let summary = train::<TestAutodiff>(
        &cfg,
        &dir,
        RunData {
            train: train_set,
            eval: test.clone(),
        },
        None,
        &dev,
        RunHooks::default(),
    )
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(summary.step, 45);
    let ck = Checkpoint::read(&dir.join("checkpoints-meta/checkpoint.safetensors")).unwrap();
    let state: TrainState<TestAutodiff> = ck.train_state(&cfg.model, &cfg.optim, &dev).unwrap();
    let after = held_out_loss(&stepper, &state, &test);
    eprintln!("held-out loss {before:.4} -> {after:.4} after 45 steps of batch 32 ({secs:.0} s)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        after < 0.7 * before,
        "held-out loss {before} -> {after}: not clearly lower"
    );
}
