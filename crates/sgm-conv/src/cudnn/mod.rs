//! # cuDNN convolutions for Burn's CUDA backend (feature `cudnn`)
//!
//! Burn 0.21's CUDA convolution backward (CubeCL implicit GEMM, no split-K) is ≈ 8× slower than
//! cuDNN's on score-network shapes (../shared/reference/burn-0.21-cudnn-conv.md). With this
//! feature, [`ConvBackend`](crate::ConvBackend) on `CubeBackend<CudaRuntime, …>` runs the
//! forward, the input gradient and the weight gradient through cuDNN (cudarc's raw bindings,
//! `libcudnn.so.9` loaded at run time); `Fusion<CubeBackend<CudaRuntime, …>>` (Burn's `Cuda`)
//! reaches it through a custom fusion op ([`crate::fusion_ops`]) and `Autodiff<…>` through the
//! crate's backward step. Other dtypes than f32 fall back to Burn's kernels.
//!
//! * Ordering with CubeCL and where the state lives: [`service`] (module docs).
//! * Algorithms: `cudnnFind…Ex` once per shape and mode on the real buffers, with a 512 MiB
//!   workspace from CubeCL's pool; the choice is cached in the device's service.
//! * Modes ([`CudnnMode`]): `Fast` (fastest measured algorithm, TF32 tensor cores allowed — what
//!   PyTorch does by default) and `Deterministic` (deterministic algorithms only, true fp32 FMA
//!   math) for parity tests. Chosen per device with [`set_mode`] or by `SGM_CUDNN_MODE`
//!   (`fast` | `deterministic`) when the device is first used.
//! * A missing `libcudnn` is one error, [`CudnnError::LibraryMissing`], saying how to install it:
//!   [`check`] returns it (binaries call it at start-up); a convolution that needs cuDNN and
//!   cannot load it panics with the same message.
//!
//! Design, installation and what is unverified without a GPU: docs/gpu-cudnn.md.

mod ffi;
mod service;

use std::any::{Any, TypeId};
use std::sync::OnceLock;

use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;
use burn_cubecl::CubeRuntime;
use burn_cubecl::cubecl::cuda::{CudaDevice, CudaRuntime};
use burn_cubecl::cubecl::device::Device;
use burn_cubecl::cubecl::device_handle::DeviceHandle;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

use crate::GradsNeeded;
use ffi::ConvKey;
use service::CudnnService;

/// Environment variable choosing the initial [`CudnnMode`] of every device.
pub const MODE_ENV: &str = "SGM_CUDNN_MODE";

/// How cuDNN picks its algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CudnnMode {
    /// The fastest algorithm `cudnnFind…Ex` measures, TF32 tensor-core math allowed
    /// (`CUDNN_TENSOR_OP_MATH`, PyTorch's default `allow_tf32 = True` for cuDNN).
    #[default]
    Fast,
    /// Deterministic algorithms only (no atomics: bit-identical reruns) with true fp32 math
    /// (`CUDNN_FMA_MATH`, TF32 off): for parity tests. Slower.
    Deterministic,
}

impl CudnnMode {
    /// The mode named by `SGM_CUDNN_MODE` (unset or empty: [`CudnnMode::Fast`]).
    pub fn from_env() -> Result<Self, CudnnError> {
        Self::parse(std::env::var(MODE_ENV).ok().as_deref())
    }

    /// A mode from the value of `SGM_CUDNN_MODE` (`None`: unset).
    pub fn parse(value: Option<&str>) -> Result<Self, CudnnError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "fast") => Ok(Self::Fast),
            Some("deterministic") => Ok(Self::Deterministic),
            Some(_) => Err(CudnnError::BadMode(value.unwrap_or_default().to_string())),
        }
    }
}

/// Everything that can go wrong on the cuDNN path.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CudnnError {
    /// `libcudnn.so.9` could not be loaded.
    #[error(
        "cuDNN (libcudnn.so.9) was not found by the dynamic loader. Install cuDNN 9 for your CUDA \
         version — `apt install libcudnn9-cuda-12` (or `libcudnn9-cuda-13`) from NVIDIA's CUDA \
         repository, or `pip install nvidia-cudnn-cu12` and add its `nvidia/cudnn/lib` directory \
         to LD_LIBRARY_PATH — or build without the `cudnn` feature (Burn's own CUDA convolutions)"
    )]
    LibraryMissing,
    /// A CUDA driver call failed.
    #[error("CUDA driver call {call} failed: {error}")]
    Driver {
        /// The driver function.
        call: &'static str,
        /// cudarc's error.
        error: String,
    },
    /// A cuDNN call returned an error status.
    #[error(
        "cuDNN call {call} failed with {status} (CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED means \
         libcudnn_cnn / libcudnn_engines_* are not beside libcudnn.so.9 on LD_LIBRARY_PATH)"
    )]
    Call {
        /// The cuDNN function.
        call: &'static str,
        /// The status it returned.
        status: String,
    },
    /// `cudnnFind…Ex` returned no usable algorithm.
    #[error("cuDNN has no usable {direction} algorithm in {mode:?} mode for {conv}")]
    NoAlgorithm {
        /// forward / backward data / backward filter.
        direction: &'static str,
        /// The mode searched in.
        mode: CudnnMode,
        /// The convolution's shapes.
        conv: String,
    },
    /// A CubeCL call (buffer pointer, synchronisation) failed.
    #[error("CubeCL: {0}")]
    Cubecl(String),
    /// `SGM_CUDNN_MODE` holds something else than `fast` or `deterministic`.
    #[error("{MODE_ENV}={0:?}: expected `fast` or `deterministic`")]
    BadMode(String),
    /// The per-device service could not be reached.
    #[error("the cuDNN device service of {0:?} failed (see the message above)")]
    Service(CudaDevice),
}

/// What [`check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudnnInfo {
    /// `cudnnGetVersion()` (e.g. 91900 for 9.19.0).
    pub version: usize,
    /// The device's current mode.
    pub mode: CudnnMode,
}

/// Whether `libcudnn` can be loaded (asked once per process: the dynamic loader's answer does
/// not change, and cudarc's own loader would panic instead of returning an error).
pub(crate) fn library_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen the candidate names.
    *PRESENT.get_or_init(|| unsafe { cudarc::cudnn::sys::is_culib_present() })
}

/// Runs `f` on the cuDNN service of `device` (on CubeCL's runner thread of the device).
fn with_service<T: Send>(
    device: &CudaDevice,
    f: impl FnOnce(&mut CudnnService) -> Result<T, CudnnError> + Send,
) -> Result<T, CudnnError> {
    if !library_present() {
        return Err(CudnnError::LibraryMissing);
    }
    DeviceHandle::<CudnnService>::new(device.to_id())
        .submit_blocking(f)
        .map_err(|_| CudnnError::Service(device.clone()))?
}

/// Loads cuDNN and creates the device's handle: `Ok` with the library version, or the error a
/// convolution would hit (missing library, bad `SGM_CUDNN_MODE`, driver failure). Binaries call
/// this at start-up to fail with one clear message before any work.
pub fn check(device: &CudaDevice) -> Result<CudnnInfo, CudnnError> {
    CudnnMode::from_env()?;
    with_service(device, |s| {
        Ok(CudnnInfo {
            version: s.status()?,
            mode: s.mode(),
        })
    })
}

/// Sets the algorithm mode of `device` (plans of both modes stay cached).
pub fn set_mode(device: &CudaDevice, mode: CudnnMode) -> Result<(), CudnnError> {
    with_service(device, |s| {
        s.set_mode(mode);
        Ok(())
    })
}

/// The current algorithm mode of `device`.
pub fn mode(device: &CudaDevice) -> Result<CudnnMode, CudnnError> {
    with_service(device, |s| Ok(s.mode()))
}

/// `a` as `B` when they are the same type (`R` = `CudaRuntime` in the dispatch below).
fn same<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    let mut slot = Some(a);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<B>>() {
        Some(b) => Ok(b.take().expect("value moved once")),
        None => Err(slot.expect("value not moved")),
    }
}

fn dims<R: CubeRuntime>(t: &CubeTensor<R>) -> Option<[usize; 4]> {
    t.meta.shape().as_slice().try_into().ok()
}

/// The cuDNN shape key when cuDNN applies: runtime CUDA, every tensor f32, 4-D input and
/// weight, sizes within cuDNN's `int`s. `None`: use Burn's kernels.
pub(crate) fn applies<R: CubeRuntime>(
    x: &CubeTensor<R>,
    w: &CubeTensor<R>,
    others: &[&CubeTensor<R>],
    o: &ConvOptions<2>,
) -> Option<ConvKey> {
    if TypeId::of::<R>() != TypeId::of::<CudaRuntime>() {
        return None;
    }
    let f32s = [x, w].into_iter().chain(others.iter().copied());
    if !f32s.into_iter().all(|t| t.dtype == DType::F32) {
        return None;
    }
    let key = ConvKey {
        x: dims(x)?,
        w: dims(w)?,
        stride: o.stride,
        padding: o.padding,
        dilation: o.dilation,
        groups: o.groups,
    };
    let valid = o.groups > 0
        && key.x[1] == key.w[1] * o.groups
        && (0..2).all(|i| key.x[2 + i] + 2 * o.padding[i] > o.dilation[i] * (key.w[2 + i] - 1));
    (valid && key.fits_i32()).then_some(key)
}

fn cuda<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<CudaRuntime> {
    match same(t) {
        Ok(t) => t,
        Err(_) => unreachable!("`applies` checked that the runtime is CUDA"),
    }
}

fn back<R: CubeRuntime>(t: CubeTensor<CudaRuntime>) -> CubeTensor<R> {
    match same(t) {
        Ok(t) => t,
        Err(_) => unreachable!("`applies` checked that the runtime is CUDA"),
    }
}

fn empty(like: &CubeTensor<CudaRuntime>, shape: [usize; 4]) -> CubeTensor<CudaRuntime> {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        shape.into(),
        DType::F32,
    )
}

fn fail(op: &str, key: &ConvKey, e: CudnnError) -> ! {
    panic!("sgm-conv: cuDNN {op} of {key:?} failed: {e}")
}

/// The cuDNN forward (`key` from [`applies`]).
pub(crate) fn forward<R: CubeRuntime>(
    key: ConvKey,
    x: CubeTensor<R>,
    w: CubeTensor<R>,
    b: Option<CubeTensor<R>>,
) -> CubeTensor<R> {
    let x = into_contiguous(cuda(x));
    let w = into_contiguous(cuda(w));
    let b = b.map(|b| into_contiguous(cuda(b)));
    let y = empty(&x, key.out());
    let device = x.device.clone();
    let run = with_service(&device, |s| s.forward(key, &x, &w, b.as_ref(), &y));
    run.unwrap_or_else(|e| fail("forward", &key, e));
    back(y)
}

/// The requested cuDNN gradients `(dx, dw)` in one bracket (`key` from [`applies`]).
pub(crate) fn backward<R: CubeRuntime>(
    key: ConvKey,
    x: CubeTensor<R>,
    w: CubeTensor<R>,
    dy: CubeTensor<R>,
    needed: GradsNeeded,
) -> (Option<CubeTensor<R>>, Option<CubeTensor<R>>) {
    let x = into_contiguous(cuda(x));
    let w = into_contiguous(cuda(w));
    let dy = into_contiguous(cuda(dy));
    let dx = needed.x.then(|| empty(&x, key.x));
    let dw = needed.weight.then(|| empty(&x, key.w));
    let device = x.device.clone();
    let run = with_service(&device, |s| {
        s.backward(key, &x, &w, &dy, dx.as_ref(), dw.as_ref())
    });
    run.unwrap_or_else(|e| fail("backward", &key, e));
    (dx.map(back), dw.map(back))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_from_the_environment_value() {
        assert_eq!(CudnnMode::parse(None).unwrap(), CudnnMode::Fast);
        assert_eq!(CudnnMode::parse(Some("")).unwrap(), CudnnMode::Fast);
        assert_eq!(CudnnMode::parse(Some(" Fast ")).unwrap(), CudnnMode::Fast);
        let det = CudnnMode::parse(Some("deterministic")).unwrap();
        assert_eq!(det, CudnnMode::Deterministic);
        let err = CudnnMode::parse(Some("tf32")).unwrap_err().to_string();
        assert!(
            err.contains("SGM_CUDNN_MODE") && err.contains("tf32"),
            "{err}"
        );
    }

    #[test]
    fn missing_library_error_says_how_to_install_it() {
        let msg = CudnnError::LibraryMissing.to_string();
        for needle in [
            "libcudnn.so.9",
            "apt install libcudnn9-cuda-12",
            "nvidia-cudnn-cu12",
        ] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
        assert!(
            msg.contains("LD_LIBRARY_PATH") && !msg.contains('\n'),
            "{msg}"
        );
    }

    #[test]
    fn same_type_cast_only_between_equal_types() {
        assert_eq!(same::<u32, u32>(7), Ok(7));
        assert_eq!(same::<u32, i32>(7), Err(7));
    }
}
