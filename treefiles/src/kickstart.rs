//! The kickstart subset rpm-ostree reads from `.ks` treefiles: `%packages` sections (with
//! `--exclude-weakdeps`), `-name` exclusions, `%include`, comments and blank lines.

use crate::diagnostic::Problem;
use crate::load::{IncludeEntry, Includes};
use crate::locate::{NodePath, Position, Target};
use crate::read::{PackageSet, RawProblem};
use crate::treefile::Treefile;

/// Parses a kickstart file. Problems name their line; the document is `None` only if nothing usable
/// could be read.
pub(crate) fn parse(text: &str) -> (Option<(Treefile, Includes)>, Vec<RawProblem>) {
    let mut treefile = Treefile::default();
    let mut includes = Includes::default();
    let mut problems = Vec::new();
    let mut in_packages = false;
    let mut packages = PackageSet::default();
    let mut excluded = Vec::new();
    let mut problem = |line: usize, message: String| {
        let mut raw =
            RawProblem::error(&NodePath::root(), Target::Value, Problem::Kickstart { line, message });
        raw.line = Some(Position { line, column: 1 });
        problems.push(raw);
    };
    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        match first {
            "%packages" => {
                if in_packages {
                    problem(number, "%packages inside %packages; close the first with %end".into());
                }
                in_packages = true;
                for option in words {
                    match option {
                        "--exclude-weakdeps" => treefile.recommends = Some(false),
                        other => problem(number, format!("unsupported %packages option \"{other}\"")),
                    }
                }
            }
            "%end" => {
                if !in_packages {
                    problem(number, "%end without %packages".into());
                }
                in_packages = false;
            }
            "%include" => match (words.next(), words.next()) {
                (Some(name), None) => includes.plain.push(IncludeEntry::File {
                    name: name.to_string(),
                    path: NodePath::root().index(number),
                }),
                _ => problem(number, "%include takes exactly one file name".into()),
            },
            _ if in_packages => {
                for word in line.split_whitespace() {
                    match word.strip_prefix('-') {
                        Some("") => problem(number, "\"-\" must be followed by a package name".into()),
                        Some(name) => excluded.push(name.to_string()),
                        None if word.starts_with('@') => {
                            problem(number, format!("groups ({word}) are not supported; list the packages"));
                        }
                        None => {
                            packages.0.insert(word.to_string());
                        }
                    }
                }
            }
            other => {
                problem(number, format!("\"{other}\" is not supported (only %packages, %end and %include)"))
            }
        }
    }
    if in_packages {
        problem(text.lines().count().max(1), "%packages is not closed with %end".into());
    }
    if !packages.0.is_empty() {
        treefile.packages = Some(packages);
    }
    if !excluded.is_empty() {
        treefile.exclude_packages = Some(excluded);
    }
    (Some((treefile, includes)), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_excludes_and_includes() {
        let text = "# comment\n%include base.ks\n%packages --exclude-weakdeps\nbash coreutils\n-nano\n%end\n";
        let (document, problems) = parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        let (treefile, includes) = document.unwrap();
        assert_eq!(treefile.packages.unwrap().iter().collect::<Vec<_>>(), ["bash", "coreutils"]);
        assert_eq!(treefile.exclude_packages.unwrap(), ["nano"]);
        assert_eq!(treefile.recommends, Some(false));
        assert_eq!(includes.plain.len(), 1);
    }

    #[test]
    fn problems_name_their_line() {
        let cases = [
            ("%packages\nbash\n", 2, "not closed"),
            ("%end\n", 1, "%end without"),
            ("url --url=x\n", 1, "\"url\" is not supported"),
            ("%packages --nocore\n%end\n", 1, "unsupported %packages option"),
            ("%packages\n@core\n%end\n", 2, "groups"),
            ("%include\n", 1, "exactly one"),
        ];
        for (text, line, expected) in cases {
            let (_, problems) = parse(text);
            let first = &problems[0];
            assert_eq!(first.line.map(|at| at.line), Some(line), "{text}");
            assert!(first.problem.to_string().contains(expected), "{text}: {}", first.problem);
        }
    }
}
