//! The convolution shapes of the score networks and deterministic test values, shared by the
//! CPU test against Burn (`against_burn.rs`), the GPU test of cuDNN (`cudnn_gpu.rs`) and the
//! fused GroupNorm / SiLU test (`norm_and_act.rs`), and their one comparison rule.
#![allow(dead_code)]

/// One convolution of the networks: input `[N, C, H, W]`, weight `[O, C, k, k]`, stride, padding.
pub struct Case {
    pub name: &'static str,
    pub x: [usize; 4],
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

pub const fn case(
    name: &'static str,
    x: [usize; 4],
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Case {
    Case {
        name,
        x,
        o,
        k,
        stride,
        pad,
    }
}

/// Deterministic values in [−1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub const BODY: [Case; 5] = [
    case(
        "3x3 128→128 @32² (CIFAR-10 nf 128)",
        [2, 128, 32, 32],
        128,
        3,
        1,
        1,
    ),
    case(
        "3x3 128→256 @16² (width change)",
        [2, 128, 16, 16],
        256,
        3,
        1,
        1,
    ),
    case("3x3 256→256 @8²", [2, 256, 8, 8], 256, 3, 1, 1),
    case("3x3 256→256 @4²", [3, 256, 4, 4], 256, 3, 1, 1),
    case(
        "3x3 32→32 @32² batch 1 (GEMM-parallel path)",
        [1, 32, 32, 32],
        32,
        3,
        1,
        1,
    ),
];

pub const SKIP: [Case; 3] = [
    case(
        "1x1 128→256 @16² (Conv_2 shortcut)",
        [2, 128, 16, 16],
        256,
        1,
        1,
        0,
    ),
    case("1x1 256→128 @8²", [2, 256, 8, 8], 128, 1, 1, 0),
    case(
        "1x1 3→128 @32² (pyramid Combine)",
        [2, 3, 32, 32],
        128,
        1,
        1,
        0,
    ),
];

pub const STRIDE2: [Case; 3] = [
    // Downsample(with_conv, fir = False): pad (0, 1, 0, 1), then 3×3 stride 2, no padding
    case("3x3 s2 128→128 @33²", [2, 128, 33, 33], 128, 3, 2, 0),
    // FIR conv_downsample_2d: blur to 33², then 3×3 stride 2 valid, width change
    case(
        "3x3 s2 128→256 @33² (FIR Conv2d_0)",
        [2, 128, 33, 33],
        256,
        3,
        2,
        0,
    ),
    case("3x3 s2 256→256 @9²", [2, 256, 9, 9], 256, 3, 2, 0),
];

/// upfirdn2d: [N·C, 1, H', W'] ⋆ the 4×4 FIR kernel, stride 1 (upsample, blur) or 2 (down)
pub const FIR: [Case; 3] = [
    case(
        "FIR 4x4 s1 (upsample_2d, 16²→32²)",
        [2 * 128, 1, 35, 35],
        1,
        4,
        1,
        0,
    ),
    case(
        "FIR 4x4 s2 (downsample_2d, 32²→16²)",
        [2 * 128, 1, 34, 34],
        1,
        4,
        2,
        0,
    ),
    case(
        "FIR 4x4 s1 (conv_downsample_2d blur)",
        [2 * 64, 1, 36, 36],
        1,
        4,
        1,
        0,
    ),
];

pub const IN_OUT: [Case; 3] = [
    case("3x3 3→128 @32² (input conv)", [2, 3, 32, 32], 128, 3, 1, 1),
    case("3x3 128→3 @32² (output conv)", [2, 128, 32, 32], 3, 3, 1, 1),
    case(
        "3x3 1→128 @32² (grayscale input)",
        [2, 1, 32, 32],
        128,
        3,
        1,
        1,
    ),
];

/// 256² configs: nf 128, ch_mult (1, 1, 2, 2, 2, 2, 2); full-resolution layers at batch 1 on
/// a 64² crop (im2col is tiled over output rows there)
pub const HIRES: [Case; 5] = [
    case("3x3 3→128 @64² (input conv)", [1, 3, 64, 64], 128, 3, 1, 1),
    case(
        "3x3 128→128 @64² (tiled im2col)",
        [1, 128, 64, 64],
        128,
        3,
        1,
        1,
    ),
    case("3x3 128→3 @64² (output conv)", [1, 128, 64, 64], 3, 3, 1, 1),
    case("3x3 s2 128→128 @65²", [1, 128, 65, 65], 128, 3, 2, 0),
    case("1x1 128→256 @8²", [2, 128, 8, 8], 256, 1, 1, 0),
];

/// Every convolution shape of the networks (all the groups above).
pub fn all() -> impl Iterator<Item = &'static Case> {
    BODY.iter()
        .chain(&SKIP)
        .chain(&STRIDE2)
        .chain(&FIR)
        .chain(&IN_OUT)
        .chain(&HIRES)
}

/// Asserts `max |got − want| ≤ bound · max |want|` (scale-relative), naming the case and output.
pub fn assert_close(case: &str, what: &str, got: Vec<f32>, want: Vec<f32>, bound: f64) {
    assert_eq!(got.len(), want.len(), "{case} {what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    assert!(
        err <= bound * scale.max(1e-30),
        "{case} {what}: max |got − want| = {err:e} > {bound} · {scale:e}"
    );
}
