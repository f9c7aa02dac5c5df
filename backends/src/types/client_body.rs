//! The body a client sent, kept with its parsed request ([`ClientBody`]) so a remote backend can
//! forward the conversation as the very bytes received instead of re-serializing it.
//!
//! Why: re-encoding a request costs time in proportion to the prompt (every string escaped and
//! copied again), and the `messages` array is most of a long prompt's bytes. The OpenAI backend
//! builds the rest of its upstream body from the typed request, as always (model, sampler
//! numbers, `choices`, stream options), and splices in the client's `messages` bytes
//! ([`ClientBody::messages_json`]). That is only sound when those bytes mean exactly what the
//! typed `messages` mean, so the bytes are used only when:
//!
//! - the body is UTF-8 JSON whose top level is an object naming `messages` exactly once, and no
//!   other top-level key twice;
//! - no object anywhere inside `messages` repeats a key (escapes decoded: `"a"` and `"\u0061"`
//!   are the same key). The gateway reads the last of repeated keys (serde), an upstream might
//!   read the first, so a duplicate could carry text past the PII scan: such a body is always
//!   re-serialized;
//! - the array holds as many messages as the typed request does (a cheap guard against code
//!   that changed the conversation but kept the body; such code must also clear the body, see
//!   [`ChatRequest::client_body`](super::ChatRequest::client_body)).
//!
//! The checks are one scan of the body and one of `messages`; nothing is allocated per string
//! unless it has escapes.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The client's request body as received (cheap to clone: shared bytes), or nothing (a request
/// built in process, converted from another API, or changed after parsing).
#[derive(Clone, Default)]
pub struct ClientBody {
    bytes: Option<Bytes>,
}

impl ClientBody {
    /// Keep `bytes`, the body the typed request was parsed from.
    pub fn new(bytes: Bytes) -> Self {
        Self { bytes: Some(bytes) }
    }

    /// No body: the request is re-serialized whole when forwarded.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether a body is kept.
    pub fn is_some(&self) -> bool {
        self.bytes.is_some()
    }

    /// The JSON text of the body's `messages` array, if it can stand for the typed request's
    /// `expected` messages (the module's rules); `None` means re-serialize.
    pub fn messages_json(&self, expected: usize) -> Option<&str> {
        let text = std::str::from_utf8(self.bytes.as_deref()?).ok()?;
        let top: TopLevel<'_> = serde_json::from_str(text).ok()?;
        let raw = top.messages?.get();
        let mut de = serde_json::Deserializer::from_str(raw);
        let count = de.deserialize_seq(CountChecked).ok()?;
        de.end().ok()?;
        (count == expected).then_some(raw)
    }
}

impl fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the content: it is the client's prompt.
        match &self.bytes {
            Some(b) => write!(f, "ClientBody({} bytes)", b.len()),
            None => f.write_str("ClientBody(none)"),
        }
    }
}

impl PartialEq for ClientBody {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

/// The top level of a body: its `messages` value, if named exactly once, and no key repeated.
struct TopLevel<'a> {
    messages: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = Keys::default();
        let mut messages = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if key == "messages" {
                messages = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            keys.insert(key)?;
        }
        Ok(TopLevel { messages })
    }
}

/// An object key, borrowed from the body unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }
}

/// The keys of one object so far; a repeated key is an error.
#[derive(Default)]
struct Keys<'a> {
    few: Vec<Cow<'a, str>>,
    many: HashSet<Cow<'a, str>>,
}

/// Objects with more keys than this are checked with a hash set.
const FEW_KEYS: usize = 16;

impl<'a> Keys<'a> {
    fn insert<E: de::Error>(&mut self, key: Cow<'a, str>) -> Result<(), E> {
        let repeated = if self.many.is_empty() && self.few.len() < FEW_KEYS {
            let seen = self.few.contains(&key);
            self.few.push(key);
            seen
        } else {
            if self.many.is_empty() {
                self.many.extend(self.few.drain(..));
            }
            !self.many.insert(key)
        };
        if repeated {
            Err(E::custom("an object repeats a key"))
        } else {
            Ok(())
        }
    }
}

/// Any JSON value in which no object repeats a key.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut keys = Keys::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            map.next_value::<Checked>()?;
            keys.insert(key)?;
        }
        Ok(Checked)
    }
}

/// A JSON array of [`Checked`] values: how many.
struct CountChecked;

impl<'de> Visitor<'de> for CountChecked {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<Checked>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(body: &str, expected: usize) -> Option<String> {
        ClientBody::new(Bytes::from(body.to_string()))
            .messages_json(expected)
            .map(str::to_string)
    }

    #[test]
    fn the_messages_bytes_are_found_as_sent() {
        let body = r#"{"model":"auto","messages": [ {"role":"user","content":"h\u00e9"} ] ,"n":1}"#;
        assert_eq!(
            messages(body, 1).as_deref(),
            Some(r#"[ {"role":"user","content":"h\u00e9"} ]"#)
        );
        // A different count: the typed request was changed after parsing.
        assert_eq!(messages(body, 2), None);
    }

    #[test]
    fn repeated_keys_anywhere_are_refused() {
        for body in [
            r#"{"messages":[],"messages":[]}"#,
            r#"{"model":"a","messages":[],"model":"b"}"#,
            r#"{"messages":[{"role":"user","content":"a","content":"b"}]}"#,
            r#"{"messages":[{"role":"user","content":"a","\u0063ontent":"b"}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}"#,
        ] {
            let n = usize::from(!body.contains("[]"));
            assert_eq!(messages(body, n), None, "{body}");
        }
        // Many keys (the hash-set path), one repeated at the end.
        let mut fields: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!(r#"{{"messages":[{{"role":"user",{}}}]}}"#, fields.join(","));
        assert!(messages(&ok, 1).is_some());
        fields.push("\"k3\":0".into());
        let repeated = format!(r#"{{"messages":[{{"role":"user",{}}}]}}"#, fields.join(","));
        assert_eq!(messages(&repeated, 1), None);
    }

    #[test]
    fn bodies_that_are_not_a_plain_object_are_refused() {
        for body in [
            "",
            "[]",
            r#"{"model":"auto"}"#,
            r#"{"messages":{}}"#,
            r#"{"messages":[]} x"#,
        ] {
            assert_eq!(messages(body, 0), None, "{body}");
        }
        assert_eq!(ClientBody::none().messages_json(0), None);
        let invalid_utf8 = ClientBody::new(Bytes::from_static(b"{\"messages\":[\"\xff\"]}"));
        assert_eq!(invalid_utf8.messages_json(1), None);
    }

    #[test]
    fn debug_never_shows_the_prompt() {
        let body = ClientBody::new(Bytes::from_static(b"{\"messages\":[\"secret\"]}"));
        assert_eq!(format!("{body:?}"), "ClientBody(23 bytes)");
    }
}
