//! # sgm-testkit (dev-only)
//!
//! The one fixture reader of the project, used by every crate's tests:
//! * [`fixtures_root`] / [`cases`]: discover ALL case directories of a group under the fixtures
//!   root (`SGM_FIXTURES`, default `../shared/fixtures` beside the checkout). A missing default
//!   root is a loud skip; `SGM_FIXTURES` set but missing or empty is a failure. `SGM_CASES`
//!   ([`CASES_ENV`]) narrows named groups to named cases (the GPU CI lane).
//! * [`ALLOWANCE_SCALE`]: the GPU bound (every float allowance × [`GPU_TOLERANCE_SCALE`] on
//!   `wgpu`, × [`TF32_TOLERANCE_SCALE`] on `cuda` builds).
//! * [`Case`]: `case.json` + `tensors.safetensors` of one case; tensors by name.
//! * [`Checker`]: the project's pass rule (fixtures README §3) — elementwise allclose for
//!   `sde`, scale-relative for every other group, exact for integers — collecting every failure
//!   (case, tensor, worst element, both values, error / allowance) before failing.
//! * [`Case::recorded_noise`]: a [`RecordedNoise`] replaying the case's `random_draws`
//!   (values from the case or from the shared `noise_pool`).
//! * [`TestBackend`] / [`TestAutodiff`]: the CPU backend tests run on.
//! * [`corrupt`]: the corruption harness of the untrusted-file loaders (seeded mutator,
//!   format layouts, counting allocator).

pub mod cifar;
pub mod corrupt;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sde_core::{AnySde, DrawKind, RecordedDraw, RecordedNoise, SdeKind};
use serde_json::Value;

/// Backend of the tests: Flex (CPU) by default; CUDA or wgpu with the opt-in features `cuda` /
/// `wgpu` of this crate (e.g. `cargo test -p sde-core --features sgm-testkit/cuda`).
#[cfg(feature = "cuda")]
pub type TestBackend = burn::backend::Cuda;
/// Backend of the tests (see the `cuda` variant).
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type TestBackend = burn::backend::Wgpu;
/// Backend of the tests: Flex (CPU) by default; CUDA or wgpu with the opt-in features `cuda` /
/// `wgpu` of this crate (e.g. `cargo test -p sde-core --features sgm-testkit/cuda`).
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
pub type TestBackend = burn::backend::Flex;

/// True when the tests run on a GPU backend (`cuda` / `wgpu` features).
pub const GPU: bool = cfg!(any(feature = "cuda", feature = "wgpu"));

/// **The GPU bound** (docs/parity.md, "Backends"). In the fixtures README's §3 terms: on a GPU
/// backend every float allowance of the pass rule — `atol + rtol·max|e|` (scale-relative),
/// `atol + rtol·|e|` (elementwise, scalars) — is multiplied by this factor; the rules themselves,
/// integer outputs, counts and `nfe` allowances are unchanged. GPU kernels sum in other orders
/// (tiled matmuls, tree reductions, fused elementwise chains) and their `exp`/`sin` are not
/// correctly rounded; measured on wgpu/lavapipe the worst case uses less than half of it
/// (docs/parity.md). A wrong kernel is off by orders of magnitude more (docs/gpu.md).
pub const GPU_TOLERANCE_SCALE: f64 = 4.0;

/// **The TF32 bound**: the factor for CUDA builds (`cuda`, `cudnn`). There, f32 convolutions
/// (cuDNN's default math, as PyTorch's `allow_tf32`) and CubeCL's tensor-core matmuls round their
/// operands to TF32's 10-bit mantissa (unit roundoff 2⁻¹¹ ≈ 4.9e-4), so a network's output is only
/// TF32-accurate — the fixtures README's "GPU runs are TF32-level". Measured on an H200
/// (docs/gpu-cudnn.md): the fixture networks use up to ≈ 12 of it; 32 × rtol 1e-4 ≈ 6.5 TF32
/// roundoffs of the output's scale.
pub const TF32_TOLERANCE_SCALE: f64 = 32.0;

/// The factor every float allowance is multiplied by on this build: [`TF32_TOLERANCE_SCALE`] on
/// CUDA, [`GPU_TOLERANCE_SCALE`] on another GPU backend (wgpu: true f32), 1 on the CPU.
pub const ALLOWANCE_SCALE: f64 = if cfg!(feature = "cuda") {
    TF32_TOLERANCE_SCALE
} else if GPU {
    GPU_TOLERANCE_SCALE
} else {
    1.0
};
/// Autodiff over [`TestBackend`].
pub type TestAutodiff = burn::backend::Autodiff<TestBackend>;

/// The device of [`TestBackend`]. On a GPU build the first call also puts CubeCL's autotune and
/// kernel caches where sgm's binaries keep them (`sgm_conv::cubecl_cache`, docs/gpu.md) instead of
/// `target/autotune/` inside the tested crate.
pub fn device() -> Device<TestBackend> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        static CACHES: std::sync::Once = std::sync::Once::new();
        CACHES.call_once(|| {
            if let Err(e) = sgm_conv::cubecl_cache::configure() {
                eprintln!("sgm-testkit: GPU caches left at CubeCL's defaults: {e}");
            }
        });
    }
    Default::default()
}

/// Environment variable naming the fixtures root.
pub const FIXTURES_ENV: &str = "SGM_FIXTURES";

/// The fixtures root: `$SGM_FIXTURES`, else `../shared/fixtures` beside the workspace.
/// Returns `None` (after a loud message) when the default root is missing; panics when
/// `SGM_FIXTURES` is set but missing.
pub fn fixtures_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os(FIXTURES_ENV) {
        let root = PathBuf::from(root);
        assert!(
            root.is_dir(),
            "{FIXTURES_ENV}={} is not a directory",
            root.display()
        );
        return Some(root);
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    if default.is_dir() {
        Some(default)
    } else {
        eprintln!(
            "\n*** SKIPPING parity checks: no fixtures at {} (set {FIXTURES_ENV}) ***\n",
            default.display()
        );
        None
    }
}

/// Every case directory of `group` (sorted by name), loaded. Empty (with a loud message) when
/// the default root is missing; panics if `SGM_FIXTURES` is set and the group holds no case.
pub fn cases(group: &str) -> Vec<Case> {
    let Some(root) = fixtures_root() else {
        return Vec::new();
    };
    let dir = root.join(group);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("case.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    if let Some(keep) = case_filter(group) {
        dirs.retain(|d| {
            let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| keep.contains(&n))
        });
        assert!(
            !dirs.is_empty(),
            "{CASES_ENV} selects {keep:?} of group `{group}`, and none exists under {}",
            dir.display()
        );
    }
    if dirs.is_empty() {
        let msg = format!("no case directories under {}", dir.display());
        if std::env::var_os(FIXTURES_ENV).is_some() {
            panic!("{msg} ({FIXTURES_ENV} is set)");
        }
        eprintln!("\n*** SKIPPING: {msg} ***\n");
    }
    dirs.into_iter()
        .map(|d| Case::load(&d).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Environment variable restricting the cases of some groups (a CI lane's choice of cases on a
/// slow backend): comma-separated `group/case` entries; a group named by at least one entry runs
/// only those cases (a name that does not exist is a failure), other groups run every case.
pub const CASES_ENV: &str = "SGM_CASES";

/// The case names `SGM_CASES` selects in `group` (`None`: every case).
fn case_filter(group: &str) -> Option<Vec<String>> {
    let spec = std::env::var(CASES_ENV).ok()?;
    let keep: Vec<String> = spec
        .split(',')
        .filter_map(|e| e.trim().split_once('/'))
        .filter(|(g, _)| *g == group)
        .map(|(_, c)| c.to_string())
        .collect();
    (!keep.is_empty()).then_some(keep)
}

/// One stored tensor, values widened to f64 (integers are exact up to 2^53).
#[derive(Debug, Clone)]
pub struct FixtureTensor {
    /// Safetensors dtype name (`F32`, `F64`, `I64`, …).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

impl FixtureTensor {
    /// Values as f32.
    pub fn f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
    /// Values as i64.
    pub fn i64(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
    /// True for integer dtypes.
    pub fn is_int(&self) -> bool {
        self.dtype.starts_with('I') || self.dtype.starts_with('U')
    }
    /// As a float tensor of rank `D` on `device` (float32).
    pub fn tensor<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        assert_eq!(
            self.shape.len(),
            D,
            "fixture tensor of shape {:?} requested as rank {D}",
            self.shape
        );
        Tensor::from_data(TensorData::new(self.f32(), self.shape.clone()), device)
    }
}

/// Reads every tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, FixtureTensor>, String> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::U8 => raw.iter().map(|&b| b as f64).collect(),
            Dtype::BOOL => raw.iter().map(|&b| (b != 0) as u8 as f64).collect(),
            other => {
                return Err(format!(
                    "{}: tensor {name}: unsupported dtype {other:?}",
                    path.display()
                ));
            }
        };
        out.insert(
            name.to_string(),
            FixtureTensor {
                dtype: format!("{:?}", view.dtype()),
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Comparison tolerances of a case (`tolerance` key).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

/// How a tensor is compared (fixtures README §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `|a − e| ≤ atol + rtol |e|` for every element (`sde` group).
    Elementwise,
    /// `max |a − e| ≤ atol + rtol max |e|` (every other group).
    ScaleRelative,
    /// Integers: equal.
    Exact,
}

/// One fixture case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Directory of the case.
    pub dir: PathBuf,
    /// Group (`sde`, `nets`, …).
    pub group: String,
    /// Case name (directory name).
    pub name: String,
    /// Parsed `case.json`.
    pub json: Value,
    /// Tensors of `tensors.safetensors`.
    pub tensors: HashMap<String, FixtureTensor>,
}

impl Case {
    /// Loads `dir/case.json` and `dir/tensors.safetensors`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let json_path = dir.join("case.json");
        let text = std::fs::read_to_string(&json_path)
            .map_err(|e| format!("{}: {e}", json_path.display()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json_path.display()))?;
        if json["format_version"].as_i64() != Some(1) {
            return Err(format!("{}: format_version is not 1", json_path.display()));
        }
        let st = dir.join("tensors.safetensors");
        let tensors = if st.is_file() {
            read_safetensors(&st)?
        } else {
            HashMap::new()
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            group: json["group"].as_str().unwrap_or_default().to_string(),
            name: json["name"].as_str().unwrap_or_default().to_string(),
            json,
            tensors,
        })
    }

    /// `group/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }

    /// The fixtures root this case lives in (`<root>/<group>/<case>`).
    pub fn root(&self) -> PathBuf {
        self.dir.join("../..")
    }

    /// A tensor by name (panics naming the case if absent).
    pub fn tensor(&self, name: &str) -> &FixtureTensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{}: no tensor `{name}`", self.id()))
    }

    /// Output names (`outputs`).
    pub fn outputs(&self) -> Vec<String> {
        str_list(&self.json["outputs"])
    }

    /// Input names (`inputs`).
    pub fn inputs(&self) -> Vec<String> {
        str_list(&self.json["inputs"])
    }

    /// True for outputs whose note starts with `informational:`.
    pub fn is_informational(&self, name: &str) -> bool {
        self.json["tensors"][name]["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("informational:"))
    }

    /// The case's comparison tolerance (`tolerance.rtol` / `tolerance.atol`).
    pub fn tolerance(&self) -> Tolerance {
        let t = &self.json["tolerance"];
        Tolerance {
            rtol: t["rtol"]
                .as_f64()
                .unwrap_or_else(|| panic!("{}: no tolerance.rtol", self.id())),
            atol: t["atol"]
                .as_f64()
                .unwrap_or_else(|| panic!("{}: no tolerance.atol", self.id())),
        }
    }

    /// The case's `tolerance.nfe_atol` (0 when absent).
    pub fn nfe_atol(&self) -> i64 {
        self.json["tolerance"]["nfe_atol"].as_i64().unwrap_or(0)
    }

    /// The NFE allowance of the pass rule (fixtures README §3) for `expected` NFE:
    /// see [`nfe_allowance`].
    pub fn nfe_slack(&self, expected: i64) -> i64 {
        nfe_allowance(self.nfe_atol(), expected)
    }

    /// The pass rule for float outputs of this case's group.
    pub fn float_rule(&self) -> Rule {
        if self.group == "sde" {
            Rule::Elementwise
        } else {
            Rule::ScaleRelative
        }
    }

    /// The SDE of the case (`sde` key, or `sde.<mode>` when given).
    pub fn sde(&self) -> AnySde {
        sde_from_json(&self.json["sde"]).unwrap_or_else(|e| panic!("{}: {e}", self.id()))
    }

    /// A replay queue of the case's `random_draws` (values from the case or from the shared
    /// noise pool), in call order.
    pub fn recorded_noise(&self) -> RecordedNoise {
        let draws = self.json["random_draws"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut pool: Option<FixtureTensor> = None;
        let mut out = Vec::with_capacity(draws.len());
        for d in &draws {
            let f = d["fn"].as_str().unwrap_or_default();
            let kind = match f {
                // `noise_sampler`: k-diffusion's noise-sampler calls (fast_samplers), N(0, 1)
                "randn" | "randn_like" | "noise_sampler" => DrawKind::Normal,
                "rand" | "rand_like" => DrawKind::Uniform,
                "randint" => DrawKind::RandInt,
                "randint_like" => DrawKind::Bernoulli01,
                other => panic!("{}: unknown draw fn `{other}`", self.id()),
            };
            let shape: Vec<usize> = d["shape"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_u64().unwrap() as usize).collect())
                .unwrap_or_default();
            let n: usize = shape.iter().product();
            let values = if let Some(name) = d["tensor"].as_str() {
                self.tensor(name).data.clone()
            } else if let Some(k) = d["pool_index"].as_u64() {
                let pool = pool.get_or_insert_with(|| {
                    let p = self
                        .root()
                        .join("noise_pool/noise_pool/tensors.safetensors");
                    read_safetensors(&p)
                        .unwrap_or_else(|e| panic!("{e}"))
                        .remove("pool")
                        .unwrap_or_else(|| panic!("{}: no tensor `pool`", p.display()))
                });
                let per: usize = pool.shape[1..].iter().product();
                assert_eq!(
                    per,
                    n,
                    "{}: pool entry size {per} ≠ draw size {n}",
                    self.id()
                );
                let k = k as usize;
                pool.data[k * per..(k + 1) * per].to_vec()
            } else {
                panic!("{}: draw without `tensor` or `pool_index`", self.id());
            };
            assert_eq!(
                values.len(),
                n,
                "{}: draw values ≠ shape {shape:?}",
                self.id()
            );
            out.push(RecordedDraw {
                kind,
                shape,
                values,
                caller: d["caller"].as_str().unwrap_or_default().to_string(),
            });
        }
        RecordedNoise::new(out)
    }
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds an SDE from a fixture `sde` object (`{class, N, sigma_min, sigma_max}` or
/// `{class, N, beta_min, beta_max}`).
pub fn sde_from_json(v: &Value) -> Result<AnySde, String> {
    let class = v["class"].as_str().ok_or("sde.class missing")?;
    let kind = SdeKind::from_name(class).ok_or(format!("unknown SDE class {class}"))?;
    let n = v["N"].as_u64().ok_or("sde.N missing")? as usize;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    AnySde::from_reference(
        kind,
        f("sigma_min"),
        f("sigma_max"),
        f("beta_min"),
        f("beta_max"),
        n,
    )
    .map_err(|e| e.to_string())
}

/// The NFE allowance of the pass rule (fixtures README §3): `nfe_atol` 0 (PC, analytic and
/// fast-sampler cases) → exact; otherwise (network ODE and likelihood cases)
/// `max(nfe_atol, ⌈0.25·expected⌉)` — the step-size controller takes different steps when the
/// arithmetic differs slightly (measured on the reference: +21% NFE under float32-level weight
/// perturbations; the allowance was 10% until 2026-11-30). Also used for the counts that follow
/// NFE (`network_calls` of ODE sampling, `network_forward_calls` of likelihood).
pub fn nfe_allowance(nfe_atol: i64, expected: i64) -> i64 {
    if nfe_atol == 0 {
        0
    } else {
        nfe_atol.max((expected.unsigned_abs() as f64 * 0.25).ceil() as i64)
    }
}

/// Result of comparing one output: the worst element and its error / allowance ratio.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Largest `error / allowance` (≤ 1 passes).
    pub ratio: f64,
    /// Index of the worst element.
    pub index: usize,
    /// Actual value there.
    pub actual: f64,
    /// Expected value there.
    pub expected: f64,
}

/// Compares `actual` with `expected` under `rule` (fixtures README §3). Errors on shape
/// mismatch or non-finite values.
pub fn compare(
    actual: &[f64],
    expected: &[f64],
    rule: Rule,
    tol: Tolerance,
) -> Result<Comparison, String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "length {} ≠ expected {}",
            actual.len(),
            expected.len()
        ));
    }
    if let Some(i) = actual.iter().position(|v| !v.is_finite()) {
        return Err(format!("non-finite value {} at index {i}", actual[i]));
    }
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = Comparison {
        ratio: 0.0,
        index: 0,
        actual: actual.first().copied().unwrap_or(0.0),
        expected: expected.first().copied().unwrap_or(0.0),
    };
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (a - e).abs();
        let allow = ALLOWANCE_SCALE
            * match rule {
                Rule::Elementwise => tol.atol + tol.rtol * e.abs(),
                Rule::ScaleRelative => tol.atol + tol.rtol * scale,
                Rule::Exact => 0.0,
            };
        let ratio = if allow == 0.0 {
            if err == 0.0 { 0.0 } else { f64::INFINITY }
        } else {
            err / allow
        };
        if ratio > worst.ratio {
            worst = Comparison {
                ratio,
                index: i,
                actual: a,
                expected: e,
            };
        }
    }
    Ok(worst)
}

/// Host values of a float tensor (f64).
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f64>) {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f64>().to_vec::<f64>().expect("f64");
    (shape, data)
}

/// Collects the outcome of every check of a test, then fails once with all failures listed.
#[derive(Debug, Default)]
pub struct Checker {
    failures: Vec<String>,
    checks: usize,
    cases: std::collections::BTreeSet<String>,
    failed_cases: std::collections::BTreeSet<String>,
}

impl Checker {
    /// A new, empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `case` was run (even if it has no outputs).
    pub fn visit(&mut self, case: &Case) {
        self.cases.insert(case.id());
    }

    /// Records a failure of `case` with a message.
    pub fn fail(&mut self, case: &Case, msg: impl AsRef<str>) {
        self.cases.insert(case.id());
        self.failed_cases.insert(case.id());
        self.failures
            .push(format!("{}: {}", case.id(), msg.as_ref()));
    }

    /// Compares output `name` of `case` with `actual` (shape + values) using the case's rule and
    /// tolerance (or `tol` when given). Integer outputs are compared exactly.
    pub fn check_values(
        &mut self,
        case: &Case,
        name: &str,
        shape: &[usize],
        actual: &[f64],
        tol: Option<Tolerance>,
    ) -> Option<f64> {
        self.visit(case);
        self.checks += 1;
        let Some(exp) = case.tensors.get(name) else {
            self.fail(case, format!("no expected tensor `{name}`"));
            return None;
        };
        if exp.shape != shape {
            self.fail(
                case,
                format!("`{name}`: shape {shape:?} ≠ expected {:?}", exp.shape),
            );
            return None;
        }
        let (rule, tol) = if exp.is_int() {
            (
                Rule::Exact,
                Tolerance {
                    rtol: 0.0,
                    atol: 0.0,
                },
            )
        } else {
            (case.float_rule(), tol.unwrap_or_else(|| case.tolerance()))
        };
        match compare(actual, &exp.data, rule, tol) {
            Err(e) => {
                self.fail(case, format!("`{name}`: {e}"));
                None
            }
            Ok(c) if c.ratio > 1.0 => {
                self.fail(
                    case,
                    format!(
                        "`{name}` ({rule:?}, rtol {}, atol {}): worst element #{} = {} vs expected {} (error/allowance {:.3})",
                        tol.rtol, tol.atol, c.index, c.actual, c.expected, c.ratio
                    ),
                );
                Some(c.ratio)
            }
            Ok(c) => Some(c.ratio),
        }
    }

    /// [`Checker::check_values`] for a tensor.
    pub fn check_tensor<B: Backend, const D: usize>(
        &mut self,
        case: &Case,
        name: &str,
        actual: Tensor<B, D>,
    ) -> Option<f64> {
        let (shape, data) = host(actual);
        self.check_values(case, name, &shape, &data, None)
    }

    /// Compares a scalar with `|a − e| ≤ atol + rtol |e|`.
    pub fn check_scalar(
        &mut self,
        case: &Case,
        what: &str,
        actual: f64,
        expected: f64,
        tol: Tolerance,
    ) {
        self.visit(case);
        self.checks += 1;
        let allow = ALLOWANCE_SCALE * (tol.atol + tol.rtol * expected.abs());
        if !actual.is_finite() || (actual - expected).abs() > allow {
            self.fail(
                case,
                format!("{what}: {actual} vs expected {expected} (allowed ±{allow:.3e})"),
            );
        }
    }

    /// Compares two integers exactly (counts: nfe, network calls, steps).
    pub fn check_count(&mut self, case: &Case, what: &str, actual: i64, expected: i64, slack: i64) {
        self.visit(case);
        self.checks += 1;
        if (actual - expected).abs() > slack {
            self.fail(
                case,
                format!("{what}: {actual} vs expected {expected} (slack {slack})"),
            );
        }
    }

    /// Number of cases seen.
    pub fn case_count(&self) -> usize {
        self.cases.len()
    }

    /// Prints a summary and panics listing every failure, if any.
    pub fn finish(self, what: &str) {
        let passed = self.cases.len() - self.failed_cases.len();
        eprintln!(
            "{what}: {passed}/{} cases pass ({} checks)",
            self.cases.len(),
            self.checks
        );
        if !self.failures.is_empty() {
            let mut msg = format!("{what}: {} failure(s):\n", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(msg, "  - {f}");
            }
            panic!("{msg}");
        }
    }
}

/// A deterministic [`sde_core::NoiseSource`] with its own host RNG (SplitMix64 + Box–Muller).
/// Unlike the backend RNG (process-global on the CPU backends, shared by concurrently running
/// tests), two instances with the same seed always give the same draws.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    state: u64,
}

impl SeededNoise {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform on [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` standard normal values.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = 1.0 - self.next_f64();
            let u2 = self.next_f64();
            let r = (-2.0 * u1.ln()).sqrt();
            let a = 2.0 * std::f64::consts::PI * u2;
            out.push((r * a.cos()) as f32);
            out.push((r * a.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

impl<B: Backend> sde_core::NoiseSource<B> for SeededNoise {
    fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> sde_core::Result<Tensor<B, D>> {
        let n = shape.iter().product();
        Ok(Tensor::from_data(
            TensorData::new(self.normals(n), shape),
            device,
        ))
    }
    fn uniform(&mut self, n: usize, device: &B::Device) -> sde_core::Result<Tensor<B, 1>> {
        let v: Vec<f32> = (0..n).map(|_| self.next_f64() as f32).collect();
        Ok(Tensor::from_data(TensorData::new(v, [n]), device))
    }
    fn randint(
        &mut self,
        low: i64,
        high: i64,
        n: usize,
        device: &B::Device,
    ) -> sde_core::Result<Tensor<B, 1, Int>> {
        let span = (high - low) as f64;
        let v: Vec<i64> = (0..n)
            .map(|_| low + (self.next_f64() * span) as i64)
            .collect();
        Ok(Tensor::from_data(TensorData::new(v, [n]), device))
    }
    fn rademacher<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> sde_core::Result<Tensor<B, D>> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                if self.next_u64() >> 63 == 0 {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Tensor::from_data(TensorData::new(v, shape), device))
    }
}
