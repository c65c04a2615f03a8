//! # sgm-eval — FID / KID / Inception Score, number for number with pytorch-fid
//!
//! * [`inception`]: Inception-v3 in pytorch-fid's FID form, loaded from pytorch-fid's weights
//!   file (`pt_inception-2015-12-05-*.pth`; the path is an argument — the product never assumes
//!   where it lives). Without `fc` it gives pool3 features; with it, the 1008 logits too.
//! * [`features`]: uint8 images → bilinear 299×299 (align_corners = false) → `[-1, 1]` →
//!   features, batched on the device.
//! * [`fid`]: statistics and the Fréchet distance in float64; [`kid`]: unbiased polynomial-kernel
//!   MMD over subsets; [`inception_score`]: 10-split IS.
//! * [`stats`]: pytorch-fid `.npz` statistics files; [`images`]: PNG folders, CIFAR-10 binary
//!   batches, sample arrays of `cargo xtask sample`; [`grid`]: PNG grids.
//! * [`swd`]: sliced Wasserstein distance in pixel space (a statistic needing no weights).
//! * [`weights`]: pytorch-fid's weights file — name, URL, hash check, offline instructions.
// Library code returns errors on user data; unwraps stay in tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod features;
pub mod fid;
pub mod grid;
pub mod images;
pub mod inception;
pub mod inception_score;
pub mod kid;
pub mod stats;
pub mod swd;
pub mod weights;

pub use error::{EvalError, Result};
pub use features::{Features, POOL3_DIM, extract};
pub use fid::{Stats, frechet_distance, frechet_distance_to_features};
pub use grid::write_grid;
pub use images::{U8Images, read_images};
pub use inception::InceptionV3;
pub use inception_score::{InceptionScore, inception_score};
pub use kid::{Kid, kid, kid_blocks};
pub use stats::{StatsFile, read_npz, read_stats, read_stats_file, write_npz, write_stats};
pub use swd::sliced_wasserstein;
