//! Every Python exception this module raises is made here, so the mapping is in one place:
//!
//! | zhllama-core                  | Python              |
//! |-------------------------------|---------------------|
//! | `Error::NotFound`             | `FileNotFoundError` |
//! | `Error::BadFile`, `BadArgument` | `ValueError`      |
//! | `Error::Io`                   | `OSError`           |
//! | `Error::OutOfMemory`          | `MemoryError`       |
//! | a bad argument of the binding | `ValueError`        |
//! | an int too big for its argument | `ValueError`      |
//! | a stream or chat whose model moved on | `RuntimeError` |
//!
//! The core returns every malformed input as an `Error` value, and the binding checks what it
//! narrows (negative ids, huge counts) itself, so no input reaches a panic (a `PanicException`).

use pyo3::exceptions::{
    PyFileNotFoundError, PyMemoryError, PyOSError, PyOverflowError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::Borrowed;
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

/// A `what` (stream or chat) was advanced after its model ran something else (another stream
/// or chat, `generate`, `forward` or `reset`), which overwrote the KV cache it depends on.
pub(crate) fn stream_invalidated(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "this {what}'s model has run something else since (generate, stream, chat, forward or \
         reset); start a new {what}"
    ))
}

/// An integer argument. Extracting a plain `i64` raises `OverflowError` for an int beyond its
/// range (`threads=10**30`), an exception outside the table above; this raises `ValueError`
/// like every other bad value (PyO3 adds a note naming the argument).
pub(crate) struct Int<T>(pub T);

impl<'a, 'py, T> FromPyObject<'a, 'py> for Int<T>
where
    T: FromPyObject<'a, 'py>,
{
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<T>().map_err(Into::into) {
            Ok(v) => Ok(Int(v)),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
                // str() of an int is itself refused past 4300 digits: show only its size then
                let shown = match obj.str() {
                    Ok(s) if s.to_string().len() <= 40 => s.to_string(),
                    _ => "an integer".to_owned(),
                };
                Err(bad_arg(format!(
                    "{shown} is out of range (at most {} bits)",
                    8 * std::mem::size_of::<T>()
                )))
            }
            Err(e) => Err(e),
        }
    }
}
