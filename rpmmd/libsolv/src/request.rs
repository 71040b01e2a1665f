//! The plain data of a depsolve: [`Request`] in, [`Transaction`] or [`SolveProblems`] out.

use std::fmt;

use crate::pool::SolvableId;

/// What to install. Specs are those of [`crate::Pool::select`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Specs to install from any repository.
    pub install: Vec<String>,
    /// `(repository name, spec)`: the package must come from that repository.
    pub install_from_repo: Vec<(String, String)>,
    /// Whether `Recommends` are installed too; `false` sets `SOLVER_FLAG_IGNORE_RECOMMENDED`.
    pub weak_dependencies: bool,
}

/// The result of a successful depsolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// Packages to install, in installation order: dependencies before their dependents wherever
    /// there is no cycle (inside a cycle, `Requires(pre)` first). The same packages always come
    /// in the same order, whether the repositories were loaded from XML or from `.solv` caches.
    pub install: Vec<SolvableId>,
}

/// Why a depsolve failed: every problem libsolv found, each in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SolveProblems {
    /// One entry a problem, e.g. `nothing provides libfoo.so.1()(64bit) needed by app-2.0-1.x86_64`.
    /// A problem that involves several rules lists all of them, separated by `; `.
    pub problems: Vec<String>,
}

impl fmt::Display for SolveProblems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(formatter, "{count} {}:", if count == 1 { "problem" } else { "problems" })?;
        for (index, problem) in self.problems.iter().enumerate() {
            write!(formatter, "\n  problem {}: {problem}", index + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_numbers_every_problem() {
        let problems = SolveProblems { problems: vec!["first".into(), "second".into()] };
        assert_eq!(problems.to_string(), "2 problems:\n  problem 1: first\n  problem 2: second");
        let single = SolveProblems { problems: vec!["only".into()] };
        assert_eq!(single.to_string(), "1 problem:\n  problem 1: only");
    }
}
