//! Training data as the reference's `datasets.py` feeds it: 8-bit images → `[0, 1]` →
//! (random horizontal flip) → (uniform dequantisation) → data scaler (`2x − 1` when centered),
//! batched `[B, C, H, W]`, infinite for training, `drop_remainder`.
//!
//! * Sources ([`ImageSource`]): CIFAR-10 binary or python batches ([`cifar`]), image folders
//!   ([`folder`]), or any in-memory `u8` array.
//! * Order and transforms are pure functions of `(seed, epoch, index)` ([`DataStream`]): each
//!   epoch is a seeded permutation; the flip / dequantisation draws of an item come from a
//!   ChaCha stream at a fixed offset. A [`DataPosition`] (epoch, index) therefore resumes the
//!   stream exactly, and a background thread ([`Prefetcher`]) can run ahead of the trainer.

pub mod cifar;
pub mod folder;
pub mod stream;

pub use cifar::{Cifar10, Cifar10Format, Cifar10Split, prepare as prepare_cifar10};
pub use folder::ImageFolder;
pub use stream::{BatchHost, DataPosition, DataStream, Prefetcher, Transforms, transform_item};

use crate::error::Result;

/// A finite set of 8-bit images of one shape (`[C, H, W]`, planar, row-major).
pub trait ImageSource: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when there is no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[C, H, W]` of every image.
    fn shape(&self) -> [usize; 3];
    /// Pixels of image `i` (`C·H·W` bytes, planar). Errors name the file it came from.
    fn get(&self, i: usize) -> Result<Vec<u8>>;
    /// Class label of image `i`, when the source has labels (CIFAR-10).
    fn label(&self, _i: usize) -> Option<u8> {
        None
    }
}

/// Images held in memory (`n · C·H·W` bytes) with optional labels.
#[derive(Debug, Clone)]
pub struct InMemoryImages {
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Planar pixels, image after image.
    pub pixels: Vec<u8>,
    /// Class labels (empty when unknown).
    pub labels: Vec<u8>,
}

impl InMemoryImages {
    /// Keeps only the first `n` images.
    pub fn truncate(mut self, n: usize) -> Self {
        let per = self.shape.iter().product::<usize>();
        self.pixels.truncate(n * per);
        self.labels.truncate(n);
        self
    }
}

impl ImageSource for InMemoryImages {
    fn len(&self) -> usize {
        self.pixels.len() / self.shape.iter().product::<usize>().max(1)
    }
    fn shape(&self) -> [usize; 3] {
        self.shape
    }
    fn get(&self, i: usize) -> Result<Vec<u8>> {
        let per = self.shape.iter().product::<usize>();
        Ok(self.pixels[i * per..(i + 1) * per].to_vec())
    }
    fn label(&self, i: usize) -> Option<u8> {
        self.labels.get(i).copied()
    }
}
