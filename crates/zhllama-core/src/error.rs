//! The one error type of the engine.
//!
//! Every malformed input (a checkpoint, a tokenizer, an argument) becomes one of these values,
//! never a panic. The variants are coarse on purpose so that a binding can map them to its own
//! exception types in one place: [`Error::NotFound`] → `FileNotFoundError`, [`Error::BadFile`]
//! and [`Error::BadArgument`] → `ValueError`, [`Error::Io`] → `OSError`,
//! [`Error::OutOfMemory`] → `MemoryError`.
//!
//! File names in messages go through [`quote`], so a name holding a newline or a quote cannot
//! break the one-line message or make it ambiguous.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in `zhllama-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that was asked for does not exist.
    #[error("{}: no such file", quote(path))]
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// A file exists but its contents are not what the format requires (wrong size, bad header,
    /// vocab size that does not match the model, …).
    #[error("{}: {msg}", quote(path))]
    BadFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it, in one line.
        msg: String,
    },
    /// An argument is out of range or inconsistent (a token id beyond the vocab, a position
    /// beyond the context, a NaN temperature, …).
    #[error("{0}")]
    BadArgument(String),
    /// The operating system refused a read, a map or a thread.
    #[error("{}: {source}", quote(path))]
    Io {
        /// The file being read (empty when no file was involved).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Memory for the run state (the KV cache) could not be allocated.
    #[error("cannot allocate {bytes} bytes ({mib} MiB) for {what}", mib = bytes.div_ceil(1 << 20))]
    OutOfMemory {
        /// How many bytes were asked for.
        bytes: u64,
        /// What they were for, e.g. "the KV cache of 300000 positions".
        what: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn bad_file(path: &Path, msg: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn bad_arg(msg: impl Into<String>) -> Self {
        Error::BadArgument(msg.into())
    }
}

/// A file name as messages show it: as it is when it is plain (no whitespace, control
/// characters, quotes or backslashes), else double-quoted with Rust's escapes (`"a\nb.bin"`),
/// the way coreutils quotes names only when it must.
pub fn quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\'));
    if plain {
        s.into_owned()
    } else {
        format!("{s:?}")
    }
}

/// Opens `path` for reading only if it is a regular file, without blocking on a FIFO or a
/// device: the type is checked before the open (a FIFO's open would wait for a writer) and
/// again on the opened handle (the name may have been swapped in between). `what` names the
/// expected kind of file for the message ("checkpoint", "tokenizer").
pub(crate) fn open_regular(path: &Path, what: &str) -> Result<(std::fs::File, u64)> {
    let check = |meta: &std::fs::Metadata| -> Result<()> {
        let kind = meta.file_type();
        if kind.is_file() {
            return Ok(());
        }
        let is = if kind.is_dir() {
            "a directory"
        } else {
            special_kind(&kind)
        };
        Err(Error::bad_file(path, format!("is {is}, not a {what} file")))
    };
    check(&std::fs::metadata(path).map_err(|e| Error::io(path, e))?)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    check(&meta)?;
    Ok((file, meta.len()))
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something other than a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "something other than a regular file"
}
