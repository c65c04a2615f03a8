//! `Autodiff<B>`: the forward is `B`'s [`ConvBackend::conv2d_forward`]; the backward step calls
//! `B`'s [`ConvBackend::conv2d_backward`] for the tracked inputs (Burn's custom-op pattern, as
//! `burn-autodiff`'s own `conv2d` and the `custom-wgpu-kernel` example build theirs). The bias
//! gradient is Burn's `conv2d_bias_backward` (a sum over batch and space). The matrix product's
//! backward is two products of `B`'s [`ConvBackend::matmul`]: `∂L/∂lhs = dy · rhsᵀ`,
//! `∂L/∂rhs = lhsᵀ · dy`.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::ops::{ConvOptions, FloatTensor};

use crate::{ConvBackend, GradsNeeded};

/// Backward step of a convolution with bias: parents `[x, weight, bias]`.
#[derive(Debug)]
struct ConvWithBias;

/// Backward step of a convolution without bias: parents `[x, weight]`.
#[derive(Debug)]
struct ConvNoBias;

/// Backward step of a matrix product: parents `[lhs, rhs]`; the state holds the operand each
/// tracked parent's gradient needs (`rhs` for `lhs`, `lhs` for `rhs`).
#[derive(Debug)]
struct Matmul;

impl<B: ConvBackend> Backward<B, 2> for Matmul {
    type State = (Option<NodeId>, Option<NodeId>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_l, node_r] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (lhs_state, rhs_state) = ops.state;
        if let (Some(node), Some(rhs)) = (node_l, rhs_state) {
            let rhs = checkpointer.retrieve_node_output::<FloatTensor<B>>(rhs);
            let g = B::matmul(grad.clone(), B::float_transpose(rhs)); // [.., M, K]
            grads.register::<B>(node.id, g);
        }
        if let (Some(node), Some(lhs)) = (node_r, lhs_state) {
            let lhs = checkpointer.retrieve_node_output::<FloatTensor<B>>(lhs);
            let g = B::matmul(B::float_transpose(lhs), grad); // [.., K, N]
            grads.register::<B>(node.id, g);
        }
    }
}

/// Registers `∂L/∂x` and `∂L/∂w` for the parents that are tracked.
fn register_grads<B: ConvBackend>(
    [node_x, node_w]: [Option<NodeId>; 2],
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: ConvOptions<2>,
    grads: &mut Gradients,
) {
    let needed = GradsNeeded {
        x: node_x.is_some(),
        weight: node_w.is_some(),
    };
    if !needed.x && !needed.weight {
        return;
    }
    let out = B::conv2d_backward(x, weight, grad, options, needed);
    if let (Some(id), Some(g)) = (node_x, out.x) {
        grads.register::<B>(id, g);
    }
    if let (Some(id), Some(g)) = (node_w, out.weight) {
        grads.register::<B>(id, g);
    }
}

impl<B: ConvBackend> Backward<B, 3> for ConvWithBias {
    type State = (NodeId, NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, b_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
        let bias = checkpointer.retrieve_node_output::<FloatTensor<B>>(b_state);
        if let Some(node) = node_b {
            let gb = B::conv2d_bias_backward(x.clone(), bias, grad.clone());
            grads.register::<B>(node.id, gb);
        }
        let ids = [node_x.map(|n| n.id), node_w.map(|n| n.id)];
        register_grads::<B>(ids, x, weight, grad, options, grads);
    }
}

impl<B: ConvBackend> Backward<B, 2> for ConvNoBias {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
        let ids = ops.parents.map(|n| n.map(|n| n.id));
        register_grads::<B>(ids, x, weight, grad, options, grads);
    }
}

impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match bias {
            Some(bias) => match ConvWithBias
                .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (
                        prep.checkpoint(&x),
                        prep.checkpoint(&weight),
                        prep.checkpoint(&bias),
                        options.clone(),
                    );
                    let out = B::conv2d_forward(
                        x.primitive,
                        weight.primitive,
                        Some(bias.primitive),
                        options,
                    );
                    prep.finish(state, out)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::conv2d_forward(
                    x.primitive,
                    weight.primitive,
                    Some(bias.primitive),
                    options,
                )),
            },
            None => match ConvNoBias
                .prepare::<C>([x.node.clone(), weight.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (
                        prep.checkpoint(&x),
                        prep.checkpoint(&weight),
                        options.clone(),
                    );
                    let out = B::conv2d_forward(x.primitive, weight.primitive, None, options);
                    prep.finish(state, out)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::conv2d_forward(
                    x.primitive,
                    weight.primitive,
                    None,
                    options,
                )),
            },
        }
    }

    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
        match Matmul
            .prepare::<C>([lhs.node.clone(), rhs.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                // lhs is needed for rhs's gradient, rhs for lhs's
                let lhs_state = rhs_tracked.then(|| prep.checkpoint(&lhs));
                let rhs_state = lhs_tracked.then(|| prep.checkpoint(&rhs));
                prep.finish(
                    (lhs_state, rhs_state),
                    B::matmul(lhs.primitive, rhs.primitive),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matmul(lhs.primitive, rhs.primitive)),
        }
    }
}
