//! Every official config by every name, the constructors, the errors, overrides, round trips.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sde_core::{AnySde, Sde, SdeKind};
use sgm_config::{
    BpdDataset, ConfigError, ConfigSampler, DataConfig, Dataset, EvalConfig, ExperimentConfig,
    ModelSection, OFFICIAL, OptimConfig, Optimizer, Override, SamplingMethod, find_official,
    official_names, short_name,
};
use sgm_nets::ModelName;
use sgm_sample::{Corrector, DataScaler, Predictor};

const DEEP_VE: &str = "ve/cifar10_ncsnpp_deep_continuous";

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

/// Every `*.toml` under `dir`, as `(official name, path)`.
fn toml_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("configs/ is readable") {
        let path = entry.expect("directory entry").path();
        let file = path.file_name().and_then(|f| f.to_str()).expect("UTF-8");
        if path.is_dir() {
            toml_files(&path, &format!("{prefix}{file}/"), out);
        } else if let Some(stem) = file.strip_suffix(".toml") {
            out.push((format!("{prefix}{stem}"), path));
        }
    }
}

fn load(name: &str) -> ExperimentConfig {
    ExperimentConfig::load(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn without_origin(mut c: ExperimentConfig) -> ExperimentConfig {
    c.origin.clear();
    c
}

fn text_of(name: &str) -> &'static str {
    find_official(name).expect("official").text
}

fn error_of(text: &str, origin: &str) -> String {
    match ExperimentConfig::from_toml_str(text, origin) {
        Ok(_) => panic!("{origin}: accepted a bad config"),
        Err(e) => e.to_string(),
    }
}

fn knobs(c: &ExperimentConfig) -> &sgm_nets::ModelKnobs {
    c.model.knobs().expect("an sgm-nets model")
}

#[test]
fn every_config_file_is_embedded_verbatim() {
    let mut disk = Vec::new();
    toml_files(&configs_dir(), "", &mut disk);
    disk.sort();
    assert_eq!(disk.len(), 39, "one TOML per official upstream config");
    let on_disk: BTreeSet<&str> = disk.iter().map(|(n, _)| n.as_str()).collect();
    let embedded: BTreeSet<&str> = official_names().into_iter().collect();
    assert_eq!(on_disk, embedded, "OFFICIAL out of sync with configs/");
    for (name, path) in &disk {
        let text = std::fs::read_to_string(path).expect("readable");
        assert_eq!(text_of(name), text, "{name}: stale embedded copy");
    }
}

/// Each config, by official name, by short name, with `configs/` and `.toml`, and by path:
/// the same config, and it builds its SDE, loss, samplers, likelihood settings and network.
#[test]
fn every_config_loads_by_every_name_and_builds_what_it_defines() {
    for official in OFFICIAL {
        let name = official.name;
        let c = load(name);
        assert_eq!(c.origin, format!("embedded {name}"));
        let short = official.short_name();
        for alias in [
            short.clone(),
            format!("{name}.toml"),
            format!("configs/{name}"),
            format!("configs/{name}.toml"),
        ] {
            assert_eq!(load(&alias), c, "{name} as {alias}");
        }
        let path = configs_dir().join(format!("{name}.toml"));
        let by_path = load(path.to_str().expect("UTF-8 path"));
        assert_eq!(without_origin(by_path), without_origin(c.clone()), "{name}");

        let sde = c.sde().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sde.kind(), c.training.sde, "{name}");
        assert_eq!(sde.num_steps(), c.model.num_scales(), "{name}");
        let fewer = c.sde_with_steps(Some(7)).expect("7 steps");
        assert_eq!((fewer.kind(), fewer.num_steps()), (sde.kind(), 7), "{name}");

        let pc = c.pc_config(&sde).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (pc.predictor, pc.corrector, pc.n_steps),
            (
                c.sampling.predictor,
                c.sampling.corrector,
                c.sampling.n_steps_each
            ),
            "{name}"
        );
        assert_eq!(pc.eps, f64::from(sde.default_sampling_eps()), "{name}");
        assert_eq!(pc.scaler, c.scaler(), "{name}");
        let ctl = c.controllable_config(&sde).expect("controllable");
        assert_eq!(ctl.eps, sgm_sample::CONTROLLABLE_EPS, "{name}");
        let ode = c.ode_config(&sde);
        assert_eq!((ode.eps, ode.denoise), (pc.eps, c.sampling.noise_removal));
        let sampler = c.sampler().expect("sampler");
        assert!(matches!(sampler, ConfigSampler::Pc { .. }), "{name}");
        assert_eq!(sampler.continuous_score(), c.training.continuous, "{name}");
        assert_eq!(sampler.sde(), &sde, "{name}");

        let loss = c.loss_config();
        assert_eq!(
            (loss.continuous, loss.reduce_mean, loss.likelihood_weighting),
            (
                c.training.continuous,
                c.training.reduce_mean,
                c.training.likelihood_weighting
            ),
            "{name}"
        );
        loss.check(sde.kind()).expect("the loss is defined");
        assert_eq!(c.likelihood_config().scaler, c.scaler(), "{name}");

        match &c.model {
            ModelSection::Net(knobs) => {
                let net = c.model_config().unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&net.model, knobs, "{name}");
                assert_eq!(net.data, c.data.image, "{name}");
            }
            ModelSection::Ncsn(_) => {
                assert!(name.starts_with("ve/ncsn"), "{name}");
                let e = c.model_config().expect_err("no NCSN network").to_string();
                assert!(e.contains(name) && e.contains(c.model.name()), "{e}");
            }
        }
    }
}

#[test]
fn short_names_follow_the_documented_scheme() {
    let shorts: BTreeSet<String> = OFFICIAL.iter().map(|c| c.short_name()).collect();
    assert_eq!(shorts.len(), 39, "short names are unique");
    for (official, short) in [
        (DEEP_VE, "ve/ncsnpp-deep-cont"),
        ("vp/cifar10_ddpmpp_deep_continuous", "vp/ddpmpp-deep-cont"),
        ("subvp/cifar10_ddpm_continuous", "subvp/ddpm-cont"),
        ("ve/cifar10_ncsnpp", "ve/ncsnpp"),
        (
            "ve/celebahq_256_ncsnpp_continuous",
            "ve/celebahq-256-ncsnpp-cont",
        ),
        ("ve/ncsn/cifar10", "ve/ncsn"),
        ("ve/ncsn/cifar10_1245", "ve/ncsn-1245"),
        ("ve/ncsn/celeba_5", "ve/ncsn-celeba-5"),
        ("ve/ncsnv2/bedroom", "ve/ncsnv2-bedroom"),
        ("vp/ddpm/cifar10_unconditional", "vp/ddpm-unconditional"),
        ("vp/ddpm/church", "vp/ddpm-church"),
    ] {
        assert_eq!(short_name(official), short);
        assert_eq!(find_official(short).expect(short).name, official);
    }
    // The headline model, although vp/ and subvp/ also have an ncsnpp-deep-cont.
    assert_eq!(load("ncsnpp-deep-cont"), load(DEEP_VE));
    // Without the family: accepted where one family has the name.
    for (bare, official) in [
        (
            "celebahq-256-ncsnpp-cont",
            "ve/celebahq_256_ncsnpp_continuous",
        ),
        ("ncsn-5", "ve/ncsn/cifar10_5"),
        ("ncsnv2/bedroom", "ve/ncsnv2/bedroom"),
        ("ddpm-church", "vp/ddpm/church"),
        ("ffhq_ncsnpp_continuous", "ve/ffhq_ncsnpp_continuous"),
    ] {
        assert_eq!(find_official(bare).expect(bare).name, official, "{bare}");
    }
}

#[test]
fn ambiguous_names_are_an_error_listing_the_candidates() {
    for (name, candidates) in [
        (
            "ddpmpp-deep-cont",
            vec!["subvp/ddpmpp-deep-cont", "vp/ddpmpp-deep-cont"],
        ),
        (
            "ncsnpp-cont",
            vec!["subvp/ncsnpp-cont", "ve/ncsnpp-cont", "vp/ncsnpp-cont"],
        ),
        ("ddpm", vec!["ve/ddpm", "vp/ddpm"]),
        ("ddpm-cont", vec!["subvp/ddpm-cont", "vp/ddpm-cont"]),
        (
            "cifar10_ncsnpp_deep_continuous",
            vec![
                "subvp/ncsnpp-deep-cont",
                "ve/ncsnpp-deep-cont",
                "vp/ncsnpp-deep-cont",
            ],
        ),
    ] {
        let e = ExperimentConfig::load(name).expect_err(name);
        match &e {
            ConfigError::AmbiguousName {
                name: n,
                candidates: c,
            } => {
                assert_eq!(n, name);
                let mut c = c.clone();
                c.sort();
                assert_eq!(c, candidates, "{name}");
            }
            other => panic!("{name}: expected AmbiguousName, got {other:?}"),
        }
        let text = e.to_string();
        assert!(candidates.iter().all(|c| text.contains(c)), "{text}");
    }
}

#[test]
fn unknown_names_are_an_error_listing_candidates() {
    for bad in [
        "ve/no_such_config",
        "../Cargo",
        "",
        "ve//cifar10_ncsnpp",
        "ncsnpp-deeep-cont",
    ] {
        let e = ExperimentConfig::load(bad).expect_err(bad);
        let ConfigError::UnknownName { name, candidates } = &e else {
            panic!("{bad}: expected UnknownName, got {e:?}");
        };
        assert_eq!(name, bad);
        assert!(!candidates.is_empty(), "{bad}");
        let text = e.to_string();
        assert!(text.contains(&format!("`{bad}`")), "{text}");
        assert!(
            candidates.iter().all(|c| text.contains(c.as_str())),
            "{text}"
        );
    }
    // Close names are suggested first.
    let e = ExperimentConfig::load("ncsnpp-deeep-cont").expect_err("typo");
    let ConfigError::UnknownName { candidates, .. } = e else {
        panic!()
    };
    assert!(
        candidates.contains(&"ve/ncsnpp-deep-cont".to_string()),
        "{candidates:?}"
    );
    assert!(
        !candidates.contains(&"vp/ddpm-church".to_string()),
        "{candidates:?}"
    );
    // A missing .toml path is a file error naming it.
    let e = ExperimentConfig::load("/nonexistent/my_run.toml").expect_err("missing file");
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/my_run.toml"), "{e}");
}

#[test]
fn unknown_keys_are_errors_naming_key_and_origin() {
    let text = text_of(DEEP_VE);
    for section in ["training", "sampling", "eval", "data", "model", "optim"] {
        let header = format!("[{section}]\n");
        let bad = text.replace(&header, &format!("{header}bogus_knob = 1\n"));
        assert_ne!(bad, text, "{section} header not found");
        let e = error_of(&bad, "my_experiment.toml");
        assert!(e.contains("bogus_knob"), "{section}: {e}");
        assert!(e.contains("my_experiment.toml"), "{section}: {e}");
    }
    let e = error_of(&format!("device = \"cuda\"\n{text}"), "top.toml");
    assert!(e.contains("device") && e.contains("top.toml"), "{e}");
    let e = error_of(&format!("{text}\n[extra]\nx = 1\n"), "extra.toml");
    assert!(e.contains("extra") && e.contains("extra.toml"), "{e}");
    // An NCSN model section is as strict.
    let ncsn = text_of("ve/ncsn/cifar10").replace("[model]\n", "[model]\nch_mult = [1]\n");
    let e = error_of(&ncsn, "ncsn.toml");
    assert!(e.contains("ch_mult") && e.contains("ncsn.toml"), "{e}");
}

#[test]
fn unknown_key_in_a_file_names_its_path() {
    let dir = std::env::temp_dir().join(format!("sgm-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("typo.toml");
    std::fs::write(&path, text_of(DEEP_VE).replace("snr = ", "snrr = ")).expect("write");
    let result = ExperimentConfig::load(path.to_str().expect("UTF-8"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let e = result.expect_err("typo accepted").to_string();
    assert!(e.contains("snrr") && e.contains("typo.toml"), "{e}");
    assert!(e.contains("line"), "the line of the key: {e}");
}

#[test]
fn bad_values_are_errors_naming_the_key() {
    let text = text_of(DEEP_VE);
    let cases = [
        ("name = \"ncsnpp\"", "name = \"ncsnpp_xl\"", "model.name"),
        ("name = \"ncsnpp\"", "name = 3", "model.name"),
        ("sde = \"vesde\"", "sde = \"ousde\"", "ousde"),
        (
            "predictor = \"reverse_diffusion\"",
            "predictor = \"heun\"",
            "heun",
        ),
        ("corrector = \"langevin\"", "corrector = \"hmc\"", "hmc"),
        ("method = \"pc\"", "method = \"ddim\"", "ddim"),
        ("dataset = \"CIFAR10\"", "dataset = \"MNIST\"", "MNIST"),
        ("sigma_max = 50.0", "sigma_max = 0.001", "`model.sigma_max`"),
        ("sigma_max = 50.0", "sigma_max = \"big\"", "big"),
        ("num_scales = 1000", "num_scales = -1", "-1"),
        ("batch_size = 128", "batch_size = 0", "training.batch_size"),
        ("batch_size = 128", "batch_size = 1.5", "1.5"),
        ("image_size = 32", "image_size = -32", "image_size"),
        ("image_size = 32", "image_size = 30", "image_size"),
        ("nf = 128", "nf = 0", "nf"),
        ("lr = 0.0002", "lr = -1.0", "optim.lr"),
        ("beta1 = 0.9", "beta1 = 1.5", "optim.beta1"),
        ("ema_rate = 0.999", "ema_rate = 2.0", "model.ema_rate"),
        ("snr = 0.16", "snr = -0.16", "snr"),
        ("log_freq = 50", "log_freq = 0", "training.log_freq"),
        ("begin_ckpt = 9", "begin_ckpt = 99", "eval.begin_ckpt"),
        ("bpd_dataset = \"test\"", "bpd_dataset = \"val\"", "val"),
        ("optimizer = \"Adam\"", "optimizer = \"SGD\"", "SGD"),
    ];
    for (from, to, needle) in cases {
        assert!(text.contains(from), "{from}");
        let e = error_of(&text.replacen(from, to, 1), "bad.toml");
        assert!(e.contains(needle) && e.contains("bad.toml"), "{to}: {e}");
    }
    let e = error_of(&text.replace("sde = \"vesde\"\n", ""), "nosde.toml");
    assert!(e.contains("sde") && e.contains("nosde.toml"), "{e}");
    let lsun = text_of("ve/church_ncsnpp_continuous");
    let e = error_of(
        &lsun.replace("category = \"church_outdoor\"\n", ""),
        "c.toml",
    );
    assert!(e.contains("data.category"), "{e}");
    // Combinations the reference rejects: discrete sub-VP training, discrete likelihood
    // weighting, ancestral sampling on sub-VP.
    let sub = text_of("subvp/cifar10_ddpmpp_continuous");
    let e = error_of(
        &sub.replace("continuous = true", "continuous = false"),
        "s.toml",
    );
    assert!(e.contains("subVPSDE") && e.contains("s.toml"), "{e}");
    let e = error_of(
        &text
            .replace("continuous = true", "continuous = false")
            .replace(
                "likelihood_weighting = false",
                "likelihood_weighting = true",
            ),
        "w.toml",
    );
    assert!(e.contains("likelihood weighting"), "{e}");
    let e = error_of(
        &sub.replace("\"euler_maruyama\"", "\"ancestral_sampling\""),
        "a.toml",
    );
    assert!(
        e.contains("ancestral_sampling") && e.contains("a.toml"),
        "{e}"
    );
}

#[test]
fn set_overrides_any_key_validated_like_the_file() {
    let set =
        |args: &[&str]| -> Vec<Override> { args.iter().map(|a| a.parse().expect(a)).collect() };
    let c = ExperimentConfig::load_with(
        "ncsnpp-deep-cont",
        &set(&[
            "training.batch_size=8",
            "sampling.predictor=euler_maruyama",
            "sampling.method = ode",
            "model.ch_mult=[1, 2]",
            "model.nf=8",
            "data.image_size=16",
            "optim.lr=1e-3",
            "seed=7",
            "eval.enable_bpd=true",
        ]),
    )
    .expect("overrides apply");
    assert_eq!(c.training.batch_size, 8);
    assert_eq!(c.sampling.predictor, Predictor::EulerMaruyama);
    assert_eq!(c.sampling.method, SamplingMethod::Ode);
    assert_eq!((knobs(&c).ch_mult.clone(), knobs(&c).nf), (vec![1, 2], 8));
    assert_eq!(c.image_shape(), [3, 16, 16]);
    assert_eq!((c.optim.lr, c.seed, c.eval.enable_bpd), (1e-3, 7, true));
    assert!(
        c.origin.contains("--set training.batch_size=8"),
        "{}",
        c.origin
    );
    assert!(
        c.origin.contains("--set sampling.method=ode"),
        "{}",
        c.origin
    );
    for (arg, value) in [
        ("a.b=8", toml::Value::Integer(8)),
        ("a.b=1e-3", toml::Value::Float(1e-3)),
        ("a.b=true", toml::Value::Boolean(true)),
        ("a.b=[1, 2]", toml::Value::Array(vec![1.into(), 2.into()])),
        (
            "a.b=euler_maruyama",
            toml::Value::String("euler_maruyama".into()),
        ),
        ("a.b=\"x y\"", toml::Value::String("x y".into())),
    ] {
        let o: Override = arg.parse().expect(arg);
        assert_eq!((o.key.as_str(), &o.value), ("a.b", &value), "{arg}");
    }
    assert!(matches!(c.sampler().expect("ode"), ConfigSampler::Ode(_)));
    // Everything else is the official config.
    let mut back = c.clone();
    let base = load(DEEP_VE);
    back.training.batch_size = base.training.batch_size;
    back.sampling = base.sampling.clone();
    back.model = base.model.clone();
    back.data = base.data.clone();
    back.optim = base.optim.clone();
    back.seed = base.seed;
    back.eval = base.eval.clone();
    assert_eq!(without_origin(back), without_origin(base.clone()));
    // with_overrides on a loaded config gives the same.
    let again = base
        .with_overrides(&set(&["training.batch_size=8"]))
        .expect("with_overrides");
    assert_eq!(again.training.batch_size, 8);

    // Validated like the file: unknown keys and bad values name the key and the --set.
    for (arg, needle) in [
        ("training.batch_sise=8", "batch_sise"),
        ("trainig.batch_size=8", "trainig"),
        ("training.batch_size=0", "training.batch_size"),
        ("training.batch_size=big", "big"),
        ("sampling.predictor=heun", "heun"),
        ("model.name=unet", "unet"),
        ("model.sigma_max=0.001", "sigma_max"),
    ] {
        let e = ExperimentConfig::load_with(DEEP_VE, &set(&[arg]))
            .expect_err(arg)
            .to_string();
        assert!(
            e.contains(needle) && e.contains(&format!("--set {}", arg.split('=').next().unwrap())),
            "{arg}: {e}"
        );
    }
    // Malformed overrides.
    for arg in ["training.batch_size", "=3", ".x=1", "training..x=1"] {
        let e = arg.parse::<Override>().expect_err(arg);
        assert!(matches!(e, ConfigError::Override { .. }), "{arg}: {e:?}");
        assert!(e.to_string().contains(arg), "{e}");
    }
    for arg in ["seed.x=1", "training=3"] {
        let e = ExperimentConfig::load_with(DEEP_VE, &set(&[arg])).expect_err(arg);
        assert!(matches!(e, ConfigError::Override { .. }), "{arg}: {e:?}");
    }
}

#[test]
fn to_toml_round_trips_every_config() {
    for name in official_names() {
        let c = load(name);
        let text = c.to_toml().expect("serialises");
        let back = ExperimentConfig::from_toml_str(&text, &c.origin).expect("re-parses");
        assert_eq!(back, c, "{name}");
    }
    let tiny = ExperimentConfig::load_with(
        "vp/ddpmpp-cont",
        &["model.nf=16".parse().expect("override")],
    )
    .expect("tiny");
    let back = ExperimentConfig::from_toml_str(&tiny.to_toml().expect("toml"), &tiny.origin)
        .expect("re-parses");
    assert_eq!(back, tiny);
}

/// Keys left out take the reference's defaults (`default_cifar10_configs.py`, reference §9).
#[test]
fn left_out_keys_take_the_reference_defaults() {
    let minimal = "[training]\nsde = \"vpsde\"\n\n[sampling]\nmethod = \"pc\"\n\
                   predictor = \"euler_maruyama\"\ncorrector = \"none\"\n\n[model]\nname = \"ncsnpp\"\n";
    let c = ExperimentConfig::from_toml_str(minimal, "minimal.toml").expect("minimal config");
    let t = &c.training;
    assert_eq!(c.seed, 42);
    assert_eq!(
        (
            t.batch_size,
            t.n_iters,
            t.snapshot_freq,
            t.log_freq,
            t.eval_freq
        ),
        (128, 1_300_001, 50_000, 50, 100)
    );
    assert_eq!(t.snapshot_freq_for_preemption, 10_000);
    assert!(t.snapshot_sampling && t.continuous && !t.likelihood_weighting && !t.reduce_mean);
    let s = &c.sampling;
    assert_eq!((s.n_steps_each, s.snr), (1, 0.16));
    assert!(s.noise_removal && !s.probability_flow);
    assert_eq!(
        c.eval,
        EvalConfig {
            begin_ckpt: 9,
            end_ckpt: 26,
            batch_size: 1024,
            enable_sampling: false,
            num_samples: 50_000,
            enable_loss: true,
            enable_bpd: false,
            bpd_dataset: BpdDataset::Test,
        }
    );
    let d: &DataConfig = &c.data;
    assert_eq!(d.dataset, Dataset::Cifar10);
    assert!(d.random_flip && !d.uniform_dequantization && !d.image.centered);
    assert_eq!(c.image_shape(), [3, 32, 32]);
    assert_eq!(
        c.optim,
        OptimConfig {
            weight_decay: 0.0,
            optimizer: Optimizer::Adam,
            lr: 2e-4,
            beta1: 0.9,
            eps: 1e-8,
            warmup: 5000,
            grad_clip: 1.0,
            amsgrad: None,
        }
    );
    assert_eq!(sgm_config::ADAM_BETA2, 0.999);
    let m = knobs(&c);
    assert_eq!((m.sigma_min, m.sigma_max, m.num_scales), (0.01, 50.0, 1000));
    assert_eq!((m.beta_min, m.beta_max, m.dropout), (0.1, 20.0, 0.1));
    // Required keys have no default.
    for (key, from) in [
        ("sde", "sde = \"vpsde\"\n"),
        ("method", "method = \"pc\"\n"),
        ("predictor", "predictor = \"euler_maruyama\"\n"),
        ("corrector", "corrector = \"none\"\n"),
        ("name", "name = \"ncsnpp\"\n"),
    ] {
        let e = error_of(&minimal.replace(from, ""), "req.toml");
        assert!(e.contains(key) && e.contains("req.toml"), "{key}: {e}");
    }
}

#[test]
fn a_config_builds_a_working_network() {
    let c = ExperimentConfig::load_with(
        "vp/ddpmpp-cont",
        &[
            "model.nf=8",
            "model.num_res_blocks=1",
            "model.ch_mult=[1, 2]",
            "model.attn_resolutions=[4]",
            "data.image_size=8",
        ]
        .map(|s| s.parse().expect("override")),
    )
    .expect("tiny config");
    let device = sgm_testkit::device();
    let net = c
        .network::<sgm_testkit::TestBackend>(&device)
        .expect("network");
    let x = burn::tensor::Tensor::<sgm_testkit::TestBackend, 4>::zeros([2, 3, 8, 8], &device);
    let sde = c.sde().expect("sde");
    let score = sde_core::ScoreFn::new(&sde, &net, c.training.continuous);
    let s = sde_core::ScoreFunction::score(&score, x.clone(), &[0.5, 0.25]).expect("score");
    assert_eq!(s.dims(), [2, 3, 8, 8]);

    // Saved and loaded back through the config: the same network.
    let dir = std::env::temp_dir().join(format!("sgm-config-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("tiny.safetensors");
    sgm_nets::save_safetensors(&net, &path).expect("save");
    let ema = sgm_nets::CheckpointWeights::Ema;
    let back = c.load_network::<sgm_testkit::TestBackend>(&path, ema, &device);
    let wider = c
        .with_overrides(&["model.nf=16".parse().expect("override")])
        .expect("wider")
        .load_network::<sgm_testkit::TestBackend>(&path, ema, &device);
    let other = dir.join("tiny.npz");
    std::fs::copy(&path, &other).expect("copy");
    let unknown = c.load_network::<sgm_testkit::TestBackend>(&other, ema, &device);
    let missing = c.load_network::<sgm_testkit::TestBackend>(&dir.join("no.pth"), ema, &device);
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let back = back.expect("loads");
    let score_back = sde_core::ScoreFn::new(&sde, &back, c.training.continuous);
    let s_back = sde_core::ScoreFunction::score(&score_back, x, &[0.5, 0.25]).expect("score");
    // Equal up to float32 summation order (Linear weights change layout on the way).
    let (a, b): (Vec<f32>, Vec<f32>) = (
        s_back.into_data().to_vec().expect("f32"),
        s.into_data().to_vec().expect("f32"),
    );
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * scale, "{x} vs {y} (scale {scale})");
    }
    for (result, needle) in [
        (wider, "tiny.safetensors"),
        (unknown, "unknown format"),
        (missing, "does not exist"),
    ] {
        let e = result.expect_err(needle);
        assert!(matches!(e, ConfigError::Checkpoint { .. }), "{e:?}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

/// Reference §9 family rules, checked on every official config.
#[test]
fn family_invariants_hold_for_every_config() {
    for official in OFFICIAL {
        let name = official.name;
        let c = load(name);
        assert_eq!(c.seed, 42, "{name}");
        assert_eq!(c.sampling.method, SamplingMethod::Pc, "{name}");
        assert!(
            c.sampling.noise_removal && !c.sampling.probability_flow,
            "{name}"
        );
        assert!(!c.training.likelihood_weighting, "{name}");
        assert_eq!(c.optim.optimizer, Optimizer::Adam, "{name}");
        let eps = c.sde().expect("sde").default_sampling_eps();
        match official.family() {
            "ve" => {
                assert_eq!(c.training.sde, SdeKind::Ve, "{name}");
                assert_eq!(c.scaler(), DataScaler::Identity, "{name}");
                assert_eq!(eps, 1e-5, "{name}");
            }
            family @ ("vp" | "subvp") => {
                let kind = if family == "vp" {
                    SdeKind::Vp
                } else {
                    SdeKind::SubVp
                };
                assert_eq!(c.training.sde, kind, "{name}");
                assert_eq!(c.scaler(), DataScaler::Centered, "{name}");
                assert!(c.training.reduce_mean, "{name}");
                assert_eq!(c.model.ema_rate(), 0.9999, "{name}");
                assert!(!c.model.scale_by_sigma(), "{name}");
                assert_eq!(c.sampling.corrector, Corrector::None, "{name}");
                assert_eq!(eps, 1e-3, "{name}");
                if family == "subvp" {
                    assert!(c.training.continuous, "{name}");
                    assert_eq!(c.sampling.predictor, Predictor::EulerMaruyama, "{name}");
                }
            }
            other => panic!("unexpected config family {other}"),
        }
    }
}

#[test]
fn deep_ve_matches_reference() {
    let c = load(DEEP_VE);
    assert_eq!((c.training.batch_size, c.training.n_iters), (128, 950_001));
    assert!(c.training.continuous && !c.training.reduce_mean);
    assert_eq!(c.sampling.predictor, Predictor::ReverseDiffusion);
    assert_eq!(c.sampling.corrector, Corrector::Langevin);
    assert_eq!((c.sampling.snr, c.sampling.n_steps_each), (0.16, 1));
    assert_eq!(
        (c.eval.begin_ckpt, c.eval.end_ckpt, c.eval.batch_size),
        (9, 26, 1024)
    );
    assert_eq!(c.data.dataset, Dataset::Cifar10);
    assert_eq!(c.image_shape(), [3, 32, 32]);
    let m = knobs(&c);
    assert_eq!(m.name, ModelName::Ncsnpp);
    assert_eq!((m.nf, m.num_res_blocks), (128, 8));
    assert_eq!(m.ch_mult, [1, 2, 2, 2]);
    assert_eq!(m.attn_resolutions, [16]);
    assert_eq!(m.fir_kernel, [1.0, 3.0, 3.0, 1.0]);
    assert_eq!(m.fourier_scale, 16.0);
    assert_eq!((m.ema_rate, m.dropout), (0.999, 0.1));
    assert_eq!(
        (c.optim.lr, c.optim.warmup, c.optim.grad_clip),
        (2e-4, 5000, 1.0)
    );
    match c.sde().expect("sde") {
        AnySde::Ve(ve) => assert_eq!((ve.sigma_min(), ve.sigma_max()), (0.01, 50.0)),
        other => panic!("expected VE, got {other:?}"),
    }
    let sampler = c.sampler().expect("sampler");
    assert_eq!(
        sampler.planned_calls(),
        Some(2000),
        "N · (predictor + 1 corrector step)"
    );
}

#[test]
fn high_resolution_and_discrete_configs_match_reference() {
    let c = load("ve/celebahq_ncsnpp_continuous");
    assert_eq!((c.training.batch_size, c.training.n_iters), (8, 2_400_001));
    assert_eq!((c.model.sigma_max(), c.model.num_scales()), (1348.0, 2000));
    assert_eq!((c.sampling.snr, c.model.ema_rate()), (0.15, 0.9999));
    assert_eq!(knobs(&c).ch_mult, [1, 2, 4, 8, 16, 32, 32, 32]);
    assert_eq!((c.eval.begin_ckpt, c.eval.end_ckpt), (1, 96));
    assert_eq!(c.image_shape(), [3, 1024, 1024]);
    assert_eq!(c.data.dataset, Dataset::CelebAHq);
    for (name, sigma_max) in [
        ("ve/celebahq_256_ncsnpp_continuous", 348.0),
        ("ve/bedroom_ncsnpp_continuous", 378.0),
        ("ve/church_ncsnpp_continuous", 380.0),
    ] {
        let c = load(name);
        assert_eq!(
            (c.model.sigma_max(), c.model.num_scales()),
            (sigma_max, 2000),
            "{name}"
        );
        assert_eq!(
            (c.training.batch_size, c.data.image.image_size),
            (64, 256),
            "{name}"
        );
    }
    let c = load("vp/cifar10_ddpmpp");
    assert!(!c.training.continuous);
    assert_eq!(c.sampling.predictor, Predictor::AncestralSampling);
    let c = load("vp/ddpm/celebahq");
    assert_eq!((c.optim.lr, c.training.batch_size), (2e-5, 64));
    assert_eq!(knobs(&c).name, ModelName::Ddpm);
    let vp = load("vp/cifar10_ddpmpp_deep_continuous");
    let mut sub = load("subvp/cifar10_ddpmpp_deep_continuous");
    assert!(matches!(sub.sde().expect("sde"), AnySde::SubVp(_)));
    sub.training.sde = SdeKind::Vp;
    assert_eq!(
        without_origin(sub),
        without_origin(vp),
        "differs only in training.sde"
    );
}

#[test]
fn ncsn_configs_match_reference() {
    for (name, n, sigma_max, snr, steps, ema) in [
        ("ve/ncsn/cifar10", 10, 1.0, 0.316, 100, 0.0),
        ("ve/ncsn/cifar10_1245", 232, 50.0, 0.176, 5, 0.999),
        ("ve/ncsn/celeba_124", 500, 90.0, 0.128, 5, 0.0),
    ] {
        let c = load(name);
        assert_eq!(c.model.name(), "ncsn", "{name}");
        assert_eq!(
            (c.sampling.predictor, c.sampling.corrector),
            (Predictor::None, Corrector::Ald)
        );
        assert_eq!(
            (c.model.num_scales(), c.model.sigma_max()),
            (n, sigma_max),
            "{name}"
        );
        assert_eq!(
            (c.sampling.snr, c.sampling.n_steps_each),
            (snr, steps),
            "{name}"
        );
        assert_eq!(c.model.ema_rate(), ema, "{name}");
        assert_eq!(
            (c.optim.lr, c.optim.warmup, c.optim.grad_clip),
            (1e-3, 0, -1.0),
            "{name}"
        );
        // ALD only: N · n_steps_each network calls.
        assert_eq!(
            c.sampler().expect("pc").planned_calls(),
            Some((n * steps) as u64)
        );
    }
    let c = load("ve/ncsnv2/bedroom");
    assert_eq!(c.model.name(), "ncsnv2_128");
    assert!(c.training.continuous);
    assert_eq!((c.sampling.n_steps_each, c.data.image.image_size), (3, 128));
}
