//! burn-train's step traits (feature `learner`): the `TrainStep` of `ScoreLearner` is sgm's own
//! train step (same loss, same draws, same gradients), and a real burn-train `Learner` trains
//! with it end to end — its `LossMetric` log and its final weights equal a hand-run replay of
//! the same batches through the same step and burn's Adam.

use std::sync::{Arc, Mutex};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer as _};
use burn::prelude::*;
use burn_train::LearnerSummary;
use burn_train::logger::InMemoryMetricLogger;
use burn_train::metric::{LossMetric, MetricDefinition, NumericEntry};
use burn_train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn_train::{InferenceStep, Learner, SupervisedTraining, TrainStep};
use sde_core::training_loss;
use sgm_nets::ScoreNet;
use sgm_testkit::{TestAutodiff, TestBackend, device};
use sgm_train::data::{ImageSource, InMemoryImages, Transforms};
use sgm_train::learner::ScoreLearner;
use sgm_train::learner::data::{ImageBatcher, ImageDataset};
use sgm_train::trainer::LOSS_STREAM;
use sgm_train::{Stepper, TrainConfig, TrainRng, TrainState, init_model};

#[path = "common/tiny.rs"]
mod tiny;
use tiny::tiny_ncsnpp;

type AB = TestAutodiff;

/// A tiny NCSN++ (8×8 images) on the VE SDE, continuous DSM, no warm-up, no dropout (dropout
/// seeds Burn's process-global RNG, which tests running in parallel would share).
fn config() -> TrainConfig {
    tiny_ncsnpp(serde_json::json!({
        "training": { "sde": "vesde", "batch_size": 4, "continuous": true },
        "optim": { "warmup": 0, "lr": 1e-3, "grad_clip": -1.0 },
        "seed": 7
    }))
}

/// `n` random 3×8×8 images (from the trainer's RNG: the same in every process).
fn images(n: usize, seed: u64) -> InMemoryImages {
    let mut rng = TrainRng::new(seed, 11);
    InMemoryImages {
        shape: [3, 8, 8],
        pixels: (0..n * 3 * 64).map(|_| rng.next_u64() as u8).collect(),
        labels: Vec::new(),
    }
}

/// Every parameter's gradient (parameter order), flattened; panics on a missing one.
struct CollectGrads<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}
impl<B: Backend> ModuleVisitor<B> for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        // the frozen Fourier `W` (not trained) has no gradient
        if let Some(g) = self.grads.get::<B, D>(p.id) {
            self.out
                .push(g.into_data().convert::<f32>().to_vec().unwrap());
        }
    }
}
fn grads_of(model: &ScoreNet<AB>, grads: &GradientsParams) -> Vec<Vec<f32>> {
    let mut v = CollectGrads {
        grads,
        out: Vec::new(),
    };
    // GradientsParams holds inner-backend tensors
    model.clone().valid().visit(&mut v);
    assert!(!v.out.is_empty(), "no gradient found");
    v.out
}

/// Every parameter value, flattened, in parameter order.
struct CollectParams(Vec<f32>);
impl<B: Backend> ModuleVisitor<B> for CollectParams {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        self.0.extend(
            p.val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap(),
        );
    }
}
fn params<B: Backend, M: Module<B>>(m: &M) -> Vec<f32> {
    let mut c = CollectParams(Vec::new());
    m.visit(&mut c);
    c.0
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Two steps through `TrainStep` equal two steps of `Stepper::train_step` from the same
/// state: the same loss, the same draws consumed, gradients equal to an independent
/// `training_loss` + backward on the same draws and of the norm sgm's optimizer measured, and
/// (applied with sgm's optimizer) the same parameters.
#[test]
fn train_step_is_sgms_step() {
    let dev = device();
    let cfg = config();
    let stepper = Stepper::new(&cfg).unwrap();
    let net = init_model::<AB>(&cfg, &dev).unwrap();
    let mut sgm = TrainState::new(&cfg, net.clone());
    let mut ours = TrainState::new(&cfg, net.clone());
    let mut learner = ScoreLearner::with_net(&cfg, net).unwrap();
    let batcher = ImageBatcher::new(&cfg, 0);
    let data = images(8, 1);
    let mut replay = TrainRng::new(cfg.seed, LOSS_STREAM);
    for k in 0..2 {
        let items = (4 * k..4 * k + 4).map(|i| data.get(i).unwrap()).collect();
        let batch: Tensor<AB, 4> = batcher.batch(items, &dev);
        assert_eq!(batch.dims(), [4, 3, 8, 8]);

        // independent reference: the loss on the same draws, backward
        let model = learner.net.clone();
        let loss = training_loss(
            &stepper.sde,
            &model,
            batch.clone(),
            &stepper.loss,
            &mut replay,
        )
        .unwrap();
        let want = grads_of(
            &model,
            &GradientsParams::from_grads(loss.backward(), &model),
        );

        let out = TrainStep::step(&learner, batch.clone());
        let got = grads_of(&model, &out.grads);
        assert_eq!(learner.steps(), k as u64 + 1);
        let sgm_out = stepper.train_step(&mut sgm, batch).unwrap();
        assert!(
            (out.item.loss - sgm_out.loss).abs() <= 1e-6 * sgm_out.loss.abs(),
            "step {k}: loss {} vs sgm's {}",
            out.item.loss,
            sgm_out.loss
        );
        assert_eq!(learner.rng_state(), sgm.rng.state(), "step {k}: draws");
        assert_eq!(learner.rng_state(), replay.state(), "step {k}: draws");
        assert_eq!(got.len(), want.len());
        let norm: f64 = got
            .iter()
            .flatten()
            .map(|&g| (g as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(norm > 0.0);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let d = max_abs_diff(g, w);
            assert!(
                d <= 1e-5 * norm as f32,
                "step {k}: gradient {i} differs by {d}"
            );
        }
        assert!(
            (norm - sgm_out.optim.grad_norm).abs() <= 1e-4 * sgm_out.optim.grad_norm,
            "step {k}: grad norm {norm} vs sgm's {}",
            sgm_out.optim.grad_norm
        );
        // the learner's gradients through sgm's optimizer give sgm's step
        ours.apply(out.grads, out.item.loss).unwrap();
        let d = max_abs_diff(&params(&ours.model), &params(&sgm.model));
        assert!(d < 1e-6, "step {k}: parameters differ by {d}");
        learner.net = ours.model.clone();
    }
    // the inference step is the eval loss of the current weights, from the same stream
    let valid = learner.valid();
    let batch: Tensor<TestBackend, 4> =
        batcher.batch((0..4).map(|i| data.get(i).unwrap()).collect(), &dev);
    let mut replay2 = TrainRng::from_state(&learner.rng_state());
    let want = stepper
        .eval_loss(&valid.net, batch.clone(), &mut replay2)
        .unwrap();
    let got = InferenceStep::step(&valid, batch).loss;
    assert_eq!(got, want);
    assert_eq!(
        learner.rng_state(),
        replay2.state(),
        "valid() shares the stream"
    );
}

/// What burn-train's renderer was given: metric names and the numeric train / valid values.
#[derive(Debug, Default)]
struct Recorded {
    names: Vec<String>,
    train: Vec<f64>,
    valid: Vec<f64>,
}

/// A renderer that records (burn-train hands it every metric update in its processing thread,
/// and returns it only once all are processed).
struct Recorder(Arc<Mutex<Recorded>>);

fn numeric(state: &MetricState) -> Option<f64> {
    match state {
        MetricState::Numeric(_, NumericEntry::Value(v)) => Some(*v),
        MetricState::Numeric(
            _,
            NumericEntry::Aggregated {
                aggregated_value, ..
            },
        ) => Some(*aggregated_value),
        MetricState::Generic(_) => None,
    }
}

impl MetricsRendererTraining for Recorder {
    fn update_train(&mut self, state: MetricState) {
        self.0.lock().unwrap().train.extend(numeric(&state));
    }
    fn update_valid(&mut self, state: MetricState) {
        self.0.lock().unwrap().valid.extend(numeric(&state));
    }
    fn render_train(&mut self, _: TrainingProgress, _: Vec<ProgressType>) {}
    fn render_valid(&mut self, _: TrainingProgress, _: Vec<ProgressType>) {}
    fn on_train_end(
        &mut self,
        _: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}
impl MetricsRendererEvaluation for Recorder {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}
    fn render_test(&mut self, _: EvaluationProgress, _: Vec<ProgressType>) {}
}
impl MetricsRenderer for Recorder {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, definition: MetricDefinition) {
        self.0.lock().unwrap().names.push(definition.name);
    }
}

/// A burn-train `Learner` (`SupervisedTraining::launch`, one epoch of 3 iterations, Adam,
/// `LossMetric` on train and valid) trains a `ScoreLearner`: the losses it logs and the weights
/// it returns equal a hand-run replay (same batches, `TrainStep::step`, burn's Adam), and the
/// weights moved from their initial values.
#[test]
fn learner_trains_end_to_end() {
    let dev = device();
    let cfg = config();
    let net = init_model::<AB>(&cfg, &dev).unwrap();
    let init = params(&net);
    let lr = 1e-3;
    let adam = AdamConfig::new().with_epsilon(1e-8);
    let train = Arc::new(images(12, 2));
    let valid = Arc::new(images(4, 3));

    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let dir = std::env::temp_dir().join(format!("sgm-learner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let train_loader = DataLoaderBuilder::new(ImageBatcher::new(&cfg, 0))
        .batch_size(4)
        .build(ImageDataset::new(train.clone()));
    let valid_loader = DataLoaderBuilder::new(ImageBatcher::new(&cfg, 1))
        .batch_size(4)
        .build(ImageDataset::new(valid));
    let learner = Learner::new(
        ScoreLearner::with_net(&cfg, net.clone()).unwrap(),
        adam.init(),
        lr,
    );
    let result = SupervisedTraining::new(&dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::<TestBackend>::new())
        .metric_valid_numeric(LossMetric::<TestBackend>::new())
        .num_epochs(1)
        .with_application_logger(None)
        .with_metric_logger(InMemoryMetricLogger::new())
        .renderer(Recorder(recorded.clone()))
        .launch(learner);
    let trained = params(&result.model);

    // replay: the same batches in the same order (no shuffle), the same step and optimizer
    let mut model = ScoreLearner::with_net(&cfg, net).unwrap();
    let mut optim = adam.init();
    let batcher = ImageBatcher::new(&cfg, 0);
    let ds = ImageDataset::new(train);
    let mut losses = Vec::new();
    for k in 0..3 {
        let items = (4 * k..4 * k + 4).map(|i| ds.get(i).unwrap()).collect();
        let out = TrainStep::step(&model, batcher.batch(items, &dev));
        losses.push(out.item.loss);
        model = optim.step(lr, model, out.grads);
    }
    let want = params(&model);
    let moved = max_abs_diff(&want, &init);
    assert!(
        moved > 0.5 * lr as f32,
        "Adam moved no weight by ~lr: {moved}"
    );
    let d = max_abs_diff(&trained, &want);
    assert!(d < 1e-5, "Learner's weights differ from the replay by {d}");

    // burn-train's LossMetric saw our losses (the renderer gets every metric update before
    // `launch` returns; only the loss metric is registered)
    let rec = recorded.lock().unwrap();
    assert!(
        !rec.names.is_empty() && rec.names.iter().all(|n| n == "Loss"),
        "{:?}",
        rec.names
    );
    assert_eq!(rec.train.len(), 3, "{:?}", rec.train);
    for (got, want) in rec.train.iter().zip(&losses) {
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "{:?} vs {losses:?}",
            rec.train
        );
    }
    assert_eq!(rec.valid.len(), 1, "{:?}", rec.valid);
    assert!(rec.valid[0].is_finite() && rec.valid[0] > 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The dataset serves the source's pixels; the batcher applies the config's transforms (here:
/// the scaler `2x − 1`, and flips that only mirror rows); an unreadable image panics naming its
/// file (burn's `Dataset::get` has no error channel).
#[test]
fn dataset_and_batcher_serve_transformed_images() {
    let dev = device();
    let data = images(6, 4);
    let ds = ImageDataset::new(Arc::new(data.clone()));
    assert_eq!(ds.len(), 6);
    assert!(ds.get(6).is_none());
    let items: Vec<Vec<u8>> = (0..6).map(|i| ds.get(i).unwrap()).collect();
    assert_eq!(items[5], data.get(5).unwrap());

    let plain = Transforms {
        random_flip: false,
        uniform_dequantization: false,
        centered: true,
    };
    let b = ImageBatcher::with_transforms([3, 8, 8], plain, TrainRng::new(0, 0));
    let x: Tensor<TestBackend, 4> = b.batch(items.clone(), &dev);
    assert_eq!(x.dims(), [6, 3, 8, 8]);
    let got = x.into_data().to_vec::<f32>().unwrap();
    let want: Vec<f32> = items
        .concat()
        .iter()
        .map(|&p| p as f32 / 255.0 * 2.0 - 1.0)
        .collect();
    assert_eq!(got, want);

    // config transforms: flip (on by default) mirrors some images, never changes a row's values
    let flipped: Tensor<TestBackend, 4> = ImageBatcher::new(&config(), 0).batch(items, &dev);
    let f = flipped.into_data().to_vec::<f32>().unwrap();
    let mut n_flipped = 0;
    for (a, b) in f.chunks(3 * 64).zip(want.chunks(3 * 64)) {
        let mirrored: Vec<f32> = b.chunks(8).flat_map(|r| r.iter().rev().copied()).collect();
        assert!(a == b || a == mirrored.as_slice());
        n_flipped += usize::from(a != b);
    }
    assert!(n_flipped > 0 && n_flipped < 6, "{n_flipped} of 6 flipped");

    let dir = std::env::temp_dir().join(format!("sgm-learner-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    let folder = sgm_train::data::ImageFolder::new(&dir, 8).unwrap();
    let ds = ImageDataset::new(Arc::new(folder));
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ds.get(0))).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("broken.png"), "{msg}");
}
