//! The `[[streams]]` entries: a branch, a treefile in it, the arches to compose and the image.

use super::StreamSettings;
use super::reader::{Document, Scope, Table, array_item_scope, nested_scope, type_name};
use super::values::{
    check_arch, check_branch_name, check_image_repository, check_repository_path, check_stream_name,
};
use std::collections::BTreeMap;
use toml::de::DeValue;
use treefiles::Variable;

/// rpm-ostree's and coreos-assembler's conventional treefile name.
const DEFAULT_TREEFILE: &str = "manifest.yaml";
/// Priorities are relative; this range leaves room and keeps typos (priority = 1000000) visible.
const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -1000..=1000;

const STREAM_KEYS: &[&str] = &["name", "branch", "treefile", "arches", "image", "variables", "priority"];

pub(super) fn read_streams(document: &mut Document, root: Table) -> Option<Vec<StreamSettings>> {
    if !root.contains("streams") {
        let hint = "at least one [[streams]] section naming a branch, a treefile, arches and an image";
        root.missing(document, "streams", hint);
        return None;
    }
    let mut streams = Vec::new();
    let mut complete = true;
    let mut first_use: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (entries, span)) in root.tables(document, "streams").into_iter().enumerate() {
        let scope = array_item_scope("streams", index + 1);
        let table = Table::new(entries, &scope, &span);
        match read_stream(document, table, &scope) {
            Some(stream) => {
                if let Some(first) = first_use.get(&stream.name) {
                    let span = table.value("name").map(|value| value.span());
                    let message = format!("\"{}\" is already the name of [[streams]] #{first}", stream.name);
                    document.report(span, table.key("name"), super::ConfigProblem::Invalid { message });
                    complete = false;
                } else {
                    first_use.insert(stream.name.clone(), index + 1);
                }
                streams.push(stream);
            }
            None => complete = false,
        }
    }
    complete.then_some(streams)
}

fn read_stream(document: &mut Document, table: Table, scope: &Scope) -> Option<StreamSettings> {
    table.check_keys(document, STREAM_KEYS);
    let name = table.required_string(document, "name", "the stream's name (it becomes an image tag)");
    let name = name.and_then(|name| match check_stream_name(name.value) {
        Ok(()) => Some(name.value.to_string()),
        Err(message) => {
            document.invalid(name.span, table.key("name"), message);
            None
        }
    });
    let branch = match table.string(document, "branch") {
        None if table.contains("branch") => None,
        None => name.clone(),
        Some(branch) => match check_branch_name(branch.value) {
            Ok(()) => Some(branch.value.to_string()),
            Err(message) => {
                document.invalid(branch.span, table.key("branch"), message);
                None
            }
        },
    };
    let treefile = match table.string(document, "treefile") {
        None if table.contains("treefile") => None,
        None => Some(DEFAULT_TREEFILE.to_string()),
        Some(treefile) => match check_repository_path(treefile.value) {
            Ok(()) => Some(treefile.value.trim_start_matches("./").to_string()),
            Err(message) => {
                document.invalid(treefile.span, table.key("treefile"), message);
                None
            }
        },
    };
    let arches = read_arches(document, table);
    let image = table.required_string(document, "image", "the image repository the stream is pushed to");
    let image = image.and_then(|image| match check_image_repository(image.value) {
        Ok(()) => Some(image.value.to_string()),
        Err(message) => {
            document.invalid(image.span, table.key("image"), message);
            None
        }
    });
    let variables = read_variables(document, table, scope);
    let priority = match table.integer(document, "priority") {
        None => (!table.contains("priority")).then_some(0),
        Some(priority) if PRIORITY_RANGE.contains(&priority.value) => i32::try_from(priority.value).ok(),
        Some(priority) => {
            let message = format!("must be between {} and {}", PRIORITY_RANGE.start(), PRIORITY_RANGE.end());
            document.invalid(priority.span, table.key("priority"), message);
            None
        }
    };
    Some(StreamSettings {
        name: name?,
        branch: branch?,
        treefile: treefile?,
        arches: arches?,
        image: image?,
        variables: variables?,
        priority: priority?,
    })
}

fn read_arches(document: &mut Document, table: Table) -> Option<Vec<String>> {
    if !table.contains("arches") {
        table.missing(document, "arches", "the rpm architectures to compose, e.g. [\"x86_64\"]");
        return None;
    }
    let list = table.string_list(document, "arches")?;
    let item_count =
        table.value("arches").and_then(|value| value.get_ref().as_array()).map_or(0, |items| items.len());
    if item_count == 0 {
        document.invalid(list.span, table.key("arches"), "must not be empty");
        return None;
    }
    let mut arches: Vec<String> = Vec::new();
    let mut valid = item_count == list.value.len();
    for arch in &list.value {
        if let Err(message) = check_arch(arch.value) {
            document.invalid(arch.span.clone(), table.key("arches"), message);
            valid = false;
        } else if arches.iter().any(|known| known == arch.value) {
            document.invalid(
                arch.span.clone(),
                table.key("arches"),
                format!("\"{}\" is listed twice", arch.value),
            );
            valid = false;
        } else {
            arches.push(arch.value.to_string());
        }
    }
    valid.then_some(arches)
}

fn read_variables(
    document: &mut Document,
    table: Table,
    scope: &Scope,
) -> Option<BTreeMap<String, Variable>> {
    let Some((entries, span)) = table.table(document, "variables") else {
        return (!table.contains("variables")).then(BTreeMap::new);
    };
    let variables_scope = nested_scope(scope, "variables");
    let variables_table = Table::new(entries, &variables_scope, &span);
    let mut variables = BTreeMap::new();
    let mut valid = true;
    for (name, name_span) in variables_table.keys() {
        let Some(value) = variables_table.value(name) else { continue };
        let valid_name = name.chars().next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_');
        if !valid_name {
            let message = "is not a variable name: letters, digits and \"_\", not starting with a digit";
            document.invalid(name_span, variables_table.key(name), message);
            valid = false;
            continue;
        }
        if treefiles::RESERVED_VARIABLES.contains(&name) {
            let message = "is set by arbor for each compose; remove it";
            document.invalid(name_span, variables_table.key(name), message);
            valid = false;
            continue;
        }
        let variable = match value.get_ref() {
            DeValue::String(text) => Some(Variable::Text(text.to_string())),
            DeValue::Boolean(flag) => Some(Variable::Bool(*flag)),
            DeValue::Integer(_) => variables_table
                .integer(document, name)
                .and_then(|number| {
                    u64::try_from(number.value).ok().or_else(|| {
                        document.invalid(number.span, variables_table.key(name), "must not be negative");
                        None
                    })
                })
                .map(Variable::Number),
            other => {
                let problem = super::ConfigProblem::WrongType {
                    expected: "a string, a boolean or a non-negative integer",
                    found: type_name(other),
                };
                document.report(Some(value.span()), variables_table.key(name), problem);
                None
            }
        };
        match variable {
            Some(variable) => {
                variables.insert(name.to_string(), variable);
            }
            None => valid = false,
        }
    }
    valid.then_some(variables)
}
