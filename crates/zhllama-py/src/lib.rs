//! `zhllama_rs._native`: the zhllama engine (crates/zhllama-core) as a Python module.
//!
//! A thin mirror: `Model` and `Stream` (model.rs), `Chat` (chat.rs),
//! `Model.generate_batch` / `BatchStream` (batch.rs), `Tokenizer` (tokenizer.rs),
//! the `zhllama-rs` and `zhllama-server` commands (cli.rs, their binaries' libraries), the trainer's CPU attention
//! kernels (ops.rs, from zhllama-kernels), and the one place where core errors become Python
//! exceptions (errors.rs).
//! The Python facade is python/zhllama_rs/__init__.py, with typed stubs beside it.

use pyo3::prelude::*;

mod batch;
mod chat;
mod cli;
mod errors;
mod model;
mod ops;
mod tokenizer;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::PyModel>()?;
    m.add_class::<model::PyStream>()?;
    m.add_class::<batch::PyBatchStream>()?;
    m.add_class::<chat::PyChat>()?;
    m.add_class::<tokenizer::PyTokenizer>()?;
    m.add_function(wrap_pyfunction!(cli::run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(cli::run_server, m)?)?;
    m.add_function(wrap_pyfunction!(ops::causal_attention_forward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(ops::causal_attention_backward_f32, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BOS", zhllama_core::BOS)?;
    m.add("EOS", zhllama_core::EOS)?;
    Ok(())
}
