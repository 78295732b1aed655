//! /metrics in the Prometheus text format (prometheus-client).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::backend::Load;

/// Everything the server counts. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint.
    pub requests: Family<Vec<(String, String)>, Counter>,
    /// Prompt tokens of finished generations (BOS included).
    pub prompt_tokens: Counter,
    /// Tokens generated.
    pub generated_tokens: Counter,
    /// Generations stopped because their client went away.
    pub cancelled: Counter,
    /// Seconds from a request's arrival to its first generated token.
    pub ttft: Histogram,
    /// Decode speed of the last finished generation.
    pub tokens_per_second: Gauge<f64, AtomicU64>,
    queue_depth: Gauge,
    busy_slots: Gauge,
    slots: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("zhllama");
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        let prompt_tokens = Counter::default();
        let generated_tokens = Counter::default();
        let cancelled = Counter::default();
        let ttft = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let tokens_per_second = Gauge::<f64, AtomicU64>::default();
        let (queue_depth, busy_slots, slots) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("requests", "HTTP requests by endpoint", requests.clone());
        registry.register(
            "prompt_tokens",
            "Prompt tokens processed",
            prompt_tokens.clone(),
        );
        registry.register(
            "generated_tokens",
            "Tokens generated",
            generated_tokens.clone(),
        );
        registry.register(
            "cancelled_generations",
            "Generations stopped because the client went away",
            cancelled.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Seconds from a request's arrival to its first generated token",
            ttft.clone(),
        );
        registry.register(
            "tokens_per_second",
            "Decode speed of the last finished generation",
            tokens_per_second.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting for a slot",
            queue_depth.clone(),
        );
        registry.register("busy_slots", "Slots generating now", busy_slots.clone());
        registry.register("slots", "Slots (--parallel)", slots.clone());
        Metrics {
            registry,
            requests,
            prompt_tokens,
            generated_tokens,
            cancelled,
            ttft,
            tokens_per_second,
            queue_depth,
            busy_slots,
            slots,
        }
    }
}

impl Metrics {
    /// Counts one request to `endpoint`.
    pub fn request(&self, endpoint: &str) {
        self.requests
            .get_or_create(&vec![("endpoint".to_string(), endpoint.to_string())])
            .inc();
    }

    /// The text exposition, with the backend's load as of now.
    pub fn render(&self, load: Load) -> String {
        self.queue_depth.set(load.queued as i64);
        self.busy_slots.set(load.busy as i64);
        self.slots.set(load.slots as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
