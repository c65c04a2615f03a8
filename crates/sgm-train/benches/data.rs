//! Data-stream throughput: CIFAR-10 batches of 128 with the reference's transforms (flip,
//! uniform dequantisation, centering), on one thread — the work the prefetch thread does per
//! training step. `cargo bench -p sgm-train --bench data` (needs `../shared/data/cifar10`;
//! `SGM_BENCH_ITERS` = batches, default 50).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sgm_train::data::{Cifar10, DataPosition, DataStream, ImageSource, Transforms};

fn main() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10/data_batch_1.bin");
    if !file.is_file() {
        eprintln!("skipping: no {}", file.display());
        return;
    }
    let iters: usize = std::env::var("SGM_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let t0 = Instant::now();
    let source: Arc<dyn ImageSource> = Arc::new(Cifar10::load_files(&[file]).expect("CIFAR-10"));
    let load = t0.elapsed().as_secs_f64();
    let tf = Transforms {
        random_flip: true,
        uniform_dequantization: true,
        centered: true,
    };
    let mut stream =
        DataStream::new(source, 128, 42, 0, tf, DataPosition::default()).expect("stream");
    let _ = stream.next_batch().expect("warm-up");
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(stream.next_batch().expect("batch"));
    }
    let per = t.elapsed().as_secs_f64() / iters as f64;
    println!(
        "load 10k images: {:.0} ms; batch 128 (flip + dequantisation + centering): {:.2} ms = {:.0} images/s",
        load * 1e3,
        per * 1e3,
        128.0 / per
    );
}
