//! The per-device cuDNN state and the one place where cuDNN work is ordered against CubeCL's.
//!
//! ## Where the state lives
//! [`CudnnService`] is a CubeCL [`DeviceService`]: CubeCL keeps one instance per device, owned by
//! the device's runner thread — the same `(device, Downstream)` runner that owns the
//! `CudaServer` — and every closure sent with `DeviceHandle::submit_blocking` runs there, one at
//! a time. It holds the cudarc context (CUDA's primary context, the one CubeCL uses), a cudarc
//! stream, the `cudnnHandle_t`, the mode and the plan cache (descriptors + chosen algorithms per
//! shape and mode). No global of ours holds GPU state; the only process-level item is the
//! memoised "is libcudnn loadable" answer ([`super::library_present`]), a fact about the
//! process's dynamic loader.
//!
//! ## Ordering (no races)
//! CubeCL 0.10 does not expose its `CUstream`, so cuDNN runs on its own stream, bracketed by
//! host synchronisation, all inside [`ordered`]:
//! 1. the closure runs on the device runner thread, so every CubeCL operation submitted before it
//!    (by any thread) has already been enqueued on CubeCL's streams, and none can be enqueued
//!    until it returns;
//! 2. `get_resource` on every buffer cuDNN touches (inputs, outputs, workspace): the raw
//!    `CUdeviceptr`, and the allocation pinned until the guard is dropped; on a buffer last
//!    written on another CubeCL stream this also makes the current stream wait for it;
//! 3. `client.sync()`: a fence on CubeCL's current stream, waited for on the host — every
//!    producer of the inputs has finished and nothing still reads or writes the outputs;
//! 4. the cuDNN calls on the service's stream;
//! 5. `stream.synchronize()` on the host: cuDNN has finished, so when the closure returns CubeCL
//!    may read the outputs and recycle the inputs and the workspace.
//!
//! The cost is two host waits per call (one per layer: the backward computes both gradients in
//! one bracket). Removing them needs CubeCL's stream (a patch to cubecl-cuda; see
//! docs/gpu-cudnn.md).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::DType;
use burn_cubecl::cubecl::client::ComputeClient;
use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::cubecl::device::{DeviceId, DeviceService, ServerUtilitiesHandle};
use burn_cubecl::cubecl::future::block_on;
use burn_cubecl::cubecl::server::Handle;
use burn_cubecl::tensor::CubeTensor;
use cudarc::cudnn::{result, sys};
use cudarc::driver::{CudaContext, CudaStream};

use super::ffi::{ConvKey, FIND_WORKSPACE_BYTES, Plan, Ptrs};
use super::{CudnnError, CudnnMode};

type Tensor = CubeTensor<CudaRuntime>;

/// The cuDNN handle of one device with the stream it is bound to.
struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    handle: sys::cudnnHandle_t,
}

impl Gpu {
    fn new(ordinal: usize) -> Result<Self, CudnnError> {
        if !super::library_present() {
            return Err(CudnnError::LibraryMissing);
        }
        let driver = |call: &'static str| {
            move |e: cudarc::driver::DriverError| CudnnError::Driver {
                call,
                error: format!("{e:?}"),
            }
        };
        // The primary context: the one CubeCL's CUDA runtime retains and makes current.
        let ctx = CudaContext::new(ordinal).map_err(driver("cuDevicePrimaryCtxRetain"))?;
        let stream = ctx.new_stream().map_err(driver("cuStreamCreate"))?;
        let handle = result::create_handle().map_err(|e| CudnnError::Call {
            call: "cudnnCreate",
            status: format!("{:?}", e.0),
        })?;
        let gpu = Self {
            ctx,
            stream,
            handle,
        };
        // SAFETY: a live handle and a live stream of the same context.
        unsafe { result::set_stream(gpu.handle, gpu.stream.cu_stream() as sys::cudaStream_t) }
            .map_err(|e| CudnnError::Call {
                call: "cudnnSetStream",
                status: format!("{:?}", e.0),
            })?;
        Ok(gpu)
    }

    fn bind(&self) -> Result<(), CudnnError> {
        self.ctx.bind_to_thread().map_err(|e| CudnnError::Driver {
            call: "cuCtxSetCurrent",
            error: format!("{e:?}"),
        })
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreate, destroyed once.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

/// The cuDNN state of one CUDA device (see the module docs).
pub(crate) struct CudnnService {
    mode: CudnnMode,
    gpu: Result<Gpu, CudnnError>,
    plans: HashMap<(ConvKey, CudnnMode), Plan>,
}

// SAFETY: the raw cuDNN handle and descriptors are only used by the device runner thread that
// owns the service (CubeCL moves a service to that thread once, at creation), one call at a time.
unsafe impl Send for CudnnService {}

impl DeviceService for CudnnService {
    fn init(device_id: DeviceId) -> Self {
        let mode = CudnnMode::from_env();
        Self {
            mode: mode.clone().unwrap_or_default(),
            // An invalid SGM_CUDNN_MODE fails every call of the device with its error.
            gpu: mode.and_then(|_| Gpu::new(device_id.index_id as usize)),
            plans: HashMap::new(),
        }
    }

    fn utilities(&self) -> ServerUtilitiesHandle {
        Arc::new(())
    }
}

/// Pointers of CubeCL buffers pinned for one bracket (see [`ordered`]).
struct Pinned {
    client: ComputeClient<CudaRuntime>,
    keep: Vec<Box<dyn Any>>,
}

impl Pinned {
    fn ptr(&mut self, handle: &Handle) -> Result<u64, CudnnError> {
        let res = self
            .client
            .get_resource(handle.clone())
            .map_err(|e| CudnnError::Cubecl(format!("get_resource: {e:?}")))?;
        let ptr = res.resource().ptr;
        self.keep.push(Box::new(res));
        Ok(ptr)
    }
}

/// Runs `enqueue` (cuDNN calls on `gpu.stream`) between CubeCL's work before and after it: the
/// five steps of the module docs, in this one function. `handles` are every buffer cuDNN
/// touches; `enqueue` gets their device pointers in the same order.
fn ordered<T>(
    gpu: &Gpu,
    client: &ComputeClient<CudaRuntime>,
    handles: &[Option<&Handle>],
    enqueue: impl FnOnce(&[u64]) -> Result<T, CudnnError>,
) -> Result<T, CudnnError> {
    gpu.bind()?;
    let mut pinned = Pinned {
        client: client.clone(),
        keep: Vec::with_capacity(handles.len()),
    };
    // 2. raw pointers, allocations pinned (a missing buffer is the null pointer: no workspace).
    let ptrs = handles
        .iter()
        .map(|h| h.map_or(Ok(0), |h| pinned.ptr(h)))
        .collect::<Result<Vec<u64>, _>>()?;
    // 3. everything CubeCL enqueued before has finished.
    block_on(client.sync()).map_err(|e| CudnnError::Cubecl(format!("sync: {e:?}")))?;
    // 4. cuDNN on its own stream.
    let out = enqueue(&ptrs);
    // 5. cuDNN has finished before CubeCL touches these buffers again (also after an error:
    //    calls enqueued before it may still be running).
    let synced = gpu.stream.synchronize().map_err(|e| CudnnError::Driver {
        call: "cuStreamSynchronize",
        error: format!("{e:?}"),
    });
    drop(pinned);
    let out = out?;
    synced?;
    Ok(out)
}

/// A scratch buffer from CubeCL's pool (`None` for zero bytes).
fn workspace(client: &ComputeClient<CudaRuntime>, bytes: usize) -> Option<Handle> {
    (bytes > 0).then(|| client.empty(bytes))
}

fn check_f32(tensors: &[&Tensor]) {
    debug_assert!(
        tensors
            .iter()
            .all(|t| t.dtype == DType::F32 && t.is_contiguous())
    );
}

impl CudnnService {
    pub(crate) fn set_mode(&mut self, mode: CudnnMode) {
        self.mode = mode;
    }

    pub(crate) fn mode(&self) -> CudnnMode {
        self.mode
    }

    /// Whether the handle could be created (the library's version on success).
    pub(crate) fn status(&self) -> Result<usize, CudnnError> {
        match &self.gpu {
            Ok(_) => Ok(result::get_version()),
            Err(e) => Err(e.clone()),
        }
    }

    /// The handle and the plan of `key` in the current mode (created on first use).
    fn parts(&mut self, key: ConvKey) -> Result<(&Gpu, &mut Plan), CudnnError> {
        let gpu = self.gpu.as_ref().map_err(Clone::clone)?;
        gpu.bind()?;
        let mode = self.mode;
        let plan = match self.plans.entry((key, mode)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Plan::new(key, mode)?),
        };
        Ok((gpu, plan))
    }

    /// `y = conv(x, w) + b` into the preallocated contiguous `y`.
    pub(crate) fn forward(
        &mut self,
        key: ConvKey,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        y: &Tensor,
    ) -> Result<(), CudnnError> {
        check_f32(&[x, w, y]);
        let client = x.client.clone();
        let (gpu, plan) = self.parts(key)?;
        if plan.fwd.is_none() {
            let ws = workspace(&client, FIND_WORKSPACE_BYTES);
            let handles = [
                Some(&x.handle),
                Some(&w.handle),
                Some(&y.handle),
                ws.as_ref(),
            ];
            ordered(gpu, &client, &handles, |p| {
                let ptrs = Ptrs {
                    x: p[0],
                    w: p[1],
                    y: p[2],
                    workspace: p[3],
                    workspace_bytes: FIND_WORKSPACE_BYTES,
                };
                // SAFETY: pinned, idle buffers of the plan's sizes (ordered's steps 2–3).
                unsafe { plan.find_forward(gpu.handle, ptrs) }
            })?;
        }
        let bytes = plan.fwd.map_or(0, |c| c.workspace);
        let ws = workspace(&client, bytes);
        let handles = [
            Some(&x.handle),
            Some(&w.handle),
            Some(&y.handle),
            ws.as_ref(),
            b.map(|b| &b.handle),
        ];
        ordered(gpu, &client, &handles, |p| {
            let ptrs = Ptrs {
                x: p[0],
                w: p[1],
                y: p[2],
                workspace: p[3],
                workspace_bytes: bytes,
            };
            // SAFETY: as above; the algorithm was found for this plan.
            unsafe { plan.forward(gpu.handle, ptrs, b.map(|_| p[4])) }
        })
    }

    /// `dx` and/or `dw` (preallocated, contiguous) from `dy`, in one bracket.
    pub(crate) fn backward(
        &mut self,
        key: ConvKey,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        dx: Option<&Tensor>,
        dw: Option<&Tensor>,
    ) -> Result<(), CudnnError> {
        check_f32(&[x, w, dy]);
        let client = x.client.clone();
        let (gpu, plan) = self.parts(key)?;
        let find_data = dx.is_some() && plan.data.is_none();
        let find_filter = dw.is_some() && plan.filter.is_none();
        // [x, w, dy, workspace, dx, dw]: the order of the pointers below.
        let handles = |ws: Option<&'_ Handle>| -> [Option<Handle>; 6] {
            [
                Some(x.handle.clone()),
                Some(w.handle.clone()),
                Some(dy.handle.clone()),
                ws.cloned(),
                dx.map(|t| t.handle.clone()),
                dw.map(|t| t.handle.clone()),
            ]
        };
        if find_data || find_filter {
            let ws = workspace(&client, FIND_WORKSPACE_BYTES);
            let hs = handles(ws.as_ref());
            let refs: Vec<Option<&Handle>> = hs.iter().map(Option::as_ref).collect();
            ordered(gpu, &client, &refs, |p| {
                let ptrs = Ptrs {
                    x: p[0],
                    w: p[1],
                    y: p[2],
                    workspace: p[3],
                    workspace_bytes: FIND_WORKSPACE_BYTES,
                };
                // SAFETY: pinned, idle buffers of the plan's sizes (ordered's steps 2–3).
                unsafe {
                    if find_data {
                        plan.find_data(gpu.handle, ptrs, p[4])?;
                    }
                    if find_filter {
                        plan.find_filter(gpu.handle, ptrs, p[5])?;
                    }
                }
                Ok(())
            })?;
        }
        // One workspace serves both launches: they run one after the other on one stream.
        let data_ws = dx.and(plan.data).map_or(0, |c| c.workspace);
        let filter_ws = dw.and(plan.filter).map_or(0, |c| c.workspace);
        let bytes = data_ws.max(filter_ws);
        let ws = workspace(&client, bytes);
        let hs = handles(ws.as_ref());
        let refs: Vec<Option<&Handle>> = hs.iter().map(Option::as_ref).collect();
        ordered(gpu, &client, &refs, |p| {
            let ptrs = Ptrs {
                x: p[0],
                w: p[1],
                y: p[2],
                workspace: p[3],
                workspace_bytes: bytes,
            };
            // SAFETY: as above; the algorithms were found for this plan.
            unsafe {
                if dx.is_some() {
                    plan.backward_data(gpu.handle, ptrs, p[4])?;
                }
                if dw.is_some() {
                    plan.backward_filter(gpu.handle, ptrs, p[5])?;
                }
            }
            Ok(())
        })
    }
}
