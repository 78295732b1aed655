//! # zhllama-core
//!
//! The zhllama inference engine for llama2.c-format models: no Python and no CLI inside.
//!
//! - [`Model`]: loads a checkpoint (versions 0, 1 and 2 = int8, FORMATS.md §1, or an f32 one
//!   quantized at load with [`Quantize`]) by memory-mapping it,
//!   validates it against the file size, owns a KV cache and a rayon thread pool of its own,
//!   and runs [`Model::forward`].
//! - [`Tokenizer`]: reads `tokenizer.bin` in both byte-token formats; [`Tokenizer::encode`] is
//!   sentencepiece-exact, [`Tokenizer::decode`] and [`Utf8Stream`] give whole UTF-8 characters.
//! - [`Model::score`]: log-probabilities of a token sequence (evaluation, comparing texts).
//! - [`Sampler`]: llama2.c's sampler and RNG, so a seed gives the same story.
//! - [`Generator`] / [`Generation`]: the prompt then sampled tokens, as text pieces, with a
//!   tokens-per-second report; [`GenerateOptions::from_args`] turns a user's raw values into
//!   options by the rules the CLI and Python share.
//! - [`Chat`]: run.c's chat (the `[INST]` template, [`chat_prompt`], and the turn loop) as a
//!   state machine without I/O, for the CLI, Python and a server alike.
//! - The SIMD math (matrix × vector products f32 and int8, RMSNorm, attention over the KV
//!   cache, run-time CPU dispatch) lives in the `zhllama-kernels` crate, which the trainer's CPU
//!   attention shares.
//! - [`Model::forward_batch`] over [`Slots`]: one pass over (slot, position, token) entries,
//!   prompt chunks and decode tokens of several sequences together, each bit-identical to
//!   running alone; [`Scheduler`]: requests in, whole-UTF-8 pieces out, on top of it.
//! - [`Error`]: the one error type; nothing a user can feed the engine panics.
//!
//! ```no_run
//! use zhllama_core::{GenerateOptions, Model};
//! let mut model = Model::load("model.bin", Some("tok.bin".as_ref()), Some(2))?;
//! let opts = GenerateOptions { temperature: 0.0, steps: 64, ..Default::default() };
//! let text: String = model.generate("Once upon a time", &opts)?.collect();
//! println!("{text}");
//! # Ok::<(), zhllama_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod chat;
pub mod checkpoint;
pub mod error;
pub mod generate;
mod kv_cache;
pub mod model;
pub mod sampler;
pub mod scheduler;
mod score;
pub mod tokenizer;

pub use batch::{Entry, Slots};
pub use chat::{chat_prompt, Chat};
pub use checkpoint::{choose_group_size, read_config, Config, Quantize, MAGIC};
pub use error::{Error, Result};
pub use generate::{GenerateOptions, Generation, GenerationStats, Generator};
pub use model::{default_threads, Model};
pub use sampler::{Rng, Sampler};
pub use scheduler::{
    batch_seeds, FinishReason, Finished, RequestId, Scheduler, Update, DEFAULT_STEP_TOKENS,
};
pub use tokenizer::{ByteFormat, Tokenizer, Utf8Stream, BOS, EOS, UNK};
