//! A thin owning layer over cudarc's raw cuDNN bindings (`cudarc::cudnn::{result, sys}`): the
//! descriptors of one convolution shape ([`Plan`]), the algorithm search (`cudnnFind…Ex`, once
//! per shape and mode) and the three launches plus the bias add. Everything here is `unsafe`
//! FFI on raw device pointers; the ordering and lifetime rules live in [`super::service`].
//!
//! Layout: every tensor is packed NCHW f32 (the caller makes them contiguous), the filter is
//! packed KCRS (`[C_out, C_in / groups, kH, kW]`), cross-correlation mode (PyTorch's `F.conv2d`).

use std::ffi::c_void;

use cudarc::cudnn::{result, sys};

use super::{CudnnError, CudnnMode};

/// Workspace offered to `cudnnFind…Ex` (and so the largest workspace an algorithm may use):
/// 512 MiB from CubeCL's memory pool. PyTorch offers "as much as is free"; a fixed cap keeps
/// the pool's high-water mark predictable next to CubeCL's own allocations.
pub(super) const FIND_WORKSPACE_BYTES: usize = 512 << 20;

/// Algorithms requested from `cudnnFind…Ex` (more than cuDNN 9 has for any direction).
const MAX_ALGOS: usize = 16;

const ONE: f32 = 1.0;
const ZERO: f32 = 0.0;

fn one() -> *const c_void {
    (&ONE as *const f32).cast()
}

fn zero() -> *const c_void {
    (&ZERO as *const f32).cast()
}

/// Maps a cuDNN status to [`CudnnError::Call`].
fn call(name: &'static str, r: Result<(), result::CudnnError>) -> Result<(), CudnnError> {
    r.map_err(|e| CudnnError::Call {
        call: name,
        status: format!("{:?}", e.0),
    })
}

fn status(name: &'static str, s: sys::cudnnStatus_t) -> Result<(), CudnnError> {
    call(name, s.result())
}

/// One convolution shape: the key of the per-device plan cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConvKey {
    /// Input `[N, C_in, H, W]`.
    pub x: [usize; 4],
    /// Weight `[C_out, C_in / groups, kH, kW]`.
    pub w: [usize; 4],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvKey {
    /// Output `[N, C_out, H_out, W_out]`: `⌊(H + 2p − d·(k − 1) − 1) / s⌋ + 1` per spatial axis.
    pub fn out(&self) -> [usize; 4] {
        let size = |i: usize| {
            (self.x[2 + i] + 2 * self.padding[i] - self.dilation[i] * (self.w[2 + i] - 1) - 1)
                / self.stride[i]
                + 1
        };
        [self.x[0], self.w[0], size(0), size(1)]
    }

    /// Whether every size fits cuDNN's `int` arguments.
    pub fn fits_i32(&self) -> bool {
        let max = i32::MAX as usize;
        let out = self.out();
        let all = self.x.iter().chain(&self.w).chain(&out);
        all.copied().all(|v| v <= max)
            && self.x.iter().product::<usize>() <= max
            && self.out().iter().product::<usize>() <= max
    }
}

fn i32s<const N: usize>(v: [usize; N]) -> [i32; N] {
    v.map(|d| d as i32)
}

/// An owned `cudnnTensorDescriptor_t` (packed NCHW f32).
struct TensorDesc(sys::cudnnTensorDescriptor_t);

impl TensorDesc {
    fn nchw(dims: [usize; 4]) -> Result<Self, CudnnError> {
        let mut raw = std::ptr::null_mut();
        status("cudnnCreateTensorDescriptor", unsafe {
            sys::cudnnCreateTensorDescriptor(&mut raw)
        })?;
        let desc = Self(raw);
        call("cudnnSetTensor4dDescriptor", unsafe {
            result::set_tensor4d_descriptor(
                desc.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                i32s(dims),
            )
        })?;
        Ok(desc)
    }
}

impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateTensorDescriptor, destroyed once.
        let _ = unsafe { result::destroy_tensor_descriptor(self.0) };
    }
}

/// An owned `cudnnFilterDescriptor_t` (packed KCRS f32).
struct FilterDesc(sys::cudnnFilterDescriptor_t);

impl FilterDesc {
    fn kcrs(dims: [usize; 4]) -> Result<Self, CudnnError> {
        let mut raw = std::ptr::null_mut();
        status("cudnnCreateFilterDescriptor", unsafe {
            sys::cudnnCreateFilterDescriptor(&mut raw)
        })?;
        let desc = Self(raw);
        call("cudnnSetFilter4dDescriptor", unsafe {
            result::set_filter4d_descriptor(
                desc.0,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                i32s(dims),
            )
        })?;
        Ok(desc)
    }
}

impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateFilterDescriptor, destroyed once.
        let _ = unsafe { result::destroy_filter_descriptor(self.0) };
    }
}

/// An owned `cudnnConvolutionDescriptor_t` (cross-correlation, f32 accumulation, groups).
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);

impl ConvDesc {
    fn new(key: &ConvKey) -> Result<Self, CudnnError> {
        let mut raw = std::ptr::null_mut();
        status("cudnnCreateConvolutionDescriptor", unsafe {
            sys::cudnnCreateConvolutionDescriptor(&mut raw)
        })?;
        let desc = Self(raw);
        let [ph, pw] = i32s(key.padding);
        let [sh, sw] = i32s(key.stride);
        let [dh, dw] = i32s(key.dilation);
        call("cudnnSetConvolution2dDescriptor", unsafe {
            result::set_convolution2d_descriptor(
                desc.0,
                ph,
                pw,
                sh,
                sw,
                dh,
                dw,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
        })?;
        call("cudnnSetConvolutionGroupCount", unsafe {
            result::set_convolution_group_count(desc.0, key.groups as i32)
        })?;
        Ok(desc)
    }

    fn set_math(&self, math: sys::cudnnMathType_t) -> Result<(), CudnnError> {
        call("cudnnSetConvolutionMathType", unsafe {
            result::set_convolution_math_type(self.0, math)
        })
    }
}

impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateConvolutionDescriptor, destroyed once.
        let _ = unsafe { result::destroy_convolution_descriptor(self.0) };
    }
}

/// The math a mode searches with: TF32 tensor cores allowed (PyTorch's default
/// `torch.backends.cudnn.allow_tf32 = True`) or true fp32 FMA.
fn search_math(mode: CudnnMode) -> sys::cudnnMathType_t {
    match mode {
        CudnnMode::Fast => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        CudnnMode::Deterministic => sys::cudnnMathType_t::CUDNN_FMA_MATH,
    }
}

/// One algorithm choice: the algorithm, its workspace and the math type to launch it with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Choice<A> {
    pub algo: A,
    pub workspace: usize,
    pub math: sys::cudnnMathType_t,
}

/// The common fields of cuDNN's three `…AlgoPerf_t` structs.
trait Perf: Copy {
    type Algo: Copy + std::fmt::Debug;
    fn pick(
        &self,
    ) -> (
        Self::Algo,
        sys::cudnnStatus_t,
        usize,
        bool,
        sys::cudnnMathType_t,
    );
}

macro_rules! perf {
    ($perf:ty, $algo:ty) => {
        impl Perf for $perf {
            type Algo = $algo;
            fn pick(
                &self,
            ) -> (
                Self::Algo,
                sys::cudnnStatus_t,
                usize,
                bool,
                sys::cudnnMathType_t,
            ) {
                let deterministic =
                    self.determinism == sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC;
                (
                    self.algo,
                    self.status,
                    self.memory,
                    deterministic,
                    self.mathType,
                )
            }
        }
    };
}

perf!(
    sys::cudnnConvolutionFwdAlgoPerf_t,
    sys::cudnnConvolutionFwdAlgo_t
);
perf!(
    sys::cudnnConvolutionBwdDataAlgoPerf_t,
    sys::cudnnConvolutionBwdDataAlgo_t
);
perf!(
    sys::cudnnConvolutionBwdFilterAlgoPerf_t,
    sys::cudnnConvolutionBwdFilterAlgo_t
);

/// The fastest usable result of a `cudnnFind…Ex` (results come sorted by measured time):
/// status success, and in [`CudnnMode::Deterministic`] a deterministic algorithm (cuDNN's
/// backward-filter algorithms 0 and 3 accumulate with atomics). Deterministic mode launches
/// with FMA math whatever the result reports; fast mode with the math the result was timed in.
fn choose<P: Perf>(results: &[P], mode: CudnnMode) -> Option<Choice<P::Algo>> {
    results.iter().find_map(|p| {
        let (algo, st, memory, deterministic, math) = p.pick();
        let usable = st == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
            && memory <= FIND_WORKSPACE_BYTES
            && (mode == CudnnMode::Fast || deterministic);
        usable.then_some(Choice {
            algo,
            workspace: memory,
            math: match mode {
                CudnnMode::Fast => math,
                CudnnMode::Deterministic => sys::cudnnMathType_t::CUDNN_FMA_MATH,
            },
        })
    })
}

/// Raw device pointers of one launch (CubeCL allocations, valid and idle: see the service).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ptrs {
    pub x: u64,
    pub w: u64,
    /// The output gradient (backward) or the output (forward).
    pub y: u64,
    pub workspace: u64,
    pub workspace_bytes: usize,
}

fn p(v: u64) -> *mut c_void {
    v as usize as *mut c_void
}

/// The descriptors and algorithm choices of one convolution shape in one mode.
pub(super) struct Plan {
    key: ConvKey,
    mode: CudnnMode,
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    bias: TensorDesc,
    conv: ConvDesc,
    pub fwd: Option<Choice<sys::cudnnConvolutionFwdAlgo_t>>,
    pub data: Option<Choice<sys::cudnnConvolutionBwdDataAlgo_t>>,
    pub filter: Option<Choice<sys::cudnnConvolutionBwdFilterAlgo_t>>,
}

impl Plan {
    pub fn new(key: ConvKey, mode: CudnnMode) -> Result<Self, CudnnError> {
        Ok(Self {
            key,
            mode,
            x: TensorDesc::nchw(key.x)?,
            w: FilterDesc::kcrs(key.w)?,
            y: TensorDesc::nchw(key.out())?,
            bias: TensorDesc::nchw([1, key.w[0], 1, 1])?,
            conv: ConvDesc::new(&key)?,
            fwd: None,
            data: None,
            filter: None,
        })
    }

    fn no_algo(&self, direction: &'static str) -> CudnnError {
        CudnnError::NoAlgorithm {
            direction,
            mode: self.mode,
            conv: format!("{:?}", self.key),
        }
    }

    /// `cudnnFindConvolutionForwardAlgorithmEx` on real buffers (`ptrs.y` is overwritten).
    ///
    /// # Safety
    /// `handle` is bound to the current context; every pointer is a live, idle device
    /// allocation of the plan's sizes (the workspace of `ptrs.workspace_bytes`).
    pub unsafe fn find_forward(
        &mut self,
        handle: sys::cudnnHandle_t,
        ptrs: Ptrs,
    ) -> Result<(), CudnnError> {
        self.conv.set_math(search_math(self.mode))?;
        let mut results = Vec::<sys::cudnnConvolutionFwdAlgoPerf_t>::with_capacity(MAX_ALGOS);
        let mut n = 0;
        status("cudnnFindConvolutionForwardAlgorithmEx", unsafe {
            sys::cudnnFindConvolutionForwardAlgorithmEx(
                handle,
                self.x.0,
                p(ptrs.x),
                self.w.0,
                p(ptrs.w),
                self.conv.0,
                self.y.0,
                p(ptrs.y),
                MAX_ALGOS as i32,
                &mut n,
                results.as_mut_ptr(),
                p(ptrs.workspace),
                ptrs.workspace_bytes,
            )
        })?;
        // SAFETY: cuDNN wrote `n ≤ MAX_ALGOS` results.
        unsafe { results.set_len((n.max(0) as usize).min(MAX_ALGOS)) };
        self.fwd = Some(choose(&results, self.mode).ok_or_else(|| self.no_algo("forward"))?);
        Ok(())
    }

    /// `cudnnFindConvolutionBackwardDataAlgorithmEx` (`dx` is overwritten).
    ///
    /// # Safety
    /// As [`Self::find_forward`]; `dx` has the input's size.
    pub unsafe fn find_data(
        &mut self,
        handle: sys::cudnnHandle_t,
        ptrs: Ptrs,
        dx: u64,
    ) -> Result<(), CudnnError> {
        self.conv.set_math(search_math(self.mode))?;
        let mut results = Vec::<sys::cudnnConvolutionBwdDataAlgoPerf_t>::with_capacity(MAX_ALGOS);
        let mut n = 0;
        status("cudnnFindConvolutionBackwardDataAlgorithmEx", unsafe {
            sys::cudnnFindConvolutionBackwardDataAlgorithmEx(
                handle,
                self.w.0,
                p(ptrs.w),
                self.y.0,
                p(ptrs.y),
                self.conv.0,
                self.x.0,
                p(dx),
                MAX_ALGOS as i32,
                &mut n,
                results.as_mut_ptr(),
                p(ptrs.workspace),
                ptrs.workspace_bytes,
            )
        })?;
        // SAFETY: cuDNN wrote `n ≤ MAX_ALGOS` results.
        unsafe { results.set_len((n.max(0) as usize).min(MAX_ALGOS)) };
        self.data = Some(choose(&results, self.mode).ok_or_else(|| self.no_algo("backward data"))?);
        Ok(())
    }

    /// `cudnnFindConvolutionBackwardFilterAlgorithmEx` (`dw` is overwritten).
    ///
    /// # Safety
    /// As [`Self::find_forward`]; `dw` has the weight's size.
    pub unsafe fn find_filter(
        &mut self,
        handle: sys::cudnnHandle_t,
        ptrs: Ptrs,
        dw: u64,
    ) -> Result<(), CudnnError> {
        self.conv.set_math(search_math(self.mode))?;
        let mut results = Vec::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>::with_capacity(MAX_ALGOS);
        let mut n = 0;
        status("cudnnFindConvolutionBackwardFilterAlgorithmEx", unsafe {
            sys::cudnnFindConvolutionBackwardFilterAlgorithmEx(
                handle,
                self.x.0,
                p(ptrs.x),
                self.y.0,
                p(ptrs.y),
                self.conv.0,
                self.w.0,
                p(dw),
                MAX_ALGOS as i32,
                &mut n,
                results.as_mut_ptr(),
                p(ptrs.workspace),
                ptrs.workspace_bytes,
            )
        })?;
        // SAFETY: cuDNN wrote `n ≤ MAX_ALGOS` results.
        unsafe { results.set_len((n.max(0) as usize).min(MAX_ALGOS)) };
        self.filter =
            Some(choose(&results, self.mode).ok_or_else(|| self.no_algo("backward filter"))?);
        Ok(())
    }

    /// `y = conv(x, w) (+ bias)`, enqueued on the handle's stream.
    ///
    /// # Safety
    /// As [`Self::find_forward`], after it; `bias` (if any) holds `C_out` floats.
    pub unsafe fn forward(
        &self,
        handle: sys::cudnnHandle_t,
        ptrs: Ptrs,
        bias: Option<u64>,
    ) -> Result<(), CudnnError> {
        let c = self.fwd.ok_or_else(|| self.no_algo("forward"))?;
        self.conv.set_math(c.math)?;
        call("cudnnConvolutionForward", unsafe {
            result::convolution_forward(
                handle,
                one(),
                self.x.0,
                p(ptrs.x),
                self.w.0,
                p(ptrs.w),
                self.conv.0,
                c.algo,
                p(ptrs.workspace),
                ptrs.workspace_bytes,
                zero(),
                self.y.0,
                p(ptrs.y),
            )
        })?;
        if let Some(b) = bias {
            // y += b broadcast over N, H, W (`[1, C_out, 1, 1]`).
            status("cudnnAddTensor", unsafe {
                sys::cudnnAddTensor(handle, one(), self.bias.0, p(b), one(), self.y.0, p(ptrs.y))
            })?;
        }
        Ok(())
    }

    /// `dx = ∂L/∂x` from `dy` (`ptrs.y`), enqueued on the handle's stream.
    ///
    /// # Safety
    /// As [`Self::find_data`], after it.
    pub unsafe fn backward_data(
        &self,
        handle: sys::cudnnHandle_t,
        ptrs: Ptrs,
        dx: u64,
    ) -> Result<(), CudnnError> {
        let c = self.data.ok_or_else(|| self.no_algo("backward data"))?;
        self.conv.set_math(c.math)?;
        call("cudnnConvolutionBackwardData", unsafe {
            result::convolution_backward_data(
                handle,
                one(),
                self.w.0,
                p(ptrs.w),
                self.y.0,
                p(ptrs.y),
                self.conv.0,
                c.algo,
                p(ptrs.workspace),
                ptrs.workspace_bytes,
                zero(),
                self.x.0,
                p(dx),
            )
        })
    }

    /// `dw = ∂L/∂w` from `x` and `dy` (`ptrs.y`), enqueued on the handle's stream.
    ///
    /// # Safety
    /// As [`Self::find_filter`], after it.
    pub unsafe fn backward_filter(
        &self,
        handle: sys::cudnnHandle_t,
        ptrs: Ptrs,
        dw: u64,
    ) -> Result<(), CudnnError> {
        let c = self.filter.ok_or_else(|| self.no_algo("backward filter"))?;
        self.conv.set_math(c.math)?;
        call("cudnnConvolutionBackwardFilter", unsafe {
            result::convolution_backward_filter(
                handle,
                one(),
                self.x.0,
                p(ptrs.x),
                self.y.0,
                p(ptrs.y),
                self.conv.0,
                c.algo,
                p(ptrs.workspace),
                ptrs.workspace_bytes,
                zero(),
                self.w.0,
                p(dw),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_matches_the_conv_formula() {
        let key = ConvKey {
            x: [2, 3, 32, 32],
            w: [8, 3, 3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 1,
        };
        assert_eq!(key.out(), [2, 8, 16, 16]);
        let dilated = ConvKey {
            dilation: [2, 2],
            stride: [1, 1],
            ..key
        };
        assert_eq!(dilated.out(), [2, 8, 30, 30]);
        assert!(key.fits_i32());
    }
}
