//! The `zhllama-rs` and `zhllama-server` commands inside the extension.
//!
//! The wheel's `zhllama-rs` console script (`zhllama_rs.__main__:main`) calls [`run_cli`], its
//! `zhllama-server` script (`zhllama_rs.__main__:server`) [`run_server`]. Each command's code is
//! the library its Rust binary runs (zhllama-cli, zhllama-server), so the Python commands and
//! the binaries cannot drift apart: same parser, same output, same exit codes. (One abi3 wheel holds one extension module; maturin cannot also ship a separately
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

/// Runs `zhllama-server` with `argv` (program name first) until SIGINT/SIGTERM and returns its
/// exit status. The GIL is released throughout; the server installs its own signal handlers.
#[pyfunction]
pub fn run_server(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| {
        let code = zhllama_server::cli::main_with_args(argv);
        let _ = std::io::stdout().flush();
        code
    })
}
