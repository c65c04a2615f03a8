//! # sgm-nets — the score networks of score_sde
//!
//! The reference's `ncsnpp` model (NCSN++ and DDPM++ are this one model with different knobs)
//! and `ddpm` model, generic over any Burn backend, parameter for parameter: every module of
//! the reference's `all_modules` list is one entry of [`ScoreNet`]'s module list, with the
//! reference's attribute names, so the reference state-dict keys
//! (`all_modules.3.Conv_0.weight`, …) are the weight paths.
//!
//! * [`ModelConfig`]: the reference's knob names (`config.model.*`, `config.data.*`); unknown
//!   keys are an error naming the key. [`ModelConfig::from_fixture_model`] reads a fixture case.
//! * [`ScoreNet`]: `new(&cfg, &device)`, [`sde_core::ScoreModel`] (`forward(x, labels)`).
//! * Weights: [`load_safetensors`] (flat reference state dict), [`load_checkpoint`] (official
//!   training checkpoint `.pth`, model or EMA weights, read with no Python step),
//!   [`save_safetensors`] (sgm's own weights, same layout, exact round trip).
//!
//! ## Where the PyTorch port is broken, and what this crate does (reference §7.3)
//! * **FIR upsampling with a convolution** (`up_or_down_sampling.upsample_conv_2d`, reached by
//!   `resblock_type = "ddpm"` + `fir`, or `progressive = "residual"` + `fir`) raises in PyTorch
//!   (negative-step slicing of a torch tensor). Here it is the JAX original's operation: a
//!   stride-2 transposed convolution with the spatially flipped, in/out-swapped weight, then
//!   the FIR filter (`upfirdn2d`, pad `((p+1)/2 + 1, p/2 + 1)`). No shipped config reaches it.
//! * **DDPM with `conditional = false`** raises NameError in PyTorch (the module list is only
//!   created inside the conditional branch). Here the list starts at the input conv and no
//!   time embedding is computed; the residual blocks keep their (unused) `Dense_0`, as the
//!   reference builds them with `temb_dim = 4 nf` regardless.
//! * **Positional embedding without `scale_by_sigma`**: PyTorch NCSN++ always evaluates
//!   `sigmas[floor(label)]`, which fails for VP-continuous labels `999 t` unless
//!   `num_scales ≥ 1000`. Here the table is only read when the output is divided by σ.
//! * NCSN / NCSNv2 (`ncsn*` models) cannot be built in PyTorch and are not part of the SDE
//!   paper; they are not provided.
//!
//! ## The float64 `sigmas` buffer
//! The reference registers `sigmas` as a float64 buffer; with positional embedding and
//! `scale_by_sigma` (discrete VE, `ve/cifar10_ncsnpp.py`) or the DDPM model with
//! `scale_by_sigma`, dividing by `sigmas[labels]` promotes the output to float64. This crate
//! keeps the table in float64 (loaded bit-exactly, saved back as float64) but divides in float32
//! by the float32-rounded σ: the relative difference is ≤ 6e-8, far inside the fixtures'
//! tolerance (rtol 1e-4), and every tensor of the network stays float32 on every backend.
//! Fourier-embedded models divide by the label σ itself, as the reference does.
//!
//! ## Official checkpoints
//! Checkpoints are untrusted input: every declared shape is checked against the model and
//! every offset / size / stride (stride-0 views included) against its storage before anything
//! is materialised, so memory stays bounded by the file and the model (docs/reliability.md).
//! [`load_checkpoint`] reads the `torch.save` zip + pickle of `utils.save_checkpoint`
//! (`{model, ema, optimizer, step}`) with this crate's small pickle reader ([`pickle`]; no
//! Python; burn-store's reader rejects the numpy-scalar learning rate the official
//! checkpoints carry in their optimizer state, and drops lists): `model` keys
//! lose their `module.` (DataParallel) prefix; `ema.shadow_params` (a pickle list) is mapped,
//! index by index, onto the
//! trainable parameters in registration order — this crate declares every module's fields in
//! the reference's `__init__` order, so that order is the reference's `parameters()` order
//! (checked against every fixture checkpoint). The frozen Fourier `W` (not in the EMA) and
//! `sigmas` come from `model`. Mismatches name the key (or list index) and both shapes.
//!
//! ## Layout differences from Burn's stock layers
//! `nn.Linear` weights are `[out, in]` in the reference and `[in, out]` in Burn: the loaders
//! and [`save_safetensors`] transpose. GroupNorm is this crate's own
//! [`layers::init::GroupNorm`] (parameters `weight`/`bias` as in PyTorch, ε = 1e-6): the same
//! math as Burn's, with the per-channel affine map applied in a layout Flex vectorises.
//!
//! ## Convolutions
//! Every convolution of the networks goes through [`sgm_conv`]'s backend extension
//! ([`ConvBackend`]): the layers keep Burn's `Conv2d` parameters (weights and checkpoints are
//! unchanged) and call `sgm_conv::conv2d_module` / `sgm_conv::conv2d`, which run the fast CPU
//! kernel on Flex and Burn's own convolution elsewhere. Building and loading a network works on
//! any Burn backend; running it needs `B: ConvBackend` (implemented for Flex, NdArray, the
//! CubeCL/Fusion backends and `Autodiff` over any of them).
//!
//! ## Dropout
//! Dropout (`config.model.dropout`) is active only on autodiff backends (Burn's rule), i.e. in
//! training; inference on a plain backend is the reference's eval mode.
// Library code returns errors on user data; unwraps stay in tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod ddpm;
pub mod error;
pub mod layers;
pub mod ncsnpp;
pub mod net;
pub mod pickle;
pub mod precision;
pub mod weights;
pub mod wideresnet;

pub use config::{DataConfig, ModelConfig, ModelKnobs, ModelName};
pub use error::{NetsError, Result};
pub use net::{ScoreNet, get_sigmas};
pub use precision::{LIKELIHOOD_PRECISION, Precision, WithPrecision};
pub use sgm_conv::{ConvAutodiffBackend, ConvBackend};
pub use weights::{
    CheckpointWeights, StateDict, load_checkpoint, load_safetensors, param_entries,
    save_safetensors, state_dict,
};
pub use wideresnet::{WideResNet, WideResNetConfig};
