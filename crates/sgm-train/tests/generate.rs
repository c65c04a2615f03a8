//! Generation at scale: images are seeded one by one, so `--num-samples` in batches equals the
//! same seeds one image at a time; an interrupted run (missing PNGs) is completed with the same
//! images; the array and the grid hold every image.

use std::path::Path;

use burn::prelude::*;
use sde_core::ScoreFunction;
use sgm_config::{ExperimentConfig, Override};
use sgm_testkit::{TestBackend, device};
use sgm_train::generate::{GenerateOptions, PerImageNoise, generate, image_path};

/// The exact score of N(0, I) data under the VP SDE (every marginal is N(0, I)): −x.
struct StandardNormalScore;

impl ScoreFunction<TestBackend> for StandardNormalScore {
    fn score(
        &self,
        x: Tensor<TestBackend, 4>,
        _t: &[f32],
    ) -> sde_core::Result<Tensor<TestBackend, 4>> {
        Ok(x.neg())
    }
}

fn run(out: &Path, num_samples: usize, batch_size: usize) -> usize {
    // PC, reverse-diffusion predictor (normal draws every step). No corrector: the Langevin
    // corrector's step size is a batch mean (reference), which couples batch-mates.
    let cfg = ExperimentConfig::load_with(
        "vp/cifar10_ddpmpp_continuous",
        &[
            Override::new("model.num_scales", 50i64),
            Override::new("sampling.predictor", "reverse_diffusion"),
            Override::new("data.image_size", 4i64),
            Override::new("model.ch_mult", vec![1i64]),
        ],
    )
    .unwrap();
    let sampler = cfg.sampler().unwrap();
    let opts = GenerateOptions {
        num_samples,
        batch_size,
        seed: 11,
        out: out.to_path_buf(),
    };
    let mut last = 0;
    let g = generate::<TestBackend, _>(
        &sampler,
        &StandardNormalScore,
        [3, 4, 4],
        &opts,
        &device(),
        |done, total| {
            assert!(done > last && done <= total);
            last = done;
        },
    )
    .unwrap();
    assert!(g.array.is_file() && g.grid.is_file());
    let array = sgm_eval::images::read_sample_array(&g.array, 0, None).unwrap();
    let folder = sgm_eval::images::read_png_folder(&g.images, 0, None).unwrap();
    assert_eq!(array, folder);
    g.generated
}

fn pixels(out: &Path) -> Vec<u8> {
    sgm_eval::images::read_png_folder(&out.join("images"), 0, None)
        .unwrap()
        .data
}

#[test]
fn batches_equal_the_same_seeds_one_at_a_time_and_resume() {
    let root = std::env::temp_dir().join(format!("sgm-generate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (batched, single) = (root.join("batched"), root.join("single"));
    assert_eq!(run(&batched, 7, 3), 7);
    assert_eq!(run(&single, 7, 1), 7);
    let reference = pixels(&single);
    assert_eq!(pixels(&batched), reference);
    // Not all alike: the seeds differ per image.
    assert_ne!(reference[..48], reference[48..96]);

    // Interrupted run: two images missing → only they are generated, identical to before.
    for k in [2, 5] {
        std::fs::remove_file(image_path(&batched, k)).unwrap();
    }
    assert_eq!(run(&batched, 7, 3), 2);
    assert_eq!(pixels(&batched), reference);
    // Complete: nothing to do.
    assert_eq!(run(&batched, 7, 3), 0);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn per_image_noise_rows_do_not_depend_on_the_batch() {
    use sde_core::NoiseSource;
    let dev = device();
    let mut both = PerImageNoise::new(5, 10, 2);
    let mut second = PerImageNoise::new(5, 11, 1);
    let a: Tensor<TestBackend, 2> = both.normal([2, 6], &dev).unwrap();
    let b: Tensor<TestBackend, 2> = second.normal([1, 6], &dev).unwrap();
    assert_eq!(
        a.slice([1..2, 0..6]).into_data().to_vec::<f32>().unwrap(),
        b.into_data().to_vec::<f32>().unwrap()
    );
    let e = NoiseSource::<TestBackend>::uniform(&mut both, 3, &dev).unwrap_err();
    assert!(
        e.to_string().contains("does not split over 2 images"),
        "{e}"
    );
}
