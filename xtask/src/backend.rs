//! The only place a concrete backend is named: picked by cargo feature
//! (`flex` default CPU, `ndarray`, `wgpu`, `cuda`).

#![allow(dead_code)]

use burn::backend::Autodiff;
use burn::prelude::*;

#[cfg(feature = "cuda")]
pub type Inner = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type Inner = burn::backend::Wgpu;
#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
pub type Inner = burn::backend::NdArray;
#[cfg(not(any(feature = "cuda", feature = "wgpu", feature = "ndarray")))]
pub type Inner = burn::backend::Flex;

/// The autodiff backend used for training and likelihoods.
pub type Train = Autodiff<Inner>;

/// Human-readable backend name.
pub const NAME: &str = if cfg!(feature = "cudnn") {
    "cuda + cuDNN convolutions"
} else if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else if cfg!(feature = "ndarray") {
    "ndarray"
} else {
    "flex (CPU)"
};

/// Puts CubeCL's autotune and kernel caches in sgm's versioned cache directory
/// (`sgm_conv::cubecl_cache`, docs/gpu.md); a no-op on the CPU backends. Call before any tensor op.
pub fn init_caches() -> anyhow::Result<()> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(dir) = sgm_conv::cubecl_cache::configure().map_err(anyhow::Error::msg)? {
        log::debug!("GPU autotune / kernel cache: {}", dir.display());
    }
    Ok(())
}

/// The default device of the selected backend.
pub fn device() -> Device<Inner> {
    Default::default()
}

/// Start-up check of the backend's run-time libraries: with `cudnn`, loads cuDNN and creates the
/// device's handle, so a missing `libcudnn` is one clear error (how to install it) before any
/// work. Nothing to check for the other backends.
pub fn check() -> anyhow::Result<()> {
    #[cfg(feature = "cudnn")]
    {
        let info = sgm_conv::cudnn::check(&device())?;
        log::info!("cuDNN {} ({:?} mode)", info.version, info.mode);
    }
    Ok(())
}
