//! Issue 15 harness on the CIFAR-10 batch readers: mutated binary and python (pickle) batches
//! (bit flips, truncation at record / opcode boundaries, inflated lengths and counts,
//! duplicated and deleted segments) each load or give one error naming the file — never a
//! panic, abort or hang, memory bounded by a small multiple of the file.
//! `SGM_FUZZ_VARIANTS=100000` is the long mode (docs/reliability.md).

use std::path::Path;

use sgm_testkit::{cifar, corrupt};
use sgm_train::data::Cifar10;

#[global_allocator]
static ALLOC: corrupt::CountingAlloc = corrupt::CountingAlloc;

fn images(n: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels = (0..n * 3072).map(|j| (j % 253) as u8).collect();
    (pixels, (0..n).map(|i| (i % 10) as u8).collect())
}

fn load(bytes: &[u8]) -> Result<(), String> {
    let (mut p, mut l) = (Vec::new(), Vec::new());
    Cifar10::parse_into(Path::new("data_batch_1"), bytes, &mut p, &mut l).map_err(|e| {
        let msg = e.to_string();
        assert!(
            msg.contains("data_batch_1"),
            "error does not name the file: {msg}"
        );
        corrupt::kind_of(&e, "data file data_batch_1")
    })?;
    assert_eq!(p.len(), 3072 * l.len());
    Ok(())
}

#[test]
fn corrupted_cifar_batches_are_errors_never_crashes() {
    let (pixels, labels) = images(20);
    let binary = cifar::binary_batch(&pixels, &labels);
    let python = cifar::python_batch(&pixels, &labels, "training batch 1 of 5");
    let bin_layout = corrupt::Layout {
        boundaries: (0..=binary.len()).step_by(3073).collect(),
        fields: (0..binary.len()).step_by(3073).map(|o| (o, 1)).collect(),
        ..corrupt::Layout::default()
    };
    for (format, file, layout) in [
        ("CIFAR-10 binary batch", &binary, bin_layout),
        (
            "CIFAR-10 python batch",
            &python,
            corrupt::pickle_layout(&python),
        ),
    ] {
        load(file).unwrap();
        let seeds = [(file.clone(), layout)];
        let r = corrupt::run(
            format,
            &seeds,
            corrupt::variants(200),
            10,
            |(f, l), rng| corrupt::mutate(f, l, rng),
            |_, b| load(b),
        );
        // the file, the pickle's byte strings and their memo copies, the output
        corrupt::assert_clean(
            &r,
            6 * file.len() + (1 << 20),
            std::time::Duration::from_secs(5),
        );
        assert!(!r.errors.is_empty(), "{r:?}");
    }
}
