//! The demo flow at a size of seconds: generated data, a tiny network, a few steps. It must
//! write every file it reports, measure finite statistics, resume (a rerun trains nothing) and
//! order the statistics sensibly: real images are closer to the test set than untrained
//! samples are.

use sgm_testkit::{TestAutodiff, device};
use sgm_train::demo::{DemoOptions, generated_discs, run_demo};

#[test]
fn tiny_demo_writes_its_report_and_measures_sensibly() {
    let dir = std::env::temp_dir().join(format!("sgm-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = DemoOptions::tiny(&dir);
    let mut steps = 0;
    let report =
        run_demo::<TestAutodiff>(&opts, &device(), Some(Box::new(|_| steps += 1))).unwrap();
    assert_eq!(steps, opts.train_steps + 1);
    assert_eq!(report.steps, opts.train_steps + 1);
    assert_eq!(report.resumed_from, None);
    assert!(report.dataset.contains("generated"), "{}", report.dataset);
    for f in [
        &report.files.grid,
        &report.files.pc_grid,
        &report.files.ode_grid,
        &report.files.report,
    ] {
        assert!(f.is_file(), "{} missing", f.display());
    }
    let grid = image::open(&report.files.grid).unwrap();
    // 4 rows (data, untrained PC, trained PC, trained ODE) of 8 images of 8 px, 2-px gaps.
    assert_eq!((grid.width(), grid.height()), (8 * 10 + 2, 4 * 10 + 2));
    for q in [report.untrained_pc, report.trained_pc, report.trained_ode] {
        assert!(q.swd.is_finite() && q.swd > 0.0 && q.nfe > 0, "{q:?}");
    }
    for b in [report.untrained_bpd, report.trained_bpd] {
        assert!(
            b.mean.is_finite() && b.mean > 0.0 && b.n == opts.bpd_images,
            "{b:?}"
        );
    }
    assert!(
        report.data_swd < report.untrained_pc.swd,
        "training images ({}) should be closer to the test images than untrained samples ({})",
        report.data_swd,
        report.untrained_pc.swd
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report.files.report).unwrap()).unwrap();
    assert_eq!(json["steps"], report.steps);

    // A rerun resumes from the finished run and trains no further step.
    let mut again = 0;
    let rerun = run_demo::<TestAutodiff>(&opts, &device(), Some(Box::new(|_| again += 1))).unwrap();
    assert_eq!(again, 0);
    assert_eq!(rerun.resumed_from, Some(report.steps));
    // …and reports the last logged loss, not NaN.
    assert!(rerun.last_loss.is_finite(), "{}", rerun.last_loss);
    assert_eq!(rerun.trained_pc.swd, report.trained_pc.swd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generated_discs_are_deterministic_and_two_coloured() {
    let a = generated_discs(16, 8, 3);
    assert_eq!(a.pixels, generated_discs(16, 8, 3).pixels);
    assert_ne!(a.pixels, generated_discs(16, 8, 4).pixels);
    assert_eq!(a.shape, [3, 8, 8]);
    // Corner pixel = background, centre region differs from it in some image.
    let per = 3 * 64;
    assert!(
        a.pixels
            .chunks_exact(per)
            .any(|img| img[0] != img[3 * 8 + 3])
    );
}

/// The full `cargo xtask demo` run (~10 CPU minutes): only with `SGM_LONG_TESTS=1`.
#[test]
fn standard_demo_beats_the_untrained_model() {
    if std::env::var_os("SGM_LONG_TESTS").is_none() {
        eprintln!(
            "\n*** SKIPPING standard_demo_beats_the_untrained_model (~10 CPU min): set SGM_LONG_TESTS=1 ***\n"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("sgm-demo-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let r = run_demo::<TestAutodiff>(&DemoOptions::standard(&dir), &device(), None).unwrap();
    eprintln!("{r:#?}");
    for q in [r.trained_pc, r.trained_ode] {
        assert!(
            q.swd < 0.5 * r.untrained_pc.swd,
            "trained {q:?} vs untrained {:?}",
            r.untrained_pc
        );
    }
    assert!(r.trained_bpd.mean < r.untrained_bpd.mean - 1.0, "{r:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
