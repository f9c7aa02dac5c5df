//! What the privacy rule scans in a chat request: every text-bearing field that would be
//! forwarded, on its normalised view ([`super::normalize`]), and the conversation across
//! message boundaries (issue 14, "PII without side doors").
//!
//! Scanning only the messages' text let PII out through tool-call arguments, tool
//! definitions, names and unmodelled fields, which remote backends receive as they are, and
//! through numbers split over several messages. So [`PiiDetector::scan_request`] walks:
//! - every message's content (a string, or its text parts; other part types' strings), and
//!   every other message field (`name`, `tool_calls[].function.{name,arguments}`,
//!   `tool_call_id`, anything unmodelled), recursively;
//! - the request's unmodelled fields (`tools` with their descriptions and parameter schemas,
//!   `user`, …), `metadata`, `stop`, `choices`, `stream_options` and the `response_format`
//!   schema;
//! - object keys and numbers as well as strings, and a string that holds JSON (tool-call
//!   arguments) once more decoded, so `\u0040` escapes are read as `@`;
//! - the messages' texts joined in order with nothing between them (each trimmed), and each
//!   role's texts joined the same way, keeping only spans that cross a boundary (spans inside one text were found already). A card number
//!   sent as four messages of four digits is found; unrelated adjacent numbers rarely form a
//!   Luhn-valid card or a plausible phone, and what they do form is measured on the
//!   adversarial set's negatives (`tests/data/pii_adversarial`).
//!
//! Non-text content parts (`image_url`, `input_audio`, `file`, …) and data URLs anywhere cannot
//! be scanned; they are listed in [`RequestScan::non_text`] and the policy decides
//! (`pii.non_text`: keep local or refuse).

use std::borrow::Cow;

use backends::{ChatRequest, MessageContent, ResponseFormat, Role};
use serde::Serialize;
use serde_json::{Map, Value};

use super::normalize::Normalized;
use super::{PiiDetector, PiiKind, PiiSpan};

/// Content part types that carry no text the detector could read.
const NON_TEXT_PARTS: [&str; 9] = [
    "image_url",
    "input_audio",
    "file",
    "image",
    "audio",
    "input_image",
    "input_file",
    "video_url",
    "input_video",
];

/// How deep JSON held in strings (tool-call arguments) is decoded and walked.
const MAX_JSON_DEPTH: usize = 4;

/// One piece of personal data found in a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: PiiKind,
    /// Where: the field's path (`messages[2].tool_calls[0].function.arguments`), or the
    /// messages a span crossing message boundaries was found in (`messages[1..=4] (joined)`).
    pub field: String,
    /// Byte range in the field's original string; `None` for a span across fields (or in a
    /// key, a number, or JSON decoded from a string).
    pub span: Option<(usize, usize)>,
}

/// A part of the request the detector cannot read (an image, audio, a file, a data URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NonTextPart {
    /// The field's path (`messages[0].content[1]`).
    pub field: String,
    /// The part's type (`image_url`, …), or `data_url` for a data URL in a string field.
    pub kind: String,
}

/// Everything [`PiiDetector::scan_request`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestScan {
    /// Personal data in text-bearing fields, in the order the fields were walked.
    pub findings: Vec<Finding>,
    /// Parts that could not be scanned.
    pub non_text: Vec<NonTextPart>,
}

impl RequestScan {
    /// Whether any personal data was found in the request's text.
    pub fn has_pii(&self) -> bool {
        !self.findings.is_empty()
    }
    /// Whether the request carries parts the detector cannot read.
    pub fn has_non_text(&self) -> bool {
        !self.non_text.is_empty()
    }
}

impl PiiDetector {
    /// Spans of `text` found on its normalised view, as byte offsets into `text` (a span
    /// covering normalised characters widens to the characters they came from).
    pub fn detect_normalized(&self, text: &str) -> Vec<PiiSpan> {
        let view = Normalized::new(text);
        self.spans_in(&view)
    }

    fn spans_in(&self, view: &Normalized<'_>) -> Vec<PiiSpan> {
        self.detect(view.text())
            .into_iter()
            .map(|s| {
                let (start, end) = view.to_original(s.start, s.end);
                PiiSpan {
                    kind: s.kind,
                    start,
                    end,
                }
            })
            .collect()
    }

    /// Every piece of personal data in what `request` would forward, and its unreadable parts
    /// (see the module docs for what is walked). This is what the gateway routes on.
    pub fn scan_request(&self, request: &ChatRequest) -> RequestScan {
        let mut s = Scanner {
            detector: self,
            scan: RequestScan::default(),
            path: String::new(),
            conversation: Vec::new(),
        };
        for (i, m) in request.messages.iter().enumerate() {
            s.at(&format!("messages[{i}]"), |s| s.message(i, m));
        }
        let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
        s.conversation_boundaries(&roles);
        s.map(&request.extra, 0);
        if let Some(meta) = &request.metadata {
            s.at("metadata", |s| s.map(meta, 0));
        }
        for (i, stop) in request.stop_sequences().iter().enumerate() {
            s.at(&format!("stop[{i}]"), |s| s.string(stop, 0));
        }
        for (i, c) in request.choices.iter().flatten().enumerate() {
            s.at(&format!("choices[{i}]"), |s| s.string(c, 0));
        }
        if let Some(o) = &request.stream_options {
            s.at("stream_options", |s| s.map(&o.extra, 0));
        }
        if let Some(ResponseFormat::JsonSchema { json_schema }) = &request.response_format {
            s.at("response_format.json_schema", |s| {
                s.at(".name", |s| s.string(&json_schema.name, 0));
                if let Some(d) = &json_schema.description {
                    s.at(".description", |s| s.string(d, 0));
                }
                s.at(".schema", |s| s.value(&json_schema.schema, 0));
            });
        }
        s.scan
    }
}

/// The walk's state: what was found so far, where it is, and the conversation's texts.
struct Scanner<'d, 'r> {
    detector: &'d PiiDetector,
    scan: RequestScan,
    /// The current field's path.
    path: String,
    /// Each message text (a string content or a text part): its message index and its
    /// normalised view, trimmed (borrowed from the request when the view is the text itself:
    /// a long prompt is not copied).
    conversation: Vec<(usize, Cow<'r, str>)>,
}

impl<'r> Scanner<'_, 'r> {
    /// Run `f` with `seg` appended to the path.
    fn at(&mut self, seg: &str, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        if !self.path.is_empty() && !seg.starts_with(['[', '.', ' ']) {
            self.path.push('.');
        }
        self.path.push_str(seg);
        f(self);
        self.path.truncate(len);
    }

    fn message(&mut self, index: usize, m: &'r backends::ChatMessage) {
        match &m.content {
            None => {}
            Some(MessageContent::Text(t)) => {
                self.at(".content", |s| {
                    let view = s.kept_text(t);
                    s.conversation.push((index, view));
                });
            }
            Some(MessageContent::Parts(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    self.at(&format!(".content[{j}]"), |s| s.part(index, part));
                }
            }
        }
        self.map(&m.extra, 0);
    }

    fn part(&mut self, index: usize, part: &'r Value) {
        let kind = part.get("type").and_then(Value::as_str);
        if let Some(kind) = kind.filter(|k| NON_TEXT_PARTS.contains(k)) {
            self.scan.non_text.push(NonTextPart {
                field: self.path.clone(),
                kind: kind.to_string(),
            });
            return;
        }
        let Some(obj) = part.as_object() else {
            self.value(part, 0);
            return;
        };
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("type", _) => {}
                ("text", Value::String(t)) => self.at(".text", |s| {
                    let view = s.kept_text(t);
                    s.conversation.push((index, view));
                }),
                _ => self.at(k, |s| s.value(v, 0)),
            }
        }
    }

    /// Scan one string field.
    fn text(&mut self, text: &str) {
        let view = Normalized::new(text);
        self.findings_in(&view);
    }

    /// Scan one message text; returns its normalised view, trimmed.
    fn kept_text(&mut self, text: &'r str) -> Cow<'r, str> {
        let view = Normalized::new(text);
        self.findings_in(&view);
        match view.into_text() {
            Cow::Borrowed(t) => Cow::Borrowed(t.trim()),
            Cow::Owned(t) => Cow::Owned(t.trim().to_string()),
        }
    }

    fn findings_in(&mut self, view: &Normalized<'_>) {
        for span in self.detector.spans_in(view) {
            self.scan.findings.push(Finding {
                kind: span.kind,
                field: self.path.clone(),
                span: Some((span.start, span.end)),
            });
        }
    }

    /// A string anywhere: a data URL is a non-text part; JSON in it is walked decoded too.
    fn string(&mut self, text: &str, depth: usize) {
        if is_data_url(text) {
            self.scan.non_text.push(NonTextPart {
                field: self.path.clone(),
                kind: "data_url".into(),
            });
            return;
        }
        self.text(text);
        let trimmed = text.trim_start();
        if depth < MAX_JSON_DEPTH && (trimmed.starts_with('{') || trimmed.starts_with('[')) {
            if let Ok(inner) = serde_json::from_str::<Value>(text) {
                self.at(" (decoded)", |s| s.value(&inner, depth + 1));
            }
        }
    }

    /// Scan text that has no original string to point into (a key, a number, decoded JSON).
    fn loose(&mut self, text: &str) {
        let len = self.scan.findings.len();
        self.text(text);
        for f in &mut self.scan.findings[len..] {
            f.span = None;
        }
    }

    fn value(&mut self, v: &Value, depth: usize) {
        match v {
            Value::String(t) => self.string(t, depth),
            Value::Number(n) => self.loose(&n.to_string()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.at(&format!("[{i}]"), |s| s.value(item, depth));
                }
            }
            Value::Object(map) => self.map(map, depth),
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn map(&mut self, map: &Map<String, Value>, depth: usize) {
        for (k, v) in map {
            self.at(k, |s| {
                s.at(" (key)", |s| s.loose(k));
                s.value(v, depth);
            });
        }
    }

    /// Scan the conversation's texts joined with nothing between them, and each role's texts
    /// joined likewise (a number sent in pieces with the assistant's "ok?" between them);
    /// keep only spans that cross from one text into another.
    fn conversation_boundaries(&mut self, roles: &[Role]) {
        let all: Vec<usize> = (0..self.conversation.len()).collect();
        self.joined(&all, "");
        let mut seen: Vec<Role> = Vec::new();
        for &(message, _) in &self.conversation {
            if let Some(&role) = roles.get(message) {
                if !seen.contains(&role) {
                    seen.push(role);
                }
            }
        }
        if seen.len() < 2 {
            return;
        }
        for role in seen {
            let texts: Vec<usize> = (0..self.conversation.len())
                .filter(|&i| roles.get(self.conversation[i].0) == Some(&role))
                .collect();
            self.joined(&texts, &format!("{} messages ", role.as_str()));
        }
    }

    /// Scan the texts `which` (indices into the conversation) joined; `label` names the view.
    fn joined(&mut self, which: &[usize], label: &str) {
        if which.len() < 2 {
            return;
        }
        let mut joined = String::new();
        let mut starts = Vec::with_capacity(which.len());
        for &i in which {
            starts.push(joined.len());
            joined.push_str(&self.conversation[i].1);
        }
        let piece_of = |pos: usize| starts.partition_point(|&s| s <= pos).saturating_sub(1);
        for span in self.detector.detect(&joined) {
            let (first, last) = (piece_of(span.start), piece_of(span.end.saturating_sub(1)));
            if first == last {
                continue;
            }
            let a = self.conversation[which[first]].0;
            let b = self.conversation[which[last]].0;
            let field = if a == b {
                format!("messages[{a}].content (parts joined)")
            } else {
                format!("messages[{a}..={b}] ({label}joined)")
            };
            let finding = Finding {
                kind: span.kind,
                field,
                span: None,
            };
            if !self.scan.findings.contains(&finding) {
                self.scan.findings.push(finding);
            }
        }
    }
}

/// `data:<type>;base64,…` — an inline file, opaque to the detector.
fn is_data_url(text: &str) -> bool {
    text.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
        && text.get(..200).unwrap_or(text).contains(";base64,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(json: &str) -> RequestScan {
        let request: ChatRequest = serde_json::from_str(json).unwrap();
        PiiDetector::new().scan_request(&request)
    }

    fn kinds(s: &RequestScan) -> Vec<(String, String)> {
        s.findings
            .iter()
            .map(|f| (f.kind.to_string(), f.field.clone()))
            .collect()
    }

    #[test]
    fn finds_pii_in_every_forwarded_field() {
        let s = scan(
            r#"{"model":"auto","messages":[
                {"role":"user","content":"hi","name":"ann@example.com"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                  "function":{"name":"lookup","arguments":"{\"ssn\":\"123-45-6789\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"call +1 415 555 0132"}]}],
              "tools":[{"type":"function","function":{"name":"f","description":"card 4111 1111 1111 1111",
                "parameters":{"type":"object","properties":{"x":{"type":"string","default":"10.1.2.3"}}}}}],
              "user":"bob@example.org"}"#,
        );
        assert_eq!(
            kinds(&s),
            [
                ("email", "messages[0].name"),
                ("ssn", "messages[1].tool_calls[0].function.arguments"),
                (
                    "ssn",
                    "messages[1].tool_calls[0].function.arguments (decoded).ssn"
                ),
                ("phone", "messages[2].content[0].text"),
                ("card", "tools[0].function.description"),
                ("ipv4", "tools[0].function.parameters.properties.x.default"),
                ("email", "user"),
            ]
            .map(|(k, f)| (k.to_string(), f.to_string()))
        );
        assert!(!s.has_non_text());
    }

    #[test]
    fn json_escapes_in_arguments_are_decoded() {
        let s = scan(
            r#"{"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f",
                "arguments":"{\"to\":\"ann\\u0040example.com\"}"}}]}]}"#,
        );
        assert_eq!(s.findings.len(), 1, "{s:?}");
        assert_eq!(s.findings[0].kind, PiiKind::Email);
    }

    #[test]
    fn numbers_split_across_messages_are_found_and_reported_as_joined() {
        let s = scan(
            r#"{"messages":[{"role":"user","content":"4111"},{"role":"user","content":" 1111 "},
                {"role":"user","content":"1111"},{"role":"user","content":"1111"}]}"#,
        );
        assert_eq!(
            kinds(&s),
            [("card".to_string(), "messages[0..=3] (joined)".to_string())]
        );
        // Adjacent but unrelated numbers: no Luhn-valid card, no phone.
        let s = scan(
            r#"{"messages":[{"role":"user","content":"what is 12 + 30?"},
                {"role":"assistant","content":"42"},{"role":"user","content":"and 2023 - 1999"},
                {"role":"assistant","content":"24"}]}"#,
        );
        assert!(s.findings.is_empty(), "{s:?}");
    }

    #[test]
    fn images_and_data_urls_are_non_text() {
        let s = scan(
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],
              "attachment":"data:application/pdf;base64,JVBERi0x"}"#,
        );
        let parts: Vec<(&str, &str)> = s
            .non_text
            .iter()
            .map(|p| (p.field.as_str(), p.kind.as_str()))
            .collect();
        assert_eq!(
            parts,
            [
                ("messages[0].content[1]", "image_url"),
                ("attachment", "data_url")
            ]
        );
        assert!(!s.has_pii());
    }

    #[test]
    fn spans_point_into_the_original_field() {
        let text = "write to jo\u{200B}hn＠example.com";
        let spans = PiiDetector::new().detect_normalized(text);
        assert_eq!(spans.len(), 1);
        assert_eq!(
            &text[spans[0].start..spans[0].end],
            "jo\u{200B}hn＠example.com"
        );
    }
}
