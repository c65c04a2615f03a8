//! [`ConvBackend`] for `Fusion<B>`: the convolution forward, its backward and the matrix product
//! are custom fusion ops (`CustomOpIr`, the pattern of burn-vision's fusion impls). Fusion queues
//! them like any op; when the queue runs one, its `execute` materialises the inputs as `B`
//! tensors and calls `B`'s [`ConvBackend`] method — sgm's CubeCL routing (no autotuned matmul,
//! docs/gpu.md), or cuDNN on `CubeBackend<CudaRuntime, …>` with feature `cudnn` — then registers
//! the outputs. Like Burn's own conv and matmul IR ops, a custom op is a fusion barrier:
//! element-wise ops before and after it are fused separately. (Burn's own IR ops would call
//! `B`'s `ModuleOps` / Fusion's fused matmul and so bypass `B`'s [`ConvBackend`] methods.)

use std::marker::PhantomData;

use burn::tensor::Shape;
use burn::tensor::ops::conv::calculate_conv_output_size;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionBackend, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};

use crate::{ConvBackend, ConvGrads, GradsNeeded};

type Handles<B> =
    HandleContainer<<<B as FusionBackend>::FusionRuntime as FusionRuntime>::FusionHandle>;

/// `[N, C_out, H_out, W_out]` of a convolution.
fn out_shape(x: &Shape, w: &Shape, o: &ConvOptions<2>) -> Shape {
    let size = |i: usize| {
        calculate_conv_output_size(w[2 + i], o.stride[i], o.padding[i], o.dilation[i], x[2 + i])
    };
    Shape::new([x[0], w[0], size(0), size(1)])
}

/// The forward: inputs `[x, w]` or `[x, w, b]`, output `[y]`.
#[derive(Debug)]
struct Forward<B> {
    desc: CustomOpIr,
    options: ConvOptions<2>,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ConvBackend> Operation<B::FusionRuntime> for Forward<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        let inputs = &self.desc.inputs;
        let x = handles.get_float_tensor::<B>(&inputs[0]);
        let w = handles.get_float_tensor::<B>(&inputs[1]);
        let b = inputs.get(2).map(|b| handles.get_float_tensor::<B>(b));
        let y = B::conv2d_forward(x, w, b, self.options.clone());
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, y);
    }
}

/// The backward: inputs `[x, w, dy]`, outputs the requested `[dx]`, `[dw]` or `[dx, dw]`.
#[derive(Debug)]
struct Backward<B> {
    desc: CustomOpIr,
    options: ConvOptions<2>,
    needed: GradsNeeded,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ConvBackend> Operation<B::FusionRuntime> for Backward<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        let [x, w, dy] = self.desc.inputs.as_slice() else {
            unreachable!("the backward op is registered with [x, w, dy]")
        };
        let x = handles.get_float_tensor::<B>(x);
        let w = handles.get_float_tensor::<B>(w);
        let dy = handles.get_float_tensor::<B>(dy);
        let grads = B::conv2d_backward(x, w, dy, self.options.clone(), self.needed);
        let mut ids = self.desc.outputs.iter().map(|o| o.id);
        for g in [grads.x, grads.weight].into_iter().flatten() {
            let id = ids.next().expect("one output per requested gradient");
            handles.register_float_tensor::<B>(&id, g);
        }
    }
}

/// The matrix product: inputs `[lhs, rhs]`, output `[lhs · rhs]`.
#[derive(Debug)]
struct Matmul<B> {
    desc: CustomOpIr,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ConvBackend> Operation<B::FusionRuntime> for Matmul<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        let [lhs, rhs] = self.desc.inputs.as_slice() else {
            unreachable!("the matmul op is registered with [lhs, rhs]")
        };
        let lhs = handles.get_float_tensor::<B>(lhs);
        let rhs = handles.get_float_tensor::<B>(rhs);
        let out = B::matmul(lhs, rhs);
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, out);
    }
}

impl<B: FusionBackend + ConvBackend> ConvBackend for Fusion<B> {
    fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        B::in_pool(f)
    }

    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let client = x.client.clone();
        let mut streams = OperationStreams::with_inputs([&x, &weight]);
        if let Some(b) = &bias {
            streams.tensor(b);
        }
        let out = TensorIr::uninit(
            client.create_empty_handle(),
            out_shape(&x.shape, &weight.shape, &options),
            x.dtype,
        );
        let mut inputs = vec![x.into_ir(), weight.into_ir()];
        inputs.extend(bias.map(|b| b.into_ir()));
        let desc = CustomOpIr::new("sgm_conv2d_forward", &inputs, &[out]);
        let op = Forward::<B> {
            desc: desc.clone(),
            options,
            _b: PhantomData,
        };
        client
            .register(streams, OperationIr::Custom(desc), op)
            .output()
    }

    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        needed: GradsNeeded,
    ) -> ConvGrads<Self> {
        if !needed.x && !needed.weight {
            return ConvGrads {
                x: None,
                weight: None,
            };
        }
        let client = x.client.clone();
        let streams = OperationStreams::with_inputs([&x, &weight, &output_grad]);
        let grad = |t: &FloatTensor<Self>| {
            TensorIr::uninit(client.create_empty_handle(), t.shape.clone(), t.dtype)
        };
        let outputs: Vec<TensorIr> = [
            needed.x.then(|| grad(&x)),
            needed.weight.then(|| grad(&weight)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let inputs = [x.into_ir(), weight.into_ir(), output_grad.into_ir()];
        let desc = CustomOpIr::new("sgm_conv2d_backward", &inputs, &outputs);
        let op = Backward::<B> {
            desc: desc.clone(),
            options,
            needed,
            _b: PhantomData,
        };
        let mut out = client
            .register(streams, OperationIr::Custom(desc), op)
            .into_iter();
        ConvGrads {
            x: needed.x.then(|| out.next().expect("dx output")),
            weight: needed.weight.then(|| out.next().expect("dw output")),
        }
    }

    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let client = lhs.client.clone();
        let streams = OperationStreams::with_inputs([&lhs, &rhs]);
        let mut dims = lhs.shape.to_vec();
        let d = dims.len();
        dims[d - 1] = rhs.shape[rhs.shape.num_dims() - 1];
        let out = TensorIr::uninit(client.create_empty_handle(), Shape::from(dims), lhs.dtype);
        let desc = CustomOpIr::new("sgm_matmul", &[lhs.into_ir(), rhs.into_ir()], &[out]);
        let op = Matmul::<B> {
            desc: desc.clone(),
            _b: PhantomData,
        };
        client
            .register(streams, OperationIr::Custom(desc), op)
            .output()
    }
}
