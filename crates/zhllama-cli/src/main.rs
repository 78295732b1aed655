//! The `zhllama-rs` binary: the command is the zhllama-cli library's `main_with_args`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(zhllama_cli::main_with_args(std::env::args_os().collect()))
}
