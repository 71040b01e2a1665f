//! Parsing dependency strings (`name`, `name OP version`, `(rich dependency)`) into `rpm` crate values.

use anyhow::{Result, bail};
use rpm::{Dependency, DependencyFlags};

/// Parses one dependency string of package `package` into the `rpm` crate's [`Dependency`].
///
/// A string starting with `(` is a rich dependency and is stored verbatim (rpm parses it at
/// install time). Otherwise it is `name` or `name OP version` separated by whitespace.
pub(super) fn parse_dependency(package: &str, text: &str) -> Result<Dependency> {
    let text = text.trim();
    if text.starts_with('(') {
        if !text.ends_with(')') {
            bail!("package {package}: rich dependency `{text}` does not end with `)`");
        }
        return Ok(Dependency::any(text));
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [name] => Ok(Dependency::any(*name)),
        [name, operator, version] => {
            let flags = match *operator {
                "<" => DependencyFlags::LESS,
                "<=" => DependencyFlags::LE,
                "=" | "==" => DependencyFlags::EQUAL,
                ">=" => DependencyFlags::GE,
                ">" => DependencyFlags::GREATER,
                other => bail!(
                    "package {package}: dependency `{text}` has unknown operator `{other}` \
                     (expected one of <, <=, =, >=, >)"
                ),
            };
            Ok(Dependency { name: (*name).to_string(), flags, version: (*version).to_string() })
        }
        _ => bail!(
            "package {package}: cannot parse dependency `{text}`: expected `name`, \
             `name OP version` or a rich dependency in parentheses"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_versioned_and_rich_dependencies() {
        let plain = parse_dependency("p", "libfoo.so.1()(64bit)").expect("plain dependency parses");
        assert_eq!(plain, Dependency::any("libfoo.so.1()(64bit)"));
        let versioned = parse_dependency("p", "foo >= 1:1.0-2").expect("versioned dependency parses");
        assert_eq!(versioned, Dependency::greater_eq("foo", "1:1.0-2"));
        let rich = parse_dependency("p", "(crun or runc >= 1.0)").expect("rich dependency parses");
        assert_eq!(rich, Dependency::any("(crun or runc >= 1.0)"));
    }

    #[test]
    fn rejects_malformed_dependencies_naming_the_package() {
        let error = parse_dependency("app", "foo ~> 1").expect_err("unknown operator");
        assert!(error.to_string().contains("package app"), "{error}");
        assert!(parse_dependency("app", "foo >=").is_err());
        assert!(parse_dependency("app", "(foo or bar").is_err());
    }
}
