//! Corruption harness of the weight loaders (issue 15): mutated variants of the fixtures'
//! `checkpoint.pth` and `model.safetensors` files are each `Ok` or an error — never a panic,
//! abort or hang — and memory stays bounded by the file's size. CI runs a fast subset;
//! `SGM_FUZZ_VARIANTS=100000 cargo test -p sgm-nets --test corruption --release` is the long
//! mode (see docs/reliability.md).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use sgm_nets::weights::{ParamEntry, parse_checkpoint, parse_safetensors};
use sgm_nets::{CheckpointWeights, ScoreNet, param_entries};
use sgm_testkit::corrupt::{self, CountingAlloc, Layout, Rng, ZipSeed};
use sgm_testkit::{TestBackend, cases, device};

mod common;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The harness measures one loader at a time (the allocator's counters are global).
static SERIAL: Mutex<()> = Mutex::new(());

/// Fixture nets cases used as seeds (the smallest few keep the fast mode in seconds).
fn seed_cases() -> Vec<(std::path::PathBuf, Vec<ParamEntry>, usize)> {
    let mut v: Vec<_> = cases("nets")
        .into_iter()
        .map(|c| {
            let cfg = common::nets_config(&c.dir);
            let entries = param_entries(&ScoreNet::<TestBackend>::new(&cfg, &device()).unwrap());
            (c.dir.clone(), entries, cfg.model.num_scales)
        })
        .collect();
    v.sort_by_key(|(d, ..)| std::fs::metadata(d.join("checkpoint.pth")).map_or(0, |m| m.len()));
    v.truncate(3);
    v
}

struct PthSeed {
    zip: ZipSeed,
    pkl: usize,
    params: Vec<ParamEntry>,
    num_scales: usize,
}

/// Four in five entry mutations hit `data.pkl`, the rest a storage.
fn pth_variant(s: &PthSeed, rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let n = s.zip.entries.len();
    s.zip.variant(rng, |rng| {
        if rng.below(5) > 0 {
            s.pkl
        } else {
            rng.below(n)
        }
    })
}

#[test]
fn corrupted_checkpoints_are_errors_never_crashes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seeds: Vec<PthSeed> = seed_cases()
        .into_iter()
        .map(|(dir, params, num_scales)| {
            let zip = ZipSeed::new(
                std::fs::read(dir.join("checkpoint.pth")).unwrap(),
                |name, b| {
                    if name.ends_with("data.pkl") {
                        corrupt::pickle_layout(b)
                    } else {
                        // storages: element boundaries
                        Layout {
                            boundaries: (0..b.len()).step_by(4).collect(),
                            ..Layout::default()
                        }
                    }
                },
            );
            let pkl = zip
                .entries
                .iter()
                .position(|(n, _)| n.ends_with("data.pkl"))
                .unwrap();
            PthSeed {
                zip,
                pkl,
                params,
                num_scales,
            }
        })
        .collect();
    if seeds.is_empty() {
        return;
    }
    let largest = seeds.iter().map(|s| s.zip.file.len()).max().unwrap_or(0);
    let n = corrupt::variants(240);
    let r = corrupt::run("torch .pth", &seeds, n, 15, pth_variant, |s, bytes| {
        // the EMA path reads both `model` and the shadow params: every tensor check runs
        let which = CheckpointWeights::Ema;
        parse_checkpoint(Path::new("v.pth"), bytes, &s.params, s.num_scales, which)
            .map(|_| ())
            .map_err(|e| corrupt::kind_of(&e, "v.pth"))
    });
    corrupt::assert_clean(&r, 4 * largest + (48 << 20), Duration::from_secs(20));
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}

#[test]
fn corrupted_safetensors_are_errors_never_crashes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seeds: Vec<(Vec<u8>, Layout)> = seed_cases()
        .into_iter()
        .map(|(dir, ..)| {
            let f = std::fs::read(dir.join("model.safetensors")).unwrap();
            let l = corrupt::safetensors_layout(&f);
            (f, l)
        })
        .collect();
    if seeds.is_empty() {
        return;
    }
    let largest = seeds.iter().map(|s| s.0.len()).max().unwrap_or(0);
    let r = corrupt::run(
        "safetensors (weights)",
        &seeds,
        corrupt::variants(400),
        15,
        |(f, l), rng| corrupt::mutate(f, l, rng),
        |_, bytes| {
            parse_safetensors(Path::new("v.safetensors"), bytes)
                .map(|_| ())
                .map_err(|e| corrupt::kind_of(&e, "v.safetensors"))
        },
    );
    corrupt::assert_clean(&r, 4 * largest + (16 << 20), Duration::from_secs(20));
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}
