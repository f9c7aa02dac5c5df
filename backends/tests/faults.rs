#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Fault injection against a local upstream: every failure must come back as the right typed
//! error within its (short, configured) timeout, and nothing that has started streaming is
//! ever retried (the upstream counts its hits).

mod common;

use std::time::Duration;

use axum::body::Bytes;
use backends::anthropic::AnthropicBackend;
use backends::openai::OpenAiBackend;
use backends::remote::RemoteConfig;
use backends::{collect_stream, Backend, BackendError, ChatEvent, ChatRequest, TimeoutPhase};
use common::*;

/// A generous outer bound so a broken timeout fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(10);

fn short(upstream: &TestUpstream) -> RemoteConfig {
    let mut config = config(&upstream.base_url, "upstream-model");
    config.timeouts.first_byte = Duration::from_millis(300);
    config.timeouts.idle = Duration::from_millis(300);
    config.timeouts.total = Duration::from_secs(5);
    config
}

fn openai(config: RemoteConfig) -> OpenAiBackend {
    OpenAiBackend::new(config).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest::user("auto", "Say hello")
}

/// The first events of a real recorded stream, for faults that strike mid-stream.
fn recorded_head() -> Vec<Bytes> {
    let raw = read_fixture("openai/chat_completions_stream/test_parse_nothing.sse");
    let text = String::from_utf8(raw).unwrap();
    text.split_inclusive("\n\n")
        .take(4)
        .map(|event| Bytes::from(event.to_string()))
        .collect()
}

fn tokens(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Token { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn hang_before_headers_is_a_first_byte_timeout_without_retry() {
    let upstream = TestUpstream::start(vec![Reply::HangBeforeHeaders]).await;
    let backend = openai(short(&upstream));
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(GUARD, backend.chat_stream(request()))
        .await
        .expect("timeout not enforced")
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            BackendError::Timeout {
                phase: TimeoutPhase::FirstByte,
                after
            } if after == Duration::from_millis(300)
        ),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The request reached the upstream, which may be working on it: no second attempt.
    assert_eq!(upstream.hit_count(), 1);
    assert_eq!(err.http_status(), 504);
}

#[tokio::test]
async fn hang_mid_stream_is_an_idle_timeout_after_the_tokens_already_sent() {
    let upstream = TestUpstream::start(vec![Reply::sse_chunks(
        recorded_head(),
        Duration::ZERO,
        End::Hang,
    )])
    .await;
    let backend = openai(short(&upstream));
    let stream = backend.chat_stream(request()).await.unwrap();
    let (events, error) = tokio::time::timeout(GUARD, drain(stream)).await.unwrap();
    assert_eq!(tokens(&events), "I'm unable to");
    assert!(
        matches!(
            error,
            Some(BackendError::Timeout {
                phase: TimeoutPhase::Idle,
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(
        upstream.hit_count(),
        1,
        "streamed output must not be retried"
    );
}

#[tokio::test]
async fn a_trickling_stream_hits_the_total_deadline() {
    // A chunk every 50 ms (well inside the idle timeout) that never ends.
    let chunks: Vec<Bytes> = (0..1000)
        .map(|_| Bytes::from_static(b": keep-alive\n\n"))
        .collect();
    let upstream = TestUpstream::start(vec![Reply::sse_chunks(
        chunks,
        Duration::from_millis(50),
        End::Finish,
    )])
    .await;
    let mut config = short(&upstream);
    config.timeouts.total = Duration::from_millis(500);
    let backend = openai(config);
    let stream = backend.chat_stream(request()).await.unwrap();
    let (_, error) = tokio::time::timeout(GUARD, drain(stream)).await.unwrap();
    assert!(
        matches!(
            error,
            Some(BackendError::Timeout {
                phase: TimeoutPhase::Total,
                after
            }) if after == Duration::from_millis(500)
        ),
        "{error:?}"
    );
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn connection_reset_mid_stream_is_a_connection_error_without_retry() {
    let upstream = TestUpstream::start(vec![Reply::sse_chunks(
        recorded_head(),
        Duration::from_millis(10),
        End::Reset,
    )])
    .await;
    let backend = openai(short(&upstream));
    let stream = backend.chat_stream(request()).await.unwrap();
    let (events, error) = tokio::time::timeout(GUARD, drain(stream)).await.unwrap();
    assert_eq!(tokens(&events), "I'm unable to");
    assert!(
        matches!(error, Some(BackendError::Connection(_))),
        "{error:?}"
    );
    assert_eq!(
        upstream.hit_count(),
        1,
        "streamed output must not be retried"
    );
}

#[tokio::test]
async fn malformed_json_in_a_data_line_is_a_protocol_error() {
    let mut chunks = recorded_head();
    chunks.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oops\"\n\n",
    ));
    let upstream =
        TestUpstream::start(vec![Reply::sse_chunks(chunks, Duration::ZERO, End::Finish)]).await;
    let backend = openai(short(&upstream));
    let stream = backend.chat_stream(request()).await.unwrap();
    let (events, error) = tokio::time::timeout(GUARD, drain(stream)).await.unwrap();
    assert_eq!(tokens(&events), "I'm unable to");
    match error {
        Some(BackendError::Protocol(message)) => {
            assert!(message.contains("malformed JSON"), "{message}");
            assert!(
                message.contains("oops"),
                "the bad line is quoted: {message}"
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn a_stream_without_done_is_a_protocol_error() {
    let upstream = TestUpstream::start(vec![Reply::sse_chunks(
        recorded_head(),
        Duration::ZERO,
        End::Finish,
    )])
    .await;
    let backend = openai(short(&upstream));
    let stream = backend.chat_stream(request()).await.unwrap();
    let err = collect_stream(stream, "m").await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Protocol(m) if m.contains("[DONE]")),
        "{err:?}"
    );
}

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";

#[tokio::test]
async fn html_502_page_is_retried_then_typed_with_its_body() {
    let upstream = TestUpstream::start(vec![Reply::Respond {
        status: 502,
        headers: vec![("content-type".into(), "text/html".into())],
        chunks: vec![Bytes::from_static(HTML_502.as_bytes())],
        gap: Duration::ZERO,
        end: End::Finish,
    }])
    .await;
    let backend = openai(short(&upstream));
    let err = tokio::time::timeout(GUARD, backend.chat_stream(request()))
        .await
        .unwrap()
        .err()
        .unwrap();
    match &err {
        BackendError::UpstreamStatus { status, body } => {
            assert_eq!(*status, 502);
            assert!(body.contains("502 Bad Gateway"), "{body}");
        }
        other => panic!("expected UpstreamStatus, got {other:?}"),
    }
    // Nothing was streamed yet, so retrying is safe: every attempt was used.
    assert_eq!(upstream.hit_count(), 3);
    assert_eq!(err.http_status(), 502);
}

#[tokio::test]
async fn a_502_then_success_recovers() {
    let raw = wire_sse(&read_fixture(
        "openai/chat_completions_stream/test_parse_nothing.sse",
    ));
    let upstream = TestUpstream::start(vec![
        Reply::Respond {
            status: 502,
            headers: vec![("content-type".into(), "text/html".into())],
            chunks: vec![Bytes::from_static(HTML_502.as_bytes())],
            gap: Duration::ZERO,
            end: End::Finish,
        },
        Reply::sse(raw),
    ])
    .await;
    let backend = openai(short(&upstream));
    let response = collect_stream(backend.chat_stream(request()).await.unwrap(), "m")
        .await
        .unwrap();
    assert!(response
        .text()
        .starts_with("I'm unable to provide real-time weather updates."));
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn unauthorized_is_typed_with_the_upstream_error_body_and_not_retried() {
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let upstream = TestUpstream::start(vec![Reply::json(401, body)]).await;
    let backend = openai(short(&upstream));
    let err = backend.chat(request()).await.unwrap_err();
    match &err {
        BackendError::UpstreamStatus { status, body: got } => {
            assert_eq!(*status, 401);
            assert_eq!(got, body);
        }
        other => panic!("expected UpstreamStatus, got {other:?}"),
    }
    assert_eq!(err.http_status(), 401);
    assert_eq!(err.openai_type(), "authentication_error");
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn x_should_retry_false_is_honoured() {
    let upstream = TestUpstream::start(vec![
        Reply::json(503, r#"{"error":"maintenance"}"#).with_header("x-should-retry", "false")
    ])
    .await;
    let err = openai(short(&upstream)).chat(request()).await.unwrap_err();
    assert!(matches!(
        err,
        BackendError::UpstreamStatus { status: 503, .. }
    ));
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn connection_refused_is_a_connection_error_after_retries() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = RemoteConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    config.retry.base_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_millis(20);
    let err = tokio::time::timeout(GUARD, openai(config).chat(request()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, BackendError::Connection(_)), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn anthropic_overloaded_529_and_stream_truncation_are_typed() {
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let upstream = TestUpstream::start(vec![Reply::json(529, overloaded)]).await;
    let backend = AnthropicBackend::new(short(&upstream)).unwrap();
    let err = backend.chat(request()).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::RateLimited { status: 529, body, .. } if body.contains("overloaded_error")),
        "{err:?}"
    );
    assert_eq!(
        upstream.hit_count(),
        3,
        "529 is retried while nothing was streamed"
    );

    // A real transcript cut after its first text delta, then the connection closes.
    let raw = read_fixture("anthropic/stream_sse/basic_response.sse");
    let text = String::from_utf8(raw).unwrap();
    let head: String = text.split_inclusive("\n\n").take(4).collect();
    let upstream = TestUpstream::start(vec![Reply::sse(head)]).await;
    let backend = AnthropicBackend::new(short(&upstream)).unwrap();
    let (events, error) = drain(backend.chat_stream(request()).await.unwrap()).await;
    assert_eq!(tokens(&events), "Hello");
    assert!(
        matches!(&error, Some(BackendError::Protocol(m)) if m.contains("message_stop")),
        "{error:?}"
    );
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn configuration_errors_name_the_problem() {
    let err = OpenAiBackend::new(RemoteConfig::new("api.openai.com/v1", "m")).unwrap_err();
    assert!(err.to_string().contains("base_url"), "{err}");
    let mut config = RemoteConfig::new("http://127.0.0.1:1/v1", "m");
    config.api_key_env = Some("TRIAGE_TEST_SURELY_UNSET_KEY_VAR".into());
    let err = OpenAiBackend::new(config).unwrap_err();
    assert!(
        err.to_string().contains("TRIAGE_TEST_SURELY_UNSET_KEY_VAR"),
        "{err}"
    );
    let mut config = RemoteConfig::new("http://127.0.0.1:1/v1", "m");
    config.headers.insert("bad header".into(), "x".into());
    let err = AnthropicBackend::new(config).unwrap_err();
    assert!(err.to_string().contains("bad header"), "{err}");
}

#[tokio::test]
async fn retries_stop_at_the_total_deadline() {
    // The upstream keeps asking for 200 ms; the deadline leaves room for one wait only.
    let upstream = TestUpstream::start(vec![
        Reply::json(503, r#"{"error":"busy"}"#).with_header("retry-after-ms", "200")
    ])
    .await;
    let mut config = short(&upstream);
    config.retry.max_attempts = 10;
    config.timeouts.total = Duration::from_millis(350);
    let err = tokio::time::timeout(GUARD, openai(config).chat(request()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, BackendError::UpstreamStatus { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn time_to_first_byte_and_time_to_first_token_differ() {
    // Headers and a keep-alive comment at once, the first token 150 ms later (as real APIs do
    // while the prompt is processed).
    let raw = wire_sse(&read_fixture(
        "openai/chat_completions_stream/test_content_logprobs_events.sse",
    ));
    let chunks = vec![Bytes::from_static(b": processing\n\n"), Bytes::from(raw)];
    let upstream = TestUpstream::start(vec![Reply::sse_chunks(
        chunks,
        Duration::from_millis(150),
        End::Finish,
    )])
    .await;
    let stream = openai(short(&upstream))
        .chat_stream(request())
        .await
        .unwrap();
    let response = collect_stream(stream, "m").await.unwrap();
    let t = response.timings;
    let (first_byte, first_token) = (t.first_byte.unwrap(), t.first_token.unwrap());
    assert!(first_token - first_byte >= Duration::from_millis(150));
    assert_eq!(response.text(), "Foo!");
    assert_eq!(response.token_logprobs, vec![-0.0025094282, -0.26638845]);
}

#[tokio::test]
async fn an_unanswered_connect_is_a_connect_timeout_after_retries() {
    // A listener that never accepts, with a full accept queue: further SYNs go unanswered
    // (Linux drops them), so connecting hangs until the connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let mut config = RemoteConfig::new(format!("http://{addr}/v1"), "m");
    config.timeouts.connect = Duration::from_millis(200);
    config.retry.max_attempts = 2;
    config.retry.base_delay = Duration::from_millis(5);
    let err = tokio::time::timeout(GUARD, openai(config).chat(request()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::Timeout {
                phase: TimeoutPhase::Connect,
                after
            } if after == Duration::from_millis(200)
        ),
        "{err:?}"
    );
    drop(fillers);
}
