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
pub const NAME: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else if cfg!(feature = "ndarray") {
    "ndarray"
} else {
    "flex (CPU)"
};

/// The default device of the selected backend.
pub fn device() -> Device<Inner> {
    Default::default()
}
