//! The KV cache of one sequence: one contiguous `(layers, positions, kv_dim)` buffer each for
//! keys and values (FORMATS.md §1.4's layout), grown on demand.
//!
//! A header may claim a context of a million positions that no run will use, so the cache holds
//! only the positions a run asked for ([`KvCache::reserve`], fallible), never more than
//! `seq_len`. Growing re-lays each layer out into the new, larger buffer, so that layer `l`
//! always starts at `l * positions * kv_dim`.

use crate::checkpoint::Config;
use crate::error::{Error, Result};

/// Keys and values of one sequence, `(layers, positions, kv_dim)` each.
#[derive(Clone, Debug, Default)]
pub(crate) struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    /// Positions each layer has room for.
    pub positions: usize,
    /// Positions written so far (a sequence's next position); tracked for the batched API.
    pub len: usize,
    layers: usize,
    kvd: usize,
}

impl KvCache {
    /// An empty cache for `c`'s shape.
    pub fn new(c: &Config) -> Self {
        KvCache {
            layers: c.n_layers,
            kvd: c.kv_dim(),
            ..Default::default()
        }
    }

    /// Grows to hold `positions` positions (already capped at `seq_len`). Every allocation is
    /// fallible: when memory runs out the error says how much the cache needed, and the cache
    /// is left as it was.
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        if positions <= self.positions {
            return Ok(());
        }
        let n = self.layers * positions * self.kvd;
        let oom = || Error::OutOfMemory {
            bytes: 4 * 2 * n as u64,
            what: format!("the KV cache of {positions} positions"),
        };
        let mut k = Vec::new();
        let mut v = Vec::new();
        k.try_reserve_exact(n).map_err(|_| oom())?;
        v.try_reserve_exact(n).map_err(|_| oom())?;
        k.resize(n, 0.0);
        v.resize(n, 0.0);
        // Re-lay the layers out: layer l moves from l * old to l * new positions.
        let (old, kvd) = (self.positions * self.kvd, self.kvd);
        if old > 0 {
            for l in 0..self.layers {
                let (src, dst) = (l * old, l * positions * kvd);
                k[dst..dst + old].copy_from_slice(&self.k[src..src + old]);
                v[dst..dst + old].copy_from_slice(&self.v[src..src + old]);
            }
        }
        self.k = k;
        self.v = v;
        self.positions = positions;
        Ok(())
    }

    /// Layer `l`'s keys, `(positions, kv_dim)`.
    pub fn keys(&self, l: usize) -> &[f32] {
        let n = self.positions * self.kvd;
        &self.k[l * n..(l + 1) * n]
    }

    /// Layer `l`'s values, `(positions, kv_dim)`.
    pub fn values(&self, l: usize) -> &[f32] {
        let n = self.positions * self.kvd;
        &self.v[l * n..(l + 1) * n]
    }

    /// Layer `l`'s keys and values at position `pos`, for writing.
    pub fn at_mut(&mut self, l: usize, pos: usize) -> (&mut [f32], &mut [f32]) {
        let off = (l * self.positions + pos) * self.kvd;
        (
            &mut self.k[off..off + self.kvd],
            &mut self.v[off..off + self.kvd],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_every_layer_in_place() {
        let c = Config {
            dim: 8,
            hidden_dim: 16,
            n_layers: 3,
            n_heads: 2,
            n_kv_heads: 1,
            vocab_size: 10,
            seq_len: 64,
            shared_classifier: true,
            version: 1,
            group_size: 0,
        };
        let kvd = c.kv_dim();
        let mut kv = KvCache::new(&c);
        kv.reserve(3).unwrap();
        for l in 0..3 {
            for p in 0..3 {
                let (k, v) = kv.at_mut(l, p);
                k.fill((l * 10 + p) as f32);
                v.fill(-((l * 10 + p) as f32));
            }
        }
        kv.reserve(7).unwrap();
        for l in 0..3 {
            for p in 0..3 {
                assert!(kv.keys(l)[p * kvd..(p + 1) * kvd]
                    .iter()
                    .all(|&x| x == (l * 10 + p) as f32));
                assert!(kv.values(l)[p * kvd..(p + 1) * kvd]
                    .iter()
                    .all(|&x| x == -((l * 10 + p) as f32)));
            }
        }
    }
}
