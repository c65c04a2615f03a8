//! Convolution kernels on contiguous f32 NCHW slices (groups = 1), generic over the
//! accumulation type [`Acc`]: `f32` ([`Precision::Fast`](crate::Precision::Fast), the default) or
//! `f64` ([`Precision::Exact`](crate::Precision::Exact)).
//!
//! With `f64` every product and sum runs in f64: each sample, the weights and the output gradient
//! are widened once, the GEMMs are f64 GEMMs, and results are rounded to f32 once at the end, so
//! an output is the correctly rounded value of its exact sum up to f64 error (≈ 1e-16 relative
//! instead of f32's ≈ 1e-7·√K), independent of summation order. Reason: the likelihood's RK45 solve
//! of the probability-flow ODE amplifies float32 summation-order differences into different
//! accepted steps, and an f32 GEMM whose order differs from PyTorch's moved two likelihood cases
//! out of their allowance (bpd 1.1e-2 vs ±1e-2) where evaluating the network more accurately
//! moves bpd by ≤ 4.6e-3 (fixtures README §3.1); f64 accumulation costs ≈ 2× GEMM time
//! (docs/benchmarks.md). With `f32` the inputs are read in place and the GEMMs write the output
//! directly (no widening copies), as PyTorch's CPU convolution sums in f32.
//!
//! Per sample, with `P = H_out·W_out` and `K = C_in·kH·kW`, tiled over output rows so the
//! im2col buffer stays ≤ `COL_BUDGET` values:
//! * forward:      `y_n[C_out, P] = W[C_out, K] · col(x_n)[K, P]`
//! * input grad:   `dcol[K, P] = Wᵀ · dy_n[C_out, P]`, scattered back by col2im
//! * weight grad:  `dW[C_out, K] += dy_n[C_out, P] · col(x_n)ᵀ` (transposed through strides)
//!
//! A 1×1, stride-1, unpadded conv needs no im2col (`col(x_n) = x_n` `[C_in, H·W]`). A
//! single-channel filter (`C_in = C_out = 1`: the FIR resampling convs, run on `[N·C, 1, H, W]`)
//! is a direct loop over its taps (one scaled row add per tap and output row), since a GEMM
//! with one output row would only add im2col traffic. Samples are
//! split into one contiguous chunk per rayon thread, each with its own im2col buffer and
//! weight-gradient accumulator, and every GEMM then runs single-threaded; with fewer samples
//! than threads the GEMMs themselves are parallel.

use burn::tensor::ops::ConvOptions;
use gemm::Parallelism;
use rayon::prelude::*;

/// An accumulation type of the kernels: `f32` (inputs read in place, outputs written directly)
/// or `f64` (inputs widened once per sample, outputs rounded once).
pub trait Acc:
    Copy + Send + Sync + 'static + std::ops::AddAssign + std::ops::Mul<Output = Self> + std::iter::Sum
{
    /// Zero.
    const ZERO: Self;
    /// One (the GEMM's scale factors).
    const ONE: Self;
    /// `v` as `Self` values: `v` itself for f32, widened into `buf` for f64.
    fn view<'a>(v: &'a [f32], buf: &'a mut Vec<Self>) -> &'a [Self];
    /// A `Self` buffer for the values of `dst`: `dst` itself for f32, `buf` (resized) for f64;
    /// [`Acc::store`] then moves them into `dst`.
    fn out<'a>(dst: &'a mut [f32], buf: &'a mut Vec<Self>) -> &'a mut [Self];
    /// Rounds `buf` (filled through [`Acc::out`]) into `dst`; nothing for f32.
    fn store(dst: &mut [f32], buf: &[Self]);
    /// This thread's [`Scratch`] buffers of this type.
    fn scratch_slot() -> &'static std::thread::LocalKey<std::cell::Cell<Scratch<Self>>>;
    /// `matrixmultiply`'s single-threaded GEMM for `Self` (`sgemm` / `dgemm`):
    /// `(m, k, n, α, a, rsa, csa, b, rsb, csb, β, c, rsc, csc)`, `c = α·a·b + β·c`.
    const GEMM: Gemm<Self>;
}

/// Work buffers of one kernel call on one thread (im2col / im2row tiles, the per-tap operands,
/// widened samples), kept per thread between calls: a buffer allocated per call was zero-filled
/// in full every time (the im2col tile alone is up to `COL_BUDGET` values), a reused one only
/// where it grows. Taken out of the thread's slot for a call and put back after it, so a nested
/// call on the same thread simply starts with empty buffers.
pub struct Scratch<T> {
    col: Vec<T>,
    rows: Vec<T>,
    xq: Vec<T>,
    dyq: Vec<T>,
    x: Vec<T>,
    dy: Vec<T>,
    out: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Self {
            col: Vec::new(),
            rows: Vec::new(),
            xq: Vec::new(),
            dyq: Vec::new(),
            x: Vec::new(),
            dy: Vec::new(),
            out: Vec::new(),
        }
    }
}

impl<T: Acc> Scratch<T> {
    fn take() -> Self {
        T::scratch_slot().with(std::cell::Cell::take)
    }

    fn put_back(self) {
        T::scratch_slot().with(|slot| slot.set(self));
    }
}

/// The signature of `matrixmultiply::sgemm` / `dgemm`.
pub type Gemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

impl Acc for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn view<'a>(v: &'a [f32], _: &'a mut Vec<Self>) -> &'a [Self] {
        v
    }
    fn out<'a>(dst: &'a mut [f32], _: &'a mut Vec<Self>) -> &'a mut [Self] {
        dst
    }
    fn store(_: &mut [f32], _: &[Self]) {}

    fn scratch_slot() -> &'static std::thread::LocalKey<std::cell::Cell<Scratch<Self>>> {
        thread_local!(static SLOT: std::cell::Cell<Scratch<f32>> = std::cell::Cell::default());
        &SLOT
    }
    const GEMM: Gemm<Self> = matrixmultiply::sgemm;
}

impl Acc for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn view<'a>(v: &'a [f32], buf: &'a mut Vec<Self>) -> &'a [Self] {
        buf.clear();
        buf.extend(v.iter().map(|&a| f64::from(a)));
        buf
    }
    fn out<'a>(dst: &'a mut [f32], buf: &'a mut Vec<Self>) -> &'a mut [Self] {
        buf.resize(dst.len(), 0.0);
        buf
    }
    fn store(dst: &mut [f32], buf: &[Self]) {
        // round to nearest, once
        dst.iter_mut().zip(buf).for_each(|(d, &a)| *d = a as f32);
    }
    fn scratch_slot() -> &'static std::thread::LocalKey<std::cell::Cell<Scratch<Self>>> {
        thread_local!(static SLOT: std::cell::Cell<Scratch<f64>> = std::cell::Cell::default());
        &SLOT
    }
    const GEMM: Gemm<Self> = matrixmultiply::dgemm;
}

/// Largest im2col tile, in elements.
const COL_BUDGET: usize = 1 << 20;

/// GEMMs smaller than this (m·n·k) never use gemm's own threads.
const GEMM_PARALLEL_MIN: usize = 1 << 21;

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height, width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height, width.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (rows, cols).
    pub stride: [usize; 2],
    /// Zero padding (rows, cols), both sides.
    pub pad: [usize; 2],
    /// Dilation (rows, cols).
    pub dil: [usize; 2],
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

impl Geometry {
    /// Geometry of `x` `[N, C, H, W]` ⋆ `w` `[O, C, kH, kW]`; `None` for grouped convolutions or an
    /// empty output (callers then use Burn's kernel, which reports the error).
    pub fn new(x: [usize; 4], w: [usize; 4], o: &ConvOptions<2>) -> Option<Self> {
        if o.groups != 1 || x[1] != w[1] {
            return None;
        }
        let out = |i: usize| {
            let span = o.dilation[i] * (w[2 + i] - 1) + 1;
            (x[2 + i] + 2 * o.padding[i])
                .checked_sub(span)
                .map(|v| v / o.stride[i] + 1)
        };
        let (ho, wo) = (out(0)?, out(1)?);
        let g = Self {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            o: w[0],
            kh: w[2],
            kw: w[3],
            stride: o.stride,
            pad: o.padding,
            dil: o.dilation,
            ho,
            wo,
        };
        (g.n * g.c * g.o * g.ho * g.wo > 0).then_some(g)
    }

    /// Rows of the im2col matrix, `C·kH·kW`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output pixels per channel, `H_out·W_out`.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }

    fn x_len(&self) -> usize {
        self.c * self.h * self.w
    }

    fn y_len(&self) -> usize {
        self.o * self.p()
    }

    /// 1×1, stride 1, no padding: the input is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    /// Stride 1 and dilation 1: every kernel tap reads the (padded) input at a fixed offset, so
    /// the weight gradient is one product per tap on shifted views ([`TapShift`]).
    fn unit_steps(&self) -> bool {
        self.stride == [1, 1] && self.dil == [1, 1]
    }

    /// One input and one output channel (FIR filtering of `[N·C, 1, H, W]`).
    fn single_channel(&self) -> bool {
        self.c == 1 && self.o == 1
    }

    /// Output-row tiles `[y0, y1)` whose im2col block fits [`COL_BUDGET`].
    fn tiles(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let rows = (COL_BUDGET / (self.k() * self.wo)).clamp(1, self.ho);
        let ho = self.ho;
        (0..ho)
            .step_by(rows)
            .map(move |y0| (y0, (y0 + rows).min(ho)))
    }
}

/// A strided matrix view; the constructor checks that every element lies inside `data`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(rows > 0 && cols > 0 && (rows - 1) * rs + (cols - 1) * cs < data.len());
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// The transpose (a view, no copy).
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// `dst[rows × cols]` (row stride `rs`, unit column stride) `= (accumulate ? dst : 0) + a · b`.
/// Single-threaded products run on `matrixmultiply` (its AVX-512 / FMA kernels are ≈ 1.3× faster
/// than `gemm`'s on these shapes, docs/benchmarks.md); products split across threads
/// (`par` ≠ `None`, a batch smaller than the pool) on `gemm`, which has its own thread split.
fn gemm_into<T: Acc>(
    dst: &mut [T],
    rs: usize,
    accumulate: bool,
    a: Mat<T>,
    b: Mat<T>,
    par: Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && (m - 1) * rs + n <= dst.len());
    if matches!(par, Parallelism::None) {
        let beta = if accumulate { T::ONE } else { T::ZERO };
        let (ap, bp, cp) = (a.data.as_ptr(), b.data.as_ptr(), dst.as_mut_ptr());
        let (rsa, csa, rsb, csb) = (a.rs as isize, a.cs as isize, b.rs as isize, b.cs as isize);
        // SAFETY: as below.
        unsafe {
            (T::GEMM)(
                m,
                k,
                n,
                T::ONE,
                ap,
                rsa,
                csa,
                bp,
                rsb,
                csb,
                beta,
                cp,
                rs as isize,
                1,
            )
        };
        return;
    }
    // SAFETY: the three views were bounds-checked above and in `Mat::new`; `dst` is borrowed
    // mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// `dst = srcᵀ`: `src` `[rows, cols]` (row stride `rs`) into `dst` `[cols, rows]`, in 16×16
/// blocks.
fn transpose<T: Acc>(src: &[T], rows: usize, cols: usize, rs: usize, dst: &mut [T]) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            for c in c0..(c0 + B).min(cols) {
                let d = &mut dst[c * rows + r0..c * rows + r1];
                for (r, v) in (r0..r1).zip(d) {
                    *v = src[r * rs + c];
                }
            }
        }
    }
}

/// Output indices `[o0, o1)` whose input index `o·s + off` lies in `[0, len)`.
fn valid_range(off: isize, s: usize, len: usize, out: usize) -> (usize, usize) {
    let s = s as isize;
    let o0 = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let last = len as isize - 1 - off;
    let o1 = if last < 0 { 0 } else { last / s + 1 };
    let o1 = (o1 as usize).min(out);
    ((o0 as usize).min(o1), o1)
}

/// Calls `f(row_of_col, oy_offset_in_tile, input_row, ox0, ox1, x_off)` for every non-empty
/// (kernel tap, output row) pair of rows `[y0, y1)`: output pixels `ox ∈ [ox0, ox1)` of that row
/// read input column `ox·s + x_off` of input row `input_row` (channel-major index).
fn for_each_tap(
    g: &Geometry,
    y0: usize,
    y1: usize,
    mut f: impl FnMut(usize, usize, Option<usize>, usize, usize, isize),
) {
    for c in 0..g.c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let x_off = (kj * g.dil[1]) as isize - g.pad[1] as isize;
                let (ox0, ox1) = valid_range(x_off, g.stride[1], g.w, g.wo);
                for (r, oy) in (y0..y1).enumerate() {
                    let iy = (oy * g.stride[0] + ki * g.dil[0]) as isize - g.pad[0] as isize;
                    let inside = iy >= 0 && (iy as usize) < g.h;
                    let input_row = inside.then(|| c * g.h + iy as usize);
                    f(row, r, input_row, ox0, ox1, x_off);
                }
            }
        }
    }
}

/// im2col of output rows `[y0, y1)` of one sample `x` `[C, H, W]` into `col` `[K, (y1−y0)·W_out]`.
fn im2col<T: Acc>(g: &Geometry, x: &[T], y0: usize, y1: usize, col: &mut [T]) {
    let l = (y1 - y0) * g.wo;
    let (w, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, y0, y1, |row, r, input_row, ox0, ox1, x_off| {
        let dst = &mut col[row * l + r * wo..row * l + (r + 1) * wo];
        let Some(iy) = input_row else {
            dst.fill(T::ZERO);
            return;
        };
        let src = &x[iy * w..(iy + 1) * w];
        dst[..ox0].fill(T::ZERO);
        dst[ox1..].fill(T::ZERO);
        if s == 1 {
            let s0 = (ox0 as isize + x_off) as usize;
            dst[ox0..ox1].copy_from_slice(&src[s0..s0 + (ox1 - ox0)]);
        } else {
            for (ox, d) in dst.iter_mut().enumerate().take(ox1).skip(ox0) {
                *d = src[((ox * s) as isize + x_off) as usize];
            }
        }
    });
}

/// im2row: the transpose of [`im2col`]'s tile, pixel-major — `rows` `[(y1−y0)·W_out, K]`, one
/// patch per output pixel (the right-hand side of the weight gradient's product, read row by
/// row when the GEMM packs it). Filled one output row at a time (`W_out·K` values, in L2).
fn im2row<T: Acc>(g: &Geometry, x: &[T], y0: usize, y1: usize, rows: &mut [T]) {
    let (k, wo, s) = (g.k(), g.wo, g.stride[1]);
    for (r, oy) in (y0..y1).enumerate() {
        let block = &mut rows[r * wo * k..(r + 1) * wo * k]; // [W_out, K]
        for c in 0..g.c {
            for ki in 0..g.kh {
                let iy = (oy * g.stride[0] + ki * g.dil[0]) as isize - g.pad[0] as isize;
                let src = (iy >= 0 && (iy as usize) < g.h)
                    .then(|| &x[(c * g.h + iy as usize) * g.w..(c * g.h + iy as usize + 1) * g.w]);
                let tap0 = (c * g.kh + ki) * g.kw;
                for kj in 0..g.kw {
                    let x_off = (kj * g.dil[1]) as isize - g.pad[1] as isize;
                    let (ox0, ox1) = match src {
                        Some(_) => valid_range(x_off, s, g.w, wo),
                        None => (0, 0),
                    };
                    let mut at = tap0 + kj;
                    for ox in 0..wo {
                        block[at] = match src {
                            Some(src) if (ox0..ox1).contains(&ox) => {
                                src[((ox * s) as isize + x_off) as usize]
                            }
                            _ => T::ZERO,
                        };
                        at += k;
                    }
                }
            }
        }
    }
}

/// col2im: adds `col` `[K, (y1−y0)·W_out]` back onto the sample gradient `dx` `[C, H, W]`.
fn col2im<T: Acc>(g: &Geometry, col: &[T], y0: usize, y1: usize, dx: &mut [T]) {
    let l = (y1 - y0) * g.wo;
    let (w, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, y0, y1, |row, r, input_row, ox0, ox1, x_off| {
        let Some(iy) = input_row else { return };
        let src = &col[row * l + r * wo..row * l + (r + 1) * wo];
        let dst = &mut dx[iy * w..(iy + 1) * w];
        if s == 1 {
            let d0 = (ox0 as isize + x_off) as usize;
            for (d, v) in dst[d0..d0 + (ox1 - ox0)].iter_mut().zip(&src[ox0..ox1]) {
                *d += *v;
            }
        } else {
            for (ox, v) in src.iter().enumerate().take(ox1).skip(ox0) {
                dst[((ox * s) as isize + x_off) as usize] += *v;
            }
        }
    });
}

/// Direct single-channel filter, one sample: `y` `[H_out, W_out]` (zeroed) `+= w ⋆ x` `[H, W]`.
fn filter_forward<T: Acc>(g: &Geometry, x: &[T], w: &[T], y: &mut [T]) {
    let (wi, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, 0, g.ho, |tap, r, input_row, ox0, ox1, x_off| {
        let Some(iy) = input_row else { return };
        let (wv, src) = (w[tap], &x[iy * wi..(iy + 1) * wi]);
        let dst = &mut y[r * wo..(r + 1) * wo];
        if s == 1 {
            let s0 = (ox0 as isize + x_off) as usize;
            for (d, v) in dst[ox0..ox1].iter_mut().zip(&src[s0..]) {
                *d += wv * *v;
            }
        } else {
            for (ox, d) in dst.iter_mut().enumerate().take(ox1).skip(ox0) {
                *d += wv * src[((ox * s) as isize + x_off) as usize];
            }
        }
    });
}

/// Direct single-channel filter gradients, one sample: `dx += wᵀ ⋆ dy`, `dw += dy ⋆ x`.
fn filter_backward<T: Acc>(
    g: &Geometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    mut dx: Option<&mut [T]>,
    mut dw: Option<&mut [T]>,
) {
    let (wi, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, 0, g.ho, |tap, r, input_row, ox0, ox1, x_off| {
        let Some(iy) = input_row else { return };
        let grow = &dy[r * wo..(r + 1) * wo];
        let at = |ox: usize| iy * wi + ((ox * s) as isize + x_off) as usize;
        if let Some(dx) = dx.as_deref_mut() {
            for (ox, gv) in grow.iter().enumerate().take(ox1).skip(ox0) {
                dx[at(ox)] += w[tap] * *gv;
            }
        }
        if let Some(dw) = dw.as_deref_mut() {
            let dot: T = (ox0..ox1).map(|ox| grow[ox] * x[at(ox)]).sum();
            dw[tap] += dot;
        }
    });
}

/// The weight gradient of a stride-1, dilation-1 convolution as one GEMM per kernel tap, with no
/// im2col: on the zero-padded input grid (`H_p × W_p`) the output pixel `q = oy·W_p + ox` of tap
/// `(ki, kj)` reads padded pixel `q + ki·W_p + kj`, so with
/// * `xq` `[H_p·W_p + kW, C]` — the padded input, pixel-major (its transpose), and
/// * `dyq` `[H_out·W_p, O]` — the output gradient on the padded-width grid (zero where
///   `ox ≥ W_out`), pixel-major,
///
/// `dW[:, :, ki, kj]` `[O, C]` `+= dyqᵀ · xq[q0 + ki·W_p + kj ..][.. H_out·W_p]`. Both operands
/// are read in the layout the GEMM packs fastest; the transposes cost `C·H_p·W_p + O·H_out·W_p`
/// copies per sample instead of im2row's `K·P`. The accumulator is tap-major `[kH·kW, O, C]`
/// ([`TapShift::to_oihw`]).
struct TapShift {
    wp: usize,
    q: usize,
}

impl TapShift {
    fn new(g: &Geometry) -> Self {
        let wp = g.w + 2 * g.pad[1];
        Self { wp, q: g.ho * wp }
    }

    /// Rows of `xq`: the padded grid plus the last tap's overhang.
    fn xq_rows(&self, g: &Geometry) -> usize {
        (g.h + 2 * g.pad[0]) * self.wp + g.kw
    }

    /// Fills `xq` `[rows, C]` from one sample `x` `[C, H, W]`.
    fn fill_xq<T: Acc>(&self, g: &Geometry, x: &[T], xq: &mut Vec<T>) {
        xq.clear();
        xq.resize(self.xq_rows(g) * g.c, T::ZERO);
        for c in 0..g.c {
            for iy in 0..g.h {
                let src = &x[(c * g.h + iy) * g.w..(c * g.h + iy + 1) * g.w];
                let row0 = (iy + g.pad[0]) * self.wp + g.pad[1];
                for (ix, &v) in src.iter().enumerate() {
                    xq[(row0 + ix) * g.c + c] = v;
                }
            }
        }
    }

    /// Fills `dyq` `[H_out·W_p, O]` from one sample's `dy` `[O, H_out, W_out]`.
    fn fill_dyq<T: Acc>(&self, g: &Geometry, dy: &[T], dyq: &mut Vec<T>) {
        dyq.clear();
        dyq.resize(self.q * g.o, T::ZERO);
        for o in 0..g.o {
            for oy in 0..g.ho {
                let src = &dy[(o * g.ho + oy) * g.wo..(o * g.ho + oy + 1) * g.wo];
                for (ox, &v) in src.iter().enumerate() {
                    dyq[(oy * self.wp + ox) * g.o + o] = v;
                }
            }
        }
    }

    /// `acc` `[kH·kW, O, C]` `+=` this sample's per-tap products.
    fn accumulate<T: Acc>(&self, g: &Geometry, xq: &[T], dyq: &[T], acc: &mut [T]) {
        let dya = Mat::new(dyq, g.o, self.q, 1, g.o); // dyqᵀ [O, Q]
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let tap = ki * g.kw + kj;
                let off = ki * self.wp + kj;
                let xb = Mat::new(&xq[off * g.c..], self.q, g.c, g.c, 1); // [Q, C]
                let dst = &mut acc[tap * g.o * g.c..(tap + 1) * g.o * g.c]; // [O, C]
                gemm_into(dst, g.c, true, dya, xb, Parallelism::None);
            }
        }
    }

    /// `[kH·kW, O, C]` → `[O, C, kH, kW]`.
    fn to_oihw<T: Acc>(g: &Geometry, acc: &[T]) -> Vec<T> {
        let taps = g.kh * g.kw;
        let mut out = vec![T::ZERO; acc.len()];
        for (tap, block) in acc.chunks(g.o * g.c).enumerate() {
            for (oc, &v) in block.iter().enumerate() {
                out[oc * taps + tap] = v;
            }
        }
        out
    }
}

/// Threads to split the batch over, and the GEMM parallelism inside each chunk.
fn plan(g: &Geometry) -> (usize, Parallelism) {
    let threads = rayon::current_num_threads().max(1);
    if g.n >= threads || threads == 1 {
        (threads.min(g.n), Parallelism::None)
    } else if g.o * g.k() * g.p() >= GEMM_PARALLEL_MIN {
        (1, Parallelism::Rayon(threads))
    } else {
        (1, Parallelism::None)
    }
}

/// Runs `f(first_sample, samples)` on contiguous sample chunks, one per planned thread.
fn chunks(g: &Geometry, parts: usize) -> Vec<(usize, usize)> {
    let per = g.n.div_ceil(parts);
    (0..g.n)
        .step_by(per)
        .map(|s| (s, per.min(g.n - s)))
        .collect()
}

/// Forward convolution: `x` `[N, C, H, W]`, `w` `[O, C, kH, kW]`, `bias` `[O]` → `[N, O, H_out, W_out]`,
/// accumulated in `T`.
pub fn forward<T: Acc>(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (parts, par) = plan(g);
    let (xl, yl, p, k) = (g.x_len(), g.y_len(), g.p(), g.k());
    let mut y = vec![0f32; g.n * yl];
    let (mut wbuf, mut bbuf) = (Vec::new(), Vec::new());
    let w = T::view(w, &mut wbuf);
    let bias = bias.map(|b| T::view(b, &mut bbuf));
    // W [O, K] as a column-major view of its transpose (the layout the GEMM packs fastest)
    let mut wt = vec![T::ZERO; k * g.o];
    transpose(w, g.o, k, k, &mut wt); // Wᵀ [K, O]
    let wm = Mat::new(&wt, g.o, k, 1, g.o); // [O, K]
    let spans = chunks(g, parts);
    let run = |(s0, ns): (usize, usize), y: &mut [f32]| {
        let mut scratch = Scratch::<T>::take();
        let Scratch {
            col,
            x: xbuf,
            out: ybuf,
            ..
        } = &mut scratch;
        for i in 0..ns {
            let xs = T::view(&x[(s0 + i) * xl..(s0 + i + 1) * xl], xbuf); // [C, H, W]
            let yd = &mut y[i * yl..(i + 1) * yl]; // [O, H_out, W_out]
            let ys = T::out(yd, ybuf);
            if g.single_channel() {
                ys.fill(T::ZERO);
                filter_forward(g, xs, w, ys);
            } else if g.pointwise() {
                gemm_into(ys, p, false, wm, Mat::new(xs, g.c, p, p, 1), par);
            } else {
                for (y0, y1) in g.tiles() {
                    let l = (y1 - y0) * g.wo;
                    col.resize(k * l, T::ZERO);
                    im2col(g, xs, y0, y1, col);
                    let cm = Mat::new(col, k, l, l, 1);
                    gemm_into(&mut ys[y0 * g.wo..], p, false, wm, cm, par);
                }
            }
            if let Some(b) = bias {
                for (plane, &bv) in ys.chunks_mut(p).zip(b) {
                    plane.iter_mut().for_each(|v| *v += bv);
                }
            }
            T::store(&mut y[i * yl..(i + 1) * yl], ybuf);
        }
        scratch.put_back();
    };
    let per = spans[0].1;
    y.par_chunks_mut(per * yl)
        .zip(spans.par_iter())
        .for_each(|(yc, &span)| run(span, yc));
    y
}

/// Both gradients from `dy` `[N, O, H_out, W_out]`: `(dx [N, C, H, W], dW [O, C, kH, kW])`, each
/// only when asked for, accumulated in `T`.
pub fn backward<T: Acc>(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    need_x: bool,
    need_w: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (parts, par) = plan(g);
    let (xl, yl, p, k) = (g.x_len(), g.y_len(), g.p(), g.k());
    let mut wbuf = Vec::new();
    let w = T::view(w, &mut wbuf);
    let wt = Mat::new(w, g.o, k, k, 1).t(); // Wᵀ [K, O]
    // the per-tap weight gradient (single-threaded GEMMs: only with the batch split)
    let shift = (g.unit_steps() && !g.single_channel() && matches!(par, Parallelism::None))
        .then(|| TapShift::new(g));
    let spans = chunks(g, parts);
    let per = spans[0].1;
    let mut dx = if need_x {
        vec![0f32; g.n * xl]
    } else {
        Vec::new()
    };
    // one chunk of samples: writes its samples' dx (into `dxc`) and returns its share of dW
    let run = |(s0, ns): (usize, usize), dxc: &mut [f32]| -> Vec<T> {
        let mut dw = if need_w {
            vec![T::ZERO; g.o * k]
        } else {
            Vec::new()
        };
        let mut scratch = Scratch::<T>::take();
        let Scratch {
            col,
            rows,
            xq: xqbuf,
            dyq: dytbuf,
            x: xbuf,
            dy: dybuf,
            out: dxbuf,
        } = &mut scratch;
        for i in 0..ns {
            let xs: &[T] = if need_w {
                T::view(&x[(s0 + i) * xl..(s0 + i + 1) * xl], xbuf) // [C, H, W]
            } else {
                &[]
            };
            let dys = T::view(&dy[(s0 + i) * yl..(s0 + i + 1) * yl], dybuf); // [O, H_out, W_out]
            let dym = Mat::new(dys, g.o, p, p, 1); // [O, P]
            let dxs: &mut [T] = if need_x {
                let d = T::out(&mut dxc[i * xl..(i + 1) * xl], dxbuf); // [C, H, W]
                d.fill(T::ZERO);
                d
            } else {
                &mut []
            };
            if g.single_channel() {
                let dxo = need_x.then_some(&mut *dxs);
                let dwo = need_w.then_some(dw.as_mut_slice());
                filter_backward(g, xs, w, dys, dxo, dwo);
            } else {
                if need_x && g.pointwise() {
                    gemm_into(dxs, p, false, wt, dym, par); // dx [C, P] = Wᵀ · dy
                }
                if let Some(shift) = shift.as_ref().filter(|_| need_w) {
                    shift.fill_xq(g, xs, xqbuf);
                    shift.fill_dyq(g, dys, dytbuf);
                    shift.accumulate(g, xqbuf, dytbuf, &mut dw);
                } else if need_w {
                    // dy as a column-major [O, P] view of its transpose (fast GEMM packing)
                    dytbuf.resize(p * g.o, T::ZERO);
                    transpose(dys, g.o, p, p, dytbuf); // dyᵀ [P, O]
                }
                for (y0, y1) in g.tiles() {
                    let l = (y1 - y0) * g.wo;
                    if need_w && shift.is_none() {
                        // dW [O, K] += dy[:, tile] · rows, rows = col(x)ᵀ [L, K]
                        rows.resize(l * k, T::ZERO);
                        im2row(g, xs, y0, y1, rows);
                        let dya = Mat::new(&dytbuf[y0 * g.wo * g.o..], g.o, l, 1, g.o); // [O, L]
                        gemm_into(&mut dw, k, true, dya, Mat::new(rows, l, k, k, 1), par);
                    }
                    if need_x && !g.pointwise() {
                        // dcol [K, L] = Wᵀ · dy[:, tile], scattered back by col2im
                        let dyt = Mat::new(&dys[y0 * g.wo..], g.o, l, p, 1); // [O, L]
                        col.resize(k * l, T::ZERO);
                        gemm_into(col, l, false, wt, dyt, par);
                        col2im(g, col, y0, y1, dxs);
                    }
                }
            }
            if need_x {
                T::store(&mut dxc[i * xl..(i + 1) * xl], dxbuf);
            }
        }
        scratch.put_back();
        dw
    };
    let sum = |mut a: Vec<T>, b: Vec<T>| {
        a.iter_mut().zip(&b).for_each(|(u, v)| *u += *v);
        a
    };
    let dw = if need_x {
        dx.par_chunks_mut(per * xl)
            .zip(spans.par_iter())
            .map(|(dxc, &span)| run(span, dxc))
            .reduce_with(sum)
    } else {
        spans
            .par_iter()
            .map(|&span| run(span, &mut []))
            .reduce_with(sum)
    };
    let dw = dw.filter(|_| need_w).map(|a| {
        let a = if shift.is_some() {
            TapShift::to_oihw(g, &a)
        } else {
            a
        };
        let mut v = vec![0f32; a.len()];
        let mut buf = Vec::new();
        T::out(&mut v, &mut buf).copy_from_slice(&a);
        T::store(&mut v, &buf);
        v
    });
    (need_x.then_some(dx), dw)
}

super::simd::multiversion! {
    /// `Σ v` of one plane in f64 lane-wise partial sums.
    fn plane_sum(v: &[f32]) -> f64 {
        crate::flex::simd::sum_f64(v)
    }
}

/// The bias gradient `[O]` of `dy` `[N, O, P]`: each plane summed in f64 (in place, one pass,
/// lane-wise and vectorised: `plane_sum`), planes in parallel, samples added in order.
pub fn bias_grad(dy: &[f32], n: usize, o: usize, p: usize) -> Vec<f32> {
    let sums: Vec<f64> = (0..o)
        .into_par_iter()
        .map(|c| {
            (0..n)
                .map(|s| plane_sum(&dy[(s * o + c) * p..(s * o + c + 1) * p]))
                .sum()
        })
        .collect();
    sums.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution and its two gradients in f64 for `dy`:
    /// `(y, dx, dW)`, each rounded to f32.
    fn naive(g: &Geometry, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f32>; 3] {
        let mut y = vec![0f64; g.n * g.o * g.p()];
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        for n in 0..g.n {
            for o in 0..g.o {
                for (oy, ox) in (0..g.ho).flat_map(|a| (0..g.wo).map(move |b| (a, b))) {
                    let yi = ((n * g.o + o) * g.ho + oy) * g.wo + ox;
                    for c in 0..g.c {
                        for (i, j) in (0..g.kh).flat_map(|a| (0..g.kw).map(move |b| (a, b))) {
                            let iy = (oy * g.stride[0] + i * g.dil[0]) as isize - g.pad[0] as isize;
                            let ix = (ox * g.stride[1] + j * g.dil[1]) as isize - g.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            let xi = ((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                            let wi = ((o * g.c + c) * g.kh + i) * g.kw + j;
                            y[yi] += f64::from(x[xi]) * f64::from(w[wi]);
                            dx[xi] += f64::from(w[wi]) * f64::from(dy[yi]);
                            dw[wi] += f64::from(dy[yi]) * f64::from(x[xi]);
                        }
                    }
                }
            }
        }
        [y, dx, dw].map(|v| v.into_iter().map(|a| a as f32).collect())
    }

    /// Deterministic values in [-1, 1) with a full f32 mantissa (no exact short sums).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Shapes covering every path: im2col / im2row (stride, dilation, padding, odd sizes), a
    /// long 3×3 sum (per-tap weight gradient), 1×1, the single-channel filter, and one sample
    /// with unequal padding and a non-square kernel (fewer samples than threads: GEMM-internal
    /// threads, im2row weight gradient).
    fn cases() -> [([usize; 4], [usize; 4], ConvOptions<2>); 5] {
        [
            (
                [3, 2, 7, 6],
                [4, 2, 3, 2],
                ConvOptions::new([2, 1], [1, 2], [2, 1], 1),
            ),
            (
                [2, 64, 5, 5],
                [8, 64, 3, 3],
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            ),
            (
                [2, 300, 4, 3],
                [5, 300, 1, 1],
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            ),
            (
                [3, 1, 9, 8],
                [1, 1, 4, 4],
                ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
            ),
            (
                [1, 5, 6, 7],
                [3, 5, 2, 3],
                ConvOptions::new([1, 1], [2, 1], [1, 1], 1),
            ),
        ]
    }

    /// Inputs of case `seed` and the f64-exact `(y, dx, dW)`.
    #[allow(clippy::type_complexity)]
    fn case_data(
        seed: usize,
        xs: [usize; 4],
        ws: [usize; 4],
        o: &ConvOptions<2>,
    ) -> (Geometry, [Vec<f32>; 3], [Vec<f32>; 3]) {
        let g = Geometry::new(xs, ws, o).unwrap();
        let x = values(xs.iter().product(), 3 * seed as u64 + 1);
        let w = values(ws.iter().product(), 3 * seed as u64 + 2);
        let dy = values(g.n * g.o * g.p(), 3 * seed as u64 + 3);
        let exact = naive(&g, &x, &w, &dy);
        (g, [x, w, dy], exact)
    }

    /// With f64 accumulation every output is its exact sum rounded once to f32 — for the
    /// general im2col path (stride, dilation, padding, odd sizes), the 1×1 path and the
    /// single-channel filter path; an f32 GEMM misses this on long sums.
    #[test]
    fn every_path_rounds_the_exact_sum_once() {
        for (seed, (xs, ws, o)) in cases().into_iter().enumerate() {
            let (g, [x, w, dy], [y, dx, dw]) = case_data(seed, xs, ws, &o);
            assert_eq!(forward::<f64>(&g, &x, &w, None), y, "forward {xs:?} {ws:?}");
            let (gx, gw) = backward::<f64>(&g, &x, &w, &dy, true, true);
            assert_eq!(gx.unwrap(), dx, "input gradient {xs:?} {ws:?}");
            assert_eq!(gw.unwrap(), dw, "weight gradient {xs:?} {ws:?}");
            let (gx, gw) = backward::<f64>(&g, &x, &w, &dy, true, false);
            assert!(gw.is_none());
            assert_eq!(gx.unwrap(), dx, "input gradient alone {xs:?} {ws:?}");
        }
    }

    /// With f32 accumulation every path stays within float32 summation error of the exact sums
    /// (bound: 1e-5 of the tensor's largest exact value — K ≤ 576 terms of magnitude ≤ 1), and
    /// a single gradient alone equals the same gradient computed with the other.
    #[test]
    fn f32_accumulation_is_within_float32_summation_error() {
        let close = |a: &[f32], b: &[f32], what: &str| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = a.iter().zip(b).fold(0f32, |m, (u, v)| m.max((u - v).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{what}: max error {err:e}, scale {scale}"
            );
        };
        for (seed, (xs, ws, o)) in cases().into_iter().enumerate() {
            let (g, [x, w, dy], [y, dx, dw]) = case_data(seed, xs, ws, &o);
            close(&forward::<f32>(&g, &x, &w, None), &y, "forward");
            let (gx, gw) = backward::<f32>(&g, &x, &w, &dy, true, true);
            let (gx, gw) = (gx.unwrap(), gw.unwrap());
            close(&gx, &dx, "input gradient");
            close(&gw, &dw, "weight gradient");
            let (gx_alone, _) = backward::<f32>(&g, &x, &w, &dy, true, false);
            assert_eq!(gx_alone.unwrap(), gx, "input gradient alone {xs:?}");
            let (_, gw_alone) = backward::<f32>(&g, &x, &w, &dy, false, true);
            assert_eq!(gw_alone.unwrap(), gw, "weight gradient alone {xs:?}");
        }
    }

    #[test]
    fn valid_range_covers_exactly_the_inside_pixels() {
        for off in -4isize..4 {
            for s in 1..4 {
                let (a, b) = valid_range(off, s, 5, 6);
                for o in 0..6 {
                    let i = (o * s) as isize + off;
                    assert_eq!((a..b).contains(&o), (0..5).contains(&i), "{off} {s} {o}");
                }
            }
        }
    }
}
