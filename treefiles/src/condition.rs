//! `conditional-include` conditions: `VAR OP VALUE` with `== != < <= > >=` and a value that is
//! `true`, `false`, digits or a double-quoted string. Ordering needs numbers; an undefined variable or
//! a type mismatch is an error (rpm-ostree's rules).

use std::collections::BTreeMap;

use crate::read::Variable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub variable: String,
    pub operator: Operator,
    pub value: Variable,
}

/// Parses one condition. The error says what is wrong in words.
pub fn parse(text: &str) -> Result<Condition, String> {
    let trimmed = text.trim();
    let name_length = trimmed
        .find(|character: char| !(character.is_ascii_alphanumeric() || character == '_' || character == '-'))
        .unwrap_or(trimmed.len());
    let (variable, rest) = trimmed.split_at(name_length);
    if variable.is_empty() {
        return Err("expected VARIABLE OPERATOR VALUE, e.g. basearch == \"x86_64\"".into());
    }
    let rest = rest.trim_start();
    let (operator, rest) = [
        ("==", Operator::Equal),
        ("!=", Operator::NotEqual),
        ("<=", Operator::LessOrEqual),
        (">=", Operator::GreaterOrEqual),
        ("<", Operator::Less),
        (">", Operator::Greater),
    ]
    .into_iter()
    .find_map(|(symbol, operator)| rest.strip_prefix(symbol).map(|rest| (operator, rest)))
    .ok_or_else(|| format!("expected an operator (==, !=, <, <=, >, >=) after \"{variable}\""))?;
    let value = parse_value(rest.trim())?;
    if !matches!(operator, Operator::Equal | Operator::NotEqual) && !matches!(value, Variable::Number(_)) {
        return Err("ordering operators (<, <=, >, >=) only compare numbers".into());
    }
    Ok(Condition { variable: variable.to_string(), operator, value })
}

fn parse_value(text: &str) -> Result<Variable, String> {
    match text {
        "true" => Ok(Variable::Bool(true)),
        "false" => Ok(Variable::Bool(false)),
        digits if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) => {
            digits.parse().map(Variable::Number).map_err(|_| format!("number {digits} is too large"))
        }
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            let inner = &quoted[1..quoted.len() - 1];
            if inner.contains('"') {
                return Err("a string value cannot contain a double quote".into());
            }
            Ok(Variable::Text(inner.to_string()))
        }
        "" => Err("the value is missing".into()),
        other => Err(format!("value {other} must be true, false, a number or a \"double-quoted string\"")),
    }
}

impl Condition {
    /// Evaluates against the variables in scope.
    pub fn evaluate(&self, variables: &BTreeMap<String, Variable>) -> Result<bool, String> {
        let actual = variables
            .get(&self.variable)
            .ok_or_else(|| format!("variable \"{}\" is not defined", self.variable))?;
        let ordering = match (actual, &self.value) {
            (Variable::Bool(left), Variable::Bool(right)) => left.cmp(right),
            (Variable::Number(left), Variable::Number(right)) => left.cmp(right),
            (Variable::Text(left), Variable::Text(right)) => left.cmp(right),
            (actual, wanted) => {
                return Err(format!(
                    "variable \"{}\" is {} ({actual}) but is compared with {}",
                    self.variable,
                    actual.type_name(),
                    wanted.type_name()
                ));
            }
        };
        Ok(match self.operator {
            Operator::Equal => ordering.is_eq(),
            Operator::NotEqual => ordering.is_ne(),
            Operator::Less => ordering.is_lt(),
            Operator::LessOrEqual => ordering.is_le(),
            Operator::Greater => ordering.is_gt(),
            Operator::GreaterOrEqual => ordering.is_ge(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables() -> BTreeMap<String, Variable> {
        BTreeMap::from([
            ("basearch".to_string(), Variable::Text("x86_64".into())),
            ("releasever".to_string(), Variable::Number(41)),
            ("prod".to_string(), Variable::Bool(false)),
        ])
    }

    #[test]
    fn every_operator_on_every_type() {
        let cases = [
            ("basearch == \"x86_64\"", true),
            ("basearch != \"x86_64\"", false),
            ("basearch==\"s390x\"", false),
            ("  basearch   !=   \"s390x\"  ", true),
            ("releasever == 41", true),
            ("releasever != 41", false),
            ("releasever < 41", false),
            ("releasever <= 41", true),
            ("releasever > 40", true),
            ("releasever >= 42", false),
            ("releasever<42", true),
            ("prod == false", true),
            ("prod != false", false),
            ("prod == true", false),
        ];
        for (text, expected) in cases {
            let condition = parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(condition.evaluate(&variables()), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_conditions_are_explained() {
        let cases = [
            ("", "expected VARIABLE OPERATOR VALUE"),
            ("basearch", "expected an operator"),
            ("basearch =~ \"x\"", "expected an operator"),
            ("basearch == x86_64", "must be true, false, a number"),
            ("basearch == ", "the value is missing"),
            ("basearch < \"x\"", "only compare numbers"),
            ("prod >= true", "only compare numbers"),
            ("releasever == 99999999999999999999999", "too large"),
            ("basearch == \"a\"b\"", "cannot contain a double quote"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn evaluation_errors() {
        let cases = [
            ("stream == \"stable\"", "variable \"stream\" is not defined"),
            ("releasever == \"41\"", "is a number (41) but is compared with a string"),
            ("prod == 1", "is a boolean (false) but is compared with a number"),
            ("basearch == true", "is a string (x86_64) but is compared with a boolean"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap().evaluate(&variables()).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
