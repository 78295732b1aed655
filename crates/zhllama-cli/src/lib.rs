//! `zhllama-rs`: run llama2.c-format models from the command line.
//!
//! Flags, wiring and exit codes only; the engine is `zhllama-core`. Exit status: 0 on success,
//! 1 when a file or argument is bad (one line on stderr naming the file and the problem) or
//! stdout cannot be written (a full disk), 2 for a usage error. A reader that goes away (a
//! closed pipe, as with `| head`) ends the run quietly with status 0.

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use zhllama_core::{
    chat_prompt, GenerateOptions, Model, Quantize, Sampler, Tokenizer, Utf8Stream, EOS,
};

const AFTER_HELP: &str = "\
Behaviour at the edges (the same as llama2.c's run.c unless said otherwise):
  - -n counts positions including the prompt; 0, a negative number or more than the model's
    context (seq_len) means the whole context.
  - A prompt longer than -n positions (or than the context) is echoed up to that many positions
    and nothing is generated; no error.
  - An empty or absent prompt starts from BOS alone: the model writes the story from scratch.
  - Runs of spaces in the prompt collapse to one and leading/trailing spaces are dropped, as
    sentencepiece does.
  - Generation stops at BOS, and at EOS unless --no-eos-stop (then EOS prints as its stored text).
  - -t below 0 means 0 (greedy); -p outside [0, 1] means 0.9; -s 0 seeds from the clock.
  - Arguments that are not valid UTF-8 are a usage error (exit 2).
  - A bad checkpoint or tokenizer (missing, truncated, wrong vocab size, ...) prints one line
    naming the file and the problem, and exits with status 1.
  - An int8 checkpoint (version 2) runs int8 matmuls; --quantize q8 quantizes an f32 one at load
    (the exporter's llama2c-int8 bytes). A group size that does not divide both dim and hidden
    is an error.

The story goes to stdout followed by a newline; 'achieved tok/s: X' goes to stderr. When stdout
is a pipe that closes (| head) the run ends quietly; when it cannot be written (a full disk) the
run ends with one error line and status 1.

--tokenize prints the ids sentencepiece would give (no BOS/EOS), space-separated: for -i's text,
or else for each NUL-separated record of stdin, one line per record. CHECKPOINT is optional
then (without it the tokenizer's vocab size is the number of entries in the file).";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Generate,
    Chat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum QuantizeArg {
    /// int8 weights in groups (the checkpoint format version 2 holds)
    Q8,
}

/// Run a llama2.c-format model: print a story (or chat), like llama2.c's `run`, faster.
#[derive(Parser, Debug)]
#[command(name = "zhllama-rs", version, after_help = AFTER_HELP, allow_negative_numbers = true)]
struct Cli {
    /// Model checkpoint (.bin, version 0, 1 or 2 = int8)
    checkpoint: Option<PathBuf>,
    /// Temperature; 0 = greedy argmax
    #[arg(
        short = 't',
        long = "temperature",
        default_value_t = 1.0,
        value_name = "T"
    )]
    temperature: f64,
    /// Top-p (nucleus) threshold; 0 or 1 = off
    #[arg(short = 'p', long = "top-p", default_value_t = 0.9, value_name = "P")]
    top_p: f64,
    /// Random seed; 0 = from the clock
    #[arg(short = 's', long = "seed", default_value_t = 0, value_name = "SEED")]
    seed: i128,
    /// Positions to run, prompt included; 0 = the model's context
    #[arg(
        short = 'n',
        long = "steps",
        default_value_t = 256,
        value_name = "STEPS"
    )]
    steps: i64,
    /// Prompt
    #[arg(
        short = 'i',
        long = "prompt",
        value_name = "PROMPT",
        allow_hyphen_values = true
    )]
    prompt: Option<String>,
    /// Tokenizer file
    #[arg(
        short = 'z',
        long = "tokenizer",
        default_value = "tokenizer.bin",
        value_name = "TOKENIZER"
    )]
    tokenizer: PathBuf,
    /// Mode
    #[arg(short = 'm', long = "mode", value_enum, default_value_t = Mode::Generate)]
    mode: Mode,
    /// System prompt (chat mode)
    #[arg(
        short = 'y',
        long = "system",
        value_name = "SYSTEM",
        allow_hyphen_values = true
    )]
    system: Option<String>,
    /// Threads for the matmuls; 0 = physical cores
    #[arg(long = "threads", default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Quantize an f32 checkpoint at load time (int8 matmuls; an int8 checkpoint already is)
    #[arg(long = "quantize", value_enum, value_name = "KIND")]
    quantize: Option<QuantizeArg>,
    /// int8 group size for --quantize (default: the largest of 64, 32, ... dividing dim and
    /// hidden)
    #[arg(long = "group-size", value_name = "GS", requires = "quantize")]
    group_size: Option<usize>,
    /// Don't stop when EOS is sampled (run.c's behaviour: stop at BOS only)
    #[arg(long = "no-eos-stop")]
    no_eos_stop: bool,
    /// Print token ids instead of generating (see below)
    #[arg(long = "tokenize")]
    tokenize: bool,
}

fn main() -> ExitCode {
    ExitCode::from(main_with_args(std::env::args_os().collect()))
}

/// The whole command: parses `args` (program name first), runs, and returns the exit status.
/// Kept separate from `main` so that the Python extension can compile this file in and offer
/// the same command.
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
enum Failure {
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
fn emit(out: &mut impl Write, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

fn load_tokenizer_hint(e: zhllama_core::Error, cli: &Cli) -> String {
    match e {
        zhllama_core::Error::NotFound { ref path } if path == &cli.tokenizer => {
            format!("{e} (pass the tokenizer with -z)")
        }
        e => e.to_string(),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    if cli.tokenize {
        return tokenize(&cli);
    }
    let Some(checkpoint) = cli.checkpoint.clone() else {
        return Err(
            "no checkpoint given (usage: zhllama-rs CHECKPOINT [options]; see --help)".into(),
        );
    };
    if cli.temperature.is_nan() || cli.top_p.is_nan() {
        return Err("-t and -p must be numbers".into());
    }
    // Parsed as double and narrowed, exactly like run.c's atof into a float.
    let temperature = cli.temperature as f32;
    let top_p = cli.top_p as f32;
    let seed = cli.seed as u64; // wraps negatives like run.c's unsigned seed
    let steps = cli.steps.max(0) as usize;
    let quantize = match cli.quantize {
        Some(QuantizeArg::Q8) => Quantize::Q8 {
            group_size: cli.group_size,
        },
        None => Quantize::None,
    };
    let mut model = Model::load_with(
        &checkpoint,
        Some(&cli.tokenizer),
        Some(cli.threads),
        quantize,
    )
    .map_err(|e| load_tokenizer_hint(e, &cli))?;
    match cli.mode {
        Mode::Generate => {
            let opts = GenerateOptions {
                steps,
                temperature,
                top_p,
                seed,
                stop_at_eos: !cli.no_eos_stop,
            };
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
        Mode::Chat => chat(&mut model, &cli, temperature, top_p, seed, steps),
    }
}

/// Reads one line from stdin after printing `guide`; `None` at end of input.
fn read_line(out: &mut impl Write, guide: &str) -> Result<Option<String>, Failure> {
    emit(out, guide.as_bytes())?;
    let mut line = String::new();
    Ok(match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            while line.ends_with('\n') || line.ends_with('\r') {
                line.pop();
            }
            Some(line)
        }
    })
}

/// Chat as run.c does: Llama-2 `[INST]` turns, one position counter across the whole
/// conversation, ending after `steps` positions or at the end of stdin.
fn chat(
    model: &mut Model,
    cli: &Cli,
    temperature: f32,
    top_p: f32,
    seed: u64,
    steps: usize,
) -> Result<(), Failure> {
    let mut sampler = Sampler::new(temperature, top_p, seed)?;
    let steps = if steps == 0 || steps > model.seq_len() {
        model.seq_len()
    } else {
        steps
    };
    model.reserve(steps)?;
    let tok: Tokenizer = model.tokenizer().expect("loaded with a tokenizer").clone();
    let mut out = std::io::stdout().lock();
    let mut stream = Utf8Stream::new();
    let mut prompt_tokens: Vec<u32> = Vec::new();
    let mut user_idx = 0usize;
    let mut user_turn = true;
    let mut next: u32 = 0;
    let mut pos = 0usize;
    let mut system = String::new();
    while pos < steps {
        if user_turn {
            if pos == 0 {
                system = match &cli.system {
                    Some(s) => s.clone(),
                    None => match read_line(&mut out, "Enter system prompt (optional): ")? {
                        Some(s) => s,
                        None => break,
                    },
                };
            }
            let user = match (&cli.prompt, pos) {
                (Some(p), 0) => p.clone(),
                _ => match read_line(&mut out, "User: ")? {
                    Some(s) => s,
                    None => break,
                },
            };
            let rendered = chat_prompt(if pos == 0 { Some(&system) } else { None }, &user);
            prompt_tokens = tok.encode(&rendered, true, false);
            user_idx = 0;
            user_turn = false;
            emit(&mut out, b"Assistant: ")?;
        }
        let token = if user_idx < prompt_tokens.len() {
            user_idx += 1;
            prompt_tokens[user_idx - 1]
        } else {
            next
        };
        if token == EOS {
            user_turn = true;
        }
        let logits = model.forward(token, pos)?;
        next = sampler.sample(logits);
        pos += 1;
        if user_idx >= prompt_tokens.len() && next != EOS {
            let text = stream.push(tok.piece_bytes(token, next));
            emit(&mut out, text.as_bytes())?;
        }
        if next == EOS {
            let text = stream.finish();
            emit(&mut out, text.as_bytes())?;
            emit(&mut out, b"\n")?;
        }
    }
    let text = stream.finish();
    emit(&mut out, text.as_bytes())?;
    emit(&mut out, b"\n")?;
    Ok(())
}

fn tokenize(cli: &Cli) -> Result<(), Failure> {
    let vocab = match &cli.checkpoint {
        Some(c) => Some(zhllama_core::read_config(c)?.vocab_size),
        None => None,
    };
    let tok =
        Tokenizer::from_file(&cli.tokenizer, vocab).map_err(|e| load_tokenizer_hint(e, cli))?;
    let texts: Vec<String> = match &cli.prompt {
        Some(p) => vec![p.clone()],
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("stdin: {e}"))?;
            let text = String::from_utf8(buf).map_err(|_| "stdin: not valid UTF-8".to_string())?;
            let mut recs: Vec<String> = text.split('\0').map(str::to_string).collect();
            if recs.len() > 1 && recs.last().is_some_and(|r| r.is_empty()) {
                recs.pop();
            }
            recs
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for t in texts {
        let ids: Vec<String> = tok
            .encode(&t, false, false)
            .iter()
            .map(u32::to_string)
            .collect();
        writeln!(out, "{}", ids.join(" "))?;
    }
    out.flush()?;
    Ok(())
}
