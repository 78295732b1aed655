//! Chat: the Llama-2 `[INST]` template and run.c's turn loop, as a state machine that owns no
//! I/O, so that the `zhllama-rs` command, `zhllama_rs.Model.chat` and a server drive the same
//! conversation and give the same replies.
//!
//! The template (run.c's): the first turn is
//! `"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"` (or `"[INST] {user} [/INST]"` when
//! the system prompt is empty), every later turn `"[INST] {user} [/INST]"`; each turn is
//! encoded with BOS. The story models were never trained on it: they answer with a story.
//!
//! The loop (run.c's, quirks included so that the same input gives the same bytes): one
//! position counter over the whole conversation, at most `steps` positions; a turn's prompt
//! tokens are forced, then tokens are sampled; when EOS is sampled the reply ends with a
//! newline, EOS itself is fed at the next position (whose sampled piece is still printed, as
//! run.c does) and the user speaks next.

use crate::error::{Error, Result};
use crate::generate::GenerateOptions;
use crate::model::Model;
use crate::sampler::Sampler;
use crate::tokenizer::{Utf8Stream, EOS};

/// Renders one turn of the chat template: with a system prompt (`Some`, non-empty, and only
/// on the first turn) `"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"`, otherwise
/// `"[INST] {user} [/INST]"`.
pub fn chat_prompt(system: Option<&str>, user: &str) -> String {
    match system {
        Some(s) if !s.is_empty() => format!("[INST] <<SYS>>\n{s}\n<</SYS>>\n\n{user} [/INST]"),
        _ => format!("[INST] {user} [/INST]"),
    }
}

/// One conversation with a model, not borrowing it (a binding keeps it in an object of its
/// own). Drive it with [`Chat::say`], then [`Chat::step`] until it returns `None`; end with
/// [`Chat::finish`].
#[derive(Clone, Debug)]
pub struct Chat {
    sampler: Sampler,
    steps: usize,
    pos: usize,
    /// The current turn's prompt tokens and how many of them were fed.
    prompt: Vec<u32>,
    fed: usize,
    /// The last sampled token (fed at the next position once the prompt is used up).
    next: u32,
    user_turn: bool,
    stream: Utf8Stream,
    /// (first position, end, logits of each position) of the current turn's prefilled prompt.
    prefill: (usize, usize, Vec<f32>),
}

impl Chat {
    /// Starts a conversation of at most `opts.steps` positions (0 or more than the context:
    /// the context), reserving the KV cache for all of them. `opts.stop_at_eos` plays no part:
    /// EOS ends a reply. Errors when the model has no tokenizer or an option is NaN.
    pub fn new(model: &mut Model, opts: &GenerateOptions) -> Result<Chat> {
        if model.tokenizer().is_none() {
            return Err(Error::bad_arg(
                "chat needs a tokenizer; load the model with one",
            ));
        }
        let sampler = Sampler::new(opts.temperature, opts.top_p, opts.seed)?;
        let steps = if opts.steps == 0 || opts.steps > model.seq_len() {
            model.seq_len()
        } else {
            opts.steps
        };
        model.reserve(steps)?;
        Ok(Chat {
            sampler,
            steps,
            pos: 0,
            prompt: Vec::new(),
            fed: 0,
            next: 0,
            user_turn: true,
            stream: Utf8Stream::new(),
            prefill: (0, 0, Vec::new()),
        })
    }

    /// Whether the user speaks next (the first turn, or the reply so far has ended).
    pub fn awaiting_user(&self) -> bool {
        self.user_turn && !self.is_full()
    }

    /// Whether no turn has started yet: the only turn that takes a system prompt.
    pub fn is_first_turn(&self) -> bool {
        self.pos == 0 && self.user_turn
    }

    /// Whether every position has been used: the conversation cannot go on.
    pub fn is_full(&self) -> bool {
        self.pos >= self.steps
    }

    /// Positions run so far, over the whole conversation.
    pub fn positions(&self) -> usize {
        self.pos
    }

    /// The most positions this conversation can run.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The user's turn: renders it with the template (`system` counts on the first turn only)
    /// and queues its tokens. Errors when it is not the user's turn or the context is full.
    pub fn say(&mut self, model: &Model, system: Option<&str>, user: &str) -> Result<()> {
        if self.is_full() {
            return Err(Error::bad_arg(format!(
                "context full at {} tokens: start a new chat",
                self.pos
            )));
        }
        if !self.user_turn {
            return Err(Error::bad_arg(
                "the assistant's reply is still running: step it to its end first",
            ));
        }
        let tok = model.tokenizer().expect("checked in new");
        let system = if self.pos == 0 { system } else { None };
        self.prompt = tok.encode(&chat_prompt(system, user), true, false);
        self.fed = 0;
        self.user_turn = false;
        Ok(())
    }

    /// Runs one position of the reply and returns the text it completes (possibly empty;
    /// `"\n"` after the text when the reply ends), or `None` once it is the user's turn again
    /// or the context is full.
    pub fn step(&mut self, model: &mut Model) -> Result<Option<String>> {
        if self.user_turn || self.is_full() {
            return Ok(None);
        }
        let starts_turn = self.fed == 0 && !self.prompt.is_empty();
        let token = if self.fed < self.prompt.len() {
            self.fed += 1;
            self.prompt[self.fed - 1]
        } else {
            self.next
        };
        if token == EOS {
            self.user_turn = true;
        }
        if starts_turn {
            // The turn's prompt in one batched prefill, with the logits of every position
            // (a sample is drawn after each, prompt included, as run.c does); bit-identical
            // to feeding it one token at a time.
            let n = self.prompt.len().min(self.steps - self.pos);
            let logits = model.prefill_each(&self.prompt[..n], self.pos)?;
            self.prefill = (self.pos, self.pos + n, logits.to_vec());
        }
        let logits = if self.pos < self.prefill.1 {
            let (v, i) = (model.vocab_size(), self.pos - self.prefill.0);
            &self.prefill.2[i * v..(i + 1) * v]
        } else {
            model.forward(token, self.pos)?
        };
        self.next = self.sampler.sample(logits);
        self.pos += 1;
        let mut text = String::new();
        if self.fed >= self.prompt.len() && self.next != EOS {
            let tok = model.tokenizer().expect("checked in new");
            text.push_str(&self.stream.push(tok.piece_bytes(token, self.next)));
        }
        if self.next == EOS {
            text.push_str(&self.stream.finish());
            text.push('\n');
        }
        Ok(Some(text))
    }

    /// The user's turn and the whole reply to it, as one string.
    pub fn reply(&mut self, model: &mut Model, system: Option<&str>, user: &str) -> Result<String> {
        self.say(model, system, user)?;
        let mut text = String::new();
        while let Some(piece) = self.step(model)? {
            text.push_str(&piece);
        }
        Ok(text)
    }

    /// The end of the conversation: whatever bytes of an unfinished character remain.
    pub fn finish(&mut self) -> String {
        self.stream.finish()
    }
}
