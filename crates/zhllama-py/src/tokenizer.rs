//! `zhllama_rs.Tokenizer`: a mirror of `zhllama_core::Tokenizer`.

use std::path::PathBuf;

use pyo3::prelude::*;
use zhllama_core::{Tokenizer, BOS, EOS};

use crate::errors::{bad_arg, to_py, Int};

/// A llama2.c `tokenizer.bin`, encoding exactly as sentencepiece does.
#[pyclass(module = "zhllama_rs._native", name = "Tokenizer", frozen)]
pub struct PyTokenizer {
    pub(crate) tok: Tokenizer,
}

/// A Python int as a token id, or the same ValueError the core gives for an id beyond the vocab.
pub(crate) fn token_id(id: i64, vocab_size: usize) -> PyResult<u32> {
    match u32::try_from(id) {
        Ok(t) if (t as usize) < vocab_size => Ok(t),
        _ => Err(bad_arg(format!(
            "token id {id} is outside the vocab (size {vocab_size})"
        ))),
    }
}

/// Token ids from any Python iterable of ints, each checked against `vocab_size`.
pub(crate) fn ids_from(ids: &Bound<'_, PyAny>, vocab_size: usize) -> PyResult<Vec<u32>> {
    let mut out = Vec::new();
    for item in ids.try_iter()? {
        let Int(id) = item?.extract::<Int<i64>>()?;
        out.push(token_id(id, vocab_size)?);
    }
    Ok(out)
}

#[pymethods]
impl PyTokenizer {
    /// Reads `path`; `vocab_size` (the model's) must equal the number of entries, or `None`
    /// takes every entry the file holds.
    #[new]
    #[pyo3(signature = (path, vocab_size=None))]
    fn new(py: Python<'_>, path: PathBuf, vocab_size: Option<Int<i64>>) -> PyResult<Self> {
        let vocab_size = match vocab_size.map(|Int(v)| v) {
            None => None,
            Some(v) if v <= 0 => {
                return Err(bad_arg(format!("vocab_size must be positive, got {v}")))
            }
            Some(v) => Some(v as usize),
        };
        let tok = py
            .detach(|| Tokenizer::from_file(&path, vocab_size))
            .map_err(to_py)?;
        Ok(PyTokenizer { tok })
    }

    /// Number of entries (ids `0..vocab_size`).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.tok.vocab_size()
    }

    /// The id of BOS (1).
    #[getter]
    fn bos_id(&self) -> u32 {
        BOS
    }

    /// The id of EOS (2).
    #[getter]
    fn eos_id(&self) -> u32 {
        EOS
    }

    /// Token ids of `text`, with BOS first and/or EOS last when asked.
    #[pyo3(signature = (text, bos=true, eos=false))]
    fn encode(&self, py: Python<'_>, text: String, bos: bool, eos: bool) -> Vec<u32> {
        py.detach(|| self.tok.encode(&text, bos, eos))
    }

    /// The text of `ids` (any iterable of ints): BOS/EOS give nothing, invalid UTF-8 becomes
    /// U+FFFD as `bytes.decode("utf-8", errors="replace")` would.
    fn decode(&self, ids: &Bound<'_, PyAny>) -> PyResult<String> {
        let ids = ids_from(ids, self.tok.vocab_size())?;
        self.tok.decode(&ids).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!("Tokenizer(vocab_size={})", self.tok.vocab_size())
    }
}
