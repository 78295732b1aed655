//! The `zhllama-rs` command inside the extension.
//!
//! The wheel's `zhllama-rs` console script (`zhllama_rs.__main__:main`) calls [`run_cli`]. The
//! command's code is the zhllama-cli library, the one the Rust binary runs, so the Python
//! command and the binary cannot drift apart: same parser, same output, same exit codes. (One abi3 wheel holds one extension module; maturin cannot also ship a separately
//! built binary from the same crate, and a console script needs no second artifact.)

use std::ffi::OsString;
use std::io::Write;

use pyo3::prelude::*;

/// Runs `zhllama-rs` with `argv` (program name first) and returns its exit status. The GIL is
/// released throughout; stdout and stderr are the process's own file descriptors.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| {
        let code = zhllama_cli::main_with_args(argv);
        let _ = std::io::stdout().flush();
        code
    })
}
