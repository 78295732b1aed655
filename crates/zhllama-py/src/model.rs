//! `zhllama_rs.Model` and `zhllama_rs.Stream`: a mirror of `zhllama_core::Model` and
//! `zhllama_core::Generator`.
//!
//! Threads: the core model sits behind a mutex that is only ever locked with the GIL released
//! (inside `py.detach`), so Python threads never wait on it while holding the GIL, and two
//! threads with two models compute in parallel. Config properties are copied out at load time and
//! never lock. Each run that touches the KV cache bumps an epoch; a stream remembers its epoch
//! and refuses to continue on a cache that something else has since overwritten.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use zhllama_core::{Config, GenerateOptions, Generator, Model, Quantize};

use crate::chat::PyChat;
use crate::errors::{bad_arg, stream_invalidated, to_py, Int};
use crate::tokenizer::{ids_from, token_id, PyTokenizer};

/// How often `generate` re-attaches to look for Ctrl-C (between tokens, never inside one).
/// Per token would also work; this bounds the GIL round trips for tiny, very fast models.
pub(crate) const SIGNAL_CHECK_EVERY: Duration = Duration::from_millis(10);

pub(crate) struct Engine {
    pub(crate) model: Model,
    /// Bumped by every run that writes the KV cache.
    pub(crate) epoch: u64,
}

/// A loaded llama2.c checkpoint with its own KV cache and thread pool.
#[pyclass(module = "zhllama_rs._native", name = "Model", frozen)]
pub struct PyModel {
    engine: Mutex<Engine>,
    config: Config,
    threads: usize,
    checkpoint: String,
    tokenizer: Option<Py<PyTokenizer>>,
}

impl PyModel {
    /// Only ever called with the GIL released. A panic cannot leave the model half-borrowed
    /// (the core does not panic on input), so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Only ever called with the GIL released, like `lock`.
    fn score_ids(&self, ids: &[u32]) -> zhllama_core::Result<Vec<f32>> {
        let mut eng = self.lock();
        eng.epoch += 1;
        eng.model.score(ids)
    }
}

/// The CLI's argument rules ([`GenerateOptions::from_args`]), so the same values give the same
/// story; `seed=None` means the clock, like the CLI's 0.
pub(crate) fn options(
    Int(steps): Int<i64>,
    temperature: f64,
    top_p: f64,
    seed: Option<Int<i128>>,
    stop_at_eos: bool,
) -> PyResult<GenerateOptions> {
    let seed = seed.map_or(0, |Int(s)| s);
    GenerateOptions::from_args(steps, temperature, top_p, seed, stop_at_eos).map_err(to_py)
}

#[pymethods]
impl PyModel {
    /// Loads `checkpoint` (llama2.c version 0, 1 or 2 = int8) and optionally its
    /// `tokenizer.bin`; `threads` None or 0 means the number of physical cores; `quantize="q8"`
    /// quantizes an f32 checkpoint to int8 at load (`group_size` None: the largest of 64, 32,
    /// ... that divides dim and hidden).
    #[new]
    #[pyo3(signature = (checkpoint, tokenizer=None, threads=None, quantize=None, group_size=None))]
    fn new(
        py: Python<'_>,
        checkpoint: PathBuf,
        tokenizer: Option<PathBuf>,
        threads: Option<Int<i64>>,
        quantize: Option<&str>,
        group_size: Option<Int<i64>>,
    ) -> PyResult<Self> {
        let (threads, group_size) = (threads.map(|Int(n)| n), group_size.map(|Int(n)| n));
        let threads = match threads {
            Some(n) if n < 0 => return Err(bad_arg(format!("threads must be >= 0, got {n}"))),
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let group_size = match group_size {
            Some(n) if n <= 0 => {
                return Err(bad_arg(format!("group_size must be positive, got {n}")))
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let quantize = match quantize.map(str::parse::<Quantize>).transpose() {
            Ok(Some(Quantize::Q8 { .. })) => Quantize::Q8 { group_size },
            Ok(_) if group_size.is_some() => {
                return Err(bad_arg("group_size needs quantize=\"q8\""));
            }
            Ok(_) => Quantize::None,
            Err(e) => return Err(to_py(e)),
        };
        let model = py
            .detach(|| Model::load_with(&checkpoint, tokenizer.as_deref(), threads, quantize))
            .map_err(to_py)?;
        let tokenizer = match model.tokenizer() {
            Some(t) => Some(Py::new(py, PyTokenizer { tok: t.clone() })?),
            None => None,
        };
        Ok(PyModel {
            config: model.config().clone(),
            threads: model.threads(),
            checkpoint: checkpoint.to_string_lossy().into_owned(),
            tokenizer,
            engine: Mutex::new(Engine { model, epoch: 0 }),
        })
    }

    /// Transformer width.
    #[getter]
    fn dim(&self) -> usize {
        self.config.dim
    }
    /// FFN hidden width.
    #[getter]
    fn hidden_dim(&self) -> usize {
        self.config.hidden_dim
    }
    /// Number of layers.
    #[getter]
    fn n_layers(&self) -> usize {
        self.config.n_layers
    }
    /// Number of query heads.
    #[getter]
    fn n_heads(&self) -> usize {
        self.config.n_heads
    }
    /// Number of key/value heads.
    #[getter]
    fn n_kv_heads(&self) -> usize {
        self.config.n_kv_heads
    }
    /// Vocabulary size.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    /// Context length: the most positions a sequence can have.
    #[getter]
    fn seq_len(&self) -> usize {
        self.config.seq_len
    }
    /// Format version of the weights (0 = legacy llama2.c, 1 = fp32 with header, 2 = int8,
    /// also for an f32 checkpoint quantized at load).
    #[getter]
    fn version(&self) -> u32 {
        self.config.version
    }
    /// Whether the weights are int8-quantized.
    #[getter]
    fn quantized(&self) -> bool {
        self.config.quantized()
    }
    /// The int8 group size (0 for f32 weights).
    #[getter]
    fn group_size(&self) -> usize {
        self.config.group_size
    }
    /// Whether the classifier shares the embedding's weights.
    #[getter]
    fn shared_classifier(&self) -> bool {
        self.config.shared_classifier
    }
    /// Size of the model's own thread pool.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }
    /// The checkpoint's path as given.
    #[getter]
    fn checkpoint(&self) -> &str {
        &self.checkpoint
    }
    /// The tokenizer loaded with the model, or None.
    #[getter]
    fn tokenizer(&self, py: Python<'_>) -> Option<Py<PyTokenizer>> {
        self.tokenizer.as_ref().map(|t| t.clone_ref(py))
    }

    /// The whole story: the prompt followed by the continuation, exactly the text the CLI
    /// prints for the same arguments (the CLI adds one newline after it).
    #[pyo3(
        signature = (prompt="", steps=Int(256), temperature=1.0, top_p=0.9, seed=None, stop_at_eos=true),
        text_signature = "($self, prompt=\"\", steps=256, temperature=1.0, top_p=0.9, seed=None, stop_at_eos=True)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &str,
        steps: Int<i64>,
        temperature: f64,
        top_p: f64,
        seed: Option<Int<i128>>,
        stop_at_eos: bool,
    ) -> PyResult<String> {
        let opts = options(steps, temperature, top_p, seed, stop_at_eos)?;
        let prompt = prompt.to_owned();
        py.detach(|| {
            let mut guard = self.lock();
            let eng = &mut *guard;
            eng.epoch += 1;
            let mut gen = Generator::new(&eng.model, &prompt, &opts).map_err(to_py)?;
            eng.model.reserve(gen.steps()).map_err(to_py)?;
            let mut text = String::new();
            let mut checked = Instant::now();
            while let Some(piece) = gen.next_piece(&mut eng.model) {
                text.push_str(&piece);
                if checked.elapsed() >= SIGNAL_CHECK_EVERY {
                    // Ctrl-C: Python's handler only sets a flag; running the handlers here
                    // raises KeyboardInterrupt. No deadlock with the lock held: no thread
                    // waits for it while attached.
                    Python::attach(|py| py.check_signals())?;
                    checked = Instant::now();
                }
            }
            Ok(text)
        })
    }

    /// An iterator of text pieces (prompt first), each made of whole UTF-8 characters; their
    /// concatenation is what `generate` returns for the same arguments.
    #[pyo3(
        signature = (prompt="", steps=Int(256), temperature=1.0, top_p=0.9, seed=None, stop_at_eos=true),
        text_signature = "($self, prompt=\"\", steps=256, temperature=1.0, top_p=0.9, seed=None, stop_at_eos=True)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        slf: &Bound<'_, Self>,
        prompt: &str,
        steps: Int<i64>,
        temperature: f64,
        top_p: f64,
        seed: Option<Int<i128>>,
        stop_at_eos: bool,
    ) -> PyResult<PyStream> {
        let opts = options(steps, temperature, top_p, seed, stop_at_eos)?;
        let prompt = prompt.to_owned();
        let this = slf.get();
        let (gen, epoch) = slf.py().detach(|| {
            let mut eng = this.lock();
            eng.epoch += 1;
            let gen = Generator::new(&eng.model, &prompt, &opts).map_err(to_py)?;
            eng.model.reserve(gen.steps()).map_err(to_py)?;
            Ok::<_, PyErr>((gen, eng.epoch))
        })?;
        Ok(PyStream {
            model: slf.clone().unbind(),
            gen,
            epoch,
        })
    }

    /// A conversation in the Llama-2 chat template, run.c's turn loop (the CLI's `-m chat`):
    /// `chat.say(user, system=None)` returns each reply. At most `steps` positions over the
    /// whole conversation (0: the context). The story models were not trained on the template.
    #[pyo3(
        signature = (steps=Int(256), temperature=1.0, top_p=0.9, seed=None),
        text_signature = "($self, steps=256, temperature=1.0, top_p=0.9, seed=None)"
    )]
    fn chat(
        slf: &Bound<'_, Self>,
        steps: Int<i64>,
        temperature: f64,
        top_p: f64,
        seed: Option<Int<i128>>,
    ) -> PyResult<PyChat> {
        let opts = options(steps, temperature, top_p, seed, true)?;
        let this = slf.get();
        let (chat, epoch) = slf.py().detach(|| {
            let mut guard = this.lock();
            let eng = &mut *guard;
            eng.epoch += 1;
            let chat = zhllama_core::Chat::new(&mut eng.model, &opts).map_err(to_py)?;
            Ok::<_, PyErr>((chat, eng.epoch))
        })?;
        Ok(PyChat::new(slf.clone().unbind(), chat, epoch))
    }

    /// Many stories told together (one weight pass per step for all of them): a list with
    /// each prompt's story, exactly what `generate(prompt, ..., seed=seed + i)` returns for
    /// prompt `i` (seed None or 0: one seed from the clock, then + i). `parallel` stories run
    /// at once; the GIL is released throughout.
    #[pyo3(
        signature = (prompts, steps=Int(256), temperature=1.0, top_p=0.9, seed=None, stop_at_eos=true, parallel=8),
        text_signature = "($self, prompts, steps=256, temperature=1.0, top_p=0.9, seed=None, stop_at_eos=True, parallel=8)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn generate_batch(
        &self,
        py: Python<'_>,
        prompts: Vec<String>,
        steps: Int<i64>,
        temperature: f64,
        top_p: f64,
        seed: Option<Int<i128>>,
        stop_at_eos: bool,
        parallel: usize,
    ) -> PyResult<Vec<String>> {
        let opts = options(steps, temperature, top_p, seed, stop_at_eos)?;
        py.detach(|| {
            let sched = crate::batch::scheduler(self, &prompts, &opts, parallel)?;
            crate::batch::run_all(self, sched, prompts.len())
        })
    }

    /// `generate_batch` as it happens: an iterator of `(index, piece)` pairs, the pieces of
    /// story `index` (prompt first, whole UTF-8 characters) in order; joined per index they
    /// are `generate_batch`'s stories.
    #[pyo3(
        signature = (prompts, steps=Int(256), temperature=1.0, top_p=0.9, seed=None, stop_at_eos=true, parallel=8),
        text_signature = "($self, prompts, steps=256, temperature=1.0, top_p=0.9, seed=None, stop_at_eos=True, parallel=8)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn stream_batch(
        slf: &Bound<'_, Self>,
        prompts: Vec<String>,
        steps: Int<i64>,
        temperature: f64,
        top_p: f64,
        seed: Option<Int<i128>>,
        stop_at_eos: bool,
        parallel: usize,
    ) -> PyResult<crate::batch::PyBatchStream> {
        let opts = options(steps, temperature, top_p, seed, stop_at_eos)?;
        let this = slf.get();
        let sched = slf
            .py()
            .detach(|| crate::batch::scheduler(this, &prompts, &opts, parallel))?;
        Ok(crate::batch::PyBatchStream {
            model: slf.clone().unbind(),
            sched,
            ready: Default::default(),
            finish_reasons: vec![None; prompts.len()],
        })
    }

    /// Runs `token` at position `pos` and returns the logits, a float32 array of shape
    /// `(vocab_size,)`. Feed a sequence's positions in order from 0; `reset()` starts over.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        token: Int<i64>,
        pos: Int<i64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (token, pos) = (token.0, pos.0);
        let token = token_id(token, self.config.vocab_size)?;
        let pos = usize::try_from(pos).map_err(|_| {
            bad_arg(format!(
                "position {pos} is outside the context (seq_len {})",
                self.config.seq_len
            ))
        })?;
        let logits = py
            .detach(|| {
                let mut eng = self.lock();
                eng.epoch += 1;
                eng.model.forward(token, pos).map(<[f32]>::to_vec)
            })
            .map_err(to_py)?;
        Ok(logits.into_pyarray(py))
    }

    /// The log-probability of each next token of `ids` (any iterable of ints; start with BOS, 1,
    /// to score a text as training saw it): a float32 array of `len(ids) - 1` entries, entry `i`
    /// being `log p(ids[i + 1] | ids[:i + 1])`. At most `seq_len + 1` ids. Like `reset()`, it
    /// replaces the sequence `forward` was running.
    fn score<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let ids = ids_from(ids, self.config.vocab_size)?;
        let scores = py.detach(|| self.score_ids(&ids)).map_err(to_py)?;
        Ok(scores.into_pyarray(py))
    }

    /// `score` for each sequence of `batch` (an iterable of id sequences): a list of arrays.
    /// Every sequence is checked before any runs; Ctrl-C is seen between sequences.
    fn score_batch<'py>(
        &self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyArray1<f32>>>> {
        let vocab = self.config.vocab_size;
        let mut seqs = Vec::new();
        for seq in batch.try_iter()? {
            seqs.push(ids_from(&seq?, vocab)?);
        }
        let mut out = Vec::with_capacity(seqs.len());
        for ids in &seqs {
            let scores = py.detach(|| self.score_ids(ids)).map_err(to_py)?;
            out.push(scores.into_pyarray(py));
            py.check_signals()?;
        }
        Ok(out)
    }

    /// Forgets the current sequence (the next `forward` starts again at position 0).
    fn reset(&self, py: Python<'_>) {
        py.detach(|| {
            let mut eng = self.lock();
            eng.epoch += 1;
            eng.model.reset();
        })
    }

    fn __repr__(&self) -> String {
        let c = &self.config;
        format!(
            "Model({:?}, dim={}, n_layers={}, n_heads={}, n_kv_heads={}, vocab_size={}, \
             seq_len={}, version={})",
            self.checkpoint,
            c.dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.vocab_size,
            c.seq_len,
            c.version
        )
    }
}

/// A generation in progress: iterate it for text pieces. Made by `Model.stream`.
#[pyclass(module = "zhllama_rs._native", name = "Stream")]
pub struct PyStream {
    model: Py<PyModel>,
    gen: Generator,
    epoch: u64,
}

#[pymethods]
impl PyStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// One position (or a few, until a character completes) per call, with the GIL released;
    /// Ctrl-C lands between calls, in Python.
    fn __next__(mut slf: PyRefMut<'_, Self>) -> PyResult<Option<String>> {
        let py = slf.py();
        let this = &mut *slf;
        if this.gen.is_done() {
            return Ok(None);
        }
        let model = this.model.get();
        let (gen, epoch) = (&mut this.gen, this.epoch);
        py.detach(|| {
            let mut guard = model.lock();
            let eng = &mut *guard;
            if eng.epoch != epoch {
                return Err(stream_invalidated("stream"));
            }
            Ok(gen.next_piece(&mut eng.model))
        })
    }

    /// The prompt's token ids (BOS first).
    #[getter]
    fn prompt_tokens(&self) -> Vec<u32> {
        self.gen.prompt_tokens().to_vec()
    }
    /// Ids sampled after the prompt so far.
    #[getter]
    fn generated_tokens(&self) -> Vec<u32> {
        self.gen.generated_tokens().to_vec()
    }
    /// Positions run so far (prompt included).
    #[getter]
    fn positions(&self) -> usize {
        self.gen.stats().positions
    }
    /// The effective number of positions (steps after clamping to the context).
    #[getter]
    fn steps(&self) -> usize {
        self.gen.steps()
    }
    /// Whether the generation has finished.
    #[getter]
    fn done(&self) -> bool {
        self.gen.is_done()
    }
    /// Tokens per second measured as run.c does (the CLI's `achieved tok/s`): the clock starts
    /// after the first position. None before there is anything to measure.
    #[getter]
    fn tokens_per_second(&self) -> Option<f64> {
        self.gen.tokens_per_second()
    }
}
