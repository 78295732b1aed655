//! The scheduler the CLI, Python and the server share: requests in, whole-UTF-8 pieces out,
//! many stories per weight pass.
//!
//! Each [`Scheduler::step`] runs one batched forward ([`Model::forward_batch`]) over
//! everything running: one decode token of every request past its prompt, then prompt chunks
//! of the others, up to a per-step token budget, so a long prompt is spread over several steps
//! and the running stories keep getting a token every step (no request starves: prompts are
//! served in arrival order, and decodes always go first).
//!
//! A request follows exactly the rules of [`crate::Generator`] (prompt with BOS, forced prompt
//! tokens, `steps` positions including the prompt, stop at BOS / EOS), and the batched forward
//! gives the logits of running alone, so a request's text is byte-identical to
//! [`Model::generate`] with the same options and seed, whatever else runs beside it.

use crate::batch::{Entry, Slots};
use crate::error::Result;
use crate::generate::{GenerateOptions, Start};
use crate::model::Model;
use crate::sampler::Sampler;
use crate::tokenizer::{Utf8Stream, BOS, EOS};

/// A request's handle.
pub type RequestId = u64;

/// Why a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS was sampled (or BOS, where run.c stops).
    Eos,
    /// `steps` positions ran.
    Length,
    /// [`Scheduler::cancel`] ended it.
    Cancelled,
}

impl FinishReason {
    /// `"eos"`, `"length"` or `"cancelled"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Eos => "eos",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// The end of a request: why, and how many tokens it had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Why it ended.
    pub reason: FinishReason,
    /// Prompt tokens, BOS included.
    pub prompt_tokens: usize,
    /// Tokens produced after the prompt.
    pub generated_tokens: usize,
}

/// What one step did to one request: new text (whole UTF-8 characters, possibly empty) and,
/// once, its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The request.
    pub id: RequestId,
    /// Text completed in this step (the prompt's text comes first, as in a generation).
    pub text: String,
    /// Set in the request's last update.
    pub finished: Option<Finished>,
}

/// One request's state.
struct Request {
    id: RequestId,
    tokens: Vec<u32>,
    sampler: Sampler,
    steps: usize,
    stop_at_eos: bool,
    slot: Option<usize>,
    pos: usize,
    token: u32,
    stream: Utf8Stream,
    generated: usize,
    finished: Option<FinishReason>,
}

impl Request {
    /// Whether the token at `pos` is followed by a forced prompt token.
    fn forced(&self) -> bool {
        self.pos + 1 < self.tokens.len()
    }

    /// The Generator's step after the forward of position `pos`: `next` follows the current
    /// token. Returns the text it completes.
    fn advance(&mut self, model: &Model, next: u32) -> String {
        if !self.forced() {
            self.generated += 1;
        }
        self.pos += 1;
        if next == BOS || (self.stop_at_eos && next == EOS) {
            self.finished = Some(FinishReason::Eos);
            return String::new();
        }
        let tok = model.tokenizer().expect("checked in add");
        let text = self.stream.push(tok.piece_bytes(self.token, next));
        self.token = next;
        if self.pos >= self.steps {
            self.finished = Some(FinishReason::Length);
        }
        text
    }
}

/// Requests in, whole-UTF-8 pieces out; see the module docs.
pub struct Scheduler {
    slots: Slots,
    /// Running and waiting requests, in arrival order.
    requests: Vec<Request>,
    max_running: usize,
    budget: usize,
    next_id: RequestId,
}

/// The seeds of a batch of `n` stories: `seed`, `seed + 1`, … (`seed` 0: one seed from the
/// clock, then + 1, …), as the CLI's `--batch-file` and Python's `generate_batch` use them.
pub fn batch_seeds(seed: u64, n: usize) -> Vec<u64> {
    let base = if seed == 0 {
        crate::sampler::clock_seed()
    } else {
        seed
    };
    // a wrapped seed of 0 would mean "the clock" again: step over it
    (0..n as u64).map(|i| base.wrapping_add(i).max(1)).collect()
}

/// The default per-step token budget: prompt chunks fill a step up to this many entries.
pub const DEFAULT_STEP_TOKENS: usize = 128;

impl Scheduler {
    /// A scheduler for `model` running at most `max_running` requests at once (at least 1;
    /// the others wait in arrival order), each step at most `step_tokens` entries (at least 1;
    /// decode tokens of the running requests always go in, even beyond it).
    pub fn new(model: &Model, max_running: usize, step_tokens: usize) -> Scheduler {
        Scheduler {
            slots: Slots::new(model),
            requests: Vec::new(),
            max_running: max_running.max(1),
            budget: step_tokens.max(1),
            next_id: 0,
        }
    }

    /// Queues a request: `prompt` generated with `opts` (as [`Model::generate`] would).
    /// Errors when the model has no tokenizer or an option is NaN.
    pub fn add(
        &mut self,
        model: &Model,
        prompt: &str,
        opts: &GenerateOptions,
    ) -> Result<RequestId> {
        let Start {
            tokens,
            sampler,
            steps,
        } = Start::new(model, prompt, opts)?;
        let id = self.next_id;
        self.next_id += 1;
        self.requests.push(Request {
            id,
            tokens,
            sampler,
            steps,
            stop_at_eos: opts.stop_at_eos,
            slot: None,
            pos: 0,
            token: BOS,
            stream: Utf8Stream::new(),
            generated: 0,
            finished: None,
        });
        Ok(id)
    }

    /// Ends a request now; its last update comes with the next step. Unknown ids are ignored.
    pub fn cancel(&mut self, id: RequestId) {
        if let Some(r) = self.requests.iter_mut().find(|r| r.id == id) {
            r.finished.get_or_insert(FinishReason::Cancelled);
        }
    }

    /// Whether nothing is running or waiting.
    pub fn is_idle(&self) -> bool {
        self.requests.is_empty()
    }

    /// Requests running or waiting.
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Tokens a request has produced after its prompt so far (an EOS that ended it included),
    /// `None` once its last update was returned or for an unknown id. A server reads it after
    /// each step for its time-to-first-token and token counters.
    pub fn generated_tokens(&self, id: RequestId) -> Option<usize> {
        self.requests
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.generated)
    }

    /// One batched forward over everything running; returns an update for every request that
    /// got text or ended. An error (out of memory for a KV cache) leaves every request as it
    /// was.
    pub fn step(&mut self, model: &mut Model) -> Result<Vec<Update>> {
        let mut updates = Vec::new();
        self.retire(&mut updates);
        // admit waiting requests into free slots, in arrival order
        let mut running = self.requests.iter().filter(|r| r.slot.is_some()).count();
        for r in self.requests.iter_mut() {
            if running >= self.max_running {
                break;
            }
            if r.slot.is_none() {
                r.slot = Some(self.slots.alloc());
                running += 1;
            }
        }
        // decode tokens first, then prompt chunks in arrival order within the budget
        let mut entries: Vec<Entry> = Vec::new();
        let mut owners: Vec<usize> = Vec::new(); // request index of each entry
        for (i, r) in self.requests.iter().enumerate() {
            if let (Some(slot), false) = (r.slot, r.forced()) {
                entries.push(Entry {
                    slot,
                    pos: r.pos,
                    token: r.token,
                    logits: true,
                });
                owners.push(i);
            }
        }
        for (i, r) in self.requests.iter().enumerate() {
            let Some(slot) = r.slot else { continue };
            if !r.forced() {
                continue;
            }
            let room = self.budget.saturating_sub(entries.len());
            let end = r.tokens.len().min(r.steps).min(r.pos + room);
            for p in r.pos..end {
                entries.push(Entry {
                    slot,
                    pos: p,
                    token: r.tokens[p],
                    logits: p + 1 == r.tokens.len(),
                });
                owners.push(i);
            }
        }
        if entries.is_empty() {
            self.retire(&mut updates);
            return Ok(updates);
        }
        let logits = model.forward_batch(&mut self.slots, &entries)?.to_vec();
        let vocab = model.vocab_size();
        let mut texts: Vec<String> = vec![String::new(); self.requests.len()];
        let mut row = 0;
        for (e, &i) in entries.iter().zip(&owners) {
            let r = &mut self.requests[i];
            if r.finished.is_some() {
                // ended earlier in this batch (EOS inside a prompt): the rest is ignored
                row += e.logits as usize;
                continue;
            }
            let next = if r.forced() {
                r.tokens[r.pos + 1]
            } else {
                r.sampler.sample(&logits[row * vocab..(row + 1) * vocab])
            };
            row += e.logits as usize;
            let text = r.advance(model, next);
            texts[i].push_str(&text);
        }
        for (r, text) in self.requests.iter().zip(texts) {
            if !text.is_empty() {
                updates.push(Update {
                    id: r.id,
                    text,
                    finished: None,
                });
            }
        }
        self.retire(&mut updates);
        Ok(updates)
    }

    /// Removes finished requests, frees their slots and reports their end (with the bytes of
    /// a character still incomplete, as U+FFFD).
    fn retire(&mut self, updates: &mut Vec<Update>) {
        let slots = &mut self.slots;
        self.requests.retain_mut(|r| {
            let Some(reason) = r.finished else {
                return true;
            };
            if let Some(s) = r.slot {
                slots.free(s);
            }
            updates.push(Update {
                id: r.id,
                text: r.stream.finish(),
                finished: Some(Finished {
                    reason,
                    prompt_tokens: r.tokens.len(),
                    generated_tokens: r.generated,
                }),
            });
            false
        });
    }
}
