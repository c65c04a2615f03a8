//! Fused SiLU kernels on contiguous f32 slices, parallel over chunks: forward `x·σ(x)`,
//! backward `dy·σ(x)·(1 + x·(1 − σ(x)))` (σ recomputed from `x`), `σ(x) = 1/(1 + e^{−x})`.

use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// `x·σ(x)`.
pub fn forward(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yc, xc)| {
            for (o, &v) in yc.iter_mut().zip(xc) {
                *o = v * sigmoid(v);
            }
        });
    y
}

/// `dy·σ(x)·(1 + x·(1 − σ(x)))`.
pub fn backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(oc, (xc, dc))| {
            for ((o, &v), &d) in oc.iter_mut().zip(xc).zip(dc) {
                let s = sigmoid(v);
                *o = d * (s * (1.0 + v * (1.0 - s)));
            }
        });
    dx
}
