//! Inception-v3 in its FID form, as pytorch-fid builds it (`FIDInceptionA`, `FIDInceptionC`,
//! `FIDInceptionE_1`, `FIDInceptionE_2`; the TF graph `inception-2015-12-05`): convolutions
//! without bias, batch norm with eps 1e-3 (folded into the convolution at load time), average
//! pools that exclude padding, a max pool in the last block, pool3 features (2048) and, when the
//! weights hold `fc`, the 1008 logits.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;

use crate::error::{EvalError, Result};

/// Batch-norm epsilon of the TF Inception graph.
const BN_EPS: f64 = 1e-3;

/// `BasicConv2d` (conv without bias → BN → ReLU) with the BN folded into weight and bias.
#[derive(Debug, Clone)]
struct ConvBn<B: Backend> {
    weight: Tensor<B, 4>, // [out, in, kh, kw], scaled by γ / sqrt(var + eps)
    bias: Tensor<B, 1>,   // [out], β − mean · γ / sqrt(var + eps)
    stride: [usize; 2],
    padding: [usize; 2],
}

impl<B: Backend> ConvBn<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let opts = ConvOptions::new(self.stride, self.padding, [1, 1], 1);
        burn::tensor::activation::relu(conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            opts,
        ))
    }
}

/// The weights file as name → (shape, f32 values).
struct WeightFile {
    path: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl WeightFile {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (s, v) = self
            .tensors
            .remove(name)
            .ok_or_else(|| EvalError::Weights {
                path: self.path.clone(),
                reason: format!("missing tensor `{name}`"),
            })?;
        if s != shape {
            return Err(EvalError::Weights {
                path: self.path.clone(),
                reason: format!("`{name}` has shape {s:?}, expected {shape:?}"),
            });
        }
        Ok(v)
    }

    /// Loads `BasicConv2d` `name` (`in → out`, kernel `k`) and folds its batch norm.
    /// (The arguments mirror pytorch-fid's `BasicConv2d(in, out, kernel, stride, padding)`.)
    #[allow(clippy::too_many_arguments)]
    fn conv<B: Backend>(
        &mut self,
        name: &str,
        cin: usize,
        cout: usize,
        k: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        device: &B::Device,
    ) -> Result<ConvBn<B>> {
        let w = self.take(&format!("{name}.conv.weight"), &[cout, cin, k[0], k[1]])?;
        let gamma = self.take(&format!("{name}.bn.weight"), &[cout])?;
        let beta = self.take(&format!("{name}.bn.bias"), &[cout])?;
        let mean = self.take(&format!("{name}.bn.running_mean"), &[cout])?;
        let var = self.take(&format!("{name}.bn.running_var"), &[cout])?;
        let per = cin * k[0] * k[1];
        let mut wf = Vec::with_capacity(w.len());
        let mut bf = Vec::with_capacity(cout);
        for o in 0..cout {
            let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
            wf.extend(
                w[o * per..(o + 1) * per]
                    .iter()
                    .map(|&v| (v as f64 * scale) as f32),
            );
            bf.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
        }
        self.tensors
            .remove(&format!("{name}.bn.num_batches_tracked"));
        Ok(ConvBn {
            weight: Tensor::from_data(TensorData::new(wf, [cout, cin, k[0], k[1]]), device),
            bias: Tensor::from_data(TensorData::new(bf, [cout]), device),
            stride: [stride, stride],
            padding,
        })
    }
}

/// `avg_pool2d(k=3, s=1, p=1, count_include_pad=False)` of the FID blocks.
fn avg3<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false)
}

fn max3<B: Backend>(x: Tensor<B, 4>, stride: usize, pad: usize) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [stride, stride], [pad, pad], [1, 1], false)
}

/// The kinds of mixed blocks.
#[derive(Debug, Clone)]
enum Mixed<B: Backend> {
    /// `FIDInceptionA` (Mixed_5b/c/d).
    A(Vec<ConvBn<B>>),
    /// `InceptionB` (Mixed_6a).
    B(Vec<ConvBn<B>>),
    /// `FIDInceptionC` (Mixed_6b..e).
    C(Vec<ConvBn<B>>),
    /// `InceptionD` (Mixed_7a).
    D(Vec<ConvBn<B>>),
    /// `FIDInceptionE_1` (avg pool, Mixed_7b) / `FIDInceptionE_2` (max pool, Mixed_7c).
    E(Vec<ConvBn<B>>, bool),
}

impl<B: Backend> Mixed<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let f = |c: &ConvBn<B>, x: Tensor<B, 4>| c.forward(x);
        match self {
            Mixed::A(c) => {
                let b1 = f(&c[0], x.clone());
                let b5 = f(&c[2], f(&c[1], x.clone()));
                let b3 = f(&c[5], f(&c[4], f(&c[3], x.clone())));
                let bp = f(&c[6], avg3(x));
                Tensor::cat(vec![b1, b5, b3, bp], 1)
            }
            Mixed::B(c) => {
                let b3 = f(&c[0], x.clone());
                let bd = f(&c[3], f(&c[2], f(&c[1], x.clone())));
                let bp = max3(x, 2, 0);
                Tensor::cat(vec![b3, bd, bp], 1)
            }
            Mixed::C(c) => {
                let b1 = f(&c[0], x.clone());
                let b7 = f(&c[3], f(&c[2], f(&c[1], x.clone())));
                let bd = f(&c[8], f(&c[7], f(&c[6], f(&c[5], f(&c[4], x.clone())))));
                let bp = f(&c[9], avg3(x));
                Tensor::cat(vec![b1, b7, bd, bp], 1)
            }
            Mixed::D(c) => {
                let b3 = f(&c[1], f(&c[0], x.clone()));
                let b7 = f(&c[5], f(&c[4], f(&c[3], f(&c[2], x.clone()))));
                let bp = max3(x, 2, 0);
                Tensor::cat(vec![b3, b7, bp], 1)
            }
            Mixed::E(c, max_pool) => {
                let b1 = f(&c[0], x.clone());
                let t = f(&c[1], x.clone());
                let b3 = Tensor::cat(vec![f(&c[2], t.clone()), f(&c[3], t)], 1);
                let t = f(&c[5], f(&c[4], x.clone()));
                let bd = Tensor::cat(vec![f(&c[6], t.clone()), f(&c[7], t)], 1);
                let pooled = if *max_pool { max3(x, 1, 1) } else { avg3(x) };
                let bp = f(&c[8], pooled);
                Tensor::cat(vec![b1, b3, bd, bp], 1)
            }
        }
    }
}

/// Inception-v3 (FID variant) with folded batch norms.
#[derive(Debug, Clone)]
pub struct InceptionV3<B: Backend> {
    stem: Vec<ConvBn<B>>,
    mixed: Vec<Mixed<B>>,
    /// `fc` ([1008, 2048] weight, [1008] bias) when the weights file has it.
    fc: Option<(Tensor<B, 2>, Tensor<B, 1>)>,
}

/// Pool3 features (and logits when `fc` is present) of a batch.
#[derive(Debug, Clone)]
pub struct InceptionOutput<B: Backend> {
    /// `[B, 2048]` pool3 features.
    pub pool3: Tensor<B, 2>,
    /// `[B, 1008]` logits, when the weights hold `fc`.
    pub logits: Option<Tensor<B, 2>>,
}

/// Refuses a torch zip whose entries declare more bytes than the file can produce (stored:
/// more than the file; deflated: more than deflate's 1032:1 ratio): burn-store's reader
/// reserves each entry's declared size before reading it.
fn check_zip_sizes(path: &Path) -> Result<()> {
    let err = |reason: String| EvalError::File {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| err(format!("not a readable PyTorch state dict: {e}")))?;
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| err(e.to_string()))?;
        let limit = match f.compression() {
            zip::CompressionMethod::Stored => f.compressed_size(),
            _ => f.compressed_size().saturating_mul(1032),
        };
        if f.compressed_size() > len || f.size() > limit {
            return Err(err(format!(
                "{}: declares {} bytes ({} compressed) in a file of {len} bytes",
                f.name(),
                f.size(),
                f.compressed_size()
            )));
        }
    }
    Ok(())
}

impl<B: Backend> InceptionV3<B> {
    /// Loads pytorch-fid's weights (`pt_inception-2015-12-05-*.pth`, a plain `state_dict`).
    /// `fc.weight` / `fc.bias` are optional.
    pub fn load(path: &Path, device: &B::Device) -> Result<Self> {
        if !path.is_file() {
            return Err(EvalError::MissingWeights {
                path: path.display().to_string(),
            });
        }
        check_zip_sizes(path)?;
        let reader =
            burn_store::pytorch::PytorchReader::new(path).map_err(|e| EvalError::File {
                path: path.display().to_string(),
                reason: format!("not a readable PyTorch state dict: {e}"),
            })?;
        let mut tensors = HashMap::new();
        for (name, snap) in reader.into_tensors() {
            let data = snap.to_data().map_err(|e| EvalError::Weights {
                path: path.display().to_string(),
                reason: format!("tensor `{name}`: {e:?}"),
            })?;
            let shape: Vec<usize> = data.shape.iter().copied().collect();
            let v = data
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| EvalError::Weights {
                    path: path.display().to_string(),
                    reason: format!("tensor `{name}`: {e:?}"),
                })?;
            tensors.insert(name, (shape, v));
        }
        let mut w = WeightFile {
            path: path.display().to_string(),
            tensors,
        };
        let d = device;
        let stem = vec![
            w.conv("Conv2d_1a_3x3", 3, 32, [3, 3], 2, [0, 0], d)?,
            w.conv("Conv2d_2a_3x3", 32, 32, [3, 3], 1, [0, 0], d)?,
            w.conv("Conv2d_2b_3x3", 32, 64, [3, 3], 1, [1, 1], d)?,
            w.conv("Conv2d_3b_1x1", 64, 80, [1, 1], 1, [0, 0], d)?,
            w.conv("Conv2d_4a_3x3", 80, 192, [3, 3], 1, [0, 0], d)?,
        ];
        let a = |w: &mut WeightFile, n: &str, cin: usize, pool: usize| -> Result<Mixed<B>> {
            Ok(Mixed::A(vec![
                w.conv(&format!("{n}.branch1x1"), cin, 64, [1, 1], 1, [0, 0], d)?,
                w.conv(&format!("{n}.branch5x5_1"), cin, 48, [1, 1], 1, [0, 0], d)?,
                w.conv(&format!("{n}.branch5x5_2"), 48, 64, [5, 5], 1, [2, 2], d)?,
                w.conv(
                    &format!("{n}.branch3x3dbl_1"),
                    cin,
                    64,
                    [1, 1],
                    1,
                    [0, 0],
                    d,
                )?,
                w.conv(&format!("{n}.branch3x3dbl_2"), 64, 96, [3, 3], 1, [1, 1], d)?,
                w.conv(&format!("{n}.branch3x3dbl_3"), 96, 96, [3, 3], 1, [1, 1], d)?,
                w.conv(&format!("{n}.branch_pool"), cin, pool, [1, 1], 1, [0, 0], d)?,
            ]))
        };
        let c = |w: &mut WeightFile, n: &str, c7: usize| -> Result<Mixed<B>> {
            let (r, q) = ([1, 7], [7, 1]);
            let (pr, pq) = ([0, 3], [3, 0]);
            Ok(Mixed::C(vec![
                w.conv(&format!("{n}.branch1x1"), 768, 192, [1, 1], 1, [0, 0], d)?,
                w.conv(&format!("{n}.branch7x7_1"), 768, c7, [1, 1], 1, [0, 0], d)?,
                w.conv(&format!("{n}.branch7x7_2"), c7, c7, r, 1, pr, d)?,
                w.conv(&format!("{n}.branch7x7_3"), c7, 192, q, 1, pq, d)?,
                w.conv(
                    &format!("{n}.branch7x7dbl_1"),
                    768,
                    c7,
                    [1, 1],
                    1,
                    [0, 0],
                    d,
                )?,
                w.conv(&format!("{n}.branch7x7dbl_2"), c7, c7, q, 1, pq, d)?,
                w.conv(&format!("{n}.branch7x7dbl_3"), c7, c7, r, 1, pr, d)?,
                w.conv(&format!("{n}.branch7x7dbl_4"), c7, c7, q, 1, pq, d)?,
                w.conv(&format!("{n}.branch7x7dbl_5"), c7, 192, r, 1, pr, d)?,
                w.conv(&format!("{n}.branch_pool"), 768, 192, [1, 1], 1, [0, 0], d)?,
            ]))
        };
        let e = |w: &mut WeightFile, n: &str, cin: usize, max_pool: bool| -> Result<Mixed<B>> {
            let (r, q) = ([1, 3], [3, 1]);
            let (pr, pq) = ([0, 1], [1, 0]);
            Ok(Mixed::E(
                vec![
                    w.conv(&format!("{n}.branch1x1"), cin, 320, [1, 1], 1, [0, 0], d)?,
                    w.conv(&format!("{n}.branch3x3_1"), cin, 384, [1, 1], 1, [0, 0], d)?,
                    w.conv(&format!("{n}.branch3x3_2a"), 384, 384, r, 1, pr, d)?,
                    w.conv(&format!("{n}.branch3x3_2b"), 384, 384, q, 1, pq, d)?,
                    w.conv(
                        &format!("{n}.branch3x3dbl_1"),
                        cin,
                        448,
                        [1, 1],
                        1,
                        [0, 0],
                        d,
                    )?,
                    w.conv(
                        &format!("{n}.branch3x3dbl_2"),
                        448,
                        384,
                        [3, 3],
                        1,
                        [1, 1],
                        d,
                    )?,
                    w.conv(&format!("{n}.branch3x3dbl_3a"), 384, 384, r, 1, pr, d)?,
                    w.conv(&format!("{n}.branch3x3dbl_3b"), 384, 384, q, 1, pq, d)?,
                    w.conv(&format!("{n}.branch_pool"), cin, 192, [1, 1], 1, [0, 0], d)?,
                ],
                max_pool,
            ))
        };
        let mixed = vec![
            a(&mut w, "Mixed_5b", 192, 32)?,
            a(&mut w, "Mixed_5c", 256, 64)?,
            a(&mut w, "Mixed_5d", 288, 64)?,
            Mixed::B(vec![
                w.conv("Mixed_6a.branch3x3", 288, 384, [3, 3], 2, [0, 0], d)?,
                w.conv("Mixed_6a.branch3x3dbl_1", 288, 64, [1, 1], 1, [0, 0], d)?,
                w.conv("Mixed_6a.branch3x3dbl_2", 64, 96, [3, 3], 1, [1, 1], d)?,
                w.conv("Mixed_6a.branch3x3dbl_3", 96, 96, [3, 3], 2, [0, 0], d)?,
            ]),
            c(&mut w, "Mixed_6b", 128)?,
            c(&mut w, "Mixed_6c", 160)?,
            c(&mut w, "Mixed_6d", 160)?,
            c(&mut w, "Mixed_6e", 192)?,
            Mixed::D(vec![
                w.conv("Mixed_7a.branch3x3_1", 768, 192, [1, 1], 1, [0, 0], d)?,
                w.conv("Mixed_7a.branch3x3_2", 192, 320, [3, 3], 2, [0, 0], d)?,
                w.conv("Mixed_7a.branch7x7x3_1", 768, 192, [1, 1], 1, [0, 0], d)?,
                w.conv("Mixed_7a.branch7x7x3_2", 192, 192, [1, 7], 1, [0, 3], d)?,
                w.conv("Mixed_7a.branch7x7x3_3", 192, 192, [7, 1], 1, [3, 0], d)?,
                w.conv("Mixed_7a.branch7x7x3_4", 192, 192, [3, 3], 2, [0, 0], d)?,
            ]),
            e(&mut w, "Mixed_7b", 1280, false)?,
            e(&mut w, "Mixed_7c", 2048, true)?,
        ];
        let fc = if w.tensors.contains_key("fc.weight") {
            let fw = w.take("fc.weight", &[1008, 2048])?;
            let fb = w.take("fc.bias", &[1008])?;
            let fw = Tensor::<B, 2>::from_data(TensorData::new(fw, [1008, 2048]), d).transpose();
            Some((fw, Tensor::from_data(TensorData::new(fb, [1008]), d)))
        } else {
            None
        };
        Ok(Self { stem, mixed, fc })
    }

    /// True when the weights hold `fc` (logits and Inception Score available).
    pub fn has_logits(&self) -> bool {
        self.fc.is_some()
    }

    /// Forward from network input (`[B, 3, 299, 299]`, already in [-1, 1]).
    pub fn forward(&self, x: Tensor<B, 4>) -> InceptionOutput<B> {
        let s = &self.stem;
        let x = s[2].forward(s[1].forward(s[0].forward(x))); // [B, 64, 147, 147]
        let x = max3(x, 2, 0); // [B, 64, 73, 73]
        let x = s[4].forward(s[3].forward(x)); // [B, 192, 71, 71]
        let mut x = max3(x, 2, 0); // [B, 192, 35, 35]
        for m in &self.mixed {
            x = m.forward(x);
        }
        let [b, c, _, _] = x.dims(); // [B, 2048, 8, 8]
        let pool3 = x.mean_dim(3).mean_dim(2).reshape([b, c]); // adaptive avg pool → [B, 2048]
        let logits = self
            .fc
            .as_ref()
            .map(|(w, bias)| pool3.clone().matmul(w.clone()) + bias.clone().unsqueeze::<2>());
        InceptionOutput { pool3, logits }
    }
}
