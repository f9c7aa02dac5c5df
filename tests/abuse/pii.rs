//! Planted PII by side doors, for `abuse.rs`: requests that carry personal data where a
//! careless detector would not look, and the values the recording remote must never see.

use serde_json::{json, Value};

use super::cases::{case, request, Case, JSON};

/// Planted PII values and the requests that carry them by a side door. The values are the
/// ones the recording remote must never see (normalised: digits only where that is the value).
pub(crate) fn pii_side_doors() -> Vec<(Case, Vec<String>)> {
    let fw = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap(),
                c => c,
            })
            .collect()
    };
    let req = |v: Value| v.to_string().into_bytes();
    let msgs = |text: &str| json!([{"role": "user", "content": text}]);
    let mut out: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "email plain",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("mail jane.doe@example.com now")}),
            ),
            vec!["jane.doe@example.com"],
        ),
        (
            "card plain",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("card 4111 1111 1111 1111")}),
            ),
            vec!["4111 1111 1111 1111", "4111111111111111"],
        ),
        (
            "fullwidth card digits",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs(&format!("card {}", fw("4111111111111111")))}),
            ),
            vec!["4111111111111111", &fw("4111111111111111")]
                .into_iter()
                .map(|s| Box::leak(s.to_string().into_boxed_str()) as &str)
                .collect(),
        ),
        (
            "zero-width before @",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("write to jane.doe\u{200b}@example.com")}),
            ),
            vec!["example.com"],
        ),
        (
            "fullwidth at sign",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("write to jane.doe＠example.com")}),
            ),
            vec!["example.com"],
        ),
        (
            "SSN with no-break spaces",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("my SSN is 123\u{a0}45\u{a0}6789")}),
            ),
            vec!["6789"],
        ),
        (
            "card split across four messages",
            req(json!({"model": "auto", "max_tokens": 4, "messages": [
                {"role": "user", "content": "4111"}, {"role": "user", "content": "1111"},
                {"role": "user", "content": "1111"}, {"role": "user", "content": "1111"}]})),
            vec!["4111"],
        ),
        (
            "PII only in an image data URL",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"}}]}]}),
            ),
            vec!["iVBORw0KGgo"],
        ),
        (
            "PII only in tool-call arguments",
            req(json!({"model": "auto", "max_tokens": 4, "messages": [
                {"role": "user", "content": "look up my account"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"email\": \"jane.doe@example.com\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "found"},
                {"role": "user", "content": "thanks, summarise"}]})),
            vec!["jane.doe@example.com"],
        ),
        (
            "PII only in an unmodelled field",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("hello there"),
                "user": "jane.doe@example.com"}),
            ),
            vec!["jane.doe@example.com"],
        ),
        (
            "PII only in a tool definition",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("hello"),
                "tools": [{"type": "function", "function": {"name": "send",
                    "description": "sends to jane.doe@example.com", "parameters": {"type": "object"}}}]}),
            ),
            vec!["jane.doe@example.com"],
        ),
        (
            "PII in a message name",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "name": "jane.doe@example.com", "content": "hi"}]}),
            ),
            vec!["jane.doe@example.com"],
        ),
        (
            "PII in a text part",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi"}, {"type": "text", "text": "my SSN is 123-45-6789"}]}]}),
            ),
            vec!["123-45-6789"],
        ),
        (
            "SSN with unicode dashes",
            req(
                json!({"model": "auto", "max_tokens": 4, "messages": msgs("SSN 123\u{2010}45\u{2011}6789")}),
            ),
            vec!["6789"],
        ),
        (
            "phone in the system prompt",
            req(json!({"model": "auto", "max_tokens": 4, "messages": [
                {"role": "system", "content": "Caller: jane.doe@example.com"},
                {"role": "user", "content": "summarise the call"}]})),
            vec!["jane.doe@example.com"],
        ),
        (
            "streamed PII",
            req(
                json!({"model": "auto", "max_tokens": 4, "stream": true, "messages": msgs("card 5500 0000 0000 0004")}),
            ),
            vec!["5500 0000 0000 0004", "5500000000000004"],
        ),
    ];
    out.drain(..)
        .map(|(n, bytes, planted)| {
            (
                case(
                    format!("PII side door: {n}"),
                    request("/v1/chat/completions", &[JSON], &bytes),
                    &[200, 400],
                ),
                planted.into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}
