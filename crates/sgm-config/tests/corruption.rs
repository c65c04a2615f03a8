//! Corruption harness of the config loader (issue 15): mutated variants of every official
//! TOML (bit flips, truncation at line boundaries, inflated numbers, swapped type tokens,
//! duplicated and deleted lines) are each `Ok` or one error — never a panic, abort or hang —
//! with bounded memory. CI runs a fast subset; `SGM_FUZZ_VARIANTS=100000 cargo test -p
//! sgm-config --test corruption --release` is the long mode (docs/reliability.md).

use std::time::Duration;

use sgm_config::{ExperimentConfig, OFFICIAL};
use sgm_testkit::corrupt::{self, CountingAlloc, Layout};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Structure of a TOML text: lines and `[section]` headers as boundaries, every run of
/// digits as a number to inflate, value types swapped for one another.
fn toml_layout(b: &[u8]) -> Layout {
    let mut l = Layout {
        boundaries: std::iter::once(0)
            .chain(
                b.iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect(),
        ..Layout::default()
    };
    l.find_digits(b, 0, b.len());
    for (token, reps) in [
        (&b"true"[..], &[&b"false"[..], b"\"true\"", b"1", b"[]"][..]),
        (b"false", &[b"true", b"0", b"{}"]),
        (b" = \"", &[b" = [\"", b" = 1\"", b" = {\""]),
        (b" = [", &[b" = \"[", b" = [[", b" = "]),
        (b"[model]", &[b"[[model]]", b"[model.model]", b"[]"]),
    ] {
        l.find_tokens(b, token, reps);
    }
    l
}

#[test]
fn corrupted_config_files_are_errors_never_crashes() {
    let seeds: Vec<(Vec<u8>, Layout)> = OFFICIAL
        .iter()
        .map(|c| {
            let b = c.text.as_bytes().to_vec();
            let l = toml_layout(&b);
            (b, l)
        })
        .collect();
    let largest = seeds.iter().map(|s| s.0.len()).max().unwrap_or(0);
    let r = corrupt::run(
        "config .toml",
        &seeds,
        corrupt::variants(800),
        21,
        |(f, l), rng| corrupt::mutate(f, l, rng),
        |_, b| {
            let text = std::str::from_utf8(b).map_err(|_| "not UTF-8".to_string())?;
            let config = ExperimentConfig::from_toml_str(text, "v.toml")
                .map_err(|e| corrupt::kind_of(&e, "v.toml"))?;
            // What every command derives from a loaded config must not panic either.
            config.sde().map_err(|e| corrupt::kind_of(&e, "v.toml"))?;
            config
                .sampler()
                .map_err(|e| corrupt::kind_of(&e, "v.toml"))?;
            let _ = config.likelihood_config();
            let _ = config.image_shape();
            if config.model.knobs().is_some() {
                config
                    .model_config()
                    .map_err(|e| corrupt::kind_of(&e, "v.toml"))?;
            }
            Ok(())
        },
    );
    // the text's parse tree, plus the SDE's float32 tables (VP: five of `N` ≤ MAX_STEPS)
    let tables = 5 * 4 * sde_core::MAX_STEPS;
    corrupt::assert_clean(
        &r,
        64 * largest + tables + (4 << 20),
        Duration::from_secs(10),
    );
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}
