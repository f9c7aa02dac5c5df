//! Where a field path is in YAML text, and located deserialization errors: the workspace's one
//! YAML error locator, used by `triage.yaml` (this module's parent) and by the harness's scenario
//! and suite files (`bench::scenario`).
//!
//! `serde_yaml` keeps no spans in deserialized values, and `serde_path_to_error` knows paths but
//! not positions. [`Locator`] therefore parses the text a second time at the event level
//! (`yaml-rust2`) and indexes every field path (`routes[2].cascade.escalate_to`) to the line and
//! column of its value and of its key. It places errors found after deserialization
//! (validation), and it corrects the position of deserialization errors inside internally tagged
//! enums: serde buffers those, so `serde_yaml` reports such an error at an enclosing node (often
//! `1:1`) and `serde_path_to_error` at the enum rather than at the field. [`from_str`] puts both
//! together: deserialize with paths tracked, and on error return a [`YamlError`] with the path,
//! a position and `serde_yaml`'s message without its own copies of either.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

enum Frame {
    Map { awaiting_key: bool },
    Seq { next: usize },
}

/// Maps every field path (`routes[2].cascade.escalate_to`) to the positions of its value and,
/// for mapping entries, of its key. Paths are written as `serde_path_to_error` writes them.
#[derive(Default)]
pub struct Locator {
    frames: Vec<Frame>,
    segs: Vec<Seg>,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Locator {
    /// Index `text`. A syntax error leaves the index partial (the deserializer reports the error
    /// itself, with its position).
    pub fn index(text: &str) -> Locator {
        let mut loc = Locator::default();
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        let _ = parser.load(&mut loc, false);
        loc
    }

    /// Where the value at `path` starts.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Where the key of the mapping entry at `path` is.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// The position of `path` (its value, else its key), or of its nearest ancestor that is in
    /// the text.
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut p = path.to_string();
        loop {
            if let Some(at) = self.value(&p).or_else(|| self.key(&p)) {
                return Some(at);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }

    fn begin_value(&mut self, at: Position) {
        if let Some(Frame::Seq { next }) = self.frames.last() {
            self.segs.push(Seg::Index(*next));
        }
        self.values.insert(path_string(&self.segs), at);
    }

    fn end_value(&mut self) {
        match self.frames.last_mut() {
            Some(Frame::Map { awaiting_key }) => {
                *awaiting_key = true;
                self.segs.pop();
            }
            Some(Frame::Seq { next }) => {
                *next += 1;
                self.segs.pop();
            }
            None => {}
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for Locator {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        // yaml-rust2 markers: 1-based line, 0-based column.
        let at = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        let is_key = matches!(self.frames.last(), Some(Frame::Map { awaiting_key: true }));
        match ev {
            Event::Scalar(value, ..) if is_key => {
                if let Some(Frame::Map { awaiting_key }) = self.frames.last_mut() {
                    *awaiting_key = false;
                }
                self.segs.push(Seg::Key(value));
                self.keys.insert(path_string(&self.segs), at);
            }
            Event::Scalar(..) | Event::Alias(_) => {
                self.begin_value(at);
                self.end_value();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if is_key {
                    // A complex key: not addressable by a path.
                    if let Some(Frame::Map { awaiting_key }) = self.frames.last_mut() {
                        *awaiting_key = false;
                    }
                    self.segs.push(Seg::Key("?".into()));
                } else {
                    self.begin_value(at);
                }
                self.frames.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { awaiting_key: true }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
                self.end_value();
            }
            _ => {}
        }
    }
}

/// A YAML document that does not deserialize, located: `LINE:COL: path: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct YamlError {
    /// Field path such as `routes[2].cascade.escalate_to` (empty or `.` for the whole document).
    pub path: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, without the position or path `serde_yaml` writes into its messages.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(col) = self.column {
                write!(f, "{col}:")?;
            }
            f.write_str(" ")?;
        }
        if !self.path.is_empty() && self.path != "." {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl YamlError {
    /// An error about `path` with the deserializer's `message` and, if it gave one, position.
    /// The position is kept unless it lies before the text of `path` (then it belongs to an
    /// enclosing node: an error inside a buffered, internally tagged enum). An "unknown field"
    /// reported at the enum is moved to the field, and placed at its key.
    pub fn locate(
        path: String,
        message: &str,
        position: Option<Position>,
        locator: &Locator,
    ) -> YamlError {
        let mut path = path;
        let message = strip_path(&strip_location(message), &path);
        let unknown = unknown_field(&message);
        if let Some(field) = unknown {
            let at_root = path.is_empty() || path == ".";
            let field_path = if at_root {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            if !(path == field || path.ends_with(&format!(".{field}")))
                && locator.key(&field_path).is_some()
            {
                path = field_path;
            }
        }
        let start = locator.key(&path).or_else(|| locator.value(&path));
        let at = match position {
            Some(p) if start.is_none_or(|s| p >= s) => Some(p),
            _ if unknown.is_some() => locator.key(&path).or_else(|| locator.nearest(&path)),
            _ => locator.nearest(&path),
        };
        YamlError {
            path,
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            message,
        }
    }
}

/// Deserialize YAML text into `T` with paths tracked; an error is located in `text`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let position = inner.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        });
        YamlError::locate(path, &inner.to_string(), position, &Locator::index(text))
    })
}

/// The field named by serde's "unknown field `x`, expected …" message.
pub(crate) fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
}

/// serde_yaml appends " at line L column C" to messages; the located error says it once.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// serde_yaml prefixes messages with its own (shorter) path; the located error has the full one.
fn strip_path(msg: &str, path: &str) -> String {
    match msg.split_once(": ") {
        Some((p, rest)) if !p.is_empty() && path.starts_with(p) => rest.to_string(),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_values_and_keys() {
        let text = "a:\n  b: [x, {c: 1}]\nd: { e: f }\n";
        let loc = Locator::index(text);
        let at = |line, column| Some(Position { line, column });
        assert_eq!(loc.value("a.b"), at(2, 6));
        assert_eq!(loc.key("a.b"), at(2, 3));
        assert_eq!(loc.value("a.b[1].c"), at(2, 14));
        assert_eq!(loc.value("d.e"), at(3, 9));
        assert_eq!(loc.nearest("d.e.missing"), at(3, 9));
        assert_eq!(loc.nearest("zzz"), None, "no such top-level key");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        n: u32,
        inner: Tagged,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(tag = "kind", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Tagged {
        A { x: u32 },
    }

    #[test]
    fn errors_are_located_even_inside_tagged_enums() {
        let e = from_str::<Doc>("n: many\ninner: {kind: A, x: 1}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:4: n: invalid type: string \"many\", expected u32"
        );
        let e = from_str::<Doc>("n: 1\ninner: {kind: A, x: 1, y: 2}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "2:24: inner.y: unknown field `y`, expected `x`",
            "at the key, not at 1:1 where serde_yaml places errors in buffered enums"
        );
    }
}
