//! Sampling exactly as llama2.c does (FORMATS.md §3), so that a seed gives the same story.

use crate::error::{Error, Result};

/// llama2.c's xorshift RNG (64-bit state).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed` (0 stays 0 and then only yields zeros: seed it first).
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let mut s = self.state;
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        self.state = s;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// A float in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }
}

/// Picks the next token from logits: greedy at temperature 0, otherwise softmax sampling,
/// with nucleus (top-p) truncation when `0 < top_p < 1`.
#[derive(Clone, Debug)]
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    rng: Rng,
    probs: Vec<f32>,
    index: Vec<(f32, u32)>,
}

/// A seed taken from the clock (what a seed of 0 means).
pub fn clock_seed() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    secs.max(1)
}

impl Sampler {
    /// A sampler. `temperature < 0` is treated as 0 (greedy) and a `top_p` outside `[0, 1]` as
    /// 0.9, as in run.c; NaN for either is a [`Error::BadArgument`]. `seed` 0 means "seed from
    /// the clock".
    pub fn new(temperature: f32, top_p: f32, seed: u64) -> Result<Sampler> {
        if temperature.is_nan() || top_p.is_nan() {
            return Err(Error::bad_arg(
                "temperature and top-p must be numbers, not NaN",
            ));
        }
        let temperature = if temperature < 0.0 { 0.0 } else { temperature };
        let top_p = if !(0.0..=1.0).contains(&top_p) {
            0.9
        } else {
            top_p
        };
        let seed = if seed == 0 { clock_seed() } else { seed };
        Ok(Sampler {
            temperature,
            top_p,
            rng: Rng::new(seed),
            probs: Vec::new(),
            index: Vec::new(),
        })
    }

    /// The temperature in use.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// The top-p in use.
    pub fn top_p(&self) -> f32 {
        self.top_p
    }

    /// Samples a token id from `logits` (not modified). Panics never; returns 0 for empty logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let n = logits.len();
        if n == 0 {
            return 0;
        }
        if self.temperature == 0.0 {
            let mut best = 0;
            for i in 1..n {
                if logits[i] > logits[best] {
                    best = i;
                }
            }
            return best as u32;
        }
        self.probs.clear();
        self.probs
            .extend(logits.iter().map(|&l| l / self.temperature));
        zhllama_kernels::softmax(&mut self.probs);
        let coin = self.rng.next_f32();
        if self.top_p <= 0.0 || self.top_p >= 1.0 {
            let mut cdf = 0.0f32;
            for (i, &p) in self.probs.iter().enumerate() {
                cdf += p;
                if coin < cdf {
                    return i as u32;
                }
            }
            return (n - 1) as u32;
        }
        // Nucleus: only tokens with p >= (1 - top_p) / (n - 1) can be in the nucleus.
        let cutoff = (1.0 - self.top_p) / (n - 1).max(1) as f32;
        self.index.clear();
        self.index.extend(
            self.probs
                .iter()
                .enumerate()
                .filter(|(_, &p)| p >= cutoff)
                .map(|(i, &p)| (p, i as u32)),
        );
        if self.index.is_empty() {
            return (n - 1) as u32; // only with NaN probabilities
        }
        // Descending by probability; stable, like glibc's merge-sort qsort.
        self.index
            .sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut cum = 0.0f32;
        let mut last = self.index.len() - 1;
        for (i, &(p, _)) in self.index.iter().enumerate() {
            cum += p;
            if cum > self.top_p {
                last = i;
                break;
            }
        }
        let r = coin * cum;
        let mut cdf = 0.0f32;
        for &(p, id) in &self.index[..=last] {
            cdf += p;
            if r < cdf {
                return id;
            }
        }
        self.index[last].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_llama2c_xorshift() {
        let mut r = Rng::new(42);
        let a = r.next_u32();
        let mut s: u64 = 42;
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        assert_eq!(a, (s.wrapping_mul(0x2545F4914F6CDD1D) >> 32) as u32);
        assert!((0.0..1.0).contains(&r.next_f32()));
    }

    #[test]
    fn greedy_takes_first_max() {
        let mut s = Sampler::new(0.0, 0.9, 1).unwrap();
        assert_eq!(s.sample(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert!(Sampler::new(f32::NAN, 0.9, 1).is_err());
    }

    #[test]
    fn samples_stay_in_range() {
        for p in [0.0, 0.5, 0.9, 1.0] {
            let mut s = Sampler::new(1.0, p, 7).unwrap();
            for _ in 0..100 {
                assert!(s.sample(&[0.1, 2.0, -1.0, 0.5]) < 4);
            }
        }
    }
}
