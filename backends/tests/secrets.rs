#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The API key is read once from its environment variable, sent only in the auth header, and
//! appears nowhere else: not in any log line (every `tracing` and `log` record at TRACE level,
//! reqwest's and hyper's included, is captured), not in any error's `Display` or `Debug`, not
//! in the `Debug` of a backend or its configuration — even when the upstream echoes the key
//! back in its error body.
//!
//! This file is its own test binary because it installs the global log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backends::anthropic::AnthropicBackend;
use backends::openai::OpenAiBackend;
use backends::remote::RemoteConfig;
use backends::{collect_stream, Backend, BackendError, ChatRequest};
use common::*;

const OPENAI_VAR: &str = "TRIAGE_KEYTEST_OPENAI";
const ANTHROPIC_VAR: &str = "TRIAGE_KEYTEST_ANTHROPIC";
const OPENAI_KEY: &str = "sk-proj-SECRET0penAiKey4f1d9c2b7a";
const ANTHROPIC_KEY: &str = "sk-ant-api03-SECRETanthr0picKey88e1";

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn with_key(config: &mut RemoteConfig, var: &str) {
    config.api_key_env = Some(var.into());
    config.timeouts.first_byte = Duration::from_millis(300);
    config.timeouts.idle = Duration::from_millis(300);
}

#[tokio::test]
async fn the_key_never_leaves_the_auth_header() {
    let logs = Buffer::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();
    std::env::set_var(OPENAI_VAR, OPENAI_KEY);
    std::env::set_var(ANTHROPIC_VAR, ANTHROPIC_KEY);

    let mut errors: Vec<BackendError> = Vec::new();
    let mut debug_dumps: Vec<String> = Vec::new();

    // 1. A successful OpenAI stream.
    let stream = wire_sse(&read_fixture(
        "openai/chat_completions_stream/test_parse_nothing.sse",
    ));
    let upstream = TestUpstream::start(vec![Reply::sse(stream)]).await;
    let mut config = common::config(&upstream.base_url, "gpt-4o-mini");
    with_key(&mut config, OPENAI_VAR);
    debug_dumps.push(format!("{config:?}"));
    let backend = OpenAiBackend::new(config).unwrap();
    debug_dumps.push(format!("{backend:?}"));
    let response = collect_stream(
        backend
            .chat_stream(ChatRequest::user("auto", "hi"))
            .await
            .unwrap(),
        "m",
    )
    .await
    .unwrap();
    assert!(!response.text().is_empty());
    let hit = &upstream.hits()[0];
    assert_eq!(
        hit.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}"))
    );
    assert!(!String::from_utf8_lossy(&hit.body).contains(OPENAI_KEY));
    assert!(!hit.path.contains(OPENAI_KEY));
    let elsewhere = hit
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "authorization")
        .any(|(_, v)| v.to_str().unwrap_or_default().contains(OPENAI_KEY));
    assert!(!elsewhere, "key sent in another header");

    // 2. A 401 whose body echoes the whole key back.
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {OPENAI_KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let upstream = TestUpstream::start(vec![Reply::json(401, echo)]).await;
    let mut config = common::config(&upstream.base_url, "gpt-4o-mini");
    with_key(&mut config, OPENAI_VAR);
    let backend = OpenAiBackend::new(config).unwrap();
    let err = backend
        .chat(ChatRequest::user("auto", "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::UpstreamStatus { status: 401, body } if body.contains("Incorrect API key provided: [redacted]")),
        "{err:?}"
    );
    errors.push(err);

    // 3. Anthropic: rate limited with retries, then a timeout, then a malformed stream.
    let upstream = TestUpstream::start(vec![Reply::json(
        429,
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
    )])
    .await;
    let mut config = common::config(&upstream.base_url, "claude-haiku-4-5");
    with_key(&mut config, ANTHROPIC_VAR);
    let backend = AnthropicBackend::new(config.clone()).unwrap();
    debug_dumps.push(format!("{backend:?}"));
    errors.push(
        backend
            .chat(ChatRequest::user("auto", "hi"))
            .await
            .unwrap_err(),
    );
    assert_eq!(upstream.hit_count(), 3);
    assert_eq!(
        upstream.hits()[0].header("x-api-key").as_deref(),
        Some(ANTHROPIC_KEY)
    );

    let upstream = TestUpstream::start(vec![Reply::HangBeforeHeaders]).await;
    config.base_url = upstream.base_url.clone();
    let backend = AnthropicBackend::new(config.clone()).unwrap();
    errors.push(
        backend
            .chat(ChatRequest::user("auto", "hi"))
            .await
            .unwrap_err(),
    );

    let upstream = TestUpstream::start(vec![Reply::sse(
        "event: message_start\ndata: {not json\n\n",
    )])
    .await;
    config.base_url = upstream.base_url.clone();
    let backend = AnthropicBackend::new(config.clone()).unwrap();
    let (_, err) = drain(
        backend
            .chat_stream(ChatRequest::user("auto", "hi"))
            .await
            .unwrap(),
    )
    .await;
    errors.push(err.unwrap());

    // 4. Nobody listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    config.base_url = format!("http://127.0.0.1:{port}/v1");
    config.retry.max_attempts = 2;
    let backend = AnthropicBackend::new(config).unwrap();
    errors.push(
        backend
            .chat(ChatRequest::user("auto", "hi"))
            .await
            .unwrap_err(),
    );

    assert_eq!(errors.len(), 5);
    for err in &errors {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(OPENAI_KEY), "key in error: {text}");
            assert!(!text.contains(ANTHROPIC_KEY), "key in error: {text}");
        }
    }
    for dump in &debug_dumps {
        assert!(
            !dump.contains(OPENAI_KEY) && !dump.contains(ANTHROPIC_KEY),
            "key in {dump}"
        );
        assert!(!dump.contains("SECRET"), "key fragment in {dump}");
    }

    let captured = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("TRIAGE_SHOW_CAPTURED_LOGS").is_some() {
        eprintln!("{captured}");
    }
    // The capture works: our own records and the HTTP stack's are in it.
    assert!(captured.contains("sending request upstream"), "{captured}");
    assert!(captured.contains("upstream attempt failed"), "{captured}");
    assert!(
        captured.lines().count() > 20,
        "too little captured:\n{captured}"
    );
    assert!(!captured.contains(OPENAI_KEY), "key in logs");
    assert!(!captured.contains(ANTHROPIC_KEY), "key in logs");
    assert!(!captured.contains("SECRET"), "key fragment in logs");
}
