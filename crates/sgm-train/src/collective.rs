//! Data parallelism through burn-collective (Burn's all-reduce; feature `collective`). Every
//! peer (one thread per device of a process, or — blocked upstream, below — one process per
//! node) runs the same loop on the same data stream: it takes the whole global batch,
//! keeps its contiguous shard ([`shard_sizes`], by rank), runs the forward and backward pass
//! of the shard with the loss weighted by `n_i / B`, and one all-reduce (`Sum`) of every
//! gradient and the loss gives each peer the gradient of the batch-mean loss. Each then takes
//! the same optimizer step (warm-up, global clipping, Adam) and EMA update, so the replicas
//! stay identical without a broadcast.
//!
//! The step shares [`Stepper::shard_grads`] and [`TrainState::apply`] with the one-process
//! [`crate::parallel`] step, and its draws are the union batch's, sliced per shard
//! ([`ShardDraws`]), so a step of N peers equals one process's step on the union batch up to
//! float rounding (tested with two peers). The weighted `Sum` (rather than burn-optim's
//! `Mean`) keeps that true when the batch does not split evenly.
//!
//! Burn's `distributed` feature (DDP) is not used: it breaks `Autodiff<Flex>`
//! (`../shared/reference/burn-0.21.md` §8). burn-collective works for any backend: the
//! all-reduce runs on the inner backend's tensors, across nodes over WebSocket (host memory).
//!
//! **Several nodes are blocked upstream.** In burn-collective 0.21.0 the global (multi-node)
//! all-reduce completes once per process and the second one never returns: every global
//! strategy ends with `SyncService::sync`, which clears a *copy* of its list of synced peers
//! (`syncing_peers.lock().to_vec()` … `.clear()`), so from the second call on the list never
//! equals the node set; transfer ids are also reused between calls (tracel-ai/burn#4549).
//! `tests/parallel.rs::two_collective_nodes_over_websocket_equal_one_process` (ignored) shows
//! it: two node processes finish step 1, then hang. [`train_collective`] therefore refuses
//! node peers; peers that are threads of one process ([`Peer::local`]) work.
//! See `docs/training.md` ("Several machines").

use std::path::Path;

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn_collective::{CollectiveConfig, PeerId, ReduceOperation};
use burn_communication::Address;
use sgm_conv::ConvAutodiffBackend;
use sgm_nets::ScoreNet;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::parallel::{ShardDraws, SplitStepper, StepSplit, check_loss, shard_sizes};
use crate::run::{RunData, RunHooks, RunSummary, run_loop};
use crate::trainer::{StepOutput, Stepper, TrainState, scalar};

/// One peer of a collective: its rank (which shard of each batch it computes), the number
/// of peers, and burn-collective's settings (local devices, orchestrator and node addresses).
#[derive(Debug, Clone)]
pub struct Peer {
    /// 0-based rank among all peers of all nodes (also its burn-collective `PeerId`).
    pub rank: usize,
    /// Number of peers (all nodes together).
    pub world: usize,
    /// Number of nodes (processes) of the collective; 1 when all peers are local threads.
    pub nodes: usize,
    /// burn-collective's settings of this peer's node (the same for every peer of a node).
    pub config: CollectiveConfig,
}

fn collective_error(what: &str, e: impl std::fmt::Debug) -> TrainError {
    TrainError::Collective(format!("{what}: {e:?}"))
}

impl Peer {
    /// Peer `rank` of `world` peers that are threads of this one process (no orchestrator).
    pub fn local(rank: usize, world: usize) -> Result<Self> {
        Self::checked(
            rank,
            world,
            1,
            CollectiveConfig::default().with_num_devices(world),
        )
    }

    /// The one peer of node `rank` of `world` nodes (one process per node, one device each):
    /// `orchestrator` is the address of [`run_orchestrator`] (`ws://host:port`),
    /// `node_address` is where the other nodes reach this one (`ws://host:data_port`), and
    /// `data_port` the port this node serves its tensors on. With burn-collective 0.21.0 only
    /// the first step of such peers completes (module docs).
    pub fn node(
        rank: usize,
        world: usize,
        orchestrator: &str,
        node_address: &str,
        data_port: u16,
    ) -> Result<Self> {
        let parse = |key: &str, s: &str| -> Result<Address> {
            if s.trim().is_empty() {
                return Err(TrainError::Config {
                    key: key.into(),
                    msg: "empty address".into(),
                });
            }
            s.parse::<Address>().map_err(|e| TrainError::Config {
                key: key.into(),
                msg: e,
            })
        };
        let nodes = u32::try_from(world).map_err(|_| TrainError::Config {
            key: "peers".into(),
            msg: format!("{world} nodes"),
        })?;
        let config = CollectiveConfig::default()
            .with_num_devices(1)
            .with_num_nodes(nodes)
            .with_global_address(parse("orchestrator", orchestrator)?)
            .with_node_address(parse("node_address", node_address)?)
            .with_data_service_port(data_port);
        Self::checked(rank, world, world, config)
    }

    fn checked(rank: usize, world: usize, nodes: usize, config: CollectiveConfig) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(TrainError::Config {
                key: "rank".into(),
                msg: format!("rank {rank} of {world} peers (ranks are 0..{world})"),
            });
        }
        if !config.is_valid() {
            return Err(TrainError::Config {
                key: "collective".into(),
                msg: format!("incomplete settings {config}"),
            });
        }
        Ok(Self {
            rank,
            world,
            nodes,
            config,
        })
    }

    fn id(&self) -> PeerId {
        PeerId(self.rank as u32)
    }

    /// Joins the collective with `device` (blocks until every local peer, and with nodes
    /// every node, has joined). `B` is the backend whose tensors are reduced: the inner
    /// backend of the autodiff backend trained with.
    pub fn register<B: Backend>(&self, device: &B::Device) -> Result<()> {
        burn_collective::register::<B>(self.id(), device.clone(), self.config.clone())
            .map_err(|e| collective_error(&format!("peer {} cannot join", self.rank), e))
    }

    /// Leaves the collective.
    pub fn finish<B: Backend>(&self) -> Result<()> {
        burn_collective::finish_collective::<B>(self.id())
            .map_err(|e| collective_error(&format!("peer {} cannot leave", self.rank), e))
    }

    /// Items `offset..offset + size` of a batch of `batch` items: this peer's shard. An error
    /// when the batch is smaller than the number of peers.
    pub fn shard(&self, batch: usize) -> Result<(usize, usize)> {
        let sizes = shard_sizes(batch, self.world);
        if sizes.len() != self.world {
            return Err(TrainError::Config {
                key: "training.batch_size".into(),
                msg: format!(
                    "a batch of {batch} cannot be split across {} peers",
                    self.world
                ),
            });
        }
        Ok((sizes[..self.rank].iter().sum(), sizes[self.rank]))
    }
}

/// Every parameter's gradient, flattened in visiting order (the same on every peer).
struct Flatten<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(p.id) {
            let n = g.shape().num_elements();
            self.parts.push(g.reshape([n]));
        }
    }
}

/// The inverse of [`Flatten`]: slices of the reduced vector back into per-parameter
/// gradients (only the parameters that had one).
struct Unflatten<'a, B: AutodiffBackend> {
    had: &'a GradientsParams,
    flat: Tensor<B::InnerBackend, 1>,
    at: usize,
    out: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        if self.had.get::<B::InnerBackend, D>(p.id).is_some() {
            let dims = p.shape().dims::<D>();
            let n: usize = dims.iter().product();
            let g = self.flat.clone().slice(self.at..self.at + n).reshape(dims); // param's shape
            self.out.register::<B::InnerBackend, D>(p.id, g);
            self.at += n;
        }
    }
}

/// Sums `grads` and `loss` over all peers in one all-reduce: every gradient and the loss
/// are concatenated into one vector (one message per step, not one per parameter).
fn all_reduce_sum<B: AutodiffBackend>(
    peer: &Peer,
    model: &ScoreNet<B>,
    grads: GradientsParams,
    loss: Tensor<B::InnerBackend, 1>,
) -> Result<(GradientsParams, Tensor<B::InnerBackend, 1>)> {
    let mut flat = Flatten::<B> {
        grads: &grads,
        parts: Vec::new(),
    };
    model.visit(&mut flat);
    let mut parts = flat.parts;
    let n: usize = parts.iter().map(|t| t.dims()[0]).sum();
    parts.push(loss);
    let all = Tensor::cat(parts, 0); // [n + 1]
    let reduced = burn_collective::all_reduce::<B::InnerBackend>(
        peer.id(),
        all.into_primitive().tensor(),
        ReduceOperation::Sum,
    )
    .map_err(|e| collective_error(&format!("peer {}: all-reduce", peer.rank), e))?;
    let reduced = Tensor::<B::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(reduced));
    let mut un = Unflatten::<B> {
        had: &grads,
        flat: reduced.clone(),
        at: 0,
        out: GradientsParams::new(),
    };
    model.visit(&mut un);
    if un.at != n {
        return Err(TrainError::Internal(format!(
            "all-reduce: {} gradient values unpacked of {n}",
            un.at
        )));
    }
    Ok((un.out, reduced.slice(n..n + 1)))
}

impl Stepper {
    /// One train step of peer `peer` on the global `batch` (`[B, C, H, W]`, the same on every
    /// peer): forward and backward on its shard, one all-reduce, then the same update as
    /// [`Stepper::train_step`] on the whole batch (see the module docs). Every peer must call
    /// it with the same batch and state; on error `state` is unchanged (and every peer sees
    /// the same non-finite loss or gradient, so all stop at the same step).
    pub fn train_step_collective<B: ConvAutodiffBackend>(
        &self,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
        peer: &Peer,
    ) -> Result<StepOutput> {
        let device = batch.device();
        let step = state.step + 1;
        let b = batch.dims()[0];
        let (offset, size) = peer.shard(b)?;
        let mut rng = state.rng.clone();
        let mut draws = ShardDraws::new(&mut rng, b, device.clone());
        draws.shard(offset, size, &device);
        let x = batch.narrow(0, offset, size); // [n_i, C, H, W]
        let (loss, grads) = self.shard_grads(&state.model, x, b, step, &mut draws, &device)?;
        let (grads, loss) = all_reduce_sum(peer, &state.model, grads, loss)?;
        let loss_value = scalar(loss)?;
        check_loss(step, loss_value)?;
        let out = state.apply(grads, loss_value)?;
        state.rng = rng;
        Ok(out)
    }
}

impl<B: ConvAutodiffBackend> StepSplit<B> for Peer {
    fn train_step(
        &self,
        stepper: &Stepper,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
    ) -> Result<StepOutput> {
        stepper.train_step_collective(state, batch, self)
    }
}

/// The score objective of one peer (the run loop's [`crate::Objective`]); eval runs locally
/// (every peer holds the same EMA weights and draws the same eval batches).
pub type CollectiveStepper = SplitStepper<Peer>;

/// [`crate::train`] as one peer of a collective: joins it, runs the loop with
/// [`CollectiveStepper`], leaves it. Every peer writes its own run directory `workdir`
/// (identical checkpoints); every peer must start from the same state (fresh, or `resume`
/// from the same checkpoint: rank 0's). Peers on several nodes are refused while
/// burn-collective's global all-reduce hangs on its second call (module docs).
pub fn train_collective<B: ConvAutodiffBackend>(
    cfg: &TrainConfig,
    workdir: &Path,
    data: RunData,
    resume: Option<&Path>,
    device: &B::Device,
    peer: &Peer,
    hooks: RunHooks<'_, B::InnerBackend>,
) -> Result<RunSummary> {
    if peer.nodes > 1 {
        return Err(TrainError::Collective(format!(
            "{} nodes: burn-collective 0.21.0's multi-node all-reduce hangs on its second call \
             (SyncService::sync never clears its synced peers; tracel-ai/burn#4549), so training \
             across nodes cannot run with this Burn; use peers in one process",
            peer.nodes
        )));
    }
    peer.shard(cfg.training.batch_size)?;
    let objective = CollectiveStepper {
        stepper: Stepper::new(cfg)?,
        split: peer.clone(),
    };
    peer.register::<B::InnerBackend>(device)?;
    log::info!(
        "peer {} of {} joined the collective on {device:?}",
        peer.rank,
        peer.world
    );
    let out = run_loop::<B, ScoreNet<B>, _>(
        cfg, &cfg.model, &objective, workdir, data, resume, device, hooks,
    );
    let left = peer.finish::<B::InnerBackend>();
    let out = out?;
    left?;
    Ok(out)
}

/// Runs burn-collective's global orchestrator on `port` until the process is interrupted
/// (Ctrl-C): the meeting point of the nodes.
pub fn run_orchestrator(port: u16) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| collective_error("orchestrator runtime", e))?;
    log::info!("collective orchestrator listening on port {port}");
    rt.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}
