//! A format-neutral document tree: YAML and JSON parse into the same `Node`, keeping key order.
//!
//! Positions are not stored here: parsing stays fast, and the rare error path recovers the line and
//! column of a node from the source text on demand (see `locate`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The syntax a document is written in, chosen from its file name as rpm-ostree does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// `.yaml` / `.yml` are YAML; everything else is JSON (rpm-ostree's rule).
    pub fn from_file_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") { Format::Yaml } else { Format::Json }
    }
}

/// One value of a parsed document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    /// Entries in document order; keys are unique (duplicates are a parse error).
    Mapping(Vec<(String, Node)>),
}

impl Node {
    /// A short name of the node's type for error messages ("a string", "a list", ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Integer(_) | Node::Unsigned(_) => "an integer",
            Node::Float(_) => "a number",
            Node::String(_) => "a string",
            Node::Sequence(_) => "a list",
            Node::Mapping(_) => "a mapping",
        }
    }

    /// Converts to a JSON value (for free-form keys such as `metadata`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(value) => Value::Bool(*value),
            Node::Integer(value) => Value::from(*value),
            Node::Unsigned(value) => Value::from(*value),
            Node::Float(value) => serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number),
            Node::String(value) => Value::String(value.clone()),
            Node::Sequence(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Mapping(entries) => {
                Value::Object(entries.iter().map(|(key, value)| (key.clone(), value.to_json())).collect())
            }
        }
    }
}

/// A syntax error with its position (1-based line and column) when the parser gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Parses a whole document. An empty YAML document is an empty mapping (as serde_yaml reads it into a struct).
pub fn parse(text: &str, format: Format) -> Result<Node, SyntaxError> {
    match format {
        Format::Yaml => {
            if text.trim().is_empty() {
                return Ok(Node::Mapping(Vec::new()));
            }
            let deserializer = yaml_serde::Deserializer::from_str(text);
            Node::deserialize(deserializer).map_err(|error| {
                let location = error.location();
                SyntaxError {
                    message: strip_yaml_position(&error.to_string()),
                    line: location.as_ref().map(|at| at.line()),
                    column: location.as_ref().map(|at| at.column()),
                }
            })
        }
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let node =
                Node::deserialize(&mut deserializer).and_then(|node| deserializer.end().map(|()| node));
            node.map_err(|error| SyntaxError {
                message: strip_json_position(&error.to_string()),
                line: (error.line() > 0).then_some(error.line()),
                column: (error.line() > 0).then_some(error.column()),
            })
        }
    }
}

/// libyaml says "PROBLEM at line L column C, while parsing CONTEXT at line L2 column C2"; the problem's
/// position is reported separately, the context's is kept in short form.
fn strip_yaml_position(message: &str) -> String {
    let (problem, context) = match message.split_once(", while ") {
        Some((problem, context)) => (problem, Some(context)),
        None => (message, None),
    };
    let mut text = strip_position(problem).to_string();
    if let Some(context) = context {
        let place = context.rfind(" at line ").map(|index| &context[index + " at line ".len()..]);
        text.push_str(&format!(" (while {}", strip_position(context)));
        if let Some((line, column)) = place.and_then(|place| place.split_once(" column ")) {
            text.push_str(&format!(" that starts at {line}:{column}"));
        }
        text.push(')');
    }
    text
}

fn strip_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |index| &message[..index])
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn strip_json_position(message: &str) -> String {
    strip_position(message).to_string()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Integer(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Unsigned(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
        Ok(Node::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(Node::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Node, E> {
        Ok(Node::String(value))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some(MappingKey(key)) = access.next_key::<MappingKey>()? {
            if entries.iter().any(|(existing, _)| *existing == key) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let value = access.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Node::Mapping(entries))
    }
}

/// A mapping key: any scalar, kept as its text (`2024:` and `"2024":` are the same key). The locator
/// reads keys with this same type, so it finds exactly the keys the tree was built from.
pub(crate) struct MappingKey(pub(crate) String);

impl<'de> Deserialize<'de> for MappingKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MappingKey, D::Error> {
        deserializer.deserialize_any(MappingKeyVisitor)
    }
}

struct MappingKeyVisitor;

impl Visitor<'_> for MappingKeyVisitor {
    type Value = MappingKey;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a scalar mapping key")
    }

    fn visit_bool<E>(self, value: bool) -> Result<MappingKey, E> {
        Ok(MappingKey(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<MappingKey, E> {
        Ok(MappingKey(value.to_string()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<MappingKey, E> {
        Ok(MappingKey(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<MappingKey, E> {
        Ok(MappingKey(value.to_string()))
    }

    fn visit_str<E>(self, value: &str) -> Result<MappingKey, E> {
        Ok(MappingKey(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<MappingKey, E> {
        Ok(MappingKey(value))
    }

    fn visit_unit<E>(self) -> Result<MappingKey, E> {
        Ok(MappingKey("null".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_give_the_same_tree() {
        let yaml = "ref: a\npackages:\n  - x\n  - y\nrecommends: false\nn: 3\n";
        let json = r#"{"ref": "a", "packages": ["x", "y"], "recommends": false, "n": 3}"#;
        assert_eq!(parse(yaml, Format::Yaml).unwrap(), parse(json, Format::Json).unwrap());
    }

    #[test]
    fn key_order_is_kept() {
        let node = parse("b: 1\na: 2\n", Format::Yaml).unwrap();
        let Node::Mapping(entries) = node else { panic!("not a mapping") };
        let keys: Vec<_> = entries.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn duplicate_keys_are_errors_with_a_position() {
        for (text, format) in [("a: 1\na: 2\n", Format::Yaml), ("{\"a\": 1,\n \"a\": 2}", Format::Json)] {
            let error = parse(text, format).unwrap_err();
            assert!(error.message.contains("duplicate key \"a\""), "{error:?}");
            assert!(error.line.is_some(), "{error:?}");
        }
    }

    #[test]
    fn syntax_errors_have_positions() {
        let error = parse("a: [1, 2\nb: 3\n", Format::Yaml).unwrap_err();
        assert!(error.line.is_some());
        let error = parse("{\"a\": 1,,}", Format::Json).unwrap_err();
        assert_eq!((error.line, error.column), (Some(1), Some(9)));
    }

    #[test]
    fn format_follows_the_file_name() {
        assert_eq!(Format::from_file_name("a.yaml"), Format::Yaml);
        assert_eq!(Format::from_file_name("a.YML"), Format::Yaml);
        assert_eq!(Format::from_file_name("a.json"), Format::Json);
        assert_eq!(Format::from_file_name("treefile"), Format::Json);
    }
}
