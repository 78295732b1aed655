//! `zhllama-server`'s command line: flags, wiring and exit codes, as a library so that the
//! binary and the wheel's `zhllama-server` command (through the `zhllama_rs` extension) run the
//! same code. Exit status: 0 after a clean shutdown (SIGINT/SIGTERM) or `--help`, 1 for a bad
//! file or a port that cannot be bound (one line on stderr), 2 for a usage error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use zhllama_core::Quantize;

use crate::{serve, Options};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum QuantizeArg {
    /// int8 weights in groups (the checkpoint format version 2 holds)
    Q8,
}

/// Serve a llama2.c-format story model over an OpenAI-compatible HTTP API, with a playground
/// page at `/`.
#[derive(Parser, Debug)]
#[command(name = "zhllama-server", version)]
struct Cli {
    /// Model checkpoint (.bin, version 0, 1 or 2 = int8)
    checkpoint: PathBuf,
    /// Tokenizer file
    #[arg(short = 'z', long = "tokenizer", default_value = "tokenizer.bin")]
    tokenizer: PathBuf,
    /// Address to listen on (loopback by default; 0.0.0.0 exposes the server)
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port; 0 picks a free one (the address is printed on stdout)
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests generated at once, in one batched forward per token (continuous batching);
    /// more wait in the queue
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Threads for the matmuls; 0 = physical cores
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Quantize an f32 checkpoint at load time
    #[arg(long, value_enum, value_name = "KIND")]
    quantize: Option<QuantizeArg>,
    /// Require `Authorization: Bearer KEY` on the API endpoints
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Requests waiting for a free slot before new ones get 429 (with Retry-After)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_queue: u32,
    /// Seconds in-flight requests may run after SIGINT/SIGTERM before they are cut
    #[arg(long, default_value_t = 10)]
    drain_seconds: u64,
}

/// Runs `zhllama-server` with `args` (program name first) and returns its exit status.
pub fn main_with_args(args: Vec<OsString>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let opts = Options {
        checkpoint: cli.checkpoint,
        tokenizer: cli.tokenizer,
        host: cli.host,
        port: cli.port,
        parallel: cli.parallel.into(),
        threads: cli.threads,
        quantize: match cli.quantize {
            Some(QuantizeArg::Q8) => Quantize::Q8 { group_size: None },
            None => Quantize::None,
        },
        api_key: cli.api_key,
        max_queue: cli.max_queue as usize,
        drain: Duration::from_secs(cli.drain_seconds),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zhllama-server: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(serve(opts));
    // The engine thread may be mid-token: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("zhllama-server: {}", msg.replace('\n', "\\n"));
            1
        }
    }
}
