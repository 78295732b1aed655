//! The seam between HTTP and the engine: routes hand a [`Job`] to a [`Backend`] and read
//! [`Event`]s back. Today's backend, [`SerialBackend`], is one worker thread that owns the
//! `zhllama_core::Model` (one KV cache) and serves jobs one at a time in arrival order with
//! `zhllama_core::Generator`. The core scheduler (continuous batching) replaces it behind the
//! same trait, without touching the routes.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use zhllama_core::{GenerateOptions, Generator, Model, BOS, EOS};

use crate::metrics::Metrics;
use crate::stop::StopMatcher;

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

struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    busy: Mutex<usize>,
}

/// One worker thread, one job at a time, arrival order. `slots` (`--parallel`) is reported
/// only: continuous batching arrives with the core scheduler.
pub struct SerialBackend {
    queue: Arc<Queue>,
    max_queue: usize,
    slots: usize,
}

impl SerialBackend {
    /// Starts the worker thread, which owns `model` from now on.
    pub fn start(model: Model, slots: usize, max_queue: usize, metrics: Arc<Metrics>) -> Self {
        let queue = Arc::new(Queue {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            busy: Mutex::new(0),
        });
        let q = queue.clone();
        std::thread::Builder::new()
            .name("zhllama-engine".into())
            .spawn(move || worker(model, &q, &metrics))
            .expect("spawning the engine thread");
        SerialBackend {
            queue,
            max_queue,
            slots,
        }
    }
}

impl Backend for SerialBackend {
    fn submit(&self, job: Job) -> Result<(), QueueFull> {
        let mut jobs = self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
        // Jobs whose client already left do not hold a place in the queue.
        jobs.retain(|j| !j.events.is_closed());
        if jobs.len() >= self.max_queue {
            return Err(QueueFull);
        }
        jobs.push_back(job);
        self.queue.ready.notify_one();
        Ok(())
    }

    fn load(&self) -> Load {
        let queued = self
            .queue
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let busy = *self.queue.busy.lock().unwrap_or_else(|e| e.into_inner());
        Load {
            queued,
            busy,
            slots: self.slots,
        }
    }
}

fn worker(mut model: Model, q: &Queue, metrics: &Metrics) {
    loop {
        let job = {
            let mut jobs = q.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match jobs.pop_front() {
                    Some(j) if j.events.is_closed() => continue,
                    Some(j) => break j,
                    None => jobs = q.ready.wait(jobs).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        *q.busy.lock().unwrap_or_else(|e| e.into_inner()) = 1;
        // A bug in the engine must not take the server down: the job fails, the next one runs.
        let outcome = catch_unwind(AssertUnwindSafe(|| run_job(&mut model, &job, metrics)));
        if outcome.is_err() {
            let _ = job
                .events
                .send(Event::Failed("internal error in the engine".into()));
        }
        *q.busy.lock().unwrap_or_else(|e| e.into_inner()) = 0;
    }
}

/// Generates one job. The text equals `zhllama-rs -i PROMPT -s SEED -t T -p P -n STEPS` after
/// its prompt echo, with `STEPS = prompt tokens (BOS included) - 1 + max_tokens`: position
/// `prompt tokens - 1` samples the first new token.
fn run_job(model: &mut Model, job: &Job, metrics: &Metrics) {
    let send = |e: Event| job.events.send(e).is_ok();
    let tok = match model.tokenizer() {
        Some(t) => t,
        None => {
            send(Event::Failed("the model has no tokenizer".into()));
            return;
        }
    };
    let prompt_tokens = tok.encode(&job.prompt, true, false).len();
    let opts = GenerateOptions {
        steps: prompt_tokens - 1 + job.max_tokens,
        temperature: job.temperature,
        top_p: job.top_p,
        seed: job.seed,
        stop_at_eos: true,
    };
    let mut gen = match Generator::new(model, &job.prompt, &opts)
        .and_then(|g| model.reserve(g.steps()).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => {
            send(Event::Failed(e.to_string()));
            return;
        }
    };
    let mut first: Option<Instant> = None;
    let mut stop = StopMatcher::new(job.stop.clone());
    let mut stopped = false;
    let mut counted = 0usize;
    loop {
        // The client went away: stop at once and free the worker.
        if job.events.is_closed() {
            metrics.cancelled.inc();
            return;
        }
        let Some(piece) = gen.step(model) else { break };
        let generated = gen.generated_tokens();
        if generated.is_empty() {
            continue; // the prompt's echo: the API returns the continuation only
        }
        if generated.len() > counted {
            counted = generated.len();
            metrics.generated_tokens.inc();
        }
        if first.is_none() {
            first = Some(Instant::now());
            metrics.ttft.observe(job.submitted.elapsed().as_secs_f64());
        }
        let released = stop.push(&piece);
        if !released.text.is_empty() && !send(Event::Text(released.text)) {
            metrics.cancelled.inc();
            return;
        }
        if released.stopped {
            stopped = true;
            break;
        }
    }
    if !stopped {
        let rest = stop.finish();
        if !rest.is_empty() && !send(Event::Text(rest)) {
            return;
        }
    }
    if let Some(e) = gen.error() {
        send(Event::Failed(e.to_string()));
        return;
    }
    let generated = gen.generated_tokens();
    let ended_by_model = matches!(generated.last(), Some(&t) if t == EOS || t == BOS);
    let completion_tokens = generated.len() - usize::from(ended_by_model && !stopped);
    if let Some(t) = first {
        let secs = t.elapsed().as_secs_f64();
        if completion_tokens > 1 && secs > 0.0 {
            metrics
                .tokens_per_second
                .set((completion_tokens - 1) as f64 / secs);
        }
    }
    metrics.prompt_tokens.inc_by(prompt_tokens as u64);
    send(Event::Done {
        finish_reason: if stopped || ended_by_model {
            FinishReason::Stop
        } else {
            FinishReason::Length
        },
        prompt_tokens,
        completion_tokens,
    });
}
