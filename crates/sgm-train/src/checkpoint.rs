//! The training checkpoint — sgm's one checkpoint format: a safetensors file holding
//!
//! * `model/<key>`: every weight of the network in the reference layout (the same keys and
//!   layout as `sgm_nets::save_safetensors`, incl. the float64 `sigmas`);
//! * `ema/<key>`: the EMA shadow of every trainable parameter;
//! * `optim/exp_avg/<key>`, `optim/exp_avg_sq/<key>`: Adam moments, flat (sgm's parameter
//!   layout), for every parameter that has them;
//!
//! and, in the safetensors metadata, `format` = [`FORMAT`] and `state` = a JSON
//! [`CheckpointMeta`]: step, EMA decay and update count, per-parameter Adam step counts and
//! hyper-parameters, the RNG state, the data position, and the model config it was trained with
//! (a checkpoint of another config is rejected naming the difference).
//!
//! The same format holds any [`TrainNet`]: score networks and the noise-conditional classifier
//! (`net` in the metadata says which; `model_config` is that network's config).
//!
//! Files are written with [`sgm_fs::write_atomic`] (temp file + rename): a kill at any moment
//! leaves the previous checkpoint or the complete new one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::AutodiffModule;
use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::{Deserialize, Serialize};
use sgm_nets::weights::{HostData, HostTensor, StateDict};
use sgm_nets::{CheckpointWeights, ModelConfig, ScoreNet};

use crate::data::DataPosition;
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::net::{NetConfig, TrainNet};
use crate::optim::{Moments, Optimizer};
use crate::rng::{RngState, TrainRng};
use crate::trainer::TrainState;
use sgm_config::OptimConfig;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "sgm-train-checkpoint/1";

const MODEL: &str = "model/";
const EMA: &str = "ema/";
const EXP_AVG: &str = "optim/exp_avg/";
const EXP_AVG_SQ: &str = "optim/exp_avg_sq/";

/// The non-tensor part of a checkpoint (JSON in the `state` metadata key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Completed optimizer steps.
    pub step: u64,
    /// EMA decay.
    pub ema_decay: f64,
    /// EMA updates.
    pub ema_num_updates: u64,
    /// Adam hyper-parameters.
    pub optim: OptimConfig,
    /// Adam step count per parameter key (parameters with moments only).
    pub adam_steps: BTreeMap<String, u64>,
    /// Loss-draw RNG.
    pub rng: RngState,
    /// Where the training data stream stands.
    pub data: DataPosition,
    /// Where the eval data stream stands.
    #[serde(default)]
    pub eval_data: DataPosition,
    /// Which kind of network ([`NetConfig::KIND`]).
    #[serde(default = "score_kind")]
    pub net: String,
    /// The network config the weights belong to (the network's own config type, as JSON).
    pub model_config: serde_json::Value,
}

fn score_kind() -> String {
    ModelConfig::KIND.into()
}

fn ck_err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| TrainError::Internal(format!("tensor to host: {e:?}")))
}

fn bytes_of(t: &HostTensor) -> (Dtype, Vec<u8>) {
    match &t.data {
        HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    }
}

/// Writes `state` (+ data position) to `path` atomically.
pub fn save<B, M>(
    state: &TrainState<B, M>,
    data: DataPosition,
    eval_data: DataPosition,
    path: &Path,
) -> Result<()>
where
    B: AutodiffBackend,
    M: TrainNet<B> + AutodiffModule<B>,
    M::InnerModule: TrainNet<B::InnerBackend>,
{
    let entries = state.model.entries();
    let mut tensors: Vec<(String, HostTensor)> = Vec::new();
    let model_sd = state.model.weights();
    for (k, t) in model_sd.tensors {
        tensors.push((format!("{MODEL}{k}"), t));
    }
    let ema_sd = state.ema.shadow.weights();
    for e in entries.iter().filter(|e| e.trainable) {
        let t = ema_sd
            .tensors
            .get(&e.key)
            .ok_or_else(|| TrainError::Internal(format!("EMA has no `{}`", e.key)))?;
        tensors.push((format!("{EMA}{}", e.key), t.clone()));
    }
    let mut adam_steps = BTreeMap::new();
    for (e, m) in entries.iter().zip(&state.optim.state) {
        let Some(m) = m else { continue };
        adam_steps.insert(e.key.clone(), m.step);
        for (prefix, t) in [(EXP_AVG, &m.exp_avg), (EXP_AVG_SQ, &m.exp_avg_sq)] {
            let v = host_f32(t.clone())?;
            tensors.push((
                format!("{prefix}{}", e.key),
                HostTensor {
                    shape: vec![v.len()],
                    data: HostData::F32(v),
                },
            ));
        }
    }
    let meta = CheckpointMeta {
        step: state.step,
        ema_decay: state.ema.decay,
        ema_num_updates: state.ema.num_updates,
        optim: state.optim.config.clone(),
        adam_steps,
        rng: state.rng.state(),
        data,
        eval_data,
        net: <M::Config as NetConfig>::KIND.into(),
        model_config: serde_json::to_value(state.model.net_config())
            .map_err(|e| ck_err(path, e))?,
    };
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let (dt, b) = bytes_of(&t);
            (k, dt, t.shape, b)
        })
        .collect();
    let mut views = Vec::with_capacity(bufs.len());
    for (k, dt, shape, b) in &bufs {
        views.push((
            k.clone(),
            TensorView::new(*dt, shape.clone(), b).map_err(|e| ck_err(path, e))?,
        ));
    }
    let json = serde_json::to_string(&meta).map_err(|e| ck_err(path, e))?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("state".to_string(), json),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| ck_err(path, e))?;
    sgm_fs::write_atomic_bytes(path, &bytes).map_err(|e| ck_err(path, e))
}

/// Re-creates every parameter from its values in row-major memory order. The reference-layout
/// loader leaves `nn.Linear` weights as transposed views; a kernel then sums in a different
/// order than on the contiguous weights of an uninterrupted run, and a resumed run would drift
/// by float32 round-off. After this, resuming is bit-identical.
struct Contiguous;

impl<B: Backend> ModuleMapper<B> for Contiguous {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        p.map(|t| {
            let require_grad = t.is_require_grad();
            let fresh = Tensor::<B, D>::from_data(t.to_data(), &t.device());
            if require_grad {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// A checkpoint read from disk (host tensors + metadata).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// File it came from.
    pub path: std::path::PathBuf,
    /// Non-tensor state.
    pub meta: CheckpointMeta,
    tensors: HashMap<String, HostTensor>,
}

/// The `__metadata__` of a safetensors file, read from its header only.
fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| ck_err(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| ck_err(path, format!("not a safetensors file: {e}")))?;
    let n = u64::from_le_bytes(len);
    // The header must fit in the file (and in 100 MiB, safetensors' own limit): nothing is
    // allocated for a length the file cannot hold.
    let file_len = f.metadata().map_err(|e| ck_err(path, e))?.len();
    if n > 100 << 20 || n > file_len.saturating_sub(8) {
        return Err(ck_err(
            path,
            format!(
                "not a safetensors file: header length {n} out of range for a {file_len}-byte file"
            ),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| ck_err(path, format!("truncated safetensors header: {e}")))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| ck_err(path, format!("not a safetensors header: {e}")))?;
    Ok(serde_json::from_value(json["__metadata__"].clone()).unwrap_or_default())
}

/// True when `path` is a safetensors file in this format (reads the header only).
pub fn is_train_checkpoint(path: &Path) -> bool {
    read_metadata(path).is_ok_and(|m| m.get("format").map(String::as_str) == Some(FORMAT))
}

impl Checkpoint {
    /// Reads and checks a checkpoint file.
    pub fn read(path: &Path) -> Result<Self> {
        let md = read_metadata(path)?;
        match md.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(ck_err(path, format!("format `{f}`, expected `{FORMAT}`"))),
            None => {
                return Err(ck_err(
                    path,
                    "no `format` metadata: a weights file, not a training checkpoint",
                ));
            }
        }
        let state = md
            .get("state")
            .ok_or_else(|| ck_err(path, "no `state` metadata"))?;
        let meta: CheckpointMeta = serde_json::from_str(state)
            .map_err(|e| ck_err(path, format!("`state` metadata: {e}")))?;
        let tensors = sgm_nets::weights::read_safetensors(path)?.tensors;
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            tensors,
        })
    }

    fn section(&self, prefix: &str) -> StateDict {
        StateDict {
            source: format!("{} ({prefix}*)", self.path.display()),
            tensors: self
                .tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect(),
        }
    }

    /// Errors unless the checkpoint was written for the score network `cfg` (dropout may
    /// differ: it is a training-time switch, not part of the weights).
    pub fn check_config(&self, cfg: &ModelConfig) -> Result<()> {
        self.check_config_of(cfg)
    }

    /// Errors unless the checkpoint holds an `M` written for `cfg`, naming the differing knobs.
    pub fn check_config_of<C: NetConfig>(&self, cfg: &C) -> Result<()> {
        if self.meta.net != C::KIND {
            return Err(ck_err(
                &self.path,
                format!("holds a {}, not a {}", self.meta.net, C::KIND),
            ));
        }
        let stored: C = serde_json::from_value(self.meta.model_config.clone())
            .map_err(|e| ck_err(&self.path, format!("`model_config`: {e}")))?;
        if stored.same_weights(cfg) {
            return Ok(());
        }
        let mut diffs = Vec::new();
        let ja = serde_json::to_value(&stored).unwrap_or_default();
        let jb = serde_json::to_value(cfg).unwrap_or_default();
        json_diffs("", &ja, &jb, &mut diffs);
        Err(ck_err(
            &self.path,
            format!(
                "written for a different model config ({}): {}",
                C::KIND,
                if diffs.is_empty() {
                    "configs differ".into()
                } else {
                    diffs.join("; ")
                }
            ),
        ))
    }

    /// The score network with the model or EMA weights (for sampling / evaluation).
    pub fn weights<B: Backend>(
        &self,
        cfg: &ModelConfig,
        which: CheckpointWeights,
        device: &B::Device,
    ) -> Result<ScoreNet<B>> {
        self.module::<B, ScoreNet<B>>(cfg, which, device)
    }

    /// Any network with the model or EMA weights.
    pub fn module<B: Backend, M: TrainNet<B>>(
        &self,
        cfg: &M::Config,
        which: CheckpointWeights,
        device: &B::Device,
    ) -> Result<M> {
        self.check_config_of(cfg)?;
        let mut sd = self.section(MODEL);
        if which == CheckpointWeights::Ema {
            let ema = self.section(EMA);
            if ema.tensors.is_empty() {
                return Err(ck_err(&self.path, "no `ema/*` tensors"));
            }
            sd.tensors.extend(ema.tensors);
        }
        Ok(M::build(cfg, device)?.load(&sd)?.map(&mut Contiguous))
    }

    /// The full training state for resuming under `cfg`'s network (`optim` = the run's Adam
    /// settings, which may change between runs, as in the reference); the data positions are
    /// in [`Checkpoint::meta`].
    pub fn train_state<B: AutodiffBackend>(
        &self,
        cfg: &ModelConfig,
        optim: &OptimConfig,
        device: &B::Device,
    ) -> Result<TrainState<B>> {
        self.train_state_of::<B, ScoreNet<B>>(cfg, optim, device)
    }

    /// [`Checkpoint::train_state`] of any network.
    pub fn train_state_of<B, M>(
        &self,
        cfg: &M::Config,
        optim: &OptimConfig,
        device: &B::Device,
    ) -> Result<TrainState<B, M>>
    where
        B: AutodiffBackend,
        M: TrainNet<B> + AutodiffModule<B>,
        M::InnerModule: TrainNet<B::InnerBackend, Config = M::Config>,
    {
        let model: M = self.module::<B, M>(cfg, CheckpointWeights::Model, device)?;
        let shadow: M::InnerModule =
            self.module::<B::InnerBackend, M::InnerModule>(cfg, CheckpointWeights::Ema, device)?;
        let entries = model.entries();
        let mut moments = Vec::with_capacity(entries.len());
        for e in &entries {
            let n: usize = e.shape.iter().product();
            let get = |prefix: &str| -> Result<Option<Tensor<B::InnerBackend, 1>>> {
                let Some(t) = self.tensors.get(&format!("{prefix}{}", e.key)) else {
                    return Ok(None);
                };
                let HostData::F32(v) = &t.data else {
                    return Err(ck_err(
                        &self.path,
                        format!("`{prefix}{}` is not float32", e.key),
                    ));
                };
                if v.len() != n {
                    return Err(ck_err(
                        &self.path,
                        format!(
                            "`{prefix}{}` has {} values, the parameter {n}",
                            e.key,
                            v.len()
                        ),
                    ));
                }
                Ok(Some(Tensor::from_data(
                    TensorData::new(v.clone(), [n]),
                    device,
                )))
            };
            moments.push(
                match (
                    get(EXP_AVG)?,
                    get(EXP_AVG_SQ)?,
                    self.meta.adam_steps.get(&e.key),
                ) {
                    (Some(m), Some(v), Some(&step)) => Some(Moments {
                        step,
                        exp_avg: m,
                        exp_avg_sq: v,
                    }),
                    (None, None, None) => None,
                    _ => {
                        return Err(ck_err(
                            &self.path,
                            format!("incomplete Adam state for `{}`", e.key),
                        ));
                    }
                },
            );
        }
        let state = TrainState {
            model,
            ema: Ema {
                shadow,
                decay: self.meta.ema_decay,
                num_updates: self.meta.ema_num_updates,
            },
            optim: Optimizer {
                config: optim.clone(),
                state: moments,
            },
            step: self.meta.step,
            rng: TrainRng::from_state(&self.meta.rng),
        };
        Ok(state)
    }
}

/// `a.b = x in the checkpoint, y in the config` for every leaf that differs (two levels deep).
fn json_diffs(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) if prefix.matches('.').count() < 2 => {
            for (k, v) in x {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                json_diffs(&key, v, y.get(k).unwrap_or(&serde_json::Value::Null), out);
            }
        }
        _ if a != b => out.push(format!(
            "{prefix} = {a} in the checkpoint, {b} in the config"
        )),
        _ => {}
    }
}
