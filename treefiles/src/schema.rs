//! A JSON Schema (draft 2020-12) for treefiles, generated from the key table, for editors.

use serde_json::{Map, Value, json};

use crate::treefile::{KEYS, KeyFlag};

/// Schema of an include value: a file name, a list of file names, or an inline treefile object.
fn include_schema() -> Value {
    json!({"oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
        {"$ref": "#"}
    ]})
}

/// The whole schema as a JSON value.
pub fn treefile_schema() -> Value {
    let mut properties = Map::new();
    for key in KEYS {
        let mut schema = (key.schema)();
        if let Value::Object(object) = &mut schema {
            let mut description = key.description.trim().to_string();
            if let Some(KeyFlag::Deprecated(reason)) =
                key.flags.iter().find(|flag| matches!(flag, KeyFlag::Deprecated(_)))
            {
                description.push_str(&format!(" Deprecated: {reason}."));
                object.insert("deprecated".into(), Value::Bool(true));
            }
            object.insert("description".into(), Value::String(description));
        }
        if let Some(legacy) = key.legacy_name {
            let mut legacy_schema = schema.clone();
            if let Value::Object(object) = &mut legacy_schema {
                object.insert("deprecated".into(), Value::Bool(true));
                object.insert(
                    "description".into(),
                    Value::String(format!("Legacy spelling of \"{}\".", key.name)),
                );
            }
            properties.insert(legacy.to_string(), legacy_schema);
        }
        properties.insert(key.name.to_string(), schema);
    }
    properties.insert(
        "include".into(),
        json!({"description": "Treefiles to include (relative to this file), or an inline treefile.",
               "oneOf": include_schema()["oneOf"]}),
    );
    properties.insert(
        "arch-include".into(),
        json!({"description": "Includes for one architecture only.", "type": "object",
               "additionalProperties": include_schema()}),
    );
    properties.insert(
        "conditional-include".into(),
        json!({"description": "Includes applied when every condition holds: VAR OP VALUE with == != < <= > >=.",
               "type": "array", "items": {"type": "object", "required": ["if", "include"],
               "additionalProperties": false, "properties": {
                   "if": {"oneOf": [{"type": "string", "pattern": CONDITION_PATTERN},
                                    {"type": "array", "items": {"type": "string", "pattern": CONDITION_PATTERN}}]},
                   "include": include_schema()}}}),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rpm-ostree treefile (arbor)",
        "type": "object",
        "properties": properties,
        "patternProperties": {"^packages-[A-Za-z0-9_]+$": {
            "description": "Packages for one architecture only.", "type": "array", "items": {"type": "string"}}},
        "additionalProperties": false,
    })
}

/// rpm-ostree's condition grammar.
const CONDITION_PATTERN: &str = r#"^\s*[A-Za-z0-9_-]+\s*(==|!=|<=|>=|<|>)\s*(true|false|[0-9]+|"[^"]*")\s*$"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_described() {
        let schema = treefile_schema();
        let properties = schema["properties"].as_object().unwrap();
        for key in KEYS {
            let entry = &properties[key.name];
            assert!(entry["description"].as_str().is_some_and(|text| !text.is_empty()), "{}", key.name);
        }
        for name in ["include", "arch-include", "conditional-include", "gpg_key", "boot_location"] {
            assert!(properties.contains_key(name), "{name}");
        }
    }
}
