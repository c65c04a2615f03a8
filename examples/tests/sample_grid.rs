//! The examples program runs end to end on a tiny config (PC and a fast sampler) and writes a
//! grid; a missing checkpoint is one clear error naming it.

use std::path::PathBuf;
use std::process::{Command, Output};

const TINY: [&str; 10] = [
    "--set",
    "model.nf=8",
    "--set",
    "model.num_res_blocks=1",
    "--set",
    "model.ch_mult=[1,2]",
    "--set",
    "data.image_size=8",
    "--set",
    "model.num_scales=4",
];

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sample-grid"))
        .args(args)
        .output()
        .expect("sample-grid runs")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sgm-example-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn samples_a_grid_with_pc_and_a_fast_sampler_and_names_a_missing_checkpoint() {
    let d = dir();
    for (name, extra) in [
        ("pc.png", vec![]),
        ("fast.png", vec!["--fast", "euler", "--steps", "3"]),
    ] {
        let out = d.join(name);
        let out_s = out.to_str().unwrap();
        let mut args = vec!["vp/ddpmpp-cont", "--batch", "2", "--out", out_s];
        args.extend(TINY);
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // 2 images of 8×8 in one row with 2-pixel gaps: 22 × 12.
        let dims = image_dims(&out);
        assert_eq!(dims, (22, 12), "{name}");
    }
    let o = run(&["vp/ddpmpp-cont", "--checkpoint", "/nonexistent/ck.pth"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/ck.pth") && !err.contains("panicked"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Width and height from the PNG header (IHDR).
fn image_dims(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}
