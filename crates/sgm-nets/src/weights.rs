//! Weights: the reference's flat state dict (`all_modules.3.Conv_0.weight`, NIN `W` `[in, out]`,
//! `nn.Linear` weights `[out, in]`, GroupNorm `weight`/`bias`, float64 `sigmas`), read from
//! safetensors or from an official training checkpoint `.pth` (model or EMA weights), and
//! written back to safetensors in the same layout (sgm's own weight format, so its files load in
//! PyTorch too).

use std::collections::HashMap;
use std::path::Path;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::config::ModelConfig;
use crate::error::{NetsError, Result};
use crate::net::ScoreNet;

/// Key of the float64 noise-level buffer.
pub const SIGMAS_KEY: &str = "sigmas";

/// Values of a host tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// float32 values.
    F32(Vec<f32>),
    /// float64 values (the `sigmas` buffer).
    F64(Vec<f64>),
}

/// A tensor on the host in the reference's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape (PyTorch layout).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: HostData,
}

impl HostTensor {
    fn f32_values(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    fn f64_values(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F64(v) => v.clone(),
        }
    }
}

/// A flat state dict with reference key names, and where it came from (for messages).
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// File or source name.
    pub source: String,
    /// Tensors by key.
    pub tensors: HashMap<String, HostTensor>,
}

/// One parameter of a model: reference key, PyTorch-layout shape, trainable flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// Reference state-dict key.
    pub key: String,
    /// Shape in the reference layout.
    pub shape: Vec<usize>,
    /// False only for the frozen Fourier `W`.
    pub trainable: bool,
}

/// Tracks the module path and turns it into the reference key.
#[derive(Default)]
struct PathStack {
    stack: Vec<(String, String)>,
}

impl PathStack {
    fn enter(&mut self, name: &str, ct: &str) {
        self.stack.push((name.to_string(), ct.to_string()));
    }
    fn exit(&mut self) {
        self.stack.pop();
    }
    /// (reference key, is a Linear weight (transposed), is the frozen Fourier W)
    fn key(&self) -> (String, bool, bool) {
        let parts: Vec<&(String, String)> = self
            .stack
            .iter()
            .filter(|(_, ct)| !ct.starts_with("Enum:"))
            .collect();
        let mut names: Vec<String> = parts.iter().map(|(n, _)| n.clone()).collect();
        let (last, ct) = parts
            .last()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .unwrap_or(("", ""));
        if ct == "Struct:GroupNorm" {
            let renamed = match last {
                "gamma" => "weight",
                "beta" => "bias",
                other => other,
            };
            if let Some(l) = names.last_mut() {
                *l = renamed.to_string();
            }
        }
        let linear_w = ct == "Struct:Linear" && last == "weight";
        let frozen = ct == "Struct:FourierProjection" && last == "W";
        (names.join("."), linear_w, frozen)
    }
}

struct Lister {
    path: PathStack,
    out: Vec<ParamEntry>,
}

impl<B: Backend> ModuleVisitor<B> for Lister {
    fn enter_module(&mut self, name: &str, ct: &str) {
        self.path.enter(name, ct);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let (key, linear_w, frozen) = self.path.key();
        let mut shape = p.lazy_shape().to_vec();
        if linear_w {
            shape.reverse();
        }
        self.out.push(ParamEntry {
            key,
            shape,
            trainable: !frozen,
        });
    }
}

/// The model's parameters in registration order (= the reference's `parameters()` order).
pub fn param_entries<B: Backend>(model: &ScoreNet<B>) -> Vec<ParamEntry> {
    module_param_entries(model)
}

/// Any module's parameters in registration order, named by their module path (GroupNorm
/// `gamma` / `beta` as `weight` / `bias`, `Linear` weights in PyTorch's `[out, in]` layout).
pub fn module_param_entries<B: Backend, M: Module<B>>(model: &M) -> Vec<ParamEntry> {
    let mut l = Lister {
        path: PathStack::default(),
        out: Vec::new(),
    };
    model.visit(&mut l);
    l.out
}

struct Loader<'a> {
    path: PathStack,
    sd: &'a StateDict,
}

impl<B: Backend> ModuleMapper<B> for Loader<'_> {
    fn enter_module(&mut self, name: &str, ct: &str) {
        self.path.enter(name, ct);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (key, linear_w, _) = self.path.key();
        // presence and shapes were checked before mapping
        let Some(t) = self.sd.tensors.get(&key) else {
            return p;
        };
        let device = p.lazy_device();
        let id = p.id;
        let x =
            Tensor::<B, D>::from_data(TensorData::new(t.f32_values(), t.shape.clone()), &device);
        let x = if linear_w { x.swap_dims(0, 1) } else { x };
        p.transform_for_load(x, id)
    }
}

/// Loads `sd` into `model`: every parameter must be present with the reference shape, and
/// no key may be left over. `sigmas` (optional) must have shape `[num_scales]`.
pub fn apply_state_dict<B: Backend>(model: ScoreNet<B>, sd: &StateDict) -> Result<ScoreNet<B>> {
    let entries = param_entries(&model);
    check_state_dict(&entries, sd, &[SIGMAS_KEY])?;
    let sigmas = match sd.tensors.get(SIGMAS_KEY) {
        Some(t) => {
            let n = model.config().model.num_scales;
            if t.shape != [n] {
                return Err(NetsError::ShapeMismatch {
                    file: sd.source.clone(),
                    key: SIGMAS_KEY.into(),
                    found: t.shape.clone(),
                    expected: vec![n],
                });
            }
            Some(t.f64_values())
        }
        None => None,
    };
    let mut loader = Loader {
        path: PathStack::default(),
        sd,
    };
    let mut model = model.map(&mut loader);
    if let Some(s) = sigmas {
        model.set_sigmas(s);
    }
    Ok(model)
}

/// Every parameter of `entries` present in `sd` with its shape, and no key left over except
/// `extra`.
fn check_state_dict(entries: &[ParamEntry], sd: &StateDict, extra: &[&str]) -> Result<()> {
    for e in entries {
        match sd.tensors.get(&e.key) {
            None => {
                return Err(NetsError::MissingKey {
                    file: sd.source.clone(),
                    key: e.key.clone(),
                    expected: e.shape.clone(),
                });
            }
            Some(t) if t.shape != e.shape => {
                return Err(NetsError::ShapeMismatch {
                    file: sd.source.clone(),
                    key: e.key.clone(),
                    found: t.shape.clone(),
                    expected: e.shape.clone(),
                });
            }
            Some(_) => {}
        }
    }
    let mut unused: Vec<String> = sd
        .tensors
        .keys()
        .filter(|k| !extra.contains(&k.as_str()) && !entries.iter().any(|e| &e.key == *k))
        .cloned()
        .collect();
    if !unused.is_empty() {
        unused.sort();
        return Err(NetsError::UnexpectedKeys {
            file: sd.source.clone(),
            keys: unused,
        });
    }
    Ok(())
}

/// Loads `sd` into any module (keys and shapes as [`module_param_entries`]): every parameter
/// must be present with its shape, and no key may be left over.
pub fn apply_module_state_dict<B: Backend, M: Module<B>>(model: M, sd: &StateDict) -> Result<M> {
    check_state_dict(&module_param_entries(&model), sd, &[])?;
    let mut loader = Loader {
        path: PathStack::default(),
        sd,
    };
    Ok(model.map(&mut loader))
}

struct Collector {
    path: PathStack,
    out: Vec<(String, HostTensor)>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, ct: &str) {
        self.path.enter(name, ct);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let (key, linear_w, _) = self.path.key();
        let t = p.val();
        let t = if linear_w { t.swap_dims(0, 1) } else { t };
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default();
        self.out.push((
            key,
            HostTensor {
                shape,
                data: HostData::F32(data),
            },
        ));
    }
}

/// The model's state dict in the reference layout (parameters + float64 `sigmas`).
pub fn state_dict<B: Backend>(model: &ScoreNet<B>) -> StateDict {
    let mut sd = module_state_dict(model);
    let tensors = &mut sd.tensors;
    let s = model.sigmas().to_vec();
    tensors.insert(
        SIGMAS_KEY.into(),
        HostTensor {
            shape: vec![s.len()],
            data: HostData::F64(s),
        },
    );
    sd
}

/// Any module's parameters as a state dict (keys as [`module_param_entries`]).
pub fn module_state_dict<B: Backend, M: Module<B>>(model: &M) -> StateDict {
    let mut c = Collector {
        path: PathStack::default(),
        out: Vec::new(),
    };
    model.visit(&mut c);
    StateDict {
        source: "model".into(),
        tensors: c.out.into_iter().collect(),
    }
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> NetsError {
    NetsError::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Reads a flat safetensors state dict (float32 / float64 tensors).
pub fn read_safetensors(path: &Path) -> Result<StateDict> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    parse_safetensors(path, &bytes)
}

/// [`read_safetensors`] of a file already in memory (`path` only names it in errors). The
/// header's offsets, shapes and dtypes are validated against the bytes present (by the
/// `safetensors` crate) before any tensor is copied.
pub fn parse_safetensors(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes).map_err(|e| file_err(path, e))?;
    let source = path.display().to_string();
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => HostData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F64 => HostData::F64(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            other => {
                return Err(NetsError::BadTensor {
                    file: source,
                    key: name.to_string(),
                    msg: format!("unsupported dtype {other:?} (float32 / float64 expected)"),
                });
            }
        };
        tensors.insert(
            name.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(StateDict { source, tensors })
}

/// Writes the model's state dict (reference layout, float32 params + float64 `sigmas`) to a
/// safetensors file; [`load_safetensors`] reads it back exactly.
pub fn save_safetensors<B: Backend>(model: &ScoreNet<B>, path: &Path) -> Result<()> {
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;
    let sd = state_dict(model);
    let mut keys: Vec<&String> = sd.tensors.keys().collect();
    keys.sort();
    let bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = keys
        .into_iter()
        .map(|k| {
            let t = &sd.tensors[k];
            let (dt, bytes) = match &t.data {
                HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                HostData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (k.clone(), dt, t.shape.clone(), bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(bufs.len());
    for (k, dt, shape, bytes) in &bufs {
        let v = TensorView::new(*dt, shape.clone(), bytes).map_err(|e| file_err(path, e))?;
        views.push((k.clone(), v));
    }
    let bytes = safetensors::serialize(views, None).map_err(|e| file_err(path, e))?;
    // atomically: a run killed mid-write leaves the old file or the new one
    sgm_fs::write_atomic_bytes(path, &bytes).map_err(|e| file_err(path, e))
}

/// Builds the network of `cfg` and loads a flat reference state dict from safetensors
/// (e.g. a fixture's `model.safetensors`). Any mismatch is one error naming the key and both shapes.
pub fn load_safetensors<B: Backend>(
    cfg: &ModelConfig,
    path: &Path,
    device: &B::Device,
) -> Result<ScoreNet<B>> {
    let sd = read_safetensors(path)?;
    apply_state_dict(ScoreNet::new(cfg, device)?, &sd)
}

/// Which weights of a training checkpoint to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointWeights {
    /// `model` (the raw training weights, `module.` prefix stripped).
    Model,
    /// `ema.shadow_params` (the EMA weights used for evaluation and sampling), mapped onto the
    /// trainable parameters in `parameters()` order; the frozen Fourier `W` and `sigmas` come
    /// from `model`.
    Ema,
}

mod pth {
    use super::*;
    use crate::pickle::{self, TensorRef, Value};
    use std::io::Cursor;

    /// A checkpoint held in memory: its decoded pickle and the zip holding the storages.
    pub(super) struct Checkpoint<'a> {
        pub top: Value,
        path: &'a Path,
        zip: zip::ZipArchive<Cursor<&'a [u8]>>,
        prefix: String,
        cache: HashMap<String, Vec<u8>>,
        /// Bytes that decompressing storages may still produce (bounds memory by the file's
        /// size even for deflated entries).
        budget: u64,
    }

    pub(super) fn open<'a>(path: &'a Path, bytes: &'a [u8]) -> Result<Checkpoint<'a>> {
        sgm_fs::check_zip_directory(bytes)
            .map_err(|e| file_err(path, format!("not a torch zip checkpoint: {e}")))?;
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| file_err(path, format!("not a torch zip checkpoint: {e}")))?;
        let prefix = zip
            .file_names()
            .find_map(|k| k.split_once("/data.pkl").map(|(p, _)| p.to_string()))
            .ok_or_else(|| file_err(path, "not a torch zip checkpoint: no `data.pkl`"))?;
        let budget = (bytes.len() as u64).saturating_mul(16) + (1 << 20);
        let mut ck = Checkpoint {
            top: Value::None,
            path,
            zip,
            prefix,
            cache: HashMap::new(),
            budget,
        };
        let name = format!("{}/data.pkl", ck.prefix);
        let pkl = ck.entry(&name)?;
        ck.top = pickle::parse(&pkl).map_err(|e| file_err(path, format!("{name}: {e}")))?;
        Ok(ck)
    }

    /// The declared shape of a tensor value, without touching its storage.
    pub(super) fn declared_shape(v: &Value) -> Option<&[usize]> {
        match v {
            Value::Tensor(t) => Some(&t.size),
            _ => None,
        }
    }

    impl Checkpoint<'_> {
        /// Reads one zip entry, at most as many bytes as the remaining budget allows.
        fn entry(&mut self, name: &str) -> Result<Vec<u8>> {
            let path = self.path;
            let entry = self
                .zip
                .by_name(name)
                .map_err(|e| file_err(path, format!("{name}: {e}")))?;
            let declared = entry.size();
            sgm_fs::read_declared(entry, declared, &mut self.budget)
                .map_err(|e| file_err(path, format!("{name}: {e}")))
        }

        /// Materialises a tensor (any strides, stride 0 included) from its storage after
        /// checking that every element it addresses lies inside the storage. The caller has
        /// checked the declared shape against the model, so the result is bounded by it.
        pub(super) fn host(&mut self, key: &str, v: &Value) -> Result<HostTensor> {
            let path = self.path;
            let bad = |msg: String| NetsError::BadTensor {
                file: path.display().to_string(),
                key: key.to_string(),
                msg,
            };
            let Value::Tensor(TensorRef {
                key: skey,
                storage,
                offset,
                size,
                stride,
            }) = v
            else {
                return Err(bad("not a tensor".into()));
            };
            let width: usize = match storage.as_str() {
                "FloatStorage" => 4,
                "DoubleStorage" => 8,
                other => {
                    return Err(bad(format!(
                        "unsupported storage {other} (float32 / float64 expected)"
                    )));
                }
            };
            if size.len() != stride.len() {
                return Err(bad(format!(
                    "size {size:?} and stride {stride:?} differ in rank"
                )));
            }
            let numel = size
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| bad(format!("size {size:?} overflows")))?;
            // last element addressed: offset + Σ (size_d − 1) · stride_d
            let last = if numel == 0 {
                Some(0)
            } else {
                size.iter().zip(stride).try_fold(*offset, |acc, (&d, &s)| {
                    (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
                })
            };
            let need = last
                .and_then(|l| l.checked_add(1))
                .and_then(|l| l.checked_mul(width))
                .ok_or_else(|| {
                    bad(format!(
                        "offset {offset}, size {size:?}, stride {stride:?} overflow"
                    ))
                })?;
            if !self.cache.contains_key(skey) {
                let name = format!("{}/data/{skey}", self.prefix);
                let bytes = self.entry(&name)?;
                self.cache.insert(skey.clone(), bytes);
            }
            let bytes = self.cache.get(skey).map(Vec::as_slice).unwrap_or_default();
            if numel > 0 && need > bytes.len() {
                return Err(bad(format!(
                    "offset {offset}, size {size:?}, stride {stride:?} address {need} bytes, \
                     storage `{skey}` holds {} (truncated or corrupt file?)",
                    bytes.len()
                )));
            }
            // element index of every row-major position, odometer-style
            let mut pos = vec![0usize; size.len()];
            let mut at = *offset;
            let mut next = || {
                let i = at;
                for d in (0..size.len()).rev() {
                    pos[d] += 1;
                    // modular arithmetic: a size-1 dimension may carry any stride, and
                    // every index actually used was bounded above
                    at = at.wrapping_add(stride[d]);
                    if pos[d] < size[d] {
                        break;
                    }
                    at = at.wrapping_sub(stride[d].wrapping_mul(size[d]));
                    pos[d] = 0;
                }
                i
            };
            let word = |i: usize| &bytes[width * i..width * (i + 1)];
            let data = if width == 4 {
                HostData::F32(
                    (0..numel)
                        .map(|_| {
                            let c = word(next());
                            f32::from_le_bytes([c[0], c[1], c[2], c[3]])
                        })
                        .collect(),
                )
            } else {
                HostData::F64(
                    (0..numel)
                        .map(|_| {
                            let c = word(next());
                            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                )
            };
            Ok(HostTensor {
                shape: size.clone(),
                data,
            })
        }
    }
}

/// Reads the state dict of an official training checkpoint (`torch.save` zip of
/// `{model, ema, optimizer, step}`): `model` with its `module.` prefix stripped, or the EMA
/// shadow parameters mapped onto the trainable parameters of `cfg`'s network.
pub fn read_checkpoint<B: Backend>(
    cfg: &ModelConfig,
    path: &Path,
    which: CheckpointWeights,
    device: &B::Device,
) -> Result<StateDict> {
    if !path.is_file() {
        return Err(file_err(path, "no such file"));
    }
    // shapes only: building the (lazy) network allocates nothing
    let entries = param_entries(&ScoreNet::<B>::new(cfg, device)?);
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    parse_checkpoint(path, &bytes, &entries, cfg.model.num_scales, which)
}

/// [`read_checkpoint`] of a checkpoint already in memory (`path` only names it in errors),
/// for a model with parameters `expected` and `num_scales` noise levels. Every tensor's
/// declared shape is checked against `expected` (`sigmas`: `[num_scales]`) and every element
/// it addresses against its storage before anything is materialised, so memory stays bounded
/// by the file's size and the model's size whatever the file declares.
pub fn parse_checkpoint(
    path: &Path,
    bytes: &[u8],
    expected: &[ParamEntry],
    num_scales: usize,
    which: CheckpointWeights,
) -> Result<StateDict> {
    use crate::pickle::Value;
    let mut ck = pth::open(path, bytes)?;
    let top = std::mem::replace(&mut ck.top, Value::None);
    let source = path.display().to_string();
    let Some(Value::Dict(model)) = top.get("model") else {
        return Err(file_err(path, "no `model` state dict in the checkpoint"));
    };
    let sigmas_shape = [num_scales];
    let mut tensors = HashMap::new();
    for (k, v) in model {
        let Value::Str(k) = k else {
            return Err(file_err(path, "`model` has a non-string key"));
        };
        let key = k.strip_prefix("module.").unwrap_or(k).to_string();
        let want: &[usize] = if key == SIGMAS_KEY {
            &sigmas_shape
        } else {
            match expected.iter().find(|e| e.key == key) {
                Some(e) => &e.shape,
                None => {
                    return Err(NetsError::UnexpectedKeys {
                        file: source,
                        keys: vec![k.clone()],
                    });
                }
            }
        };
        match pth::declared_shape(v) {
            Some(found) if found != want => {
                return Err(NetsError::ShapeMismatch {
                    file: source,
                    key: k.clone(),
                    found: found.to_vec(),
                    expected: want.to_vec(),
                });
            }
            _ => {}
        }
        if tensors.contains_key(&key) {
            return Err(NetsError::BadTensor {
                file: source,
                key: k.clone(),
                msg: "appears twice in `model`".into(),
            });
        }
        let t = ck.host(k, v)?;
        tensors.insert(key, t);
    }
    if which == CheckpointWeights::Ema {
        let Some(Value::List(shadow)) = top.get("ema").and_then(|e| e.get("shadow_params")) else {
            return Err(file_err(
                path,
                "no `ema.shadow_params` list in the checkpoint",
            ));
        };
        let trainable: Vec<&ParamEntry> = expected.iter().filter(|e| e.trainable).collect();
        if trainable.len() != shadow.len() {
            return Err(file_err(
                path,
                format!(
                    "ema.shadow_params has {} tensors, the model has {} trainable parameters",
                    shadow.len(),
                    trainable.len()
                ),
            ));
        }
        for (i, (e, o)) in trainable.iter().zip(shadow).enumerate() {
            let key = format!("ema.shadow_params[{i}] ({})", e.key);
            match pth::declared_shape(o) {
                Some(found) if found != e.shape.as_slice() => {
                    return Err(NetsError::ShapeMismatch {
                        file: source,
                        key,
                        found: found.to_vec(),
                        expected: e.shape.clone(),
                    });
                }
                _ => {}
            }
            let t = ck.host(&key, o)?;
            tensors.insert(e.key.clone(), t);
        }
    }
    Ok(StateDict { source, tensors })
}

/// Builds the network of `cfg` and loads the model or EMA weights of an official training
/// checkpoint `.pth`.
pub fn load_checkpoint<B: Backend>(
    cfg: &ModelConfig,
    path: &Path,
    which: CheckpointWeights,
    device: &B::Device,
) -> Result<ScoreNet<B>> {
    let sd = read_checkpoint::<B>(cfg, path, which, device)?;
    apply_state_dict(ScoreNet::new(cfg, device)?, &sd)
}
