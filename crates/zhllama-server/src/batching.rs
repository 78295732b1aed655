//! Continuous batching: one engine thread owns the `Model` and a core [`Scheduler`].
//!
//! Jobs wait in a queue. Before every step the thread moves waiting jobs into free slots
//! (`--parallel`), cancels the requests whose client went away, then runs one
//! [`Scheduler::step`] — one batched forward over everything running — and sends each
//! request's new text to its client. A cancelled request leaves at the start of the next
//! step, so its slot is free for a newcomer at once. The scheduler gives every request the
//! logits it would have alone, so with a seed a story is the same whatever else runs.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use zhllama_core::{
    FinishReason as End, Finished, GenerateOptions, Model, RequestId, Scheduler,
    DEFAULT_STEP_TOKENS,
};

use crate::backend::{Backend, Event, FinishReason, Job, Load, QueueFull};
use crate::metrics::Metrics;
use crate::stop::StopMatcher;

/// The server's backend: see the module docs.
pub struct BatchingBackend {
    shared: Arc<Shared>,
    slots: usize,
    max_queue: usize,
}

/// What the HTTP side and the engine thread share.
struct Shared {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Requests generating now (a cancelled one no longer counts: its slot is free).
    busy: AtomicUsize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Job>> {
        // A panic elsewhere cannot leave the queue half-changed: keep using it.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BatchingBackend {
    /// Starts the engine thread, which owns `model` from now on: `slots` requests generate at
    /// once, and up to `max_queue` more wait for a slot.
    pub fn start(
        model: Model,
        slots: usize,
        max_queue: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let slots = slots.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            busy: AtomicUsize::new(0),
        });
        let engine = Engine {
            sched: Scheduler::new(&model, slots, DEFAULT_STEP_TOKENS),
            model,
            slots,
            running: Vec::new(),
            shared: shared.clone(),
            metrics,
        };
        std::thread::Builder::new()
            .name("zhllama-engine".into())
            .spawn(move || engine.run())
            .map_err(|e| format!("cannot start the engine thread: {e}"))?;
        Ok(BatchingBackend {
            shared,
            slots,
            max_queue,
        })
    }
}

impl Backend for BatchingBackend {
    fn submit(&self, job: Job) -> Result<(), QueueFull> {
        let mut queue = self.shared.queue();
        // Jobs whose client already left do not hold a place in the queue.
        queue.retain(|j| !j.events.is_closed());
        // A job for a free slot waits only until the current step ends: it does not count
        // against the queue's limit.
        let free = self
            .slots
            .saturating_sub(self.shared.busy.load(Ordering::Relaxed));
        if queue.len() >= self.max_queue + free {
            return Err(QueueFull);
        }
        queue.push_back(job);
        self.shared.ready.notify_one();
        Ok(())
    }

    fn load(&self) -> Load {
        Load {
            queued: self.shared.queue().len(),
            busy: self.shared.busy.load(Ordering::Relaxed),
            slots: self.slots,
        }
    }
}

/// One request in the scheduler.
struct Running {
    job: Job,
    id: RequestId,
    prompt_tokens: usize,
    /// Bytes of the prompt's own text still to drop: the scheduler's text starts with the
    /// prompt (as `zhllama-rs` prints it), the API returns the continuation only.
    echo: usize,
    stop: StopMatcher,
    /// Generated tokens already added to the metrics.
    counted: usize,
    /// When its first token was sampled.
    first: Option<Instant>,
    /// A stop string, a failure or the client's leaving ended it early: nothing more goes to
    /// the client but `Done` after a stop string; its last update is still to come.
    ended: bool,
    /// A stop string ended it.
    stopped: bool,
}

struct Engine {
    model: Model,
    sched: Scheduler,
    slots: usize,
    running: Vec<Running>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Engine {
    fn run(mut self) {
        loop {
            self.admit();
            self.cancel_the_departed();
            self.step();
        }
    }

    /// Requests that still generate.
    fn live(&self) -> usize {
        self.running.iter().filter(|r| !r.ended).count()
    }

    fn publish_busy(&self) {
        self.shared.busy.store(self.live(), Ordering::Relaxed);
    }

    /// Waits while there is nothing to do, then moves waiting jobs into free slots.
    fn admit(&mut self) {
        let shared = self.shared.clone();
        let mut queue = shared.queue();
        while self.running.is_empty() && queue.is_empty() {
            queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
        while self.live() < self.slots {
            let Some(job) = queue.pop_front() else { break };
            if job.events.is_closed() {
                continue;
            }
            if let Some(r) = self.add(job) {
                self.running.push(r);
            }
        }
        drop(queue);
        self.publish_busy();
    }

    /// Hands `job` to the scheduler; it joins the batch at the next step.
    fn add(&mut self, job: Job) -> Option<Running> {
        let Some(tok) = self.model.tokenizer() else {
            let _ = job
                .events
                .send(Event::Failed("the model has no tokenizer".into()));
            return None;
        };
        let ids = tok.encode(&job.prompt, true, false);
        let echo = tok.decode(&ids).map_or(0, |s| s.len());
        // `zhllama-rs -n STEPS` with STEPS = prompt tokens (BOS included) - 1 + max_tokens:
        // position `prompt tokens - 1` samples the first new token.
        let opts = GenerateOptions {
            steps: ids.len() - 1 + job.max_tokens,
            temperature: job.temperature,
            top_p: job.top_p,
            seed: job.seed,
            stop_at_eos: true,
        };
        match self.sched.add(&self.model, &job.prompt, &opts) {
            Ok(id) => Some(Running {
                id,
                prompt_tokens: ids.len(),
                echo,
                stop: StopMatcher::new(job.stop.clone()),
                counted: 0,
                first: None,
                ended: false,
                stopped: false,
                job,
            }),
            Err(e) => {
                let _ = job.events.send(Event::Failed(e.to_string()));
                None
            }
        }
    }

    /// A client that closed its connection ends its request now; the next step frees its slot.
    fn cancel_the_departed(&mut self) {
        for r in self.running.iter_mut() {
            if !r.ended && r.job.events.is_closed() {
                self.sched.cancel(r.id);
                r.ended = true;
                self.metrics.cancelled.inc();
            }
        }
        self.publish_busy();
    }

    fn step(&mut self) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.sched.step(&mut self.model)));
        let updates = match outcome {
            Ok(Ok(updates)) => updates,
            Ok(Err(e)) => {
                // Out of memory for a KV cache, say: every running request fails (the
                // scheduler left them as they were; the next step retires them).
                let msg = e.to_string();
                for r in self.running.iter_mut().filter(|r| !r.ended) {
                    let _ = r.job.events.send(Event::Failed(msg.clone()));
                    self.sched.cancel(r.id);
                    r.ended = true;
                }
                self.publish_busy();
                return;
            }
            Err(_) => {
                // A bug in the engine must not take the server down: these requests fail,
                // a fresh scheduler serves the next ones.
                for r in self.running.drain(..).filter(|r| !r.ended || r.stopped) {
                    let _ = r
                        .job
                        .events
                        .send(Event::Failed("internal error in the engine".into()));
                }
                self.sched = Scheduler::new(&self.model, self.slots, DEFAULT_STEP_TOKENS);
                self.publish_busy();
                return;
            }
        };
        for u in updates {
            let Some(i) = self.running.iter().position(|r| r.id == u.id) else {
                continue;
            };
            self.running[i].text(&u.text, &mut self.sched, &self.metrics);
            if let Some(f) = u.finished {
                let r = self.running.swap_remove(i);
                // before the client hears `Done`, so that /metrics never lags behind it
                self.publish_busy();
                r.finish(f, &self.metrics);
            }
        }
        for r in self.running.iter_mut() {
            let n = self.sched.generated_tokens(r.id).unwrap_or(r.counted);
            r.progress(n, &self.metrics);
        }
        self.publish_busy();
    }
}

impl Running {
    /// `n` tokens generated so far: the first one stops the time-to-first-token clock (which
    /// started when the request arrived), the metrics learn of the new ones.
    fn progress(&mut self, n: usize, metrics: &Metrics) {
        if n > 0 {
            self.first_token(metrics);
        }
        if n > self.counted {
            metrics.generated_tokens.inc_by((n - self.counted) as u64);
            self.counted = n;
        }
    }

    fn first_token(&mut self, metrics: &Metrics) {
        if self.first.is_none() {
            self.first = Some(Instant::now());
            metrics
                .ttft
                .observe(self.job.submitted.elapsed().as_secs_f64());
        }
    }

    /// New text from the scheduler: the prompt's echo is dropped, stop strings are matched,
    /// the rest goes to the client.
    fn text(&mut self, text: &str, sched: &mut Scheduler, metrics: &Metrics) {
        if self.ended {
            return;
        }
        let skip = self.echo.min(text.len());
        self.echo -= skip;
        // The echo ends on a character boundary (the stream releases whole characters and the
        // prompt is whole characters), so `get` finds it; were it not, nothing is lost but
        // that piece, and nothing panics.
        let text = text.get(skip..).unwrap_or_default();
        if text.is_empty() {
            return;
        }
        let released = self.stop.push(text);
        if !released.text.is_empty() && self.job.events.send(Event::Text(released.text)).is_err() {
            sched.cancel(self.id);
            self.ended = true;
            metrics.cancelled.inc();
            return;
        }
        if released.stopped {
            sched.cancel(self.id);
            self.ended = true;
            self.stopped = true;
        }
    }

    /// The request's last update: the held-back text and `Done` (unless the client left or
    /// the request failed).
    fn finish(mut self, f: Finished, metrics: &Metrics) {
        let by_model = f.reason == End::Eos;
        // An EOS that ended the story is not part of the completion.
        let completion_tokens = f.generated_tokens - usize::from(by_model);
        if f.generated_tokens > 0 {
            self.first_token(metrics);
        }
        self.progress(completion_tokens, metrics);
        if self.ended && !self.stopped {
            return; // the client left, or the request failed: it was told already
        }
        if !self.stopped {
            let rest = self.stop.finish();
            if !rest.is_empty() && self.job.events.send(Event::Text(rest)).is_err() {
                return;
            }
        }
        if let Some(t) = self.first {
            let secs = t.elapsed().as_secs_f64();
            if completion_tokens > 1 && secs > 0.0 {
                metrics
                    .tokens_per_second
                    .set((completion_tokens - 1) as f64 / secs);
            }
        }
        metrics.prompt_tokens.inc_by(self.prompt_tokens as u64);
        let _ = self.job.events.send(Event::Done {
            finish_reason: if self.stopped || by_model {
                FinishReason::Stop
            } else {
                FinishReason::Length
            },
            prompt_tokens: self.prompt_tokens,
            completion_tokens,
        });
    }
}
