//! Where sgm's binaries keep CubeCL's autotune results and compiled kernels (docs/gpu.md).
//!
//! CubeCL (wgpu, CUDA) tunes every matmul / convolution / reduction shape once and compiles
//! every kernel once per process; both can be cached on disk so that the next run skips them.
//! Left alone, CubeCL writes autotune results into `target/autotune/` of whatever Cargo project
//! the *current directory* is in (or `~/.cache/cubecl` outside one) and keeps no kernel cache.
//! sgm's binaries call [`configure`] first thing, which puts both in one versioned directory:
//!
//! ```text
//! $SGM_CUBECL_CACHE, else $XDG_CACHE_HOME/sgm, else $HOME/.cache/sgm
//!     └── cubecl-<CACHE_VERSION>/
//!         ├── autotune/0.10.0/<device>/   (CubeCL's autotune cache: chosen kernel per op and shape key)
//!         └── kernels/    (compiled kernels: CUDA; wgpu with SPIR-V — WGSL pipelines are not cached)
//! ```
//!
//! [`CACHE_VERSION`] names the Burn / CubeCL versions and sgm's own kernel-routing revision: a
//! change of either — in particular a workaround that stops using a kernel variant CubeCL may have
//! chosen and cached (docs/gpu.md) — moves to a fresh directory, so a cached wrong choice never
//! survives the fix. Every other CubeCL setting (a `cubecl.toml` / `burn.toml` found from the
//! current directory, `CUBECL_*` variables) is kept. `SGM_CUBECL_CACHE=cubecl` keeps CubeCL's own
//! cache locations instead.

use std::path::{Path, PathBuf};

use burn_cubecl::cubecl::config::cache::CacheConfig;
use burn_cubecl::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// Environment variable: the cache root, or `cubecl` for CubeCL's own locations.
pub const CACHE_ENV: &str = "SGM_CUBECL_CACHE";

/// Name of the versioned cache directory: the Burn and CubeCL versions, then `r<N>`, the revision
/// of sgm's choice of CubeCL kernels. Bump `N` whenever sgm changes which kernel an op may run (a
/// workaround, a pinned tune choice), so that autotune results cached under the old routing are
/// not reused (r1: first versioned layout; r2: matrix products and 1×1 convolutions routed around
/// the autotuned matmul, docs/gpu.md).
pub const CACHE_VERSION: &str = "burn0.21.0-cubecl0.10.0-r2";

/// Where the caches go: `None` when `SGM_CUBECL_CACHE=cubecl` (CubeCL decides).
pub fn cache_dir() -> Option<PathBuf> {
    let root = match std::env::var_os(CACHE_ENV) {
        Some(v) if v == "cubecl" => return None,
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default_root(),
    };
    Some(root.join(format!("cubecl-{CACHE_VERSION}")))
}

fn default_root() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("sgm");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache/sgm"),
        None => std::env::temp_dir().join("sgm-cache"),
    }
}

/// The CubeCL configuration sgm runs with: CubeCL's own (files and `CUBECL_*` variables) with
/// the autotune and kernel caches moved under `dir`.
pub fn config_with_caches(dir: &Path) -> CubeClRuntimeConfig {
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    // CubeCL appends `autotune/<cubecl version>/<device>/` itself
    config.autotune.cache = CacheConfig::File(dir.to_path_buf());
    config.compilation.cache = Some(CacheConfig::File(dir.join("kernels")));
    config
}

/// Installs sgm's cache locations into CubeCL's global configuration; call before the first
/// GPU operation (binaries do it at start-up). Returns the directory used, `None` when CubeCL's
/// own locations are kept. Errors when the directory cannot be created (the message names it) or
/// when CubeCL's configuration was already fixed by an earlier GPU operation.
pub fn configure() -> Result<Option<PathBuf>, String> {
    let Some(dir) = cache_dir() else {
        return Ok(None);
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the GPU kernel cache {}: {e}", dir.display()))?;
    let config = config_with_caches(&dir);
    // `set` panics once the configuration has been read; report that as an error instead
    std::panic::catch_unwind(move || CubeClRuntimeConfig::set(config)).map_err(|_| {
        "CubeCL's configuration was already in use; configure the caches before the first GPU \
         operation"
            .to_string()
    })?;
    Ok(Some(dir))
}
