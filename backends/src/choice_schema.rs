//! `choices` for upstreams that do not know it: emulated with a strict JSON schema.
//!
//! `choices` is a triage extension (the answer must be exactly one of these strings; the local
//! engine answers by scoring every choice). An OpenAI-compatible or Anthropic API has no such
//! field and would silently ignore it, so a benchmark's LLM column would answer a different,
//! unconstrained question from the SLM column. Instead the request carries a structured-output
//! schema whose only property is an enum of the choices,
//!
//! ```json
//! {"type": "object", "properties": {"answer": {"type": "string", "enum": CHOICES}},
//!  "required": ["answer"], "additionalProperties": false}
//! ```
//!
//! and the reply `{"answer": "…"}` is unwrapped back to the bare choice, so callers see the same
//! answer shape from every target. A reply that is not one of the choices is a
//! [`BackendError::Protocol`] error naming them: the upstream broke the constraint it was given.
//! A reply that is exactly one of the choices without the JSON wrapper (a server that ignores
//! `response_format`) is accepted as that choice. Choices without content (a refusal, tool calls)
//! pass through unchanged.
//!
//! Streams are held back per choice until its `Done` event, then the unwrapped answer is sent
//! as one token: the answer is not known before the JSON is complete. The per-token
//! log-probabilities of the wrapper are dropped (they describe the JSON, not the answer).
//! Another `triage serve` needs none of this (`Extensions::Triage` forwards `choices`).

use std::collections::{BTreeMap, VecDeque};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::remote::snippet;
use crate::{
    BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream, JsonSchemaFormat,
    ResponseFormat, Result,
};

/// The schema property holding the answer.
pub const ANSWER_FIELD: &str = "answer";

/// The name given to the emulating `json_schema` format.
pub const SCHEMA_NAME: &str = "choice";

/// The JSON schema of an answer that must be one of `choices`.
pub fn schema(choices: &[String]) -> Value {
    json!({
        "type": "object",
        "properties": { ANSWER_FIELD: { "type": "string", "enum": choices } },
        "required": [ANSWER_FIELD],
        "additionalProperties": false,
    })
}

/// The strict `response_format` that emulates `choices`.
pub fn response_format(choices: &[String]) -> ResponseFormat {
    ResponseFormat::JsonSchema {
        json_schema: JsonSchemaFormat {
            name: SCHEMA_NAME.to_string(),
            schema: schema(choices),
            strict: Some(true),
            description: None,
        },
    }
}

/// The choices to emulate for `request` (`None` when it has none), after checking that the
/// request can be emulated: a non-empty list, and no `response_format` of its own (the answer
/// can follow only one format; the local engine refuses the combination too).
pub fn emulated_choices(request: &ChatRequest) -> Result<Option<&[String]>> {
    let Some(choices) = request.choices.as_deref() else {
        return Ok(None);
    };
    if choices.is_empty() {
        return Err(BackendError::InvalidRequest(
            "`choices` is empty: give at least one allowed answer".into(),
        ));
    }
    if request.response_format.is_some() {
        return Err(BackendError::InvalidRequest(
            "`choices` and `response_format` cannot be combined".into(),
        ));
    }
    Ok(Some(choices))
}

/// The choice an upstream's reply `text` stands for: `{"answer": CHOICE}`, or a bare `CHOICE`.
pub fn unwrap_answer(text: &str, choices: &[String]) -> Result<String> {
    let trimmed = text.trim();
    let answer = match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => map
            .get(ANSWER_FIELD)
            .and_then(Value::as_str)
            .map(str::to_string),
        Ok(Value::String(s)) => Some(s),
        _ => Some(trimmed.to_string()),
    };
    match answer {
        Some(a) if choices.contains(&a) => Ok(a),
        _ => Err(BackendError::Protocol(format!(
            "the upstream's answer {} is not one of the choices [{}] (it was asked for \
             {{\"{ANSWER_FIELD}\": CHOICE}} with a strict JSON schema)",
            snippet(trimmed, 200),
            choices.join(", ")
        ))),
    }
}

/// Unwrap every choice of a whole response; a choice without content is left as it is.
pub fn unwrap_response(mut response: ChatResponse, choices: &[String]) -> Result<ChatResponse> {
    for choice in &mut response.choices {
        if let Some(text) = choice.message.content.as_deref() {
            choice.message.content = Some(unwrap_answer(text, choices)?);
            choice.logprobs = None;
        }
    }
    response.token_logprobs.clear();
    Ok(response)
}

/// Unwrap a stream: content tokens are held per choice until its `Done`, which is preceded by
/// one token holding the unwrapped answer; every other event passes through in order. A choice
/// whose text is not one of the choices ends the stream with the error.
pub fn unwrap_stream(stream: EventStream, choices: Vec<String>) -> EventStream {
    struct State {
        inner: EventStream,
        choices: Vec<String>,
        held: BTreeMap<u32, String>,
        pending: VecDeque<Result<ChatEvent>>,
        ended: bool,
    }

    impl State {
        /// The unwrapped answer of `choice` as a token event (nothing when it had no text).
        fn release(&mut self, choice: u32, at: std::time::Instant) -> Result<Option<ChatEvent>> {
            match self.held.remove(&choice) {
                None => Ok(None),
                Some(text) => Ok(Some(ChatEvent::Token {
                    choice,
                    text: unwrap_answer(&text, &self.choices)?,
                    logprobs: Vec::new(),
                    at,
                })),
            }
        }

        fn push_release(&mut self, choice: u32, at: std::time::Instant) -> bool {
            match self.release(choice, at) {
                Ok(Some(token)) => {
                    self.pending.push_back(Ok(token));
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    self.pending.push_back(Err(e));
                    self.ended = true;
                    false
                }
            }
        }
    }

    let state = State {
        inner: stream,
        choices,
        held: BTreeMap::new(),
        pending: VecDeque::new(),
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            if st.ended {
                return None;
            }
            match st.inner.next().await {
                None => {
                    // A stream that ended cleanly without a choice's `Done` still answers.
                    st.ended = true;
                    let at = std::time::Instant::now();
                    let open: Vec<u32> = st.held.keys().copied().collect();
                    for choice in open {
                        if !st.push_release(choice, at) {
                            break;
                        }
                    }
                }
                Some(Err(e)) => {
                    st.ended = true;
                    st.pending.push_back(Err(e));
                }
                Some(Ok(ChatEvent::Token { choice, text, .. })) => {
                    st.held.entry(choice).or_default().push_str(&text);
                }
                Some(Ok(done @ ChatEvent::Done { .. })) => {
                    let (choice, at) = match &done {
                        ChatEvent::Done { choice, at, .. } => (*choice, *at),
                        _ => continue,
                    };
                    if st.push_release(choice, at) {
                        st.pending.push_back(Ok(done));
                    }
                }
                Some(Ok(other)) => st.pending.push_back(Ok(other)),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Choice, FinishReason, ResponseMessage};
    use std::time::Instant;

    fn choices() -> Vec<String> {
        vec!["positive".into(), "negative".into()]
    }

    #[test]
    fn schema_is_a_strict_enum_of_the_choices() {
        let ResponseFormat::JsonSchema { json_schema } = response_format(&choices()) else {
            panic!("not a json_schema format");
        };
        assert_eq!(json_schema.strict, Some(true));
        assert_eq!(
            json_schema.schema["properties"]["answer"]["enum"],
            json!(["positive", "negative"])
        );
        assert_eq!(json_schema.schema["required"], json!(["answer"]));
        assert_eq!(json_schema.schema["additionalProperties"], json!(false));
        let wire = serde_json::to_value(response_format(&choices())).unwrap();
        assert_eq!(wire["type"], "json_schema");
        assert_eq!(wire["json_schema"]["name"], SCHEMA_NAME);
    }

    #[test]
    fn answers_unwrap_and_non_choices_are_protocol_errors() {
        let c = choices();
        assert_eq!(
            unwrap_answer("{\"answer\":\"negative\"}", &c).unwrap(),
            "negative"
        );
        assert_eq!(
            unwrap_answer(" {\"answer\": \"positive\"}\n", &c).unwrap(),
            "positive"
        );
        // A server that ignored the schema but still answered with a choice.
        assert_eq!(unwrap_answer("positive", &c).unwrap(), "positive");
        for bad in [
            "{\"answer\":\"neutral\"}",
            "{\"label\":\"positive\"}",
            "Positive",
            "{\"answer\":\"posi",
            "",
        ] {
            let err = unwrap_answer(bad, &c).unwrap_err();
            assert!(matches!(err, BackendError::Protocol(_)), "{bad}: {err}");
            assert!(err.to_string().contains("[positive, negative]"), "{err}");
        }
    }

    #[test]
    fn emulation_refuses_empty_choices_and_a_second_format() {
        let mut request = ChatRequest::user("m", "hi");
        assert!(emulated_choices(&request).unwrap().is_none());
        request.choices = Some(Vec::new());
        assert!(matches!(
            emulated_choices(&request),
            Err(BackendError::InvalidRequest(_))
        ));
        request.choices = Some(choices());
        assert_eq!(emulated_choices(&request).unwrap().unwrap().len(), 2);
        request.response_format = Some(ResponseFormat::JsonObject);
        assert!(matches!(
            emulated_choices(&request),
            Err(BackendError::InvalidRequest(_))
        ));
    }

    #[test]
    fn whole_responses_unwrap_each_choice_and_keep_refusals() {
        let message = |content: Option<&str>, refusal: Option<&str>| ResponseMessage {
            content: content.map(str::to_string),
            refusal: refusal.map(str::to_string),
            ..ResponseMessage::default()
        };
        let response = ChatResponse {
            choices: vec![
                Choice {
                    index: 0,
                    message: message(Some("{\"answer\":\"negative\"}"), None),
                    finish_reason: Some(FinishReason::Stop),
                    logprobs: Some(json!({"content": []})),
                    stop_sequence: None,
                },
                Choice {
                    index: 1,
                    message: message(None, Some("I can't help with that")),
                    finish_reason: Some(FinishReason::Stop),
                    logprobs: None,
                    stop_sequence: None,
                },
            ],
            token_logprobs: vec![-0.1, -0.2],
            ..ChatResponse::default()
        };
        let out = unwrap_response(response, &choices()).unwrap();
        assert_eq!(out.text(), "negative");
        assert!(out.choices[0].logprobs.is_none());
        assert!(out.token_logprobs.is_empty());
        assert_eq!(out.choices[1].message.content, None);
        assert_eq!(
            out.choices[1].message.refusal.as_deref(),
            Some("I can't help with that")
        );
    }

    fn token(text: &str) -> ChatEvent {
        ChatEvent::Token {
            choice: 0,
            text: text.into(),
            logprobs: vec![crate::TokenLogprob::of_text(text, -0.5)],
            at: Instant::now(),
        }
    }

    async fn run(events: Vec<Result<ChatEvent>>) -> Vec<Result<ChatEvent>> {
        let inner: EventStream = Box::pin(futures::stream::iter(events));
        unwrap_stream(inner, choices()).collect().await
    }

    #[tokio::test]
    async fn streams_hold_the_json_and_send_the_answer_before_done() {
        let at = Instant::now();
        let out = run(vec![
            Ok(ChatEvent::FirstByte { at }),
            Ok(token("{\"ans")),
            Ok(token("wer\": \"posi")),
            Ok(token("tive\"}")),
            Ok(ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::Stop,
                stop_sequence: None,
                at,
            }),
            Ok(ChatEvent::Usage {
                usage: crate::Usage::new(10, 6),
                at,
            }),
        ])
        .await;
        let out: Vec<ChatEvent> = out.into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(matches!(out[0], ChatEvent::FirstByte { .. }));
        match &out[1] {
            ChatEvent::Token { text, logprobs, .. } => {
                assert_eq!(text, "positive");
                assert!(logprobs.is_empty());
            }
            other => panic!("expected the answer token, got {other:?}"),
        }
        assert!(matches!(out[2], ChatEvent::Done { .. }));
        assert!(matches!(out[3], ChatEvent::Usage { .. }));
    }

    #[tokio::test]
    async fn a_streamed_non_choice_ends_the_stream_with_a_protocol_error() {
        let at = Instant::now();
        let out = run(vec![
            Ok(token("{\"answer\":\"meh\"}")),
            Ok(ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::Stop,
                stop_sequence: None,
                at,
            }),
            Ok(ChatEvent::Usage {
                usage: crate::Usage::new(10, 6),
                at,
            }),
        ])
        .await;
        assert_eq!(out.len(), 1, "the stream ends at the error: {out:?}");
        assert!(matches!(out[0], Err(BackendError::Protocol(_))));
    }

    #[tokio::test]
    async fn upstream_errors_pass_through_and_end_the_stream() {
        let out = run(vec![
            Ok(token("{\"answer\":")),
            Err(BackendError::Connection("reset".into())),
        ])
        .await;
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], Err(BackendError::Connection(_))));
    }
}
