//! Convolution kernels on contiguous f32 NCHW slices (groups = 1), computed in f64.
//!
//! Every product and sum runs in f64 ([`Acc`]): each sample, the weights and the output gradient
//! are widened once, the GEMMs are f64 GEMMs, and results are rounded to f32 once at the end, so
//! an output is the correctly rounded value of its exact sum up to f64 error (≈ 1e-16 relative
//! instead of f32's ≈ 1e-7·√K). Reason: the likelihood's RK45 solve of the probability-flow ODE
//! amplifies float32 summation-order differences into different accepted steps, and an f32 GEMM
//! whose order differs from PyTorch's moved two likelihood cases out of their allowance (bpd
//! 1.1e-2 vs ±1e-2) where evaluating the network more accurately moves bpd by ≤ 4.6e-3
//! (fixtures README §3.1); f64 accumulation costs ≈ 2× GEMM time (docs/benchmarks.md).
//!
//! Per sample, with `P = H_out·W_out` and `K = C_in·kH·kW`, tiled over output rows so the
//! im2col buffer stays ≤ [`COL_BUDGET`] floats:
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

/// The accumulation type of every kernel.
pub type Acc = f64;

/// Largest im2col tile, in elements (8 MiB of [`Acc`]).
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
struct Mat<'a> {
    data: &'a [Acc],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [Acc], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
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
fn gemm_into(dst: &mut [Acc], rs: usize, accumulate: bool, a: Mat, b: Mat, par: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && (m - 1) * rs + n <= dst.len());
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
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
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
fn im2col(g: &Geometry, x: &[Acc], y0: usize, y1: usize, col: &mut [Acc]) {
    let l = (y1 - y0) * g.wo;
    let (w, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, y0, y1, |row, r, input_row, ox0, ox1, x_off| {
        let dst = &mut col[row * l + r * wo..row * l + (r + 1) * wo];
        let Some(iy) = input_row else {
            dst.fill(0.0);
            return;
        };
        let src = &x[iy * w..(iy + 1) * w];
        dst[..ox0].fill(0.0);
        dst[ox1..].fill(0.0);
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

/// col2im: adds `col` `[K, (y1−y0)·W_out]` back onto the sample gradient `dx` `[C, H, W]`.
fn col2im(g: &Geometry, col: &[Acc], y0: usize, y1: usize, dx: &mut [Acc]) {
    let l = (y1 - y0) * g.wo;
    let (w, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, y0, y1, |row, r, input_row, ox0, ox1, x_off| {
        let Some(iy) = input_row else { return };
        let src = &col[row * l + r * wo..row * l + (r + 1) * wo];
        let dst = &mut dx[iy * w..(iy + 1) * w];
        if s == 1 {
            let d0 = (ox0 as isize + x_off) as usize;
            for (d, v) in dst[d0..d0 + (ox1 - ox0)].iter_mut().zip(&src[ox0..ox1]) {
                *d += v;
            }
        } else {
            for (ox, v) in src.iter().enumerate().take(ox1).skip(ox0) {
                dst[((ox * s) as isize + x_off) as usize] += v;
            }
        }
    });
}

/// Direct single-channel filter, one sample: `y` `[H_out, W_out]` (zeroed) `+= w ⋆ x` `[H, W]`.
fn filter_forward(g: &Geometry, x: &[Acc], w: &[Acc], y: &mut [Acc]) {
    let (wi, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, 0, g.ho, |tap, r, input_row, ox0, ox1, x_off| {
        let Some(iy) = input_row else { return };
        let (wv, src) = (w[tap], &x[iy * wi..(iy + 1) * wi]);
        let dst = &mut y[r * wo..(r + 1) * wo];
        if s == 1 {
            let s0 = (ox0 as isize + x_off) as usize;
            for (d, v) in dst[ox0..ox1].iter_mut().zip(&src[s0..]) {
                *d += wv * v;
            }
        } else {
            for (ox, d) in dst.iter_mut().enumerate().take(ox1).skip(ox0) {
                *d += wv * src[((ox * s) as isize + x_off) as usize];
            }
        }
    });
}

/// Direct single-channel filter gradients, one sample: `dx += wᵀ ⋆ dy`, `dw += dy ⋆ x`.
fn filter_backward(
    g: &Geometry,
    x: &[Acc],
    w: &[Acc],
    dy: &[Acc],
    mut dx: Option<&mut [Acc]>,
    mut dw: Option<&mut [Acc]>,
) {
    let (wi, wo, s) = (g.w, g.wo, g.stride[1]);
    for_each_tap(g, 0, g.ho, |tap, r, input_row, ox0, ox1, x_off| {
        let Some(iy) = input_row else { return };
        let grow = &dy[r * wo..(r + 1) * wo];
        let at = |ox: usize| iy * wi + ((ox * s) as isize + x_off) as usize;
        if let Some(dx) = dx.as_deref_mut() {
            for (ox, gv) in grow.iter().enumerate().take(ox1).skip(ox0) {
                dx[at(ox)] += w[tap] * gv;
            }
        }
        if let Some(dw) = dw.as_deref_mut() {
            let dot: Acc = (ox0..ox1).map(|ox| grow[ox] * x[at(ox)]).sum();
            dw[tap] += dot;
        }
    });
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

/// `dst = v` widened to [`Acc`] (reusing `dst`'s allocation).
fn widen_into(dst: &mut Vec<Acc>, v: &[f32]) {
    dst.clear();
    dst.extend(v.iter().map(|&a| Acc::from(a)));
}

fn widen(v: &[f32]) -> Vec<Acc> {
    v.iter().map(|&a| Acc::from(a)).collect()
}

/// `dst = v` rounded to f32 (round to nearest).
fn narrow_into(dst: &mut [f32], v: &[Acc]) {
    dst.iter_mut().zip(v).for_each(|(d, &a)| *d = a as f32);
}

/// Forward convolution: `x` `[N, C, H, W]`, `w` `[O, C, kH, kW]`, `bias` `[O]` → `[N, O, H_out, W_out]`.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (parts, par) = plan(g);
    let (xl, yl, p, k) = (g.x_len(), g.y_len(), g.p(), g.k());
    let mut y = vec![0f32; g.n * yl];
    let (w, bias) = (widen(w), bias.map(widen));
    let wm = Mat::new(&w, g.o, k, k, 1); // [O, K]
    let spans = chunks(g, parts);
    let run = |(s0, ns): (usize, usize), y: &mut [f32]| {
        let (mut col, mut xs, mut ys) = (Vec::new(), Vec::new(), vec![0.0; yl]);
        for i in 0..ns {
            widen_into(&mut xs, &x[(s0 + i) * xl..(s0 + i + 1) * xl]); // [C, H, W]
            if g.single_channel() {
                ys.fill(0.0);
                filter_forward(g, &xs, &w, &mut ys);
            } else if g.pointwise() {
                gemm_into(&mut ys, p, false, wm, Mat::new(&xs, g.c, p, p, 1), par);
            } else {
                for (y0, y1) in g.tiles() {
                    let l = (y1 - y0) * g.wo;
                    col.resize(k * l, 0.0);
                    im2col(g, &xs, y0, y1, &mut col);
                    let cm = Mat::new(&col, k, l, l, 1);
                    gemm_into(&mut ys[y0 * g.wo..], p, false, wm, cm, par);
                }
            }
            if let Some(b) = &bias {
                for (plane, bv) in ys.chunks_mut(p).zip(b) {
                    plane.iter_mut().for_each(|v| *v += bv);
                }
            }
            narrow_into(&mut y[i * yl..(i + 1) * yl], &ys); // [O, H_out, W_out]
        }
    };
    let per = spans[0].1;
    y.par_chunks_mut(per * yl)
        .zip(spans.par_iter())
        .for_each(|(yc, &span)| run(span, yc));
    y
}

/// Both gradients from `dy` `[N, O, H_out, W_out]`: `(dx [N, C, H, W], dW [O, C, kH, kW])`, each
/// only when asked for.
pub fn backward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    need_x: bool,
    need_w: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (parts, par) = plan(g);
    let (xl, yl, p, k) = (g.x_len(), g.y_len(), g.p(), g.k());
    let w = widen(w);
    let wt = Mat::new(&w, g.o, k, k, 1).t(); // Wᵀ [K, O]
    let spans = chunks(g, parts);
    let per = spans[0].1;
    let mut dx = if need_x {
        vec![0f32; g.n * xl]
    } else {
        Vec::new()
    };
    // one chunk of samples: writes its samples' dx (into `dxc`) and returns its share of dW
    let run = |(s0, ns): (usize, usize), dxc: &mut [f32]| -> Vec<Acc> {
        let mut dw = if need_w {
            vec![0.0; g.o * k]
        } else {
            Vec::new()
        };
        let (mut col, mut xs, mut dys) = (Vec::new(), Vec::new(), Vec::new());
        let mut dxs = if need_x { vec![0.0; xl] } else { Vec::new() };
        for i in 0..ns {
            if need_w {
                widen_into(&mut xs, &x[(s0 + i) * xl..(s0 + i + 1) * xl]); // [C, H, W]
            }
            widen_into(&mut dys, &dy[(s0 + i) * yl..(s0 + i + 1) * yl]); // [O, H_out, W_out]
            let dym = Mat::new(&dys, g.o, p, p, 1); // [O, P]
            dxs.fill(0.0);
            if g.single_channel() {
                let dxo = need_x.then_some(dxs.as_mut_slice());
                let dwo = need_w.then_some(dw.as_mut_slice());
                filter_backward(g, &xs, &w, &dys, dxo, dwo);
            } else if g.pointwise() {
                if need_x {
                    gemm_into(&mut dxs, p, false, wt, dym, par);
                }
                if need_w {
                    let xt = Mat::new(&xs, g.c, p, p, 1).t(); // [P, C]
                    gemm_into(&mut dw, k, true, dym, xt, par);
                }
            } else {
                for (y0, y1) in g.tiles() {
                    let l = (y1 - y0) * g.wo;
                    let dyt = Mat::new(&dys[y0 * g.wo..], g.o, l, p, 1); // [O, L]
                    col.resize(k * l, 0.0);
                    if need_w {
                        im2col(g, &xs, y0, y1, &mut col);
                        let ct = Mat::new(&col, k, l, l, 1).t(); // [L, K]
                        gemm_into(&mut dw, k, true, dyt, ct, par);
                    }
                    if need_x {
                        gemm_into(&mut col, l, false, wt, dyt, par);
                        col2im(g, &col, y0, y1, &mut dxs);
                    }
                }
            }
            if need_x {
                narrow_into(&mut dxc[i * xl..(i + 1) * xl], &dxs); // [C, H, W]
            }
        }
        dw
    };
    let sum = |mut a: Vec<Acc>, b: Vec<Acc>| {
        a.iter_mut().zip(&b).for_each(|(u, v)| *u += v);
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
        let mut v = vec![0f32; a.len()];
        narrow_into(&mut v, &a);
        v
    });
    (need_x.then_some(dx), dw)
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

    /// With f64 accumulation every output is its exact sum rounded once to f32 — for the
    /// general im2col path (stride, dilation, padding, odd sizes), the 1×1 path and the
    /// single-channel filter path; an f32 GEMM misses this on long sums.
    #[test]
    fn every_path_rounds_the_exact_sum_once() {
        let cases = [
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
        ];
        for (seed, (xs, ws, o)) in cases.into_iter().enumerate() {
            let g = Geometry::new(xs, ws, &o).unwrap();
            let x = values(xs.iter().product(), 3 * seed as u64 + 1);
            let w = values(ws.iter().product(), 3 * seed as u64 + 2);
            let dy = values(g.n * g.o * g.p(), 3 * seed as u64 + 3);
            let [y, dx, dw] = naive(&g, &x, &w, &dy);
            assert_eq!(forward(&g, &x, &w, None), y, "forward {xs:?} {ws:?}");
            let (gx, gw) = backward(&g, &x, &w, &dy, true, true);
            assert_eq!(gx.unwrap(), dx, "input gradient {xs:?} {ws:?}");
            assert_eq!(gw.unwrap(), dw, "weight gradient {xs:?} {ws:?}");
            let (gx, gw) = backward(&g, &x, &w, &dy, true, false);
            assert!(gw.is_none());
            assert_eq!(gx.unwrap(), dx, "input gradient alone {xs:?} {ws:?}");
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
