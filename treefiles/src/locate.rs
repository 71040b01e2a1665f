//! Finds the line and column of a node, named by its path, in the source text of a document.
//!
//! Used only when reporting a problem: the document is deserialized once more with a visitor that walks
//! down the path and fails on purpose at the target; the parser attaches its position to that error.
//! YAML reports where the value starts; JSON reports where it ends, so for JSON we step back to the
//! start of the token in the source text.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::node::{Format, MappingKey};

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root, e.g. `conditional-include[2].if`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePath(pub Vec<Segment>);

impl NodePath {
    pub fn root() -> NodePath {
        NodePath(Vec::new())
    }

    pub fn key(&self, key: &str) -> NodePath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        NodePath(segments)
    }

    pub fn index(&self, index: usize) -> NodePath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        NodePath(segments)
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(formatter, "{key}")?,
                Segment::Key(key) => write!(formatter, ".{key}")?,
                Segment::Index(index) => write!(formatter, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Whether a problem is about a mapping key itself or about the value under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Key,
    Value,
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "{}:{}", self.line, self.column)
    }
}

const PROBE_MESSAGE: &str = "arbor-locate-probe";

/// Finds where the node at `path` is written. `None` when the path does not exist in the text.
pub fn locate(text: &str, format: Format, path: &NodePath, target: Target) -> Option<Position> {
    if path.0.is_empty() {
        return Some(Position { line: 1, column: 1 });
    }
    match (format, target) {
        (Format::Yaml, Target::Value) => locate_yaml_value(text, &path.0),
        (Format::Yaml, Target::Key) => {
            // The value's position is exact; the key is the last occurrence of its text before it.
            let Some(Segment::Key(key)) = path.0.last() else { return locate_yaml_value(text, &path.0) };
            let value = locate_yaml_value(text, &path.0)?;
            let value_offset = offset_of(text, value)?;
            let key_offset = text[..value_offset].rfind(key.as_str())?;
            let key_start = match text[..key_offset].chars().last() {
                Some(quote @ ('"' | '\'')) => key_offset - quote.len_utf8(),
                _ => key_offset,
            };
            Some(position_of(text, key_start))
        }
        (Format::Json, target) => {
            let fail_at_key = target == Target::Key && matches!(path.0.last(), Some(Segment::Key(_)));
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let error = Probe { path: &path.0, fail_at_key }.deserialize(&mut deserializer).err()?;
            if !error.to_string().starts_with(PROBE_MESSAGE) || error.line() == 0 {
                return None;
            }
            // serde_json's column is that of the last character it consumed.
            let last = offset_of(text, Position { line: error.line(), column: error.column() })?;
            let end = last + text[last..].chars().next().map_or(0, char::len_utf8);
            Some(position_of(text, json_token_start(text, end)))
        }
    }
}

/// Whether the null value at `path` of a YAML document is written as nothing at all (`key:` followed by
/// a comment or a line break, or a `-` entry alone) rather than as `~` or `null`. serde_yaml reads the
/// two differently where a list is required: nothing is an empty list, `~` is an error.
pub fn yaml_null_written_as_nothing(text: &str, path: &NodePath) -> bool {
    // The parser puts an empty value right after its `:` or `-`, an explicit null where it is written.
    let Some(offset) = locate_yaml_value(text, &path.0).and_then(|position| offset_of(text, position)) else {
        return false;
    };
    let rest = &text[offset..];
    !(rest.starts_with('~') || ["null", "Null", "NULL"].iter().any(|word| rest.starts_with(word)))
}

fn locate_yaml_value(text: &str, path: &[Segment]) -> Option<Position> {
    let deserializer = yaml_serde::Deserializer::from_str(text);
    let error = Probe { path, fail_at_key: false }.deserialize(deserializer).err()?;
    if !error.to_string().contains(PROBE_MESSAGE) {
        return None;
    }
    error.location().map(|at| Position { line: at.line(), column: at.column() })
}

/// Steps back from the position just after a JSON token to where it starts.
fn json_token_start(text: &str, end: usize) -> usize {
    let bytes = text.as_bytes();
    let end = end.min(bytes.len());
    let Some(last) = end.checked_sub(1) else { return 0 };
    match bytes[last] {
        // After an opening bracket (serde_json stops right after it for containers).
        b'{' | b'[' => last,
        b'"' => {
            let mut index = last;
            while index > 0 {
                index -= 1;
                if bytes[index] == b'"' {
                    let backslashes = bytes[..index].iter().rev().take_while(|&&byte| byte == b'\\').count();
                    if backslashes % 2 == 0 {
                        return index;
                    }
                }
            }
            0
        }
        _ => {
            let mut index = end;
            while index > 0
                && (bytes[index - 1].is_ascii_alphanumeric() || b"+-.".contains(&bytes[index - 1]))
            {
                index -= 1;
            }
            index
        }
    }
}

/// Converts a 1-based line and column (in characters) to a byte offset.
fn offset_of(text: &str, position: Position) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..position.line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let line = &text[line_start..];
    let column_offset: usize = line.chars().take(position.column.saturating_sub(1)).map(char::len_utf8).sum();
    Some(line_start + column_offset)
}

fn position_of(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    Position { line, column: before[line_start..].chars().count() + 1 }
}

/// Walks down `path` and fails at its end.
struct Probe<'a> {
    path: &'a [Segment],
    fail_at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            deserializer.deserialize_any(FailHere)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        DeserializeSeed::deserialize(self, deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        let wanted = match self.path.first() {
            Some(Segment::Index(index)) => Some(*index),
            _ => None,
        };
        let mut index = 0;
        loop {
            let more = if Some(index) == wanted {
                access.next_element_seed(Probe { path: &self.path[1..], fail_at_key: self.fail_at_key })?
            } else {
                access.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while let Some(key) = access.next_key::<MappingKey>()? {
            match self.path.first() {
                Some(Segment::Key(wanted)) if *wanted == key.0 => {
                    if self.path.len() == 1 && self.fail_at_key {
                        return Err(de::Error::custom(PROBE_MESSAGE));
                    }
                    access.next_value_seed(Probe { path: &self.path[1..], fail_at_key: self.fail_at_key })?;
                }
                _ => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct FailHere;

impl<'de> Visitor<'de> for FailHere {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(PROBE_MESSAGE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(PROBE_MESSAGE))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(PROBE_MESSAGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> NodePath {
        let mut segments = Vec::new();
        for part in text.split('.') {
            match part.split_once('[') {
                Some((key, index)) => {
                    segments.push(Segment::Key(key.to_string()));
                    segments.push(Segment::Index(index.trim_end_matches(']').parse().unwrap()));
                }
                None => segments.push(Segment::Key(part.to_string())),
            }
        }
        NodePath(segments)
    }

    const YAML: &str = "ref: foo\npackages:\n  - a\n  - b c\nnested:\n  deep:\n    k: [1, 2, {x: 3}]\n";
    const JSON: &str = "{\n  \"ref\": \"foo\",\n  \"packages\": [\"a\",\n     \"b c\"],\n  \"nested\": {\"deep\": {\"k\": [1, 2, {\"x\": 3}]}}\n}\n";

    #[test]
    fn finds_values_and_keys_in_both_formats() {
        let cases = [
            ("ref", Target::Value, (1, 6), (2, 10)),
            ("ref", Target::Key, (1, 1), (2, 3)),
            ("packages[1]", Target::Value, (4, 5), (4, 6)),
            ("nested.deep.k[2].x", Target::Value, (7, 19), (5, 41)),
            ("nested.deep.k[2].x", Target::Key, (7, 16), (5, 36)),
            ("nested", Target::Key, (5, 1), (5, 3)),
        ];
        for (text, target, yaml, json) in cases {
            let at = locate(YAML, Format::Yaml, &path(text), target).unwrap();
            assert_eq!((at.line, at.column), yaml, "yaml {text} {target:?}");
            let at = locate(JSON, Format::Json, &path(text), target).unwrap();
            assert_eq!((at.line, at.column), json, "json {text} {target:?}");
        }
    }

    #[test]
    fn missing_paths_give_none() {
        assert_eq!(locate(YAML, Format::Yaml, &path("nope"), Target::Value), None);
        assert_eq!(locate(JSON, Format::Json, &path("packages[7]"), Target::Value), None);
    }

    #[test]
    fn path_display() {
        assert_eq!(path("conditional-include[2].if").to_string(), "conditional-include[2].if");
    }
}
