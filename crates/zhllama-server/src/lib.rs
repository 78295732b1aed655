//! # zhllama-server
//!
//! An OpenAI-compatible HTTP server for zhllama story models: `/v1/completions` and
//! `/v1/chat/completions` (plain and server-sent events), `/tokenize`, `/detokenize`,
//! `/metrics` (Prometheus), `/health`, and a playground page at `/`.
//!
//! - [`routes`]: the HTTP surface (axum), validation through [`api`].
//! - [`backend`]: the seam to the engine: a [`backend::Backend`] takes jobs and sends back
//!   text pieces.
//! - [`batching`]: the backend the server runs: continuous batching on the core scheduler,
//!   one engine thread, `--parallel` slots, a bounded queue.
//! - [`stop`]: stop-string matching across pieces.
//! - [`metrics`]: counters, gauges and the time-to-first-token histogram.
//! - [`cli`]: the command line (flags, exit codes), shared by the binary and the wheel.

pub mod api;
pub mod backend;
pub mod batching;
pub mod cli;
pub mod metrics;
pub mod routes;
pub mod stop;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use zhllama_core::{Model, Quantize};

use crate::batching::BatchingBackend;
use crate::metrics::Metrics;
use crate::routes::{AppState, Engine};

/// What `zhllama-server`'s flags say.
#[derive(Debug, Clone)]
pub struct Options {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// Its tokenizer.
    pub tokenizer: PathBuf,
    /// Address to bind.
    pub host: String,
    /// Port (0 = any free one).
    pub port: u16,
    /// Requests generated at once (continuous batching).
    pub parallel: usize,
    /// Engine threads (0 = physical cores).
    pub threads: usize,
    /// Quantize at load.
    pub quantize: Quantize,
    /// Required bearer key.
    pub api_key: Option<String>,
    /// Requests waiting for a slot before new ones get 429.
    pub max_queue: usize,
    /// After SIGINT/SIGTERM, how long in-flight requests may take before they are cut.
    pub drain: Duration,
}

/// Binds, prints the address on stdout (one line: `zhllama-server: listening on http://ADDR`),
/// loads the model in the background (/health is 503 meanwhile), and serves until a signal.
/// Errors are one line for the user (bind failure, a bad checkpoint or tokenizer).
pub async fn serve(opts: Options) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind((opts.host.as_str(), opts.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", opts.host, opts.port))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "zhllama-server: listening on http://{addr}");
        let _ = out.flush();
    }
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState::new(metrics.clone(), opts.api_key.clone()));
    let drain = opts.drain;
    let (load_err_tx, load_err_rx) = oneshot::channel::<String>();
    let loader = state.clone();
    tokio::task::spawn_blocking(move || match load(&opts, metrics) {
        Ok(engine) => {
            eprintln!("zhllama-server: model '{}' loaded", engine.model_id);
            let _ = loader.engine.set(engine);
        }
        Err(e) => {
            let _ = load_err_tx.send(e);
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("zhllama-server: shutting down (finishing in-flight requests)");
        let _ = stop_tx.send(true);
    });
    let graceful = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let deadline = {
        let mut rx = stop_rx;
        async move {
            let _ = rx.wait_for(|s| *s).await;
            tokio::time::sleep(drain).await;
        }
    };
    let server = axum::serve(listener, routes::router(state)).with_graceful_shutdown(graceful);
    tokio::select! {
        r = server => r.map_err(|e| format!("server error: {e}")),
        Ok(e) = load_err_rx => Err(e),
        () = deadline => {
            eprintln!("zhllama-server: in-flight requests cut after {drain:?}");
            Ok(())
        }
    }
}

fn load(opts: &Options, metrics: Arc<Metrics>) -> Result<Engine, String> {
    let model = Model::load_with(
        &opts.checkpoint,
        Some(&opts.tokenizer),
        Some(opts.threads),
        opts.quantize,
    )
    .map_err(|e| e.to_string())?;
    let tokenizer = model
        .tokenizer()
        .cloned()
        .ok_or_else(|| "the model has no tokenizer".to_string())?;
    let model_id = opts
        .checkpoint
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let seq_len = model.seq_len();
    let backend = BatchingBackend::start(model, opts.parallel, opts.max_queue, metrics)?;
    Ok(Engine {
        backend: Arc::new(backend),
        model_id,
        seq_len,
        tokenizer,
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
