//! Every Python exception this module raises is made here, so the mapping is in one place:
//!
//! | zhllama-core                  | Python              |
//! |-------------------------------|---------------------|
//! | `Error::NotFound`             | `FileNotFoundError` |
//! | `Error::BadFile`, `BadArgument` | `ValueError`      |
//! | `Error::Io`                   | `OSError`           |
//! | `Error::OutOfMemory`          | `MemoryError`       |
//! | a bad argument of the binding | `ValueError`        |
//! | a stream whose model moved on | `RuntimeError`      |
//!
//! The core returns every malformed input as an `Error` value, and the binding checks what it
//! narrows (negative ids, huge counts) itself, so no input reaches a panic (a `PanicException`).

use pyo3::exceptions::{
    PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;
use zhllama_core::Error;

/// `ENOENT`: FileNotFoundError carries errno and filename like the ones Python raises itself.
const ENOENT: i32 = 2;

/// A core error as the Python exception a user expects.
pub(crate) fn to_py(e: Error) -> PyErr {
    match e {
        Error::NotFound { path } => PyFileNotFoundError::new_err((
            ENOENT,
            "No such file or directory",
            path.to_string_lossy().into_owned(),
        )),
        Error::BadFile { .. } | Error::BadArgument(_) => PyValueError::new_err(e.to_string()),
        Error::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
        Error::Io {
            ref path,
            ref source,
        } => {
            let msg = e.to_string();
            match source.raw_os_error() {
                Some(code) => PyOSError::new_err((
                    code,
                    source.to_string(),
                    path.to_string_lossy().into_owned(),
                )),
                None => PyOSError::new_err(msg),
            }
        }
    }
}

/// An argument the binding rejects before the core sees it.
pub(crate) fn bad_arg(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// A stream was advanced after its model ran something else (another stream, `generate`,
/// `forward` or `reset`), which overwrote the KV cache the stream depends on.
pub(crate) fn stream_invalidated() -> PyErr {
    PyRuntimeError::new_err(
        "this stream's model has run something else since (generate, stream, forward or reset); \
         start a new stream",
    )
}
