//! `zhllama-rs`: run llama2.c-format models from the command line. A library so that the
//! binary (src/main.rs) and the Python extension's `zhllama-rs` command (zhllama-py's cli.rs)
//! run the same code: same parser, same output, same exit codes.
//!
//! Flags (args.rs), wiring and exit codes only; the engine, chat included, is `zhllama-core`.
//! Exit status: 0 on success,
//! 1 when a file or argument is bad (one line on stderr naming the file and the problem) or
//! stdout cannot be written (a full disk), 2 for a usage error. A reader that goes away (a
//! closed pipe, as with `| head`) ends the run quietly with status 0.

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;
use zhllama_core::{GenerateOptions, Model, Quantize};

mod args;
mod batch;
mod chat;
mod tokenize;

use args::{Cli, Mode, QuantizeArg};

/// The whole command: parses `args` (program name first), runs, and returns the exit status.
/// stdout and stderr are the process's own.
pub fn main_with_args(args: Vec<OsString>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            return match e.print() {
                Err(io) if !e.use_stderr() && io.kind() != std::io::ErrorKind::BrokenPipe => {
                    report(&stdout_error(io));
                    1
                }
                _ if e.use_stderr() => 2,
                _ => 0,
            };
        }
    };
    match run(cli) {
        Ok(()) | Err(Failure::Closed) => 0,
        Err(Failure::Message(msg)) => {
            report(&msg);
            1
        }
    }
}

/// Why a run ended early: a message for stderr (status 1), or stdout's reader went away
/// (status 0, nothing to say).
pub(crate) enum Failure {
    Message(String),
    Closed,
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure::Message(msg)
    }
}

impl From<&str> for Failure {
    fn from(msg: &str) -> Self {
        Failure::Message(msg.to_owned())
    }
}

impl From<zhllama_core::Error> for Failure {
    fn from(e: zhllama_core::Error) -> Self {
        match e {
            zhllama_core::Error::OutOfMemory { .. } => {
                Failure::Message(format!("{e}; run fewer positions (-n)"))
            }
            e => Failure::Message(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    /// A failed write to stdout.
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::Closed
        } else {
            Failure::Message(stdout_error(e))
        }
    }
}

fn stdout_error(e: std::io::Error) -> String {
    format!("cannot write to stdout: {e}")
}

/// The error line on stderr, always one line (control characters escaped). A stderr that
/// cannot be written is ignored: there is nowhere left to say so, and the status still tells.
fn report(msg: &str) {
    let line: String = msg
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    let _ = writeln!(std::io::stderr(), "zhllama-rs: {line}");
}

/// Writes and flushes `bytes` (pieces go out as they are generated).
pub(crate) fn emit(out: &mut impl Write, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// A missing tokenizer's error with what to do about it.
pub(crate) fn load_tokenizer_hint(e: zhllama_core::Error, cli: &Cli) -> String {
    match e {
        zhllama_core::Error::NotFound { ref path } if path == &cli.tokenizer_path() => {
            if cli.tokenizer.is_some() {
                format!("{e} (pass the tokenizer with -z)")
            } else {
                format!("{e} (not here nor beside the checkpoint; pass the tokenizer with -z)")
            }
        }
        e => e.to_string(),
    }
}

/// `--version`: the version, then what the kernels will run on this CPU (detected now, as
/// the engine detects it; ZHLLAMA_SIMD caps it).
fn version() -> Result<(), Failure> {
    let features: Vec<String> = zhllama_kernels::cpu_features()
        .iter()
        .map(|(name, has)| format!("{name} {}", if *has { "yes" } else { "no" }))
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "zhllama-rs {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "cpu features: {}", features.join(", "))?;
    writeln!(out, "kernels: {}", zhllama_kernels::simd_level().describe())?;
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    if cli.version {
        return version();
    }
    if cli.tokenize {
        return tokenize::tokenize(&cli);
    }
    let Some(checkpoint) = cli.checkpoint.clone() else {
        return Err(
            "no checkpoint given (usage: zhllama-rs CHECKPOINT [options]; see --help)".into(),
        );
    };
    // Parsed as double and narrowed, exactly like run.c's atof into a float.
    let opts = GenerateOptions::from_args(
        cli.steps,
        cli.temperature,
        cli.top_p,
        cli.seed,
        !cli.no_eos_stop,
    )?;
    let quantize = match cli.quantize {
        Some(QuantizeArg::Q8) => Quantize::Q8 {
            group_size: cli.group_size,
        },
        None => Quantize::None,
    };
    let prompts = match &cli.batch_file {
        Some(file) => Some(batch::read_prompts(file)?),
        None => None,
    };
    let mut model = Model::load_with(
        &checkpoint,
        Some(&cli.tokenizer_path()),
        Some(cli.threads),
        quantize,
    )
    .map_err(|e| load_tokenizer_hint(e, &cli))?;
    if let Some(prompts) = prompts {
        if cli.mode == Mode::Chat {
            return Err("--batch-file tells stories; it does not chat (drop -m chat)".into());
        }
        let mut out = std::io::stdout().lock();
        let tps = batch::run(&mut model, &prompts, &opts, cli.parallel as usize, &mut out)?;
        if let Some(tps) = tps {
            let _ = writeln!(std::io::stderr(), "achieved tok/s: {tps:.6}");
        }
        return Ok(());
    }
    match cli.mode {
        Mode::Generate => {
            let prompt = cli.prompt.clone().unwrap_or_default();
            let mut gen = model.generate(&prompt, &opts)?;
            let mut out = std::io::stdout().lock();
            for piece in &mut gen {
                emit(&mut out, piece.as_bytes())?;
            }
            if let Some(e) = gen.generator().error() {
                return Err(e.into());
            }
            emit(&mut out, b"\n")?;
            if let Some(tps) = gen.tokens_per_second() {
                let _ = writeln!(std::io::stderr(), "achieved tok/s: {tps:.6}");
            }
            Ok(())
        }
        Mode::Chat => chat::chat(&mut model, &cli, &opts),
    }
}
