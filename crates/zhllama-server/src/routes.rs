//! The HTTP surface: OpenAI-compatible endpoints, SSE streaming, tokenize, metrics, the
//! playground. Routes only validate and translate; generation happens behind [`Backend`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tower_http::catch_panic::CatchPanicLayer;
use zhllama_core::Tokenizer;

use crate::api::{self, ApiError, ChatRequest, CompletionRequest, Settings};
use crate::backend::{Backend, Event, Job};
use crate::metrics::Metrics;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1 << 20;

const PLAYGROUND: &str = include_str!("playground.html");

/// The loaded model, once it is.
pub struct Engine {
    /// Runs the jobs.
    pub backend: Arc<dyn Backend>,
    /// The id clients name in `model` (the checkpoint's file stem).
    pub model_id: String,
    /// The context (positions).
    pub seq_len: usize,
    /// For prompt lengths, /tokenize and /detokenize.
    pub tokenizer: Tokenizer,
}

/// Shared by every request.
pub struct AppState {
    /// Empty while the model loads (/health answers 503).
    pub engine: OnceLock<Engine>,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// `--api-key`: required as `Authorization: Bearer KEY` on the API endpoints.
    pub api_key: Option<String>,
    next_id: AtomicU64,
}

impl AppState {
    /// A state with no model yet.
    pub fn new(metrics: Arc<Metrics>, api_key: Option<String>) -> Self {
        AppState {
            engine: OnceLock::new(),
            metrics,
            api_key,
            next_id: AtomicU64::new(1),
        }
    }

    fn engine(&self) -> Result<&Engine, ApiError> {
        self.engine.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the model is still loading",
            )
            .retry_after(1)
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = &self.api_key else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given == Some(key.as_str()) {
            Ok(())
        } else {
            Err(
                ApiError::new(StatusCode::UNAUTHORIZED, "incorrect or missing API key")
                    .code("invalid_api_key"),
            )
        }
    }
}

type Shared = State<Arc<AppState>>;

/// Every route, with the body limit and a panic guard (a bug answers 500, never a dropped
/// connection).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(playground))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }))
        .with_state(state)
}

/// The body as JSON of type `T`: any content type (curl's `-d` sends form-urlencoded), 413
/// past the limit, 400 with serde's message otherwise.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {BODY_LIMIT} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn playground() -> Html<&'static str> {
    Html(PLAYGROUND)
}

async fn health(State(st): Shared) -> Response {
    match st.engine.get() {
        Some(_) => Json(json!({"status": "ok"})).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}

async fn metrics(State(st): Shared) -> Response {
    let load = st
        .engine
        .get()
        .map(|e| e.backend.load())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(load),
    )
        .into_response()
}

async fn models(State(st): Shared, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    st.authorize(&headers)?;
    let e = st.engine()?;
    Ok(Json(json!({"object": "list", "data": [{
        "id": e.model_id, "object": "model", "created": 0, "owned_by": "zhllama",
        "context_length": e.seq_len,
    }]})))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

async fn completions(
    State(st): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.metrics.request("completions");
    st.authorize(&headers)?;
    let req: CompletionRequest = parse(body)?;
    let engine = st.engine()?;
    let settings = api::validate(&req.sampling, &engine.model_id)?;
    let prompt = api::completion_prompt(&req.prompt)?;
    generate(&st, engine, Kind::Completion, prompt, settings).await
}

async fn chat_completions(
    State(st): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.metrics.request("chat_completions");
    st.authorize(&headers)?;
    let req: ChatRequest = parse(body)?;
    let engine = st.engine()?;
    let settings = api::validate(&req.sampling, &engine.model_id)?;
    let prompt = api::chat_template(&req.messages)?;
    generate(&st, engine, Kind::Chat, prompt, settings).await
}

/// What every response and chunk of one request shares.
struct Envelope {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl Envelope {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Completion, _) => "text_completion",
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
        }
    }

    fn wrap(&self, chunk: bool, choices: Value, usage: Option<Value>) -> Value {
        let mut v = json!({
            "id": self.id, "object": self.object(chunk), "created": self.created,
            "model": self.model, "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }

    /// A streamed piece of text (or, for chat, the opening role chunk when `role`).
    fn piece(&self, text: &str, finish: Option<&str>, role: bool) -> Value {
        let choice = match self.kind {
            Kind::Completion => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
            Kind::Chat => {
                let delta = if role {
                    json!({"role": "assistant", "content": ""})
                } else if finish.is_some() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
        };
        self.wrap(true, json!([choice]), None)
    }

    fn whole(&self, text: &str, finish: &str, usage: Value) -> Value {
        let choice = match self.kind {
            Kind::Completion => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
            Kind::Chat => json!({"index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null, "finish_reason": finish}),
        };
        self.wrap(false, json!([choice]), Some(usage))
    }
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
           "total_tokens": prompt_tokens + completion_tokens})
}

async fn generate(
    st: &AppState,
    engine: &Engine,
    kind: Kind,
    prompt: String,
    s: Settings,
) -> Result<Response, ApiError> {
    let prompt_tokens = engine.tokenizer.encode(&prompt, true, false).len();
    let max_tokens = api::cap_max_tokens(s.max_tokens, prompt_tokens, engine.seq_len)?;
    let (tx, rx) = unbounded_channel();
    engine
        .backend
        .submit(Job {
            prompt,
            temperature: s.temperature,
            top_p: s.top_p,
            seed: s.seed,
            max_tokens,
            stop: s.stop,
            events: tx,
            submitted: Instant::now(),
        })
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "the server's queue is full; try again shortly",
            )
            .retry_after(1)
        })?;
    let n = st.next_id.fetch_add(1, Ordering::Relaxed);
    let env = Envelope {
        kind,
        id: match kind {
            Kind::Completion => format!("cmpl-{n}"),
            Kind::Chat => format!("chatcmpl-{n}"),
        },
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: engine.model_id.clone(),
    };
    if s.stream {
        Ok(Sse::new(sse_stream(env, rx, s.include_usage)).into_response())
    } else {
        collect(env, rx).await.map(|v| Json(v).into_response())
    }
}

/// Waits for the whole text. Dropping this future (the client left) closes `rx`, which
/// cancels the job at its next token.
async fn collect(env: Envelope, mut rx: UnboundedReceiver<Event>) -> Result<Value, ApiError> {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish_reason,
                prompt_tokens,
                completion_tokens,
            } => {
                return Ok(env.whole(
                    &text,
                    finish_reason.as_str(),
                    usage(prompt_tokens, completion_tokens),
                ))
            }
            Event::Failed(m) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)),
        }
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the engine stopped",
    ))
}

struct Streaming {
    env: Envelope,
    rx: UnboundedReceiver<Event>,
    pending: VecDeque<SseEvent>,
    ended: bool,
    include_usage: bool,
}

fn data(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

/// `data: {chunk}` per piece, a last chunk with `finish_reason` (and, when asked, one with
/// `usage`), then `data: [DONE]`. The client going away drops this stream and with it `rx`.
fn sse_stream(
    env: Envelope,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let mut pending = VecDeque::new();
    if env.kind == Kind::Chat {
        pending.push_back(data(&env.piece("", None, true)));
    }
    let state = Streaming {
        env,
        rx,
        pending,
        ended: false,
        include_usage,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.pending.pop_front() {
                return Some((Ok(e), s));
            }
            if s.ended {
                return None;
            }
            match s.rx.recv().await {
                Some(Event::Text(t)) => s.pending.push_back(data(&s.env.piece(&t, None, false))),
                Some(Event::Done {
                    finish_reason,
                    prompt_tokens,
                    completion_tokens,
                }) => {
                    s.ended = true;
                    let last = s.env.piece("", Some(finish_reason.as_str()), false);
                    s.pending.push_back(data(&last));
                    if s.include_usage {
                        let u = usage(prompt_tokens, completion_tokens);
                        s.pending
                            .push_back(data(&s.env.wrap(true, json!([]), Some(u))));
                    }
                    s.pending.push_back(SseEvent::default().data("[DONE]"));
                }
                Some(Event::Failed(m)) => {
                    s.ended = true;
                    let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m);
                    s.pending.push_back(data(&e.body()));
                }
                None => s.ended = true,
            }
        }
    })
}

#[derive(Deserialize)]
struct TokenizeRequest {
    content: String,
    /// Prepend BOS (default false, as `zhllama-rs --tokenize`).
    #[serde(default)]
    add_special: bool,
}

async fn tokenize(
    State(st): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("tokenize");
    st.authorize(&headers)?;
    let req: TokenizeRequest = parse(body)?;
    let e = st.engine()?;
    Ok(Json(
        json!({"tokens": e.tokenizer.encode(&req.content, req.add_special, false)}),
    ))
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<u32>,
}

async fn detokenize(
    State(st): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("detokenize");
    st.authorize(&headers)?;
    let req: DetokenizeRequest = parse(body)?;
    let e = st.engine()?;
    let text = e
        .tokenizer
        .decode(&req.tokens)
        .map_err(|err| ApiError::bad("tokens", err.to_string()))?;
    Ok(Json(json!({"content": text})))
}
