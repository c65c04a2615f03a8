//! The 39 official configs (`configs/` of the workspace, one per upstream `configs/**.py`),
//! embedded at compile time, and their names.
//!
//! # Names
//! * **Official name**: the upstream path without `.py`, e.g. `ve/cifar10_ncsnpp_deep_continuous`
//!   (also accepted with a `configs/` prefix or a `.toml` suffix).
//! * **Short name**: `<family>/<rest>` where `<rest>` is the rest of the official name with
//!   `/` and `_` turned into `-`, `continuous` shortened to `cont` and the default dataset
//!   `cifar10` left out: `ve/ncsnpp-deep-cont`, `vp/ddpmpp-deep-cont`, `subvp/ddpm-cont`,
//!   `ve/celebahq-256-ncsnpp-cont`, `ve/ncsn-5` (= `ve/ncsn/cifar10_5`), `vp/ddpm-bedroom`.
//! * **Without the family** (`ddpmpp-deep-cont`), a short name (or official file stem) is
//!   accepted when exactly one family has it; otherwise it is an error listing the candidates.
//! * [`HEADLINE`]: `ncsnpp-deep-cont` is the paper's headline model,
//!   `ve/cifar10_ncsnpp_deep_continuous` (NCSN++ cont. deep, FID 2.20), although the VP and
//!   sub-VP families also have an `ncsnpp-deep-cont`.

use crate::error::{ConfigError, Result};

/// The paper's headline model, reachable as the bare short name `ncsnpp-deep-cont`.
pub const HEADLINE: (&str, &str) = ("ncsnpp-deep-cont", "ve/cifar10_ncsnpp_deep_continuous");

/// One embedded official config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialConfig {
    /// Official name, e.g. `ve/cifar10_ncsnpp_deep_continuous`.
    pub name: &'static str,
    /// The TOML text of `configs/<name>.toml`, as compiled in.
    pub text: &'static str,
}

impl OfficialConfig {
    /// The SDE family: `ve`, `vp` or `subvp`.
    pub fn family(&self) -> &'static str {
        self.name.split('/').next().unwrap_or(self.name)
    }

    /// The short name with its family (`ve/ncsnpp-deep-cont`).
    pub fn short_name(&self) -> String {
        short_name(self.name)
    }
}

/// The short name of an official name (see the module docs for the scheme).
pub fn short_name(official: &str) -> String {
    let (family, rest) = official.split_once('/').unwrap_or(("", official));
    let tokens: Vec<&str> = rest
        .split(['/', '_'])
        .filter(|t| *t != "cifar10")
        .map(|t| if t == "continuous" { "cont" } else { t })
        .collect();
    format!("{family}/{}", tokens.join("-"))
}

macro_rules! official_configs {
    ($($name:literal),* $(,)?) => {
        &[$(OfficialConfig {
            name: $name,
            text: include_str!(concat!("../../../configs/", $name, ".toml")),
        }),*]
    };
}

/// Every official config, sorted by name. The texts are compiled in from the workspace's
/// `configs/`; nothing is read from the build machine at run time. A test checks the list
/// against the files.
pub const OFFICIAL: &[OfficialConfig] = official_configs![
    "subvp/cifar10_ddpm_continuous",
    "subvp/cifar10_ddpmpp_continuous",
    "subvp/cifar10_ddpmpp_deep_continuous",
    "subvp/cifar10_ncsnpp_continuous",
    "subvp/cifar10_ncsnpp_deep_continuous",
    "ve/bedroom_ncsnpp_continuous",
    "ve/celeba_ncsnpp",
    "ve/celebahq_256_ncsnpp_continuous",
    "ve/celebahq_ncsnpp_continuous",
    "ve/church_ncsnpp_continuous",
    "ve/cifar10_ddpm",
    "ve/cifar10_ncsnpp",
    "ve/cifar10_ncsnpp_continuous",
    "ve/cifar10_ncsnpp_deep_continuous",
    "ve/ffhq_256_ncsnpp_continuous",
    "ve/ffhq_ncsnpp_continuous",
    "ve/ncsn/celeba",
    "ve/ncsn/celeba_124",
    "ve/ncsn/celeba_1245",
    "ve/ncsn/celeba_5",
    "ve/ncsn/cifar10",
    "ve/ncsn/cifar10_124",
    "ve/ncsn/cifar10_1245",
    "ve/ncsn/cifar10_5",
    "ve/ncsnv2/bedroom",
    "ve/ncsnv2/celeba",
    "ve/ncsnv2/cifar10",
    "vp/cifar10_ddpmpp",
    "vp/cifar10_ddpmpp_continuous",
    "vp/cifar10_ddpmpp_deep_continuous",
    "vp/cifar10_ncsnpp",
    "vp/cifar10_ncsnpp_continuous",
    "vp/cifar10_ncsnpp_deep_continuous",
    "vp/ddpm/bedroom",
    "vp/ddpm/celebahq",
    "vp/ddpm/church",
    "vp/ddpm/cifar10",
    "vp/ddpm/cifar10_continuous",
    "vp/ddpm/cifar10_unconditional",
];

/// Official names (`ve/cifar10_ncsnpp_deep_continuous`, …), sorted.
pub fn official_names() -> Vec<&'static str> {
    OFFICIAL.iter().map(|c| c.name).collect()
}

/// The official config a name means: an official name (optionally `configs/…` or `….toml`),
/// a short name with family, [`HEADLINE`]'s short name, or a short name / file stem that only
/// one family has. Unknown and ambiguous names are errors listing candidates.
pub fn find_official(name: &str) -> Result<&'static OfficialConfig> {
    let key = name.trim();
    let key = key.strip_prefix("configs/").unwrap_or(key);
    let key = key.strip_suffix(".toml").unwrap_or(key);
    let key = if key == HEADLINE.0 { HEADLINE.1 } else { key };
    if let Some(c) = OFFICIAL
        .iter()
        .find(|c| c.name == key || c.short_name() == key)
    {
        return Ok(c);
    }
    // Without the family: every config whose name after the family matches.
    let matches: Vec<&OfficialConfig> = OFFICIAL
        .iter()
        .filter(|c| {
            let short = c.short_name();
            without_family(c.name) == key || without_family(&short) == key
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ConfigError::UnknownName {
            name: name.to_string(),
            candidates: close_names(key),
        }),
        many => Err(ConfigError::AmbiguousName {
            name: name.to_string(),
            candidates: many.iter().map(|c| c.short_name()).collect(),
        }),
    }
}

fn without_family(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, rest)| rest)
}

/// Short names sharing a word with `key` (all of them when none does).
fn close_names(key: &str) -> Vec<String> {
    let words: Vec<String> = key
        .split(['/', '_', '-', '.'])
        .filter(|w| w.len() > 1)
        .map(str::to_ascii_lowercase)
        .collect();
    let all = OFFICIAL.iter().map(|c| c.short_name());
    let close: Vec<String> = all
        .clone()
        .filter(|s| {
            s.split(['/', '-']).any(|t| {
                words
                    .iter()
                    .any(|w| w == t || (w.len() > 3 && t.contains(w.as_str())))
            })
        })
        .collect();
    if close.is_empty() {
        all.collect()
    } else {
        close
    }
}
