//! The command line: flags, their defaults and the help text.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

pub(crate) const AFTER_HELP: &str = "\
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

Chat (-m chat) follows run.c: the Llama-2 template, the first turn
  [INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST]   (or [INST] {user} [/INST] without one)
and every later turn [INST] {user} [/INST]. The system prompt is -y, or else the FIRST LINE of
input (an empty line for none); each following line is one user turn (-i gives the first).
Replies end when the model samples EOS. -n bounds the positions of the whole conversation;
when a reply fills them, 'context full at N tokens' goes to stderr. The story models were not
trained on this template: they answer with a story.

--tokenize prints the ids sentencepiece would give (no BOS/EOS), space-separated: for -i's text,
or else for each NUL-separated record of stdin, one line per record. CHECKPOINT is optional
then (without it the tokenizer's vocab size is the number of entries in the file).

--batch-file FILE tells one story per line of FILE (generate mode), --parallel N (default 8) at
a time, each byte-identical to `-i LINE` with seed -s + line index (-s 0: the clock, then + i).
stdout gets one JSON line per story, in the file's order: index, prompt, text (the prompt then
the story, as -i prints it), prompt_tokens (BOS included), generated_tokens, finish_reason
(eos or length), seed. 'achieved tok/s: X' on stderr counts the generated tokens of all.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Generate,
    Chat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum QuantizeArg {
    /// int8 weights in groups (the checkpoint format version 2 holds)
    Q8,
}

/// Run a llama2.c-format model: print a story (or chat), like llama2.c's `run`, faster.
#[derive(Parser, Debug)]
#[command(
    name = "zhllama-rs",
    after_help = AFTER_HELP,
    allow_negative_numbers = true,
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Model checkpoint (.bin, version 0, 1 or 2 = int8)
    pub(crate) checkpoint: Option<PathBuf>,
    /// Temperature; 0 = greedy argmax
    #[arg(
        short = 't',
        long = "temperature",
        default_value_t = 1.0,
        value_name = "T"
    )]
    pub(crate) temperature: f64,
    /// Top-p (nucleus) threshold; 0 or 1 = off
    #[arg(short = 'p', long = "top-p", default_value_t = 0.9, value_name = "P")]
    pub(crate) top_p: f64,
    /// Random seed; 0 = from the clock
    #[arg(short = 's', long = "seed", default_value_t = 0, value_name = "SEED")]
    pub(crate) seed: i128,
    /// Positions to run, prompt included; 0 = the model's context
    #[arg(
        short = 'n',
        long = "steps",
        default_value_t = 256,
        value_name = "STEPS"
    )]
    pub(crate) steps: i64,
    /// Prompt
    #[arg(
        short = 'i',
        long = "prompt",
        value_name = "PROMPT",
        allow_hyphen_values = true
    )]
    pub(crate) prompt: Option<String>,
    /// Tokenizer file (llama2.c tokenizer.bin) [default: tokenizer.bin in the current folder,
    /// else beside the checkpoint]
    #[arg(short = 'z', long = "tokenizer", value_name = "TOKENIZER")]
    pub(crate) tokenizer: Option<PathBuf>,
    /// Mode
    #[arg(short = 'm', long = "mode", value_enum, default_value_t = Mode::Generate)]
    pub(crate) mode: Mode,
    /// System prompt (chat mode; without it the first line of input is the system prompt)
    #[arg(
        short = 'y',
        long = "system",
        value_name = "SYSTEM",
        allow_hyphen_values = true
    )]
    pub(crate) system: Option<String>,
    /// Threads for the matmuls; 0 = physical cores
    #[arg(long = "threads", default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
    /// Quantize an f32 checkpoint at load time (int8 matmuls; an int8 checkpoint already is)
    #[arg(long = "quantize", value_enum, value_name = "KIND")]
    pub(crate) quantize: Option<QuantizeArg>,
    /// int8 group size for --quantize (default: the largest of 64, 32, ... dividing dim and
    /// hidden)
    #[arg(long = "group-size", value_name = "GS", requires = "quantize")]
    pub(crate) group_size: Option<usize>,
    /// Don't stop when EOS is sampled (run.c's behaviour: stop at BOS only)
    #[arg(long = "no-eos-stop")]
    pub(crate) no_eos_stop: bool,
    /// Print token ids instead of generating (see below)
    #[arg(long = "tokenize")]
    pub(crate) tokenize: bool,
    /// Tell one story per line of FILE; one JSON line per story on stdout (see below)
    #[arg(
        long = "batch-file",
        value_name = "FILE",
        conflicts_with_all = ["prompt", "tokenize"]
    )]
    pub(crate) batch_file: Option<PathBuf>,
    /// Stories told at once with --batch-file (one weight pass per step for all of them)
    #[arg(
        long = "parallel",
        value_name = "N",
        default_value_t = 8,
        requires = "batch_file",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub(crate) parallel: u16,
    /// Print the version and the CPU features the kernels use on this machine
    #[arg(short = 'V', long = "version")]
    pub(crate) version: bool,
}

/// The tokenizer looked for when -z is not given.
const DEFAULT_TOKENIZER: &str = "tokenizer.bin";

impl Cli {
    /// The tokenizer to read: -z, else `tokenizer.bin` in the current folder, else the one
    /// beside the checkpoint (where `zhllama export` users keep it), else the current folder's
    /// name again, for the error message.
    pub(crate) fn tokenizer_path(&self) -> PathBuf {
        if let Some(z) = &self.tokenizer {
            return z.clone();
        }
        let here = PathBuf::from(DEFAULT_TOKENIZER);
        if here.exists() {
            return here;
        }
        match self.checkpoint.as_ref().and_then(|c| c.parent()) {
            Some(dir) if dir.join(DEFAULT_TOKENIZER).exists() => dir.join(DEFAULT_TOKENIZER),
            _ => here,
        }
    }
}
