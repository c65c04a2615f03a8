//! `Autodiff<B>`: the forward is `B`'s [`ConvBackend::conv2d_forward`]; the backward step calls
//! `B`'s [`ConvBackend::conv2d_backward`] for the tracked inputs, under the [`Precision`] the
//! forward ran with (recorded in the op's state; Burn's custom-op pattern, as
//! `burn-autodiff`'s own `conv2d` and the `custom-wgpu-kernel` example build theirs). The bias
//! gradient is `B`'s [`ConvBackend::conv2d_bias_grad`] (a sum over batch and space). The matrix product's
//! backward is two products of `B`'s [`ConvBackend::matmul`]: `∂L/∂lhs = dy · rhsᵀ`,
//! `∂L/∂rhs = lhsᵀ · dy`.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{ConvOptions, FloatTensor};

use crate::{ConvBackend, GradsNeeded, GroupNormOut, Precision, current_precision, with_precision};

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

/// Backward step of a group normalisation: parents `[x, γ, β]`; the state holds the checkpointed
/// `x` and `γ` and the forward's statistics (inner-backend tensors, not graph nodes).
#[derive(Debug)]
struct GroupNormStep;

impl<B: ConvBackend> Backward<B, 3> for GroupNormStep {
    type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, usize);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x_state, g_state, mean, rstd, groups) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(g_state);
        let out = B::group_norm_backward(x, gamma, mean, rstd, dy, groups);
        for (node, g) in [(node_x, out.x), (node_g, out.gamma), (node_b, out.beta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// Backward step of a SiLU: parent `[x]`, the state the checkpointed `x`.
#[derive(Debug)]
struct SiluStep;

impl<B: ConvBackend> Backward<B, 1> for SiluStep {
    type State = NodeId;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state);
        if let [Some(node)] = ops.parents {
            grads.register::<B>(node.id, B::silu_backward(x, dy));
        }
    }
}

/// Backward step of a softmax: parent `[x]`, the state the forward's output and precision.
#[derive(Debug)]
struct SoftmaxStep;

impl<B: ConvBackend> Backward<B, 1> for SoftmaxStep {
    type State = (FloatTensor<B>, Precision);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (y, precision) = ops.state;
        if let [Some(node)] = ops.parents {
            let dx = with_precision(precision, || B::softmax_backward(y, dy));
            grads.register::<B>(node.id, dx);
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
    precision: Precision,
    grads: &mut Gradients,
) {
    let needed = GradsNeeded {
        x: node_x.is_some(),
        weight: node_w.is_some(),
    };
    if !needed.x && !needed.weight {
        return;
    }
    let out = with_precision(precision, || {
        B::conv2d_backward(x, weight, grad, options, needed)
    });
    if let (Some(id), Some(g)) = (node_x, out.x) {
        grads.register::<B>(id, g);
    }
    if let (Some(id), Some(g)) = (node_w, out.weight) {
        grads.register::<B>(id, g);
    }
}

impl<B: ConvBackend> Backward<B, 3> for ConvWithBias {
    type State = (NodeId, NodeId, NodeId, ConvOptions<2>, Precision);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, b_state, options, precision) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
        let bias = checkpointer.retrieve_node_output::<FloatTensor<B>>(b_state);
        if let Some(node) = node_b {
            let gb = B::conv2d_bias_grad(x.clone(), bias, grad.clone());
            grads.register::<B>(node.id, gb);
        }
        let ids = [node_x.map(|n| n.id), node_w.map(|n| n.id)];
        register_grads::<B>(ids, x, weight, grad, options, precision, grads);
    }
}

impl<B: ConvBackend> Backward<B, 2> for ConvNoBias {
    type State = (NodeId, NodeId, ConvOptions<2>, Precision);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, options, precision) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
        let ids = ops.parents.map(|n| n.map(|n| n.id));
        register_grads::<B>(ids, x, weight, grad, options, precision, grads);
    }
}

impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        B::in_pool(f)
    }

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
                        current_precision(),
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
                        current_precision(),
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

    fn group_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> GroupNormOut<Self> {
        let prep = GroupNormStep
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful();
        // the statistics are outputs of no graph node: plain tensors of the inner backend
        let untracked = |t: FloatTensor<B>| <Autodiff<B, C> as AutodiffBackend>::from_inner(t);
        match prep {
            OpsKind::Tracked(mut prep) => {
                let (xs, gs) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let out = B::group_norm_forward(
                    x.primitive,
                    gamma.primitive,
                    beta.primitive,
                    groups,
                    eps,
                );
                let (mean, rstd) = (out.mean.clone(), out.rstd.clone());
                GroupNormOut {
                    y: prep.finish((xs, gs, out.mean, out.rstd, groups), out.y),
                    mean: untracked(mean),
                    rstd: untracked(rstd),
                }
            }
            OpsKind::UnTracked(prep) => {
                let out = B::group_norm_forward(
                    x.primitive,
                    gamma.primitive,
                    beta.primitive,
                    groups,
                    eps,
                );
                GroupNormOut {
                    y: prep.finish(out.y),
                    mean: untracked(out.mean),
                    rstd: untracked(out.rstd),
                }
            }
        }
    }

    fn dropout_mask(
        shape: burn::tensor::Shape,
        keep: f64,
        device: &Self::Device,
    ) -> FloatTensor<Self> {
        // the inner backend's mask, untracked
        <Self as AutodiffBackend>::from_inner(B::dropout_mask(shape, keep, device))
    }

    fn softmax_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxStep
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::softmax_forward(x.primitive);
                prep.finish((y.clone(), current_precision()), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_forward(x.primitive)),
        }
    }

    fn silu_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SiluStep
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::silu_forward(x.primitive))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::silu_forward(x.primitive)),
        }
    }
}
