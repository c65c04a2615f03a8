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

/// Keeps large freed blocks in glibc's heap instead of returning them to the kernel. By default
/// glibc serves every allocation above its dynamic mmap threshold (128 KiB, growing to at most
/// 32 MiB) with a fresh `mmap` and unmaps it on free; a CPU network step allocates and frees
/// thousands of activation-sized tensors, and the page faults and page zeroing that follow were
/// 5–10 % of a step on Flex (docs/benchmarks.md). Raising the mmap threshold to its maximum and
/// the trim threshold / top pad keeps that memory for reuse (the process's peak RSS stays that of
/// its largest step). No-op off glibc. Call first in `main`, before any allocation worth keeping.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes malloc's tuning parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Gives the workers of rayon's global pool an 8 MiB stack — the main thread's — since every
/// command runs on one of them (`sgm_conv::in_pool`; rayon's default is 2 MiB). Call first in
/// `main`, before anything uses rayon; a no-op if the pool already exists.
pub fn init_pool() {
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
}

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
