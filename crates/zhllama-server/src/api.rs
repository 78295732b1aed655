//! OpenAI request and response shapes, validation, and OpenAI-style errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// An error as OpenAI clients expect it: `{"error": {"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One line for a person.
    pub message: String,
    /// The field at fault, if one is.
    pub param: Option<&'static str>,
    /// OpenAI's short code (`invalid_api_key`, `model_not_found`, ...).
    pub code: Option<&'static str>,
    /// Seconds for `Retry-After` (429 / 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// 400 about `param`.
    pub fn bad(param: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message).param(param)
    }

    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    fn param(mut self, p: &'static str) -> Self {
        self.param = Some(p);
        self
    }

    /// With OpenAI's code.
    pub fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }

    /// With `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 413 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            503 => "server_unavailable",
            _ => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// `prompt`: a string, or a list holding one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    One(String),
    /// OpenAI's batch form; only one element is served.
    Many(Vec<String>),
}

/// `stop`: a string or a list of up to 4.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and no choices).
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling fields shared by both endpoints. Unknown fields are ignored, as OpenAI does
/// for fields it does not use; fields we cannot honour (`n` > 1) are refused.
#[derive(Debug, Default, Deserialize)]
pub struct Sampling {
    /// Which model; absent means the one loaded.
    pub model: Option<String>,
    /// New tokens at most; absent means until the context is full.
    pub max_tokens: Option<i64>,
    /// Chat's newer name for `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// 0 = greedy; default 1.0 (as zhllama-rs).
    pub temperature: Option<f64>,
    /// Default 0.9 (as zhllama-rs).
    pub top_p: Option<f64>,
    /// Absent or 0: from the clock; negative values wrap as in zhllama-rs.
    pub seed: Option<i64>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming extras.
    pub stream_options: Option<StreamOptions>,
    /// Choices per request: only 1.
    pub n: Option<i64>,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// The story's beginning; absent or empty: the model starts from BOS.
    pub prompt: Option<Prompt>,
    /// Sampling and streaming.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// A chat message's content: a string, or OpenAI's list of parts (text parts only).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts.
    Parts(Vec<Part>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct Part {
    /// Only "text".
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    #[serde(default)]
    pub text: String,
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// system, developer, user or assistant.
    pub role: String,
    /// What it says.
    pub content: Option<Content>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling and streaming.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// Validated sampling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Requested new tokens (before the context cap); `None`: the rest of the context.
    pub max_tokens: Option<usize>,
    /// Temperature.
    pub temperature: f32,
    /// Top-p.
    pub top_p: f32,
    /// Seed (0 = clock).
    pub seed: u64,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stream?
    pub stream: bool,
    /// A usage chunk at the end of a stream?
    pub include_usage: bool,
}

/// Checks the shared fields against what the engine can do.
pub fn validate(s: &Sampling, model_id: &str) -> Result<Settings, ApiError> {
    if let Some(m) = &s.model {
        if m != model_id {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the model '{m}' does not exist; this server serves '{model_id}'"),
            )
            .param("model")
            .code("model_not_found"));
        }
    }
    if let Some(n) = s.n {
        if n != 1 {
            return Err(ApiError::bad("n", "only n=1 is supported"));
        }
    }
    let max_tokens = match s.max_tokens.or(s.max_completion_tokens) {
        None => None,
        Some(m) if m < 1 => {
            return Err(ApiError::bad("max_tokens", "max_tokens must be at least 1"))
        }
        Some(m) => Some(usize::try_from(m).unwrap_or(usize::MAX)),
    };
    let temperature = s.temperature.unwrap_or(1.0);
    if !temperature.is_finite() || !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad(
            "temperature",
            "temperature must be between 0 and 2",
        ));
    }
    let top_p = s.top_p.unwrap_or(0.9);
    if !top_p.is_finite() || !(0.0..=1.0).contains(&top_p) {
        return Err(ApiError::bad("top_p", "top_p must be between 0 and 1"));
    }
    let stop = match &s.stop {
        None => vec![],
        Some(Stop::One(x)) => vec![x.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > 4 {
        return Err(ApiError::bad("stop", "at most 4 stop strings"));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::bad("stop", "a stop string must not be empty"));
    }
    Ok(Settings {
        max_tokens,
        // Parsed as double and narrowed, as zhllama-rs does with -t and -p.
        temperature: temperature as f32,
        top_p: top_p as f32,
        seed: s.seed.unwrap_or(0) as u64,
        stop,
        stream: s.stream,
        include_usage: s.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// The completion prompt.
pub fn completion_prompt(p: &Option<Prompt>) -> Result<String, ApiError> {
    match p {
        None => Ok(String::new()),
        Some(Prompt::One(s)) => Ok(s.clone()),
        Some(Prompt::Many(v)) if v.len() == 1 => Ok(v[0].clone()),
        Some(Prompt::Many(_)) => Err(ApiError::bad(
            "prompt",
            "send exactly one prompt per request",
        )),
    }
}

fn content_text(c: &Option<Content>) -> Result<String, ApiError> {
    match c {
        None => Ok(String::new()),
        Some(Content::Text(s)) => Ok(s.clone()),
        Some(Content::Parts(parts)) => {
            let mut out = String::new();
            for p in parts {
                if p.kind != "text" {
                    return Err(ApiError::bad("messages", "only text content is supported"));
                }
                out.push_str(&p.text);
            }
            Ok(out)
        }
    }
}

/// The chat template (README): the first system (or developer) message, if any, and the last
/// user message go through `zhllama_core::chat_prompt`, the Llama-2 `[INST]` turn that
/// `zhllama-rs -m chat` renders. These are story models: the user message is the story's
/// beginning, and earlier turns are not replayed.
pub fn chat_template(messages: &[Message]) -> Result<String, ApiError> {
    let mut system: Option<String> = None;
    let mut user: Option<String> = None;
    for m in messages {
        match m.role.as_str() {
            "system" | "developer" => {
                if system.is_none() {
                    system = Some(content_text(&m.content)?);
                }
            }
            "user" => user = Some(content_text(&m.content)?),
            "assistant" | "tool" => {}
            other => {
                return Err(ApiError::bad(
                    "messages",
                    format!("unknown role '{other}' (use system, user or assistant)"),
                ))
            }
        }
    }
    let user = user.ok_or_else(|| ApiError::bad("messages", "there is no user message"))?;
    Ok(zhllama_core::chat_prompt(system.as_deref(), &user))
}

/// `max_tokens` after the context cap: a prompt of `prompt_tokens` (BOS included) leaves
/// `seq_len - prompt_tokens + 1` new tokens; a prompt that fills more than the context is an
/// error.
pub fn cap_max_tokens(
    requested: Option<usize>,
    prompt_tokens: usize,
    seq_len: usize,
) -> Result<usize, ApiError> {
    if prompt_tokens > seq_len {
        return Err(ApiError::bad(
            "prompt",
            format!("the prompt is {prompt_tokens} tokens; the model's context is {seq_len}"),
        )
        .code("context_length_exceeded"));
    }
    let room = seq_len - prompt_tokens + 1;
    Ok(requested.map_or(room, |m| m.min(room)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(v: Value) -> Sampling {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_zhllama_rs_defaults() {
        let s = validate(&sampling(json!({})), "m").unwrap();
        assert_eq!(
            (s.temperature, s.top_p, s.seed, s.max_tokens),
            (1.0, 0.9, 0, None)
        );
    }

    #[test]
    fn bad_fields_name_their_param() {
        for (v, param) in [
            (json!({"temperature": -1}), "temperature"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"n": 2}), "n"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"stop": ""}), "stop"),
        ] {
            let e = validate(&sampling(v.clone()), "m").unwrap_err();
            assert_eq!(
                (e.status, e.param),
                (StatusCode::BAD_REQUEST, Some(param)),
                "{v}"
            );
        }
    }

    #[test]
    fn an_unknown_model_is_404() {
        let e = validate(&sampling(json!({"model": "gpt-4"})), "m").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body()["error"]["code"], "model_not_found");
        assert!(validate(&sampling(json!({"model": "m"})), "m").is_ok());
    }

    #[test]
    fn negative_seeds_wrap_like_the_cli() {
        let s = validate(&sampling(json!({"seed": -1})), "m").unwrap();
        assert_eq!(s.seed, u64::MAX);
    }

    #[test]
    fn max_tokens_is_capped_by_the_context() {
        assert_eq!(cap_max_tokens(Some(1000), 10, 256), Ok(247));
        assert_eq!(cap_max_tokens(Some(5), 10, 256), Ok(5));
        assert_eq!(cap_max_tokens(None, 1, 256), Ok(256));
        assert_eq!(cap_max_tokens(None, 256, 256), Ok(1));
        assert_eq!(
            cap_max_tokens(None, 257, 256).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn the_chat_template_uses_the_first_system_and_last_user_message() {
        let msgs: Vec<Message> = serde_json::from_value(json!([
            {"role": "system", "content": "讲故事"},
            {"role": "user", "content": "从前"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": [{"type": "text", "text": "小猫"}]},
        ]))
        .unwrap();
        assert_eq!(
            chat_template(&msgs).unwrap(),
            zhllama_core::chat_prompt(Some("讲故事"), "小猫")
        );
        let none: Vec<Message> =
            serde_json::from_value(json!([{"role": "system", "content": "x"}])).unwrap();
        assert_eq!(chat_template(&none).unwrap_err().param, Some("messages"));
        let odd: Vec<Message> =
            serde_json::from_value(json!([{"role": "robot", "content": "x"}])).unwrap();
        assert!(chat_template(&odd).is_err());
    }

    #[test]
    fn only_one_prompt_per_request() {
        assert_eq!(
            completion_prompt(&Some(Prompt::Many(vec!["a".into()]))).unwrap(),
            "a"
        );
        assert!(completion_prompt(&Some(Prompt::Many(vec!["a".into(), "b".into()]))).is_err());
        assert_eq!(completion_prompt(&None).unwrap(), "");
    }
}
