//! The batched forward: one pass of the model over a set of (sequence slot, position, token)
//! entries — several prompt tokens of one sequence (prefill, causal inside the chunk) and/or
//! the next token of each of several sequences (decode) — each weight read once for all of
//! them ([`zhllama_kernels::batched`]).
//!
//! Every entry is computed exactly as [`Model::forward`] computes one token: the same kernels
//! sum each output in the same order, so a sequence's logits do not depend on what else is in
//! the batch, on the chunk size or on the thread count (tests: `tests/batched.rs`).

use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, Config};
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::model::Model;
use zhllama_kernels::{self as kernels, matmul_batch, BatchInput};

/// Which positions of a prefill get their logits computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Logits {
    /// None (the prompt is longer than the run: nothing is sampled).
    None,
    /// The last position's.
    Last,
    /// Every position's.
    Each,
}

/// One token of one sequence in a batched forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The sequence's slot ([`Slots::alloc`]).
    pub slot: usize,
    /// Its position: the slot's next position, or the one after the previous entry of the
    /// same slot in this batch (or an earlier one, to rewrite a sequence's end).
    pub pos: usize,
    /// The token at that position.
    pub token: u32,
    /// Whether to compute this entry's logits (prompt tokens but the last need none).
    pub logits: bool,
}

/// The KV caches of several sequences, one per slot. Slots are allocated and freed; a freed
/// slot's cache is kept for the next sequence that takes the slot (it needs no clearing:
/// position `p` is written before it is read).
#[derive(Debug)]
pub struct Slots {
    config: Config,
    caches: Vec<KvCache>,
    used: Vec<bool>,
}

impl Slots {
    /// No slots yet, for `model`'s shape.
    pub fn new(model: &Model) -> Self {
        Slots {
            config: model.config().clone(),
            caches: Vec::new(),
            used: Vec::new(),
        }
    }

    /// Takes a free slot (the lowest), for a new sequence starting at position 0.
    pub fn alloc(&mut self) -> usize {
        let slot = match self.used.iter().position(|u| !u) {
            Some(i) => i,
            None => {
                self.caches.push(KvCache::new(&self.config));
                self.used.push(false);
                self.used.len() - 1
            }
        };
        self.used[slot] = true;
        self.caches[slot].len = 0;
        slot
    }

    /// Gives a slot back.
    pub fn free(&mut self, slot: usize) {
        if let Some(u) = self.used.get_mut(slot) {
            *u = false;
        }
    }

    /// Positions written so far in `slot`, `None` when it is not allocated.
    pub fn len(&self, slot: usize) -> Option<usize> {
        self.used
            .get(slot)
            .filter(|&&u| u)
            .map(|_| self.caches[slot].len)
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.used.iter().filter(|&&u| u).count()
    }
}

/// Activations of a batch of `n` entries, `(n, width)` each, kept between calls.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,          // (n, d) residual streams
    xb: Vec<f32>,         // (n, d) normed input / attention output
    xb2: Vec<f32>,        // (n, d) projection output
    q: Vec<f32>,          // (n, d) queries
    k: Vec<f32>,          // (n, kvd) keys
    v: Vec<f32>,          // (n, kvd) values
    hb: Vec<f32>,         // (n, h) FFN hidden
    hb2: Vec<f32>,        // (n, h) FFN scratch
    pub logits: Vec<f32>, // (entries with logits, V)
}

fn resize(v: &mut Vec<f32>, n: usize) -> Result<()> {
    v.try_reserve(n.saturating_sub(v.len()))
        .map_err(|_| Error::OutOfMemory {
            bytes: 4 * n as u64,
            what: "the activations of a batch".into(),
        })?;
    v.resize(n, 0.0);
    Ok(())
}

/// The RoPE rotation of position `pos`: one `(cos, sin)` per pair within a head (the very
/// expression of the one-token forward, so the values are the same).
pub(crate) fn rope_table(pos: usize, hs: usize) -> Vec<(f32, f32)> {
    (0..hs / 2)
        .map(|j| {
            let freq = 1.0f32 / 10000.0f32.powf((2 * j) as f32 / hs as f32);
            let val = pos as f32 * freq;
            (val.cos(), val.sin())
        })
        .collect()
}

/// Rotates adjacent pairs `(x[2i], x[2i+1])` by `rope[i mod (hs/2)]`.
fn rotate(x: &mut [f32], rope: &[(f32, f32)]) {
    for (i, pair) in x.chunks_exact_mut(2).enumerate() {
        let (fcr, fci) = rope[i % rope.len()];
        let (v0, v1) = (pair[0], pair[1]);
        pair[0] = v0 * fcr - v1 * fci;
        pair[1] = v0 * fci + v1 * fcr;
    }
}

/// Checks a batch against the slots: known slots, tokens in the vocab, positions in the
/// context and following on from what each slot holds. Returns each slot's last position.
/// `f(a_row, b_row)` for each row of `a` (`wa` wide) and its row of `b` (`wb` wide): on the
/// pool when the rows are many enough to pay for the tasks (a long prompt's SiLU is 0.5 M
/// `exp`s per layer, a tenth of a 2-thread prefill when left on one thread). The work is
/// elementwise per row, so the split cannot change a bit of the result.
fn each_row<F>(threads: usize, a: &mut [f32], wa: usize, b: &[f32], wb: usize, f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    const PAR_MIN: usize = 16384;
    if threads > 1 && a.len() >= PAR_MIN && a.len() / wa.max(1) > 1 {
        a.par_chunks_mut(wa)
            .zip(b.par_chunks(wb))
            .for_each(|(a, b)| f(a, b));
    } else {
        for (a, b) in a.chunks_mut(wa).zip(b.chunks(wb)) {
            f(a, b);
        }
    }
}

fn check_batch(c: &Config, slots: &Slots, entries: &[Entry]) -> Result<Vec<(usize, usize)>> {
    let mut next: Vec<(usize, usize)> = Vec::new(); // (slot, next position allowed at most)
    for e in entries {
        if e.token as usize >= c.vocab_size {
            return Err(Error::bad_arg(format!(
                "token {} is outside the vocab (size {})",
                e.token, c.vocab_size
            )));
        }
        if e.pos >= c.seq_len {
            return Err(Error::bad_arg(format!(
                "position {} is beyond the context (seq_len {})",
                e.pos, c.seq_len
            )));
        }
        let len = slots
            .len(e.slot)
            .ok_or_else(|| Error::bad_arg(format!("slot {} is not allocated", e.slot)))?;
        match next.iter_mut().find(|(s, _)| *s == e.slot) {
            Some((_, p)) if e.pos == *p => *p += 1,
            Some((_, p)) => {
                return Err(Error::bad_arg(format!(
                    "slot {}: position {} in a batch must follow position {}",
                    e.slot,
                    e.pos,
                    *p - 1
                )))
            }
            None if e.pos <= len => next.push((e.slot, e.pos + 1)),
            None => {
                return Err(Error::bad_arg(format!(
                    "slot {} holds {len} positions; position {} would leave a gap",
                    e.slot, e.pos
                )))
            }
        }
    }
    Ok(next)
}

impl Model {
    /// Runs a batch of entries through the model in one pass and returns the logits of the
    /// entries that asked for them, in order, `(count, V)` row-major.
    ///
    /// Each entry's logits are bit-identical to what [`Model::forward`] gives for that token of
    /// that sequence run alone. Errors (nothing is run then): an unallocated slot, a token
    /// outside the vocab, a position beyond the context or leaving a gap in its slot.
    pub fn forward_batch(&mut self, slots: &mut Slots, entries: &[Entry]) -> Result<&[f32]> {
        let c = self.config().clone();
        let ends = check_batch(&c, slots, entries)?;
        for &(slot, end) in &ends {
            let kv = &mut slots.caches[slot];
            if end > kv.positions {
                // doubling, so that decoding one position at a time stays linear
                kv.reserve((2 * kv.positions).max(end).min(c.seq_len))?;
            }
        }
        let items: Vec<(usize, usize, u32, bool)> = entries
            .iter()
            .map(|e| (e.slot, e.pos, e.token, e.logits))
            .collect();
        self.run_batch(&mut slots.caches, &items)?;
        for (slot, end) in ends {
            slots.caches[slot].len = end;
        }
        Ok(&self.batch_scratch().logits)
    }

    /// Runs `tokens` of the model's own sequence at positions `start..` in one batched pass
    /// (a prompt's prefill) and returns the last one's logits, `(V)`. The next
    /// [`Model::forward`] continues at `start + tokens.len()`.
    pub fn prefill(&mut self, tokens: &[u32], start: usize) -> Result<&[f32]> {
        self.prefill_with(tokens, start, Logits::Last)
    }

    /// [`Model::prefill`] returning the logits of every position, `(tokens.len(), V)`: what
    /// feeding the tokens one by one to [`Model::forward`] would have given at each (chat
    /// samples after every position, prompt included).
    pub fn prefill_each(&mut self, tokens: &[u32], start: usize) -> Result<&[f32]> {
        self.prefill_with(tokens, start, Logits::Each)
    }

    pub(crate) fn prefill_with(
        &mut self,
        tokens: &[u32],
        start: usize,
        want: Logits,
    ) -> Result<&[f32]> {
        let Some(last) = (start + tokens.len()).checked_sub(1) else {
            return Ok(&[]);
        };
        for (i, &t) in tokens.iter().enumerate() {
            self.check_entry(t, start + i)?;
        }
        self.ensure_position(last)?;
        let items: Vec<(usize, usize, u32, bool)> = tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let logits = match want {
                    Logits::None => false,
                    Logits::Last => start + i == last,
                    Logits::Each => true,
                };
                (0, start + i, t, logits)
            })
            .collect();
        let mut kv = std::mem::take(self.own_cache());
        let run = self.run_batch(std::slice::from_mut(&mut kv), &items);
        *self.own_cache() = kv;
        run?;
        Ok(&self.batch_scratch().logits)
    }

    /// The pass itself, on the model's pool. The caches must hold every entry's position.
    fn run_batch(
        &mut self,
        caches: &mut [KvCache],
        items: &[(usize, usize, u32, bool)],
    ) -> Result<()> {
        let n = items.len();
        let (ckpt, scratch, pool, threads) = self.batch_parts();
        let c = &ckpt.config;
        let n_logits = items.iter().filter(|i| i.3).count();
        for (v, width) in [
            (&mut scratch.x, c.dim),
            (&mut scratch.xb, c.dim),
            (&mut scratch.xb2, c.dim),
            (&mut scratch.q, c.dim),
            (&mut scratch.k, c.kv_dim()),
            (&mut scratch.v, c.kv_dim()),
            (&mut scratch.hb, c.hidden_dim),
            (&mut scratch.hb2, c.hidden_dim),
        ] {
            resize(v, n * width)?;
        }
        resize(&mut scratch.logits, n_logits * c.vocab_size)?;
        if n == 0 {
            return Ok(());
        }
        if threads <= 1 {
            forward_batch(ckpt, caches, items, scratch, 1);
        } else {
            pool.install(|| forward_batch(ckpt, caches, items, scratch, threads));
        }
        Ok(())
    }
}

/// The batch through the transformer (FORMATS.md §1.4), entry by entry the same arithmetic as
/// the one-token `forward` in model.rs. Runs on the model's pool.
fn forward_batch(
    ck: &Checkpoint,
    caches: &mut [KvCache],
    items: &[(usize, usize, u32, bool)],
    s: &mut Scratch,
    threads: usize,
) {
    let c = &ck.config;
    let w = &ck.layout;
    let st = &ck.storage;
    let (d, h, hs, kvd, n) = (c.dim, c.hidden_dim, c.head_size(), c.kv_dim(), items.len());
    let (n_heads, kv_mul) = (c.n_heads, c.n_heads / c.n_kv_heads);
    let gs = (c.group_size > 0).then_some(c.group_size);

    // x[e] = embedding[token_e] (an int8 row is dequantized)            (n, d)
    let emb = st.mat(&w.tok_emb);
    for (x, &(_, _, token, _)) in s.x.chunks_exact_mut(d).zip(items) {
        emb.row_into(token as usize, x);
    }
    let ropes: Vec<Vec<(f32, f32)>> = items
        .iter()
        .map(|&(_, pos, _, _)| rope_table(pos, hs))
        .collect();

    for l in 0..c.n_layers {
        // ---- attention block ----
        // xb = rmsnorm(x) · w_att                                       (n, d)
        let rms = st.slice(&w.rms_att[l]);
        each_row(threads, &mut s.xb[..n * d], d, &s.x, d, |xb, x| {
            kernels::rmsnorm(xb, x, rms)
        });
        // q, k, v = wq·xb, wk·xb, wv·xb                                 (n, d), (n, kvd) × 2
        {
            let input = BatchInput::new(&s.xb[..n * d], n, gs);
            matmul_batch(&mut s.q, &input, st.mat(&w.wq[l]), threads);
            matmul_batch(&mut s.k, &input, st.mat(&w.wk[l]), threads);
            matmul_batch(&mut s.v, &input, st.mat(&w.wv[l]), threads);
        }
        // RoPE at each entry's position, then k and v into its slot's cache
        for (e, &(slot, pos, _, _)) in items.iter().enumerate() {
            rotate(&mut s.q[e * d..(e + 1) * d], &ropes[e]);
            rotate(&mut s.k[e * kvd..(e + 1) * kvd], &ropes[e]);
            let (kc, vc) = caches[slot].at_mut(l, pos);
            kc.copy_from_slice(&s.k[e * kvd..(e + 1) * kvd]);
            vc.copy_from_slice(&s.v[e * kvd..(e + 1) * kvd]);
        }
        // causal attention of every entry's heads over its own slot, positions 0..=pos (the
        // chunk's later positions are in the cache already but never read)       xb (n, d)
        {
            let caches: &[KvCache] = caches;
            let q = &s.q;
            let head = |i: usize, out: &mut [f32], att: &mut Vec<f32>| {
                let (e, hh) = (i / n_heads, i % n_heads);
                let (slot, pos, _, _) = items[e];
                let kvo = (hh / kv_mul) * hs;
                let (keys, values) = (&caches[slot].keys(l)[kvo..], &caches[slot].values(l)[kvo..]);
                let qh = &q[e * d + hh * hs..e * d + (hh + 1) * hs];
                att.resize(pos + 1, 0.0);
                kernels::attend(qh, keys, values, kvd, &mut att[..=pos], out);
            };
            let work: usize = items.iter().map(|&(_, pos, _, _)| (pos + 1) * d).sum();
            if threads > 1 && work >= 32768 {
                s.xb[..n * d]
                    .par_chunks_mut(hs)
                    .enumerate()
                    .for_each_init(Vec::new, |att, (i, out)| head(i, out, att));
            } else {
                let mut att = Vec::new();
                for (i, out) in s.xb[..n * d].chunks_mut(hs).enumerate() {
                    head(i, out, &mut att);
                }
            }
        }
        // x += wo·xb                                                    (n, d)
        let input = BatchInput::new(&s.xb[..n * d], n, gs);
        matmul_batch(&mut s.xb2, &input, st.mat(&w.wo[l]), threads);
        each_row(threads, &mut s.x, d, &s.xb2, d, |x, y| {
            x.iter_mut().zip(y).for_each(|(x, &y)| *x += y)
        });

        // ---- feed-forward block ----
        // xb = rmsnorm(x) · w_ffn; hb = silu(w1·xb) ⊙ (w3·xb)           (n, h)
        let rms = st.slice(&w.rms_ffn[l]);
        each_row(threads, &mut s.xb[..n * d], d, &s.x, d, |xb, x| {
            kernels::rmsnorm(xb, x, rms)
        });
        let input = BatchInput::new(&s.xb[..n * d], n, gs);
        matmul_batch(&mut s.hb, &input, st.mat(&w.w1[l]), threads);
        matmul_batch(&mut s.hb2, &input, st.mat(&w.w3[l]), threads);
        each_row(threads, &mut s.hb[..n * h], h, &s.hb2, h, |hb, hb2| {
            for (v, g) in hb.iter_mut().zip(hb2) {
                // silu(v) = v * sigmoid(v), then the gate; same operation order as run.c
                let mut val = *v;
                val *= 1.0 / (1.0 + (-val).exp());
                val *= *g;
                *v = val;
            }
        });
        // x += w2·hb                                                    (n, d)
        let input = BatchInput::new(&s.hb[..n * h], n, gs);
        matmul_batch(&mut s.xb, &input, st.mat(&w.w2[l]), threads);
        each_row(threads, &mut s.x, d, &s.xb, d, |x, y| {
            x.iter_mut().zip(y).for_each(|(x, &y)| *x += y)
        });
    }

    // final norm, then logits = classifier · x for the entries that want them   (m, V)
    let mut m = 0;
    for (e, &(_, _, _, want)) in items.iter().enumerate() {
        if want {
            let (src, dst) = (e * d, m * d);
            s.xb[dst..dst + d].copy_from_slice(&s.x[src..src + d]);
            kernels::rmsnorm_inplace(&mut s.xb[dst..dst + d], st.slice(&w.rms_final));
            m += 1;
        }
    }
    if m > 0 {
        let input = BatchInput::new(&s.xb[..m * d], m, gs);
        matmul_batch(&mut s.logits, &input, st.mat(&w.wcls), threads);
    }
}
