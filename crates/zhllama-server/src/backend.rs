//! The seam between HTTP and the engine: routes hand a [`Job`] to a [`Backend`] and read
//! [`Event`]s back. The backend the server runs is [`crate::batching::BatchingBackend`]
//! (continuous batching on the core scheduler); the routes know only this trait.

use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

/// One generation request, already validated (FORMATS.md §3 rules apply).
#[derive(Debug)]
pub struct Job {
    /// The story's beginning (the rendered template for chat).
    pub prompt: String,
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus threshold.
    pub top_p: f32,
    /// 0 = from the clock (as `zhllama-rs -s 0`).
    pub seed: u64,
    /// Tokens to generate at most, already capped by the context.
    pub max_tokens: usize,
    /// Stop strings (never sent to the client).
    pub stop: Vec<String>,
    /// Where the events go; a closed channel (the client went away) cancels the job.
    pub events: UnboundedSender<Event>,
    /// When the request arrived: time to first token counts the wait in the queue too.
    pub submitted: Instant,
}

/// Why a generation ended, in OpenAI's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS (or BOS) was sampled, or a stop string appeared.
    Stop,
    /// `max_tokens` (or the context) ran out.
    Length,
}

impl FinishReason {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// What a job sends back, in order: text pieces, then exactly one `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Whole UTF-8 characters of the continuation (never empty).
    Text(String),
    /// The end.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Prompt tokens, BOS included.
        prompt_tokens: usize,
        /// Tokens generated (the final EOS not counted).
        completion_tokens: usize,
    },
    /// The engine could not run the job (a message for the client).
    Failed(String),
}

/// The queue is full: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// How busy a backend is, for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Jobs waiting for a slot.
    pub queued: usize,
    /// Jobs being generated now.
    pub busy: usize,
    /// Slots the backend was given (`--parallel`).
    pub slots: usize,
}

/// Runs jobs. Implementations own the model and its thread(s).
pub trait Backend: Send + Sync {
    /// Queues `job`; its events arrive on `job.events`.
    fn submit(&self, job: Job) -> Result<(), QueueFull>;
    /// Queue depth and busy slots now.
    fn load(&self) -> Load;
}
