//! `Model.generate_batch` and `Model.stream_batch`: many stories at once through
//! `zhllama_core::Scheduler` (one weight pass per step for all of them), with the GIL released
//! while the model computes.
//!
//! The scheduler keeps its own KV caches (slots), so a batch never touches the model's own
//! sequence: a `Stream` running beside it stays valid.

use std::collections::VecDeque;
use std::time::Instant;

use pyo3::prelude::*;
use zhllama_core::{batch_seeds, GenerateOptions, Scheduler, Update, DEFAULT_STEP_TOKENS};

use crate::errors::{bad_arg, to_py};
use crate::model::{PyModel, SIGNAL_CHECK_EVERY};

/// A scheduler with every prompt queued, story `i` seeded `seed + i` (as `zhllama-rs
/// --batch-file`).
pub(crate) fn scheduler(
    model: &PyModel,
    prompts: &[String],
    opts: &GenerateOptions,
    parallel: usize,
) -> PyResult<Scheduler> {
    if parallel == 0 {
        return Err(bad_arg("parallel must be at least 1"));
    }
    let eng = model.lock();
    let mut sched = Scheduler::new(&eng.model, parallel, DEFAULT_STEP_TOKENS);
    for (p, seed) in prompts.iter().zip(batch_seeds(opts.seed, prompts.len())) {
        let o = GenerateOptions {
            seed,
            ..opts.clone()
        };
        sched.add(&eng.model, p, &o).map_err(to_py)?;
    }
    Ok(sched)
}

/// One scheduler step on `model` (locked for that step only).
fn step(model: &PyModel, sched: &mut Scheduler) -> PyResult<Vec<Update>> {
    let mut eng = model.lock();
    sched.step(&mut eng.model).map_err(to_py)
}

/// Runs every story to its end; Ctrl-C is looked for between steps. Call with the GIL
/// released.
pub(crate) fn run_all(model: &PyModel, mut sched: Scheduler, n: usize) -> PyResult<Vec<String>> {
    let mut texts = vec![String::new(); n];
    let mut checked = Instant::now();
    while !sched.is_idle() {
        for u in step(model, &mut sched)? {
            texts[u.id as usize].push_str(&u.text);
        }
        if checked.elapsed() >= SIGNAL_CHECK_EVERY {
            Python::attach(|py| py.check_signals())?;
            checked = Instant::now();
        }
    }
    Ok(texts)
}

/// Stories told together, as they come: iterate it for `(index, piece)` pairs. Made by
/// `Model.stream_batch`.
#[pyclass(module = "zhllama_rs._native", name = "BatchStream")]
pub struct PyBatchStream {
    pub(crate) model: Py<PyModel>,
    pub(crate) sched: Scheduler,
    pub(crate) ready: VecDeque<(usize, String)>,
    pub(crate) finish_reasons: Vec<Option<&'static str>>,
}

#[pymethods]
impl PyBatchStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next non-empty piece of some story, as `(index, piece)`; steps run with the GIL
    /// released, and Ctrl-C lands between calls, in Python.
    fn __next__(mut slf: PyRefMut<'_, Self>) -> PyResult<Option<(usize, String)>> {
        let py = slf.py();
        let this = &mut *slf;
        let model = this.model.get();
        let (sched, ready, reasons) = (&mut this.sched, &mut this.ready, &mut this.finish_reasons);
        py.detach(|| {
            while ready.is_empty() && !sched.is_idle() {
                for u in step(model, sched)? {
                    let i = u.id as usize;
                    if let Some(f) = u.finished {
                        reasons[i] = Some(f.reason.as_str());
                    }
                    if !u.text.is_empty() {
                        ready.push_back((i, u.text));
                    }
                }
            }
            Ok(ready.pop_front())
        })
    }

    /// Why each story ended so far: `"eos"`, `"length"`, or None while it runs.
    #[getter]
    fn finish_reasons(&self) -> Vec<Option<&'static str>> {
        self.finish_reasons.clone()
    }
}
