//! The `zhllama-server` binary: the command is the library's [`zhllama_server::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(zhllama_server::cli::main_with_args(
        std::env::args_os().collect(),
    ))
}
