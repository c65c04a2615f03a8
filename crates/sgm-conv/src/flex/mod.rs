//! [`ConvBackend`] for `burn::backend::Flex`: float32, `groups = 1` convolutions run on
//! [`kernel`] (batch-parallel im2col + GEMM on the `gemm` crate, 1×1 convs as plain matrix
//! products, both gradients in one parallel pass over the batch, every sum accumulated in f64 and
//! rounded once to f32). Other dtypes and grouped convolutions use Burn's Flex kernels.

pub mod kernel;

use burn::tensor::TensorData;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, TensorMetadata};
use burn_flex::{Flex, FlexTensor};

use crate::{ConvBackend, ConvGrads, GradsNeeded, burn_conv2d_grads};
use kernel::Geometry;

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

/// The fast kernel's geometry when it applies (f32 everywhere, groups = 1).
fn fast_geometry(
    x: &FlexTensor,
    w: &FlexTensor,
    others: &[&FlexTensor],
    o: &ConvOptions<2>,
) -> Option<Geometry> {
    let f32s = [x, w].iter().chain(others).all(|t| t.dtype() == DType::F32);
    if !f32s || x.shape().num_dims() != 4 || w.shape().num_dims() != 4 {
        return None;
    }
    Geometry::new(dims4(x), dims4(w), o)
}

/// Contiguous f32 values of `t` (copies only a non-contiguous view).
fn values(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("contiguous f32 tensor (checked by fast_geometry)")
}

fn tensor(v: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

impl ConvBackend for Flex {
    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let others: Vec<&FlexTensor> = bias.iter().collect();
        let Some(g) = fast_geometry(&x, &weight, &others, &options) else {
            return <Flex as burn::tensor::ops::ModuleOps<Flex>>::conv2d(x, weight, bias, options);
        };
        let (x, weight, bias) = (values(&x), values(&weight), bias.as_ref().map(values));
        let y = kernel::forward(&g, slice(&x), slice(&weight), bias.as_ref().map(slice));
        tensor(y, [g.n, g.o, g.ho, g.wo])
    }

    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        needed: GradsNeeded,
    ) -> ConvGrads<Self> {
        let fast = fast_geometry(&x, &weight, &[&output_grad], &options)
            .filter(|g| dims4(&output_grad) == [g.n, g.o, g.ho, g.wo]);
        let Some(g) = fast else {
            return burn_conv2d_grads::<Flex>(x, weight, output_grad, options, needed);
        };
        let wshape = dims4(&weight);
        let (x, weight, dy) = (values(&x), values(&weight), values(&output_grad));
        let (dx, dw) = kernel::backward(
            &g,
            slice(&x),
            slice(&weight),
            slice(&dy),
            needed.x,
            needed.weight,
        );
        ConvGrads {
            x: dx.map(|v| tensor(v, [g.n, g.c, g.h, g.w])),
            weight: dw.map(|v| tensor(v, wshape)),
        }
    }
}
