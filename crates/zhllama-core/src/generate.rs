//! Generation: the prompt, then sampled tokens, as a stream of whole-UTF-8 text pieces.

use std::time::Instant;

use crate::batch::Logits;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::sampler::Sampler;
use crate::tokenizer::{Utf8Stream, BOS, EOS};

/// How to generate. `Default` gives run.c's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Positions to run, prompt included; 0 or more than the context means the context
    /// (`seq_len`). Default 256.
    pub steps: usize,
    /// 0 = greedy; default 1.0. Negative is treated as 0.
    pub temperature: f32,
    /// Nucleus sampling threshold; default 0.9; `<= 0` or `>= 1` samples the full
    /// distribution; outside `[0, 1]` is treated as 0.9.
    pub top_p: f32,
    /// RNG seed; 0 (the default) seeds from the clock.
    pub seed: u64,
    /// Stop when EOS is sampled (default true). Generation always stops at BOS, as run.c does;
    /// with this off, EOS is printed as its stored text, as run.c does.
    pub stop_at_eos: bool,
}

impl GenerateOptions {
    /// The options from a user's raw values, by the rules the CLI and the Python API share,
    /// so that the same values give the same story: NaN is refused, steps below 0 mean 0 (the
    /// whole context), temperature and top-p narrow from double to float like run.c's `atof`,
    /// and the seed wraps to 64 bits like run.c's unsigned seed (0 means the clock).
    pub fn from_args(
        steps: i64,
        temperature: f64,
        top_p: f64,
        seed: i128,
        stop_at_eos: bool,
    ) -> Result<GenerateOptions> {
        if temperature.is_nan() || top_p.is_nan() {
            return Err(Error::bad_arg(
                "temperature (-t) and top-p (-p) must be numbers, not NaN",
            ));
        }
        Ok(GenerateOptions {
            steps: steps.max(0) as usize,
            temperature: temperature as f32,
            top_p: top_p as f32,
            seed: seed as u64,
            stop_at_eos,
        })
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            steps: 256,
            temperature: 1.0,
            top_p: 0.9,
            seed: 0,
            stop_at_eos: true,
        }
    }
}

/// Timing of a generation, measured as run.c does: the clock starts after the first forward
/// pass (which can be slower), and the first position is not counted. When the prompt is
/// prefilled (a batched pass over all its positions in the first step) the clock starts
/// before that pass, so that the prompt's positions are paid for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Positions run so far (prompt included).
    pub positions: usize,
    /// Prompt tokens, BOS included.
    pub prompt_tokens: usize,
    /// Seconds since the clock started (until the end, once finished).
    pub seconds: f64,
}

impl GenerationStats {
    /// `(positions - 1) / seconds`, or `None` before there is anything to measure.
    pub fn tokens_per_second(&self) -> Option<f64> {
        if self.positions > 1 && self.seconds > 0.0 {
            Some((self.positions - 1) as f64 / self.seconds)
        } else {
            None
        }
    }
}

/// The state of one generation, without borrowing the model, so that a binding can keep it
/// in an object of its own and drive it with [`Generator::next_piece`] (checking for an
/// interrupt between calls).
///
/// Rules (FORMATS.md §3, run.c's behaviour):
/// - the prompt is encoded with BOS; positions run from 0; while the prompt lasts its next
///   token is forced (the sampler is not consulted), after that tokens are sampled;
/// - an empty prompt is just BOS: the model starts the story itself;
/// - `steps` counts positions including the prompt, and is clamped to the context: a prompt
///   longer than `steps` (or than the context) is echoed only up to that many positions and
///   nothing is generated;
/// - generation stops at BOS, at EOS (unless `stop_at_eos` is off), or after `steps` positions;
/// - the text is the prompt (decoded, without the dummy-prefix space) followed by the
///   continuation, always in whole UTF-8 characters.
#[derive(Clone, Debug)]
pub struct Generator {
    tokens: Vec<u32>,
    sampler: Sampler,
    steps: usize,
    pos: usize,
    token: u32,
    stop_at_eos: bool,
    stream: Utf8Stream,
    done: bool,
    flushed: bool,
    start: Option<Instant>,
    seconds: f64,
    generated: Vec<u32>,
    error: Option<String>,
    /// Positions whose forward pass already ran, in one batched prefill of the prompt.
    prefilled: usize,
    /// The prefill's last logits (the first sampled token's).
    prefill_logits: Vec<f32>,
}

/// What a generation starts from, the same for [`Generator`] and the scheduler's requests.
pub(crate) struct Start {
    /// The prompt's token ids, BOS first.
    pub tokens: Vec<u32>,
    pub sampler: Sampler,
    /// Positions to run: `opts.steps`, or the whole context when that is 0 or beyond it.
    pub steps: usize,
}

impl Start {
    /// Errors when the model has no tokenizer or an option is NaN.
    pub fn new(model: &Model, prompt: &str, opts: &GenerateOptions) -> Result<Start> {
        let tok = model.tokenizer().ok_or_else(|| {
            Error::bad_arg("generation needs a tokenizer; load the model with one")
        })?;
        let sampler = Sampler::new(opts.temperature, opts.top_p, opts.seed)?;
        let seq_len = model.seq_len();
        let steps = if opts.steps == 0 || opts.steps > seq_len {
            seq_len
        } else {
            opts.steps
        };
        Ok(Start {
            tokens: tok.encode(prompt, true, false),
            sampler,
            steps,
        })
    }
}

impl Generator {
    /// Prepares a generation with `model`'s tokenizer. Errors when the model has no tokenizer
    /// or an option is NaN.
    pub fn new(model: &Model, prompt: &str, opts: &GenerateOptions) -> Result<Generator> {
        let Start {
            tokens,
            sampler,
            steps,
        } = Start::new(model, prompt, opts)?;
        Ok(Generator {
            tokens,
            sampler,
            steps,
            pos: 0,
            token: BOS,
            stop_at_eos: opts.stop_at_eos,
            stream: Utf8Stream::new(),
            done: false,
            flushed: false,
            start: None,
            seconds: 0.0,
            generated: Vec::new(),
            error: None,
            prefilled: 0,
            prefill_logits: Vec::new(),
        })
    }

    /// The prompt's token ids (BOS first).
    pub fn prompt_tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Ids produced after the prompt so far.
    pub fn generated_tokens(&self) -> &[u32] {
        &self.generated
    }

    /// The effective number of positions (after clamping).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Why generation stopped early, if it did: the KV cache could not grow (only when the
    /// caller did not [`Model::reserve`] [`Generator::steps`] positions first, as
    /// [`Model::generate`] does).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether generation has finished.
    pub fn is_done(&self) -> bool {
        self.done && self.flushed
    }

    /// Timing so far.
    pub fn stats(&self) -> GenerationStats {
        let seconds = match (self.done, self.start) {
            (false, Some(t)) => t.elapsed().as_secs_f64(),
            _ => self.seconds,
        };
        GenerationStats {
            positions: self.pos,
            prompt_tokens: self.tokens.len(),
            seconds,
        }
    }

    /// Tokens per second as run.c reports it.
    pub fn tokens_per_second(&self) -> Option<f64> {
        self.stats().tokens_per_second()
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            if let Some(t) = self.start {
                self.seconds = t.elapsed().as_secs_f64();
            }
        }
    }

    /// Advances one position. Returns the text completed by it (possibly empty, when a
    /// character is still incomplete), or `None` once finished.
    pub fn step(&mut self, model: &mut Model) -> Option<String> {
        if self.done {
            if self.flushed {
                return None;
            }
            self.flushed = true;
            return Some(self.stream.finish());
        }
        if self.pos >= self.steps {
            self.finish();
            return self.step(model);
        }
        let forced = self.pos + 1 < self.tokens.len();
        if forced && self.pos >= self.prefilled {
            // The whole prompt (up to `steps`) in one batched pass; its last position's logits
            // (when the prompt fits) stay in the model for the first sampled token.
            let end = self.tokens.len().min(self.steps);
            // The clock then starts before the prefill, not after it as after one token: the
            // prompt's positions all run in this first step, and a rate that left them out
            // would count them as free.
            if self.start.is_none() {
                self.start = Some(Instant::now());
            }
            let want = if end == self.tokens.len() {
                Logits::Last
            } else {
                Logits::None
            };
            match model.prefill_with(&self.tokens[self.pos..end], self.pos, want) {
                // kept here: another batched pass on the model may run before it is sampled
                Ok(logits) => self.prefill_logits = logits.to_vec(),
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.finish();
                    return self.step(model);
                }
            }
            self.prefilled = end;
        }
        let next = if forced {
            self.tokens[self.pos + 1]
        } else if self.pos < self.prefilled {
            self.sampler.sample(&self.prefill_logits)
        } else {
            if let Err(e) = model.ensure_position(self.pos) {
                self.error = Some(e.to_string());
                self.finish();
                return self.step(model);
            }
            let logits = model.forward_unchecked(self.token, self.pos, true);
            self.sampler.sample(logits)
        };
        if !forced {
            self.generated.push(next);
        }
        self.pos += 1;
        if next == BOS || (self.stop_at_eos && next == EOS) {
            self.finish();
            return self.step(model);
        }
        let tok = model.tokenizer().expect("checked in new");
        let text = self.stream.push(tok.piece_bytes(self.token, next));
        self.token = next;
        if self.start.is_none() {
            self.start = Some(Instant::now());
        }
        Some(text)
    }

    /// Advances until there is non-empty text (or the end): the next whole-character piece.
    pub fn next_piece(&mut self, model: &mut Model) -> Option<String> {
        loop {
            match self.step(model) {
                Some(s) if s.is_empty() => continue,
                other => return other,
            }
        }
    }
}

impl Model {
    /// Starts generating text after `prompt` (see [`Generator`] for the rules). Needs a
    /// tokenizer. Iterate the result for text pieces.
    pub fn generate(&mut self, prompt: &str, opts: &GenerateOptions) -> Result<Generation<'_>> {
        let gen = Generator::new(self, prompt, opts)?;
        self.reserve(gen.steps())?;
        Ok(Generation::new(self, gen))
    }
}

/// A generation borrowing its model: an iterator of non-empty text pieces, each made of whole
/// UTF-8 characters. Stop early by simply not calling `next` again (dropping it).
pub struct Generation<'a> {
    model: &'a mut Model,
    gen: Generator,
}

impl<'a> Generation<'a> {
    fn new(model: &'a mut Model, gen: Generator) -> Self {
        Generation { model, gen }
    }

    /// The underlying state (prompt tokens, generated tokens, steps).
    pub fn generator(&self) -> &Generator {
        &self.gen
    }

    /// Timing so far.
    pub fn stats(&self) -> GenerationStats {
        self.gen.stats()
    }

    /// Tokens per second as run.c reports it (`None` before two positions have run).
    pub fn tokens_per_second(&self) -> Option<f64> {
        self.gen.tokens_per_second()
    }
}

impl Iterator for Generation<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.gen.next_piece(self.model)
    }
}
