//! The model: a validated checkpoint, its run state (KV cache, activations), an optional
//! tokenizer and a thread pool of its own; and the forward pass.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, Config, Quantize};
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::tokenizer::Tokenizer;
use zhllama_kernels::{self as kernels, MatRef};

/// Activations and caches of one sequence.
///
/// The KV cache and the attention scores hold `positions` positions, not the whole context:
/// a header may claim a context of a million positions that no run will use, so the cache
/// grows (fallibly, see [`RunState::reserve`]) to what a run asks for, never beyond `seq_len`.
struct RunState {
    x: Vec<f32>,      // (d) the residual stream
    xb: Vec<f32>,     // (d) normed input / attention output
    xb2: Vec<f32>,    // (d) projection output
    hb: Vec<f32>,     // (h) FFN hidden
    hb2: Vec<f32>,    // (h) FFN scratch
    q: Vec<f32>,      // (d) queries
    att: Vec<f32>,    // (H, positions) attention scores
    logits: Vec<f32>, // (V)
    kv: KvCache,      // (L, positions, kvd) keys and values
    positions: usize,
}

impl RunState {
    fn new(c: &Config) -> Self {
        RunState {
            x: vec![0.0; c.dim],
            xb: vec![0.0; c.dim],
            xb2: vec![0.0; c.dim],
            hb: vec![0.0; c.hidden_dim],
            hb2: vec![0.0; c.hidden_dim],
            q: vec![0.0; c.dim],
            att: Vec::new(),
            logits: vec![0.0; c.vocab_size],
            kv: KvCache::new(c),
            positions: 0,
        }
    }

    /// Grows the cache to hold `positions` positions (already capped at `seq_len`). Every
    /// allocation is fallible: when memory runs out the error says how much the cache needed,
    /// and the state is left as it was (a longer attention buffer is harmless).
    fn reserve(&mut self, c: &Config, positions: usize) -> Result<()> {
        if positions <= self.positions {
            return Ok(());
        }
        let bytes = 4
            * (2 * c.n_layers as u64 * positions as u64 * c.kv_dim() as u64
                + c.n_heads as u64 * positions as u64);
        let oom = || Error::OutOfMemory {
            bytes,
            what: format!("the KV cache of {positions} positions"),
        };
        let grow = |v: &mut Vec<f32>, n: usize| -> Result<()> {
            v.try_reserve_exact(n.saturating_sub(v.len()))
                .map_err(|_| oom())?;
            v.resize(n, 0.0);
            Ok(())
        };
        self.kv.reserve(positions).map_err(|_| oom())?;
        grow(&mut self.att, c.n_heads * positions)?;
        self.positions = positions;
        Ok(())
    }
}

/// A loaded model, ready to run.
///
/// ```no_run
/// use zhllama_core::{GenerateOptions, Model};
/// let mut model = Model::load("stories15M.bin", Some("tok5000.bin".as_ref()), None)?;
/// let mut story = model.generate("从前", &GenerateOptions::default())?;
/// for piece in &mut story {
///     print!("{piece}");
/// }
/// eprintln!("achieved tok/s: {:?}", story.tokens_per_second());
/// # Ok::<(), zhllama_core::Error>(())
/// ```
pub struct Model {
    ckpt: Checkpoint,
    state: RunState,
    pool: rayon::ThreadPool,
    threads: usize,
    tokenizer: Option<Tokenizer>,
    path: PathBuf,
    batch: crate::batch::Scratch,
}

/// The default thread count: the number of physical cores.
pub fn default_threads() -> usize {
    num_cpus::get_physical().max(1)
}

impl Model {
    /// Loads a checkpoint (version 0, 1 or 2) by memory-mapping it, and optionally its tokenizer.
    ///
    /// - `tokenizer`: a `tokenizer.bin`; it must hold exactly the model's vocab size entries.
    ///   `None` loads none (then [`Model::generate`] is unavailable, [`Model::forward`] works).
    /// - `threads`: size of the model's own thread pool; `None` or `Some(0)` means the number
    ///   of physical cores. The global rayon pool is never touched.
    ///
    /// Errors: [`Error::NotFound`] for a missing file, [`Error::BadFile`] for a malformed one
    /// (checked against the file size before anything is allocated), [`Error::Io`] otherwise.
    pub fn load(
        path: impl AsRef<Path>,
        tokenizer: Option<&Path>,
        threads: Option<usize>,
    ) -> Result<Model> {
        Model::load_with(path, tokenizer, threads, Quantize::None)
    }

    /// [`Model::load`], quantizing an f32 checkpoint to int8 in memory when `quantize` asks
    /// for it (the weights then take a quarter of the memory, and the matmuls run in int8).
    /// A group size that does not divide dim and hidden is an [`Error::BadArgument`].
    pub fn load_with(
        path: impl AsRef<Path>,
        tokenizer: Option<&Path>,
        threads: Option<usize>,
        quantize: Quantize,
    ) -> Result<Model> {
        let path = path.as_ref();
        let ckpt = Checkpoint::open_with(path, quantize)?;
        let tokenizer = match tokenizer {
            Some(t) => Some(Tokenizer::from_file(t, Some(ckpt.config.vocab_size))?),
            None => None,
        };
        let threads = match threads {
            None | Some(0) => default_threads(),
            Some(n) => n,
        };
        if threads > 1024 {
            return Err(Error::bad_arg(format!(
                "{threads} threads is not a sensible thread count"
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("zhllama-{i}"))
            .build()
            .map_err(|e| Error::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let state = RunState::new(&ckpt.config);
        Ok(Model {
            ckpt,
            state,
            pool,
            threads,
            tokenizer,
            path: path.to_path_buf(),
            batch: Default::default(),
        })
    }

    /// The model's shape and format.
    pub fn config(&self) -> &Config {
        &self.ckpt.config
    }
    /// Transformer width.
    pub fn dim(&self) -> usize {
        self.config().dim
    }
    /// FFN hidden width.
    pub fn hidden_dim(&self) -> usize {
        self.config().hidden_dim
    }
    /// Number of layers.
    pub fn n_layers(&self) -> usize {
        self.config().n_layers
    }
    /// Number of query heads.
    pub fn n_heads(&self) -> usize {
        self.config().n_heads
    }
    /// Number of key/value heads.
    pub fn n_kv_heads(&self) -> usize {
        self.config().n_kv_heads
    }
    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    /// Context length (maximum positions).
    pub fn seq_len(&self) -> usize {
        self.config().seq_len
    }
    /// Format version of the weights in memory: 0, 1, or 2 (int8, from the file or quantized
    /// at load).
    pub fn version(&self) -> u32 {
        self.config().version
    }
    /// Whether the weights are int8-quantized.
    pub fn quantized(&self) -> bool {
        self.config().quantized()
    }
    /// The int8 group size; 0 for f32 weights.
    pub fn group_size(&self) -> usize {
        self.config().group_size
    }
    /// The number of threads of the model's pool.
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// The checkpoint's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The tokenizer, if one was loaded.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Attaches a tokenizer; it must have the model's vocab size.
    pub fn set_tokenizer(&mut self, tokenizer: Tokenizer) -> Result<()> {
        if tokenizer.vocab_size() != self.vocab_size() {
            return Err(Error::bad_arg(format!(
                "tokenizer has {} entries but the model's vocab size is {}",
                tokenizer.vocab_size(),
                self.vocab_size()
            )));
        }
        self.tokenizer = Some(tokenizer);
        Ok(())
    }

    /// Makes room in the KV cache for `positions` positions (0 or more than the context: the
    /// whole context), so that a run fails here, with the size it needed
    /// ([`Error::OutOfMemory`]), rather than part-way. [`Model::generate`] and chat reserve what
    /// they will run; [`Model::forward`] grows the cache on its own as positions advance.
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        let seq_len = self.seq_len();
        let n = if positions == 0 {
            seq_len
        } else {
            positions.min(seq_len)
        };
        self.state.reserve(&self.ckpt.config, n)
    }

    /// Room for position `pos`: doubling, so that feeding positions one by one stays linear.
    pub(crate) fn ensure_position(&mut self, pos: usize) -> Result<()> {
        if pos < self.state.positions {
            return Ok(());
        }
        let doubled = (2 * self.state.positions).max(pos + 1).min(self.seq_len());
        self.state.reserve(&self.ckpt.config, doubled)
    }

    /// Forgets the current sequence. (The KV cache needs no clearing: position `p` is written
    /// before it is read, so a new sequence simply starts again at position 0.)
    pub fn reset(&mut self) {
        self.state.x.fill(0.0);
        self.state.logits.fill(0.0);
    }

    /// Runs one token at position `pos` and returns the logits over the vocab, `(V)`.
    ///
    /// Positions must be fed in order (0, 1, 2, …) for a sequence: attention reads the KV cache
    /// of positions `0..=pos`. Errors when `token >= vocab_size` or `pos >= seq_len`.
    pub fn forward(&mut self, token: u32, pos: usize) -> Result<&[f32]> {
        self.check(token, pos)?;
        self.ensure_position(pos)?;
        self.forward_unchecked(token, pos, true);
        Ok(&self.state.logits)
    }

    /// What the batched forward needs of the model, borrowed apart.
    pub(crate) fn batch_parts(
        &mut self,
    ) -> (
        &Checkpoint,
        &mut crate::batch::Scratch,
        &rayon::ThreadPool,
        usize,
    ) {
        (&self.ckpt, &mut self.batch, &self.pool, self.threads)
    }

    /// The batched forward's activations (its logits).
    pub(crate) fn batch_scratch(&self) -> &crate::batch::Scratch {
        &self.batch
    }

    /// The KV cache of the model's own sequence (the one [`Model::forward`] runs).
    pub(crate) fn own_cache(&mut self) -> &mut KvCache {
        &mut self.state.kv
    }

    pub(crate) fn check_entry(&self, token: u32, pos: usize) -> Result<()> {
        self.check(token, pos)
    }

    fn check(&self, token: u32, pos: usize) -> Result<()> {
        let c = self.config();
        if token as usize >= c.vocab_size {
            return Err(Error::bad_arg(format!(
                "token {token} is outside the vocab (size {})",
                c.vocab_size
            )));
        }
        if pos >= c.seq_len {
            return Err(Error::bad_arg(format!(
                "position {pos} is beyond the context (seq_len {})",
                c.seq_len
            )));
        }
        Ok(())
    }

    /// The forward pass; `logits` false skips the classifier (prompt positions whose logits
    /// nobody reads). The cache must already hold `pos` ([`Model::ensure_position`]).
    pub(crate) fn forward_unchecked(&mut self, token: u32, pos: usize, logits: bool) -> &[f32] {
        let Model {
            ckpt,
            state,
            pool,
            threads,
            ..
        } = self;
        let threads = *threads;
        if threads <= 1 {
            // Nothing runs in parallel with one thread: skip the hand-off to the pool (a
            // cross-thread wake-up and wait per token).
            forward(ckpt, state, token as usize, pos, logits, 1);
        } else {
            pool.install(|| forward(ckpt, state, token as usize, pos, logits, threads));
        }
        &self.state.logits
    }
}

/// From this many multiply-adds of attention scores, `(pos + 1) · dim`, one position's heads run
/// in parallel; below it handing them to the pool costs more than it saves.
const PARALLEL_ATTENTION_MIN_WORK: usize = 32768;

/// Whether the attention at `pos` runs its heads on the pool (each head is computed alike
/// either way, so the result does not depend on it).
fn attention_in_parallel(pos: usize, dim: usize, threads: usize) -> bool {
    threads > 1 && (pos + 1) * dim >= PARALLEL_ATTENTION_MIN_WORK
}

/// One token through the transformer (FORMATS.md §1.4). Runs on the model's pool.
fn forward(
    ck: &Checkpoint,
    s: &mut RunState,
    token: usize,
    pos: usize,
    want_logits: bool,
    threads: usize,
) {
    let c = &ck.config;
    let w = &ck.layout;
    let st = &ck.storage;
    let (d, hs, kvd, t_max) = (c.dim, c.head_size(), c.kv_dim(), s.positions);
    debug_assert!(pos < t_max, "the cache was reserved for position {pos}");
    let kv_mul = c.n_heads / c.n_kv_heads; // query heads per kv head

    // x = embedding[token] (an int8 row is dequantized)                (d)
    st.mat(&w.tok_emb).row_into(token, &mut s.x);

    // RoPE rotation for this position: one (cos, sin) per pair within a head, the same for
    // every head (run.c computes it per element; the values are identical).
    let rope = crate::batch::rope_table(pos, hs);

    for l in 0..c.n_layers {
        // ---- attention block ----
        // xb = rmsnorm(x) · w_att                                      (d)
        kernels::rmsnorm(&mut s.xb, &s.x, st.slice(&w.rms_att[l]));

        // q = wq·xb (d); k, v = wk·xb, wv·xb (kvd each), written straight into the cache
        {
            let (k, v) = s.kv.at_mut(l, pos);
            let mats = [st.mat(&w.wq[l]), st.mat(&w.wk[l]), st.mat(&w.wv[l])];
            kernels::matmul_many(&mut [&mut s.q[..], k, v], &s.xb, &mats, threads);
        }

        // RoPE on adjacent pairs (x[2i], x[2i+1]) of every q head and every k head
        {
            let (k, _) = s.kv.at_mut(l, pos);
            for (i, pair) in s.q.chunks_exact_mut(2).enumerate() {
                let (fcr, fci) = rope[i % (hs / 2)];
                let (v0, v1) = (pair[0], pair[1]);
                pair[0] = v0 * fcr - v1 * fci;
                pair[1] = v0 * fci + v1 * fcr;
            }
            for (i, pair) in k.chunks_exact_mut(2).enumerate() {
                let (fcr, fci) = rope[i % (hs / 2)];
                let (v0, v1) = (pair[0], pair[1]);
                pair[0] = v0 * fcr - v1 * fci;
                pair[1] = v0 * fci + v1 * fcr;
            }
        }

        // causal attention, per head h (kv head h / kv_mul):           xb (d)
        {
            let (layer_k, layer_v) = (s.kv.keys(l), s.kv.values(l));
            let q = &s.q;
            // att = softmax(q_h · k_t / sqrt(hs)) over t <= pos; out = Σ_t att[t] · v_t
            let head = |h: usize, out: &mut [f32], att: &mut [f32]| {
                let kvo = (h / kv_mul) * hs;
                let (keys, values) = (&layer_k[kvo..], &layer_v[kvo..]);
                let qh = &q[h * hs..(h + 1) * hs];
                kernels::attend(qh, keys, values, kvd, &mut att[..=pos], out);
            };
            if attention_in_parallel(pos, d, threads) {
                s.xb.par_chunks_mut(hs)
                    .zip(s.att.par_chunks_mut(t_max))
                    .enumerate()
                    .for_each(|(h, (out, att))| head(h, out, att));
            } else {
                for (h, (out, att)) in s.xb.chunks_mut(hs).zip(s.att.chunks_mut(t_max)).enumerate()
                {
                    head(h, out, att);
                }
            }
        }

        // x += wo·xb                                                   (d)
        kernels::matmul(&mut s.xb2, &s.xb, st.mat(&w.wo[l]), threads);
        for (x, &y) in s.x.iter_mut().zip(&s.xb2) {
            *x += y;
        }

        // ---- feed-forward block ----
        // xb = rmsnorm(x) · w_ffn; hb = silu(w1·xb) ⊙ (w3·xb)          (h)
        kernels::rmsnorm(&mut s.xb, &s.x, st.slice(&w.rms_ffn[l]));
        kernels::swiglu(
            &mut s.hb,
            &mut s.hb2,
            &s.xb,
            st.mat(&w.w1[l]),
            st.mat(&w.w3[l]),
            threads,
        );
        // x += w2·hb                                                   (d)
        kernels::matmul(&mut s.xb, &s.hb, st.mat(&w.w2[l]), threads);
        for (x, &y) in s.x.iter_mut().zip(&s.xb) {
            *x += y;
        }
    }

    // final norm, then logits = classifier · x                         (V)
    kernels::rmsnorm_inplace(&mut s.x, st.slice(&w.rms_final));
    if want_logits {
        let cls: MatRef<'_> = st.mat(&w.wcls);
        kernels::matmul(&mut s.logits, &s.x, cls, threads);
    }
}

#[cfg(test)]
mod parallel_tests;
