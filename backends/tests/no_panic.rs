#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! No panic reachable from input (issue 14, item 1): property tests over arbitrary Unicode and
//! arbitrary bytes for every backends function that reads request or upstream text — the
//! stop-string matcher (`llama::text::TextAssembler`), the SSE decoders of both protocols
//! (arbitrary bytes; valid streams of arbitrary text cut anywhere decode to the events of the
//! whole), the non-streaming response parsers, `Retry-After`, and, on the real SmolLM2 model,
//! the chat template and its split into template and message pieces
//! (`PromptFormat::render_pieces`) and the request tokenization (`LlamaEngine::prompt_tokens`).
//!
//! Case counts are chosen so each property runs in about a second in the release profile (`make
//! test`); `PROPTEST_CASES=100000 cargo test --release -p backends --test no_panic` runs more.

mod common;

use std::time::{Duration, SystemTime};

use backends::llama::text::{Assembled, TextAssembler};
use backends::remote::retry_after;
use backends::{anthropic, openai, BackendError};
use bytes::Bytes;
use common::{split_at, strip, Ev};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

/// `cases` per property unless `PROPTEST_CASES` asks for another number ("more on demand").
fn cases(cases: u32) -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(cases)
    }
}

/// Pieces of hostile text: CJK, combining marks, right-to-left text and controls, emoji with
/// ZWJ sequences, zero-width and format characters, control characters, turn markers.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "中", "文字", "한국어", "e\u{301}", "\u{301}", "é", "\u{0627}\u{0644}", "עברית",
            "\u{200F}", "\u{202E}", "😀", "👩‍👩‍👧", "🇩🇪", "\u{FE0F}", "１２", "\u{200B}",
            "\u{FEFF}", "\u{00A0}", "\u{0}", "\u{1B}[31m", "\r\n", "\r", "\n", "\n\n", "\t", " ",
            "\u{FFFD}", "\u{E000}0\u{E001}", "\u{E000}1\u{E001}", "\u{10FFFF}", "<|im_end|>",
            "<|im_start|>", "<|endoftext|>", "<|im", "|>", "<", "Input:", "Answer:",
            "data: ", "event: ", "[DONE]", "{", "}", "\"", "\\", "END",
        ])
        .prop_map(String::from),
        2 => any::<char>().prop_map(String::from),
        1 => "\\PC{0,6}",
    ]
}

/// Hostile text made of up to `max` pieces.
fn hostile(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..max).prop_map(|p| p.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), hostile(24)]
}

// ---------------------------------------------------------------------------------------------
// The stop-string matcher.

/// Run the assembler over `tokens`: the text it released and whether a stop string ended it.
fn assemble(stops: &[String], skip: bool, tokens: &[Vec<u8>]) -> (String, bool) {
    let mut a = TextAssembler::new(stops.to_vec()).skipping_leading_whitespace(skip);
    let mut out = String::new();
    for t in tokens {
        match a.push(t) {
            Assembled::Text(s) => out.push_str(&s),
            Assembled::Stopped { text, stop } => {
                out.push_str(&text);
                assert_eq!(a.released_len(), out.len());
                assert!(stops.contains(&stop), "{stop:?} is one of {stops:?}");
                return (out, true);
            }
        }
    }
    out.push_str(&a.finish());
    assert_eq!(a.released_len(), out.len());
    (out, false)
}

/// Token bytes: pieces of valid text cut anywhere, or arbitrary bytes (lone high bytes, cut
/// sequences).
fn tokens() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        (hostile(24), prop::collection::vec(any::<usize>(), 0..16)).prop_map(|(t, cuts)| {
            split_at(t.as_bytes(), &cuts)
                .into_iter()
                .map(|b| b.to_vec())
                .collect()
        }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..16),
    ]
}

fn stops() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop_oneof![hostile(3), any::<String>()], 0..4)
}

proptest! {
    #![proptest_config(cases(5000))]

    /// The released text is a prefix of the decoded tokens (invalid UTF-8 as U+FFFD) with no
    /// stop string in it; a stop string follows it when generation stopped, and otherwise the
    /// text has no stop string at all and everything was released.
    #[test]
    fn stop_matcher_any_tokens(stops in stops(), skip in any::<bool>(), tokens in tokens()) {
        let (out, stopped) = assemble(&stops, skip, &tokens);
        let whole = String::from_utf8_lossy(&tokens.concat()).into_owned();
        let whole = if skip { whole.trim_start().to_string() } else { whole };
        let stops: Vec<&String> = stops.iter().filter(|s| !s.is_empty()).collect();
        prop_assert!(whole.starts_with(&out), "{out:?} is not a prefix of {whole:?}");
        prop_assert!(stops.iter().all(|s| !out.contains(s.as_str())), "{out:?} holds a stop of {stops:?}");
        if stopped {
            let rest = &whole[out.len()..];
            prop_assert!(stops.iter().any(|s| rest.starts_with(s.as_str())), "{rest:?} after a stop");
        } else {
            prop_assert_eq!(&out, &whole);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SSE decoders and response parsers.

#[derive(Clone, Copy, Debug)]
enum Protocol {
    OpenAi,
    Anthropic,
}

/// Decode `chunks`: the events (without instants) and the error the stream ended with. A
/// stream yields nothing after its error.
fn decode(protocol: Protocol, chunks: Vec<Bytes>) -> (Vec<Ev>, Option<String>) {
    let input = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, BackendError>));
    let stream: backends::EventStream = match protocol {
        Protocol::OpenAi => Box::pin(openai::decode_stream(input)),
        Protocol::Anthropic => Box::pin(anthropic::decode_stream(input)),
    };
    let (events, error) = futures::executor::block_on(common::drain(stream));
    (
        events.iter().map(strip).collect(),
        error.map(|e| e.to_string()),
    )
}

/// Bytes that look like SSE: field names, separators, JSON fragments, line ends of every kind
/// and bytes that are not UTF-8.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        3 => prop::sample::select(vec![
            "data: ", "data:", "event: ", "id: ", "retry: ", ": comment", "\n", "\r\n", "\r",
            "\n\n", "[DONE]", "{", "}", "[", "]", ",", ":", "\"", "null", "0", "-1", "1e999",
            "4294967296", "\"choices\"", "\"delta\"", "\"content\"", "\"index\"",
            "\"finish_reason\"", "\"stop\"", "\"usage\"", "\"prompt_tokens\"", "\"type\"",
            "\"message_start\"", "\"message_delta\"", "\"message_stop\"", "\"content_block_start\"",
            "\"content_block_delta\"", "\"text_delta\"", "\"input_json_delta\"", "\"tool_use\"",
            "\"error\"", "\"input_tokens\"", "\"output_tokens\"", "\"tool_calls\"", "\"logprobs\"",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => hostile(3).prop_map(String::into_bytes),
        1 => prop::sample::select(vec![vec![0xffu8], vec![0x80], vec![0xe4, 0xb8], vec![0xed, 0xa0, 0x80]]),
    ];
    prop::collection::vec(part, 0..40).prop_map(|p| p.concat())
}

/// Arbitrary JSON values whose keys are often the fields upstream bodies have.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile(6).prop_map(Value::String),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "id", "object", "model", "choices", "index", "message", "delta", "role", "content",
            "refusal", "tool_calls", "function", "name", "arguments", "finish_reason", "logprobs",
            "logprob", "usage", "prompt_tokens", "completion_tokens", "total_tokens", "type",
            "text", "stop_reason", "stop_details", "input", "input_tokens", "output_tokens",
            "cache_read_input_tokens", "cache_creation_input_tokens", "error", "triage",
        ])
        .prop_map(String::from),
        1 => hostile(2),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An SSE body of `data:` events holding the given JSON values (with an event name each).
fn sse_of(values: &[(Option<String>, Value)], done: bool) -> Vec<u8> {
    let mut out = String::new();
    for (event, v) in values {
        if let Some(e) = event {
            out.push_str(&format!("event: {e}\n"));
        }
        out.push_str(&format!("data: {v}\n\n"));
    }
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}

/// A valid OpenAI stream of the given token texts: the events it must decode to.
fn openai_stream(texts: &[String], usage: (u32, u32)) -> Vec<u8> {
    let mut values: Vec<(Option<String>, Value)> = texts
        .iter()
        .map(|t| {
            (
                None,
                json!({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]}),
            )
        })
        .collect();
    values.push((
        None,
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ));
    values.push((
        None,
        json!({"choices": [], "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": u64::from(usage.0) + u64::from(usage.1)}}),
    ));
    sse_of(&values, true)
}

/// A valid Anthropic stream of the given text deltas.
fn anthropic_stream(texts: &[String], usage: (u32, u32)) -> Vec<u8> {
    let mut values = vec![
        json!({"type": "message_start", "message": {"usage": {"input_tokens": usage.0, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ];
    values.extend(texts.iter().map(|t| {
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
    }));
    values.push(json!({"type": "content_block_stop", "index": 0}));
    values.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": usage.1}}));
    values.push(json!({"type": "message_stop"}));
    let named: Vec<(Option<String>, Value)> = values
        .into_iter()
        .map(|v| (v["type"].as_str().map(str::to_string), v))
        .collect();
    sse_of(&named, false)
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::OpenAi), Just(Protocol::Anthropic)]
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn sse_decoders_any_bytes(
        protocol in protocol(),
        body in prop_oneof![prop::collection::vec(any::<u8>(), 0..300), sse_like()],
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let (_, error) = decode(protocol, split_at(&body, &cuts));
        // Arbitrary bytes end either at a terminal event or with an error naming the problem.
        if let Some(e) = error {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn sse_decoders_any_json_events(
        protocol in protocol(),
        values in prop::collection::vec((prop::option::of(hostile(2)), json()), 0..6),
        done in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let body = sse_of(&values, done);
        let whole = decode(protocol, vec![Bytes::from(body.clone())]);
        let chunked = decode(protocol, split_at(&body, &cuts));
        prop_assert_eq!(chunked, whole);
    }

    /// A valid stream of arbitrary text, cut anywhere (inside characters, inside `\r\n`, inside
    /// `data:`), decodes to the events of the whole stream: the texts in order, then the end.
    #[test]
    fn valid_streams_cut_anywhere_decode_to_the_same_events(
        protocol in protocol(),
        texts in prop::collection::vec(text(), 0..6),
        usage in (any::<u32>(), any::<u32>()),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        crlf in any::<bool>(),
    ) {
        let mut body = match protocol {
            Protocol::OpenAi => openai_stream(&texts, usage),
            Protocol::Anthropic => anthropic_stream(&texts, usage),
        };
        if crlf {
            body = String::from_utf8(body).unwrap().replace('\n', "\r\n").into_bytes();
        }
        let whole = decode(protocol, vec![Bytes::from(body.clone())]);
        prop_assert_eq!(&whole.1, &None);
        let tokens: Vec<String> = whole.0.iter().filter_map(|e| match e {
            Ev::Token(_, t, _) => Some(t.clone()),
            _ => None,
        }).collect();
        let expected: Vec<String> = texts.iter().filter(|t| !t.is_empty()).cloned().collect();
        prop_assert_eq!(tokens, expected);
        prop_assert!(whole.0.iter().any(|e| matches!(e, Ev::Done(..))));
        let chunked = decode(protocol, split_at(&body, &cuts));
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn response_parsers_any_input(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
    ) {
        for result in [openai::parse_response(&body), anthropic::parse_response(&body)] {
            if let Err(e) = result {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn retry_after_any_header(
        value in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::sample::select(vec![
                "1e30", "-1", "NaN", "inf", "-inf", "1e-30", "18446744073709551616", "0",
                "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT", " 5 ", "5s", "",
            ]).prop_map(|s| s.as_bytes().to_vec()),
            any::<f64>().prop_map(|x| x.to_string().into_bytes()),
        ],
        ms in any::<bool>(),
        now in 0u64..(u64::from(u32::MAX) * 4),
    ) {
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert(if ms { "retry-after-ms" } else { "retry-after" }, value);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        if let Some(wait) = retry_after(&headers, now) {
            prop_assert!(wait <= Duration::from_secs(24 * 60 * 60));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The chat template and tokenization on the real model.

#[cfg(feature = "llama")]
mod llama {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use backends::llama::prompt::Piece;
    use backends::llama::{load_model, LlamaEngine, LlamaEngineConfig, PromptFormat};
    use backends::{ChatMessage, ChatRequest, CompletionMode, Role};
    use llama_cpp_2::model::LlamaModel;
    use proptest::prelude::*;

    use super::{cases, hostile, text};

    fn smollm2() -> PathBuf {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(
            path.exists(),
            "{} is missing: run `make setup` (scripts/setup.sh) first",
            path.display()
        );
        path
    }

    fn model() -> &'static LlamaModel {
        static MODEL: OnceLock<LlamaModel> = OnceLock::new();
        MODEL.get_or_init(|| load_model(&smollm2()).unwrap())
    }

    /// One slot, a small context: only the caller-side tokenization is used.
    fn engine() -> &'static LlamaEngine {
        static ENGINE: OnceLock<LlamaEngine> = OnceLock::new();
        ENGINE.get_or_init(|| {
            let mut config = LlamaEngineConfig::new(smollm2());
            config.slots = 1;
            config.queue_capacity = 1;
            config.context_per_slot = 256;
            LlamaEngine::load(config).unwrap()
        })
    }

    fn messages() -> impl Strategy<Value = Vec<ChatMessage>> {
        let role = prop::sample::select(vec![
            Role::System,
            Role::Developer,
            Role::User,
            Role::Assistant,
            Role::Tool,
        ]);
        prop::collection::vec(
            (role, prop_oneof![text(), hostile(12)]).prop_map(|(r, t)| ChatMessage::new(r, t)),
            1..4,
        )
    }

    fn format() -> impl Strategy<Value = PromptFormat> {
        prop_oneof![
            Just(PromptFormat::for_model(model(), None, CompletionMode::Auto)),
            Just(PromptFormat::ChatMl),
            Just(PromptFormat::Builtin("gemma")),
            Just(PromptFormat::Completion),
        ]
    }

    proptest! {
        #![proptest_config(cases(1000))]

        /// Rendering any messages is a prompt or an error; when the prompt can be split into
        /// template and message pieces, the pieces join to the prompt and hold each message's
        /// text (as given, or trimmed) in order.
        #[test]
        fn template_and_pieces_any_messages(format in format(), messages in messages()) {
            let Ok(rendered) = format.render(model(), &messages) else {
                return Ok(());
            };
            let Some(pieces) = format.render_pieces(model(), &messages, &rendered).unwrap() else {
                return Ok(());
            };
            let joined: String = pieces
                .iter()
                .map(|p| match p {
                    Piece::Template(t) | Piece::Content(t) => t.as_str(),
                })
                .collect();
            prop_assert_eq!(&joined, &rendered);
            let contents: Vec<&str> = pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Content(t) => Some(t.as_str()),
                    Piece::Template(_) => None,
                })
                .collect();
            prop_assert!(contents.len() <= messages.len());
        }
    }

    proptest! {
        #![proptest_config(cases(300))]

        /// Tokenizing any request's prompt gives tokens of the vocabulary or a typed error.
        #[test]
        fn prompt_tokens_any_request(messages in messages()) {
            let engine = engine();
            let request = ChatRequest {
                messages,
                ..ChatRequest::user("local", "")
            };
            if let Ok(tokens) = engine.prompt_tokens(&request) {
                let vocab = engine.vocab_size();
                prop_assert!(!tokens.is_empty());
                prop_assert!(tokens.iter().all(|t| (0..vocab).contains(&t.0)));
            }
        }
    }
}
