//! sgm's images for burn's `DataLoader`: [`ImageDataset`] serves any [`ImageSource`] (CIFAR-10
//! binary / pickle batches, image folders, in memory) as items of 8-bit pixels, and
//! [`ImageBatcher`] turns them into the scaled `[B, C, H, W]` batches a
//! [`ScoreLearner`](super::ScoreLearner) steps on, with the reference's transforms
//! ([`transform_item`]: flip, dequantisation, scaler).
//!
//! Order and augmentation here are burn's, not sgm's [`DataStream`](crate::data::DataStream):
//! the `DataLoader` shuffles (its own seed) and the batcher draws the flips / dequantisation
//! noise from one seeded stream in batch order — deterministic with one loader worker, in
//! completion order with several. burn's `Dataset::get` returns no error, so an item that
//! cannot be read (a corrupt image file) panics with the message naming the file.

use std::sync::{Arc, Mutex, PoisonError};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;

use crate::config::TrainConfig;
use crate::data::{ImageSource, Transforms, transform_item};
use crate::rng::TrainRng;

/// RNG stream of the batcher's transform draws (plus `purpose`); sgm's own data streams use
/// `1 << 40` and `2 << 40` upwards, the loss stream 0.
pub const BATCHER_STREAM: u64 = 3 << 40;

/// A burn `Dataset` of the images of an [`ImageSource`]: item `i` is image `i`'s pixels
/// (`C·H·W` bytes, planar).
#[derive(Clone)]
pub struct ImageDataset {
    source: Arc<dyn ImageSource>,
}

impl ImageDataset {
    /// The images of `source`.
    pub fn new(source: Arc<dyn ImageSource>) -> Self {
        Self { source }
    }
}

impl Dataset<Vec<u8>> for ImageDataset {
    fn get(&self, index: usize) -> Option<Vec<u8>> {
        if index >= self.source.len() {
            return None;
        }
        Some(
            self.source
                .get(index)
                .unwrap_or_else(|e| panic!("sgm ImageDataset: {e}")),
        )
    }

    fn len(&self) -> usize {
        self.source.len()
    }
}

/// Batches 8-bit images into a scaled `[B, C, H, W]` float tensor with a run's transforms.
#[derive(Debug)]
pub struct ImageBatcher {
    shape: [usize; 3],
    transforms: Transforms,
    rng: Mutex<TrainRng>,
}

impl ImageBatcher {
    /// The batcher of `cfg`'s data: image shape `[num_channels, image_size, image_size]`,
    /// transforms ([`Transforms::of`]), draws seeded by `cfg.seed` on stream
    /// [`BATCHER_STREAM`]` + purpose` (use one `purpose` per loader, e.g. 0 for training).
    pub fn new(cfg: &TrainConfig, purpose: u64) -> Self {
        let d = &cfg.model.data;
        Self::with_transforms(
            [d.num_channels, d.image_size, d.image_size],
            Transforms::of(cfg),
            TrainRng::new(cfg.seed, BATCHER_STREAM + purpose),
        )
    }

    /// A batcher of `shape` images with explicit transforms and draws (e.g. no flip for
    /// validation).
    pub fn with_transforms(shape: [usize; 3], transforms: Transforms, rng: TrainRng) -> Self {
        Self {
            shape,
            transforms,
            rng: Mutex::new(rng),
        }
    }
}

impl<B: Backend> Batcher<B, Vec<u8>, Tensor<B, 4>> for ImageBatcher {
    fn batch(&self, items: Vec<Vec<u8>>, device: &B::Device) -> Tensor<B, 4> {
        let [c, h, w] = self.shape;
        let per = c * h * w;
        let mut data = Vec::with_capacity(items.len() * per);
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, px) in items.iter().enumerate() {
            assert!(
                px.len() == per,
                "sgm ImageBatcher: item {k} of the batch has {} bytes, images of shape {:?} have {per}",
                px.len(),
                self.shape
            );
            transform_item(px, self.shape, self.transforms, &mut rng, &mut data);
        }
        Tensor::from_data(TensorData::new(data, [items.len(), c, h, w]), device) // [B, C, H, W]
    }
}
