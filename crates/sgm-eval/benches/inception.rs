//! Images/s of Inception feature extraction on the CPU backend at batch 50 (real CIFAR-10
//! images, upsampled to 299×299 as pytorch-fid does).
//!
//! `cargo test -p sgm-eval --bench inception` (dev/test profile with optimised dependencies).
//! Needs `../shared/data` (or `SGM_DATA`); prints a skip line otherwise. `SGM_BENCH_IMAGES`
//! sets the number of images (default 100).

use std::path::PathBuf;
use std::time::Instant;

use sgm_eval::{InceptionV3, extract, images::read_cifar10_bin};
use sgm_testkit::{TestBackend, device};

fn main() {
    let root = std::env::var_os("SGM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if !root.join("inception").is_dir() {
        eprintln!("skipping: no data at {}", root.display());
        return;
    }
    let n: usize = std::env::var("SGM_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let net = InceptionV3::<TestBackend>::load(
        &root.join("inception/pt_inception-2015-12-05.pth"),
        &device(),
    )
    .expect("weights");
    let imgs = read_cifar10_bin(&root.join("cifar10/test_batch.bin"), 0, Some(n)).expect("data");
    // warm-up on one batch
    let warm = read_cifar10_bin(&root.join("cifar10/test_batch.bin"), 0, Some(50)).expect("data");
    extract(&net, &warm, 50, &device(), |_| {}).expect("features");
    let t = Instant::now();
    extract(&net, &imgs, 50, &device(), |_| {}).expect("features");
    let s = t.elapsed().as_secs_f64();
    println!(
        "inception features, batch 50, {n} images: {s:.1} s = {:.2} images/s",
        n as f64 / s
    );
}
