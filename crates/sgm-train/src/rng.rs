//! The trainer's random numbers: a seeded ChaCha8 stream owned by the trainer, whose complete
//! state (seed, stream, word position) goes into every checkpoint, so a resumed run draws the
//! same numbers as an uninterrupted one. Burn's CPU RNG is process-global (and shared by
//! concurrently running code), so the trainer never uses it for the loss draws.

use burn::prelude::*;
use chacha20::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal, StandardUniform, Uniform};
use sde_core::NoiseSource;
use serde::{Deserialize, Serialize};

/// A resumable random stream ([`NoiseSource`] for the losses, `u64`s for anything else).
#[derive(Debug)]
pub struct TrainRng {
    rng: ChaCha8Rng,
}

impl Clone for TrainRng {
    fn clone(&self) -> Self {
        Self::from_state(&self.state())
    }
}

/// Everything needed to continue a [`TrainRng`] exactly where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// ChaCha key.
    pub seed: [u8; 32],
    /// ChaCha stream id.
    pub stream: u64,
    /// Position in the stream, in 32-bit words (u128 as a decimal string in JSON).
    #[serde(with = "u128_str")]
    pub word_pos: u128,
}

mod u128_str {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl TrainRng {
    /// A stream for `seed` on stream `stream` (use different streams for independent purposes).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self { rng }
    }

    /// A stream positioned at `word_pos` (32-bit words): random access for stateless draws
    /// (the data transforms of item `i` start at a fixed offset).
    pub fn at(seed: u64, stream: u64, word_pos: u128) -> Self {
        let mut r = Self::new(seed, stream);
        r.rng.set_word_pos(word_pos);
        r
    }

    /// The state to save.
    pub fn state(&self) -> RngState {
        RngState {
            seed: self.rng.get_seed(),
            stream: self.rng.get_stream(),
            word_pos: self.rng.get_word_pos(),
        }
    }

    /// Continues a saved stream.
    pub fn from_state(s: &RngState) -> Self {
        let mut rng = ChaCha8Rng::from_seed(s.seed);
        rng.set_stream(s.stream);
        rng.set_word_pos(s.word_pos);
        Self { rng }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform on `[0, 1)` (24 random bits).
    pub fn uniform_f32(&mut self) -> f32 {
        StandardUniform.sample(&mut self.rng)
    }

    /// `n` standard normal values.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect()
    }
}

impl<B: Backend> NoiseSource<B> for TrainRng {
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
        let v: Vec<f32> = (0..n).map(|_| self.uniform_f32()).collect();
        Ok(Tensor::from_data(TensorData::new(v, [n]), device))
    }

    fn randint(
        &mut self,
        low: i64,
        high: i64,
        n: usize,
        device: &B::Device,
    ) -> sde_core::Result<Tensor<B, 1, Int>> {
        let dist = Uniform::new(low, high).map_err(|e| {
            sde_core::SdeError::Replay(format!("randint: empty range [{low}, {high}): {e}"))
        })?;
        let v: Vec<i64> = (0..n).map(|_| dist.sample(&mut self.rng)).collect();
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
                if self.rng.next_u32() >> 31 == 0 {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Tensor::from_data(TensorData::new(v, shape), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_stream() {
        let mut a = TrainRng::new(42, 3);
        let _ = a.normals(17);
        let _ = a.uniform_f32();
        let s = a.state();
        let json = serde_json::to_string(&s).unwrap();
        let mut b = TrainRng::from_state(&serde_json::from_str(&json).unwrap());
        assert_eq!(a.normals(9), b.normals(9));
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn streams_differ() {
        let mut a = TrainRng::new(42, 0);
        let mut b = TrainRng::new(42, 1);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn normals_have_unit_variance() {
        let v = TrainRng::new(1, 0).normals(20_000);
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(m.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{m} {var}");
    }
}
