//! From generated text to OpenAI tool-call deltas, as the call is written: [`CallParser`] reads
//! the call object `{"name": …, "arguments": …}` character by character and releases the
//! function name once its string is complete, then the raw text of the arguments value as it
//! arrives; [`tool_call_events`] wraps the engine's event stream with it. Under `auto` the first
//! character decides (the grammar allows a call only there): `{` is a call, anything else text
//! that passes through unchanged.

use std::time::Instant;

use futures::StreamExt;

use super::ToolChoice;
use crate::types::{ChatEvent, FinishReason};
use crate::{EventStream, Result};

/// What a piece of call text released.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// The function name (once, before any arguments).
    Name(String),
    /// A chunk of the arguments' JSON text.
    Arguments(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Start,
    BeforeKey,
    InKey { escape: bool },
    BeforeColon,
    BeforeValue,
    InValue,
    AfterValue,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    String {
        escape: bool,
    },
    Container {
        depth: u32,
        in_string: bool,
        escape: bool,
    },
    Primitive,
}

/// Reads one call object incrementally.
#[derive(Debug, Clone)]
pub struct CallParser {
    state: State,
    value: Value,
    key: String,
    name_text: String,
    name: Option<String>,
    /// Arguments text read before the name was known.
    held_arguments: String,
}

impl Default for CallParser {
    fn default() -> Self {
        Self {
            state: State::Start,
            value: Value::Primitive,
            key: String::new(),
            name_text: String::new(),
            name: None,
            held_arguments: String::new(),
        }
    }
}

impl CallParser {
    /// Whether the whole call object was read.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Feed generated text; what it released, the name always first.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        let had_name = self.name.is_some();
        let mut arguments = std::mem::take(&mut self.held_arguments);
        for c in text.chars() {
            self.step(c, &mut arguments);
        }
        let mut out = Vec::new();
        match &self.name {
            None => self.held_arguments = arguments,
            Some(name) => {
                if !had_name {
                    out.push(Piece::Name(name.clone()));
                }
                if !arguments.is_empty() {
                    out.push(Piece::Arguments(arguments));
                }
            }
        }
        out
    }

    fn step(&mut self, c: char, arguments: &mut String) {
        match self.state {
            State::Start => {
                if c == '{' {
                    self.state = State::BeforeKey;
                }
            }
            State::BeforeKey => match c {
                '"' => {
                    self.key.clear();
                    self.state = State::InKey { escape: false };
                }
                '}' => self.state = State::Done,
                _ => {}
            },
            State::InKey { escape } => {
                if !escape && c == '"' {
                    self.state = State::BeforeColon;
                } else {
                    self.key.push(c);
                    self.state = State::InKey {
                        escape: !escape && c == '\\',
                    };
                }
            }
            State::BeforeColon => {
                if c == ':' {
                    self.state = State::BeforeValue;
                }
            }
            State::BeforeValue => {
                if c.is_whitespace() {
                    return;
                }
                self.value = match c {
                    '"' => Value::String { escape: false },
                    '{' | '[' => Value::Container {
                        depth: 1,
                        in_string: false,
                        escape: false,
                    },
                    _ => Value::Primitive,
                };
                self.state = State::InValue;
                self.keep(c, arguments);
            }
            State::InValue => {
                let (ended, include) = match &mut self.value {
                    Value::String { escape } => {
                        let end = !*escape && c == '"';
                        *escape = !*escape && c == '\\';
                        (end, true)
                    }
                    Value::Container {
                        depth,
                        in_string,
                        escape,
                    } => {
                        if *in_string {
                            if !*escape && c == '"' {
                                *in_string = false;
                            }
                            *escape = !*escape && c == '\\';
                        } else {
                            match c {
                                '"' => *in_string = true,
                                '{' | '[' => *depth += 1,
                                '}' | ']' => *depth = depth.saturating_sub(1),
                                _ => {}
                            }
                        }
                        (*depth == 0, true)
                    }
                    Value::Primitive => {
                        let end = c == ',' || c == '}' || c.is_whitespace();
                        (end, !end)
                    }
                };
                if include {
                    self.keep(c, arguments);
                }
                if ended {
                    self.value_ended();
                    if !include {
                        self.step(c, arguments);
                    }
                }
            }
            State::AfterValue => match c {
                ',' => self.state = State::BeforeKey,
                '}' => self.state = State::Done,
                _ => {}
            },
            State::Done => {}
        }
    }

    /// Keep a character of the current value where its key says.
    fn keep(&mut self, c: char, arguments: &mut String) {
        match self.key.as_str() {
            "name" => self.name_text.push(c),
            "arguments" => arguments.push(c),
            _ => {}
        }
    }

    fn value_ended(&mut self) {
        self.state = State::AfterValue;
        if self.key == "name" && self.name.is_none() {
            let text = std::mem::take(&mut self.name_text);
            self.name = Some(serde_json::from_str::<String>(&text).unwrap_or(text));
        }
    }
}

enum Mode {
    /// `auto`, before the first character: text or call.
    Undecided(Vec<ChatEvent>),
    Text,
    Call {
        parser: CallParser,
        id: String,
    },
}

/// The engine's events with a call's text turned into tool-call deltas (call index 0, a fresh
/// `call_…` id) and its `stop` into `tool_calls`; under `auto` text answers pass through.
pub fn tool_call_events(events: EventStream, choice: &ToolChoice) -> EventStream {
    let start = match choice {
        ToolChoice::Auto => Mode::Undecided(Vec::new()),
        ToolChoice::Required | ToolChoice::Named(_) => call_mode(),
    };
    let converted = events
        .scan(start, |mode, event| {
            let out: Vec<Result<ChatEvent>> = match event {
                Err(e) => vec![Err(e)],
                Ok(event) => convert(mode, event).into_iter().map(Ok).collect(),
            };
            futures::future::ready(Some(out))
        })
        .flat_map(futures::stream::iter);
    Box::pin(converted)
}

fn call_mode() -> Mode {
    let id = crate::new_completion_id();
    let suffix = id.strip_prefix("chatcmpl-").unwrap_or(&id);
    Mode::Call {
        parser: CallParser::default(),
        id: format!("call_{suffix}"),
    }
}

fn convert(mode: &mut Mode, event: ChatEvent) -> Vec<ChatEvent> {
    if let Mode::Undecided(held) = mode {
        match &event {
            ChatEvent::Token { text, .. } if text.is_empty() => {
                held.push(event);
                return Vec::new();
            }
            ChatEvent::Token { text, .. } if text.starts_with('{') => *mode = call_mode(),
            ChatEvent::Token { .. } | ChatEvent::Done { .. } => {
                let mut out = std::mem::take(held);
                out.push(event);
                *mode = Mode::Text;
                return out;
            }
            _ => return vec![event],
        }
    }
    match mode {
        Mode::Undecided(_) | Mode::Text => vec![event],
        Mode::Call { parser, id } => match event {
            ChatEvent::Token {
                choice, text, at, ..
            } => parser
                .push(&text)
                .into_iter()
                .map(|piece| delta(choice, piece, id, at))
                .collect(),
            ChatEvent::Done {
                choice,
                finish_reason: FinishReason::Stop,
                at,
                ..
            } if parser.is_complete() => vec![ChatEvent::Done {
                choice,
                finish_reason: FinishReason::ToolCalls,
                stop_sequence: None,
                at,
            }],
            other => vec![other],
        },
    }
}

fn delta(choice: u32, piece: Piece, id: &str, at: Instant) -> ChatEvent {
    match piece {
        Piece::Name(name) => ChatEvent::ToolCallDelta {
            choice,
            index: 0,
            id: Some(id.to_string()),
            name: Some(name),
            arguments: String::new(),
            at,
        },
        Piece::Arguments(arguments) => ChatEvent::ToolCallDelta {
            choice,
            index: 0,
            id: None,
            name: None,
            arguments,
            at,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pieces: &[&str]) -> (Vec<Piece>, bool) {
        let mut p = CallParser::default();
        let out = pieces.iter().flat_map(|t| p.push(t)).collect();
        (out, p.is_complete())
    }

    fn joined(pieces: &[Piece]) -> (String, String) {
        let mut name = String::new();
        let mut args = String::new();
        for p in pieces {
            match p {
                Piece::Name(n) => name.push_str(n),
                Piece::Arguments(a) => args.push_str(a),
            }
        }
        (name, args)
    }

    #[test]
    fn a_call_is_released_name_first_then_arguments_in_chunks() {
        let (pieces, done) = feed(&[
            "{\"na",
            "me\": \"get_",
            "weather\", \"argu",
            "ments\": {\"city\": \"Pa",
            "ris}\\\"\"}",
            ", \"days\": [1, {\"x\": 2}]}",
            " }",
        ]);
        assert!(done);
        assert_eq!(pieces[0], Piece::Name("get_weather".into()));
        assert!(pieces.len() > 2, "arguments arrive in chunks: {pieces:?}");
        let (name, args) = joined(&pieces);
        assert_eq!(name, "get_weather");
        assert_eq!(args, "{\"city\": \"Paris}\\\"\"}");
        let (_, args) =
            joined(&feed(&["{\"name\":\"f\",\"arguments\":{\"a\":[1,{\"b\":\"}\"}]}}"]).0);
        let parsed: serde_json::Value = serde_json::from_str(&args).unwrap();
        assert_eq!(parsed["a"][1]["b"], "}");
    }

    #[test]
    fn arguments_before_the_name_wait_for_it() {
        let (pieces, done) = feed(&["{\"arguments\": 12", ", \"name\": \"f\\u0031\"}"]);
        assert!(done);
        assert_eq!(
            pieces,
            vec![Piece::Name("f1".into()), Piece::Arguments("12".into())]
        );
    }

    #[test]
    fn an_unfinished_call_is_not_complete() {
        let (pieces, done) = feed(&["{\"name\": \"f\", \"arguments\": {\"a\""]);
        assert!(!done);
        assert_eq!(joined(&pieces).1, "{\"a\"");
    }

    fn token(text: &str) -> Result<ChatEvent> {
        Ok(ChatEvent::Token {
            choice: 0,
            text: text.into(),
            logprobs: Vec::new(),
            at: Instant::now(),
        })
    }

    fn done() -> Result<ChatEvent> {
        Ok(ChatEvent::Done {
            choice: 0,
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            at: Instant::now(),
        })
    }

    async fn run(choice: ToolChoice, events: Vec<Result<ChatEvent>>) -> crate::ChatResponse {
        let stream: EventStream = Box::pin(futures::stream::iter(events));
        crate::collect_stream(tool_call_events(stream, &choice), "m")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn auto_passes_text_through_and_turns_a_call_into_tool_calls() {
        let text = run(ToolChoice::Auto, vec![token(""), token("Hi {x}"), done()]).await;
        assert_eq!(text.text(), "Hi {x}");
        assert_eq!(text.finish_reason(), Some(&FinishReason::Stop));
        let call = run(
            ToolChoice::Auto,
            vec![
                token("{\"name\": \"f\", "),
                token("\"arguments\": {}}"),
                done(),
            ],
        )
        .await;
        assert_eq!(call.finish_reason(), Some(&FinishReason::ToolCalls));
        let calls = call.choices[0].message.tool_calls.clone().unwrap();
        assert_eq!(calls.len(), 1);
        assert!(calls[0].id.starts_with("call_"));
        assert_eq!(calls[0].function.name, "f");
        assert_eq!(calls[0].function.arguments, "{}");
        assert_eq!(call.choices[0].message.content, None);
        let cut = run(
            ToolChoice::Required,
            vec![
                token("{\"name\": \"f\", \"arguments\": {"),
                Ok(ChatEvent::Done {
                    choice: 0,
                    finish_reason: FinishReason::Length,
                    stop_sequence: None,
                    at: Instant::now(),
                }),
            ],
        )
        .await;
        assert_eq!(cut.finish_reason(), Some(&FinishReason::Length));
    }
}
