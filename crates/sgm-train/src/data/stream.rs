//! The batch stream: seeded per-epoch permutations, per-item transforms drawn at fixed offsets
//! of a ChaCha stream, exact resume from a [`DataPosition`], and a background prefetch thread.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::data::ImageSource;
use crate::error::{Result, TrainError};
use crate::rng::TrainRng;

/// Where a batch stream stands: the next batch starts at item `index` of epoch `epoch`'s
/// permutation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    /// Epoch (each has its own permutation).
    pub epoch: u64,
    /// Index into the epoch's permutation.
    pub index: u64,
}

/// The reference's preprocessing knobs (`datasets.py` + `get_data_scaler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transforms {
    /// Random horizontal flip.
    pub random_flip: bool,
    /// `(U[0,1) + 255 x) / 256`.
    pub uniform_dequantization: bool,
    /// Scale `[0, 1] → [-1, 1]`.
    pub centered: bool,
}

impl Transforms {
    /// The transforms of a run: `data.random_flip`, `data.uniform_dequantization` and the
    /// network's `data.centered`.
    pub fn of(cfg: &crate::TrainConfig) -> Self {
        Self {
            random_flip: cfg.transforms.random_flip,
            uniform_dequantization: cfg.transforms.uniform_dequantization,
            centered: cfg.model.data.centered,
        }
    }
}

/// One batch on the host: `[B, C, H, W]` row-major, scaled, plus the position after it.
#[derive(Debug, Clone)]
pub struct BatchHost {
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
    /// Values.
    pub data: Vec<f32>,
    /// Class labels of the images (empty when the source has none).
    pub labels: Vec<u8>,
    /// Stream position after this batch.
    pub next: DataPosition,
}

/// A deterministic, infinite batch stream over an [`ImageSource`].
#[derive(Clone)]
pub struct DataStream {
    source: Arc<dyn ImageSource>,
    batch_size: usize,
    seed: u64,
    /// Distinguishes independent streams of one run (training = 0, eval = 1).
    purpose: u64,
    transforms: Transforms,
    pos: DataPosition,
    perm: Option<(u64, Vec<u32>)>,
}

impl std::fmt::Debug for DataStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataStream")
            .field("len", &self.source.len())
            .field("batch_size", &self.batch_size)
            .field("pos", &self.pos)
            .finish()
    }
}

const PERM_STREAM: u64 = 1 << 40;
const ITEM_STREAM: u64 = 2 << 40;

impl DataStream {
    /// A stream of `batch_size` batches starting at `pos`. Errors if the source holds fewer
    /// than one batch (`drop_remainder`).
    pub fn new(
        source: Arc<dyn ImageSource>,
        batch_size: usize,
        seed: u64,
        purpose: u64,
        transforms: Transforms,
        pos: DataPosition,
    ) -> Result<Self> {
        if batch_size == 0 || source.len() < batch_size {
            return Err(TrainError::Config {
                key: "training.batch_size".into(),
                msg: format!(
                    "batch size {batch_size} needs at least that many images; the data set has {}",
                    source.len()
                ),
            });
        }
        Ok(Self {
            source,
            batch_size,
            seed,
            purpose,
            transforms,
            pos,
            perm: None,
        })
    }

    /// The position of the next batch.
    pub fn position(&self) -> DataPosition {
        self.pos
    }

    /// Seeded Fisher–Yates permutation of epoch `epoch`.
    fn permutation(&mut self, epoch: u64) -> &[u32] {
        if self.perm.as_ref().map(|p| p.0) != Some(epoch) {
            let n = self.source.len();
            let mut rng = TrainRng::new(self.seed, PERM_STREAM + 2 * epoch + self.purpose);
            let mut p: Vec<u32> = (0..n as u32).collect();
            for i in (1..n).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                p.swap(i, j);
            }
            self.perm = Some((epoch, p));
        }
        &self.perm.as_ref().expect("set above").1
    }

    /// [`transform_item`] of item `slot` of `epoch`, its draws at the item's fixed offset.
    fn transform(&self, pixels: &[u8], epoch: u64, slot: u64, out: &mut Vec<f32>) {
        let shape = self.source.shape();
        let per = shape.iter().product::<usize>() as u128;
        let mut rng = TrainRng::at(
            self.seed,
            ITEM_STREAM + 2 * epoch + self.purpose,
            slot as u128 * (per + 1),
        );
        transform_item(pixels, shape, self.transforms, &mut rng, out);
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Result<BatchHost> {
        let n = self.source.len() as u64;
        let bs = self.batch_size as u64;
        if self.pos.index + bs > n {
            self.pos = DataPosition {
                epoch: self.pos.epoch + 1,
                index: 0,
            };
        }
        let DataPosition { epoch, index } = self.pos;
        let ids: Vec<u32> = self.permutation(epoch)[index as usize..(index + bs) as usize].to_vec();
        let [c, h, w] = self.source.shape();
        let mut data = Vec::with_capacity(self.batch_size * c * h * w);
        for (k, &i) in ids.iter().enumerate() {
            let px = self.source.get(i as usize)?;
            self.transform(&px, epoch, index + k as u64, &mut data);
        }
        self.pos.index += bs;
        let labels: Option<Vec<u8>> = ids.iter().map(|&i| self.source.label(i as usize)).collect();
        Ok(BatchHost {
            shape: [self.batch_size, c, h, w],
            data,
            labels: labels.unwrap_or_default(),
            next: self.pos,
        })
    }
}

/// The reference's preprocessing of one image (`datasets.py` + `get_data_scaler`): 8-bit
/// pixels (`[C, H, W]` planar) → `[0, 1]` floats → random horizontal flip → uniform
/// dequantisation → scaler, appended to `out`. Draws from `rng`: one uniform for the flip, then
/// one per value when dequantising (at most `C·H·W + 1` words).
pub fn transform_item(
    pixels: &[u8],
    [c, h, w]: [usize; 3],
    t: Transforms,
    rng: &mut TrainRng,
    out: &mut Vec<f32>,
) {
    let flip = rng.uniform_f32() < 0.5 && t.random_flip;
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let v = pixels[(ch * h + y) * w + sx] as f32;
                let mut v = if t.uniform_dequantization {
                    // (U + 255 x) / 256 with x = v / 255
                    (rng.uniform_f32() + v) / 256.0
                } else {
                    v / 255.0
                };
                if t.centered {
                    v = v * 2.0 - 1.0; // get_data_scaler
                }
                out.push(v);
            }
        }
    }
}

/// Runs a [`DataStream`] on a background thread, `depth` batches ahead of the trainer.
pub struct Prefetcher {
    rx: Receiver<Result<BatchHost>>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts producing from `stream`'s current position.
    pub fn new(mut stream: DataStream, depth: usize) -> Self {
        let (tx, rx): (SyncSender<Result<BatchHost>>, _) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("sgm-data".into())
            .spawn(move || {
                loop {
                    let b = stream.next_batch();
                    let stop = b.is_err();
                    if tx.send(b).is_err() || stop {
                        return;
                    }
                }
            })
            .expect("spawn the data thread");
        Self {
            rx,
            handle: Some(handle),
        }
    }

    /// The next batch (blocks until the thread has it).
    pub fn next_batch(&mut self) -> Result<BatchHost> {
        self.rx
            .recv()
            .map_err(|_| TrainError::Internal("the data thread stopped".into()))?
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Dropping the receiver makes the producer's next send fail; it then exits.
        let (_, dummy) = sync_channel(1);
        drop(std::mem::replace(&mut self.rx, dummy));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InMemoryImages;

    fn source(n: usize) -> Arc<dyn ImageSource> {
        Arc::new(InMemoryImages {
            shape: [1, 2, 3],
            pixels: (0..n * 6).map(|i| (i % 256) as u8).collect(),
            labels: vec![],
        })
    }

    fn tf() -> Transforms {
        Transforms {
            random_flip: true,
            uniform_dequantization: true,
            centered: true,
        }
    }

    #[test]
    fn resumes_exactly_and_covers_each_epoch() {
        let mut a = DataStream::new(source(10), 3, 7, 0, tf(), DataPosition::default()).unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(a.next_batch().unwrap());
        }
        let pos = a.position();
        assert_eq!(pos, DataPosition { epoch: 0, index: 9 });
        let rest_a: Vec<_> = (0..4).map(|_| a.next_batch().unwrap().data).collect();
        let mut b = DataStream::new(source(10), 3, 7, 0, tf(), pos).unwrap();
        let rest_b: Vec<_> = (0..4).map(|_| b.next_batch().unwrap().data).collect();
        assert_eq!(rest_a, rest_b);
        assert_eq!(b.position(), DataPosition { epoch: 2, index: 3 });
        // values lie in [-1, 1]
        assert!(
            seen.iter()
                .flat_map(|b| &b.data)
                .all(|v| (-1.0..=1.0).contains(v))
        );
    }

    #[test]
    fn prefetcher_gives_the_same_batches() {
        let s = DataStream::new(source(10), 4, 1, 0, tf(), DataPosition::default()).unwrap();
        let mut direct = s.clone();
        let mut pre = Prefetcher::new(s, 2);
        for _ in 0..5 {
            let (x, y) = (direct.next_batch().unwrap(), pre.next_batch().unwrap());
            assert_eq!(x.data, y.data);
            assert_eq!(x.next, y.next);
        }
    }

    #[test]
    fn too_small_a_data_set_is_an_error() {
        let e = DataStream::new(source(2), 3, 1, 0, tf(), DataPosition::default()).unwrap_err();
        assert!(e.to_string().contains("batch_size"), "{e}");
    }
}
