//! `zhllama_rs.Chat`: a conversation with a model, a mirror of `zhllama_core::Chat` (the same
//! template and turn loop as `zhllama-rs -m chat`, so the same lines give the same replies).
//! Like a `Stream`, it lives on its model's KV cache and refuses to go on once something else
//! has run on that model.

use pyo3::prelude::*;
use zhllama_core::Chat;

use crate::errors::{stream_invalidated, to_py};
use crate::model::PyModel;

/// A conversation in progress. Made by `Model.chat`.
#[pyclass(module = "zhllama_rs._native", name = "Chat")]
pub struct PyChat {
    model: Py<PyModel>,
    chat: Chat,
    epoch: u64,
}

impl PyChat {
    pub(crate) fn new(model: Py<PyModel>, chat: Chat, epoch: u64) -> Self {
        PyChat { model, chat, epoch }
    }
}

#[pymethods]
impl PyChat {
    /// The user's turn, then the whole reply: the text `zhllama-rs -m chat` prints after
    /// `Assistant: ` (ending in a newline when the model ended its turn). `system` counts on
    /// the first turn only. A reply that fills the context stops there (`full` turns True);
    /// saying more then raises ValueError ("context full at N tokens").
    #[pyo3(signature = (user, system=None))]
    fn say(&mut self, py: Python<'_>, user: &str, system: Option<&str>) -> PyResult<String> {
        let model = self.model.get();
        let (chat, epoch) = (&mut self.chat, self.epoch);
        py.detach(|| {
            let mut guard = model.lock();
            let eng = &mut *guard;
            if eng.epoch != epoch {
                return Err(stream_invalidated("chat"));
            }
            let mut text = chat.reply(&mut eng.model, system, user).map_err(to_py)?;
            if chat.is_full() {
                text.push_str(&chat.finish());
            }
            Ok(text)
        })
    }

    /// Positions run so far, over the whole conversation.
    #[getter]
    fn positions(&self) -> usize {
        self.chat.positions()
    }
    /// The most positions the conversation can run (steps after clamping to the context).
    #[getter]
    fn steps(&self) -> usize {
        self.chat.steps()
    }
    /// Whether every position is used: nothing more can be said.
    #[getter]
    fn full(&self) -> bool {
        self.chat.is_full()
    }
}
