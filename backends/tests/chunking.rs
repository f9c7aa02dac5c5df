#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Property: any recorded stream, cut into network chunks at arbitrary byte positions (also
//! inside multi-byte UTF-8 characters, inside `\r\n`, inside `data:`), with its line endings
//! rewritten as CRLF or CR, or with keep-alive comments between events, decodes to exactly the
//! events of the stream delivered in one piece.

mod common;

use backends::{anthropic, openai, BackendError, ChatEvent};
use bytes::Bytes;
use common::*;
use futures::StreamExt;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Protocol {
    OpenAi,
    Anthropic,
}

/// Every SSE body in the fixtures: the stream files and the SSE bodies of recorded exchanges.
fn corpus() -> &'static [(Protocol, String, Vec<u8>)] {
    static CORPUS: std::sync::OnceLock<Vec<(Protocol, String, Vec<u8>)>> =
        std::sync::OnceLock::new();
    CORPUS.get_or_init(load_corpus)
}

fn load_corpus() -> Vec<(Protocol, String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in fixture_files("openai/chat_completions_stream", ".sse") {
        out.push((Protocol::OpenAi, f.clone(), wire_sse(&read_fixture(&f))));
    }
    for f in fixture_files("anthropic/stream_sse", ".sse") {
        out.push((Protocol::Anthropic, f.clone(), wire_sse(&read_fixture(&f))));
    }
    for f in fixture_files("anthropic/recorded_http", ".json") {
        let all: serde_json::Value = serde_json::from_slice(&read_fixture(&f)).unwrap();
        for (i, x) in all.as_array().unwrap().iter().enumerate() {
            if let Some(body) = x
                .get("response")
                .and_then(|r| r.get("body"))
                .and_then(|b| b.as_str())
            {
                out.push((
                    Protocol::Anthropic,
                    format!("{f}#{i}"),
                    body.as_bytes().to_vec(),
                ));
            }
        }
    }
    assert!(out.len() >= 12 + 11 + 5, "corpus too small: {}", out.len());
    out
}

/// Decode `chunks` with the protocol's decoder: events without their instants, and the error
/// the stream ended with, if any.
fn decode(protocol: Protocol, chunks: Vec<Bytes>) -> (Vec<Ev>, Option<String>) {
    let input = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, BackendError>));
    let mut stream: backends::EventStream = match protocol {
        Protocol::OpenAi => Box::pin(openai::decode_stream(input)),
        Protocol::Anthropic => Box::pin(anthropic::decode_stream(input)),
    };
    futures::executor::block_on(async move {
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(e) => events.push(strip(&e)),
                Err(e) => return (events, Some(format!("{e:?}"))),
            }
        }
        (events, None)
    })
}

fn with_line_endings(body: &[u8], ending: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    for &b in body {
        if b == b'\n' {
            out.extend_from_slice(ending);
        } else {
            out.push(b);
        }
    }
    out
}

/// A comment line and a comment-only block after every event (proxies' keep-alives).
fn with_keep_alives(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    text.split_inclusive("\n\n")
        .map(|event| format!(": keep-alive\n{event}:\n\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn whole_streams_decode_without_error_except_the_overloaded_one() {
    for (protocol, name, body) in corpus() {
        let (events, error) = decode(*protocol, vec![Bytes::from(body.clone())]);
        if name.contains("error_overloaded") {
            assert!(error.unwrap().contains("529"), "{name}");
        } else {
            assert!(error.is_none(), "{name}: {error:?}");
            assert!(events.iter().any(|e| matches!(e, Ev::Done(..))), "{name}");
        }
    }
}

#[test]
fn multibyte_utf8_split_inside_a_character_decodes() {
    // A real OpenAI chunk carrying a 3-byte and a 4-byte character, cut inside each.
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"€ 😀\"},\"finish_reason\":null}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
        .as_bytes();
    let euro = body.windows(3).position(|w| w == "€".as_bytes()).unwrap();
    let smile = body.windows(4).position(|w| w == "😀".as_bytes()).unwrap();
    let (events, error) = decode(
        Protocol::OpenAi,
        split_at(body, &[euro + 1, euro + 2, smile + 3]),
    );
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events[0], Ev::Token(0, "€ 😀".into(), vec![]));
}

#[test]
fn multi_line_data_is_joined_with_newlines() {
    // One JSON object spread over several `data:` lines is one event.
    let body = b"data: {\"choices\":[{\"index\":0,\ndata: \"delta\":{\"content\":\"hi\"},\ndata: \"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let (events, error) = decode(Protocol::OpenAi, vec![Bytes::from_static(body)]);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        events,
        vec![
            Ev::Token(0, "hi".into(), vec![]),
            Ev::Done(0, "stop".into())
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn any_chunking_decodes_to_the_same_events(
        pick in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        ending in 0usize..3,
        keep_alives in any::<bool>(),
    ) {
        let corpus = corpus();
        let (protocol, name, body) = &corpus[pick.index(corpus.len())];
        let reference = decode(*protocol, vec![Bytes::from(body.clone())]);

        let mut variant = body.clone();
        if keep_alives {
            variant = with_keep_alives(&variant);
        }
        variant = match ending {
            0 => variant,
            1 => with_line_endings(&variant, b"\r\n"),
            _ => with_line_endings(&variant, b"\r"),
        };
        let chunked = decode(*protocol, split_at(&variant, &cuts));
        prop_assert_eq!(&chunked, &reference, "{} ending={} keep_alives={}", name, ending, keep_alives);
    }

    #[test]
    fn a_stream_cut_short_is_an_error_not_a_truncation(
        pick in any::<prop::sample::Index>(),
        keep in any::<prop::sample::Index>(),
    ) {
        let corpus = corpus();
        let (protocol, name, body) = &corpus[pick.index(corpus.len())];
        prop_assume!(!name.contains("error_overloaded"));
        // Drop at least the last byte: the terminal event can no longer be complete.
        let cut = keep.index(body.len());
        let (events, error) = decode(*protocol, vec![Bytes::copy_from_slice(&body[..cut])]);
        prop_assert!(error.is_some(), "{} cut at {} ended silently after {:?}", name, cut, events.last());
    }
}

#[test]
fn events_carry_increasing_instants() {
    let body = wire_sse(&read_fixture(
        "openai/chat_completions_stream/test_parse_nothing.sse",
    ));
    let input = futures::stream::iter(
        body.chunks(64)
            .map(|c| Ok::<Bytes, BackendError>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let events: Vec<ChatEvent> =
        futures::executor::block_on(openai::decode_stream(input).map(|e| e.unwrap()).collect());
    assert!(events.len() > 10);
    assert!(events.windows(2).all(|w| w[0].at() <= w[1].at()));
}
