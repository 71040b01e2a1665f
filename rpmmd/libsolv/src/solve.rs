//! Depsolving a [`Request`] against a [`Pool`], and turning libsolv's problems into words.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::ptr::NonNull;

use libsolv_sys as sys;

use crate::ordering;
use crate::pool::{Pool, SolvableId, c_string_to_owned};
use crate::queue::Queue;
use crate::request::{Request, SolveProblems, Transaction};

/// Value that switches a solver flag on (`solver_set_flag`).
const FLAG_ON: i32 = 1;
/// Separates the texts of the rules of one problem.
const RULE_SEPARATOR: &str = "; ";

/// An owned libsolv solver, freed on drop.
struct Solver(NonNull<sys::Solver>);

impl Drop for Solver {
    fn drop(&mut self) {
        // SAFETY: the solver came from solver_create and is freed exactly once, here.
        unsafe { sys::solver_free(self.0.as_ptr()) };
    }
}

/// An owned libsolv transaction, freed on drop.
struct OwnedTransaction(NonNull<sys::Transaction>);

impl Drop for OwnedTransaction {
    fn drop(&mut self) {
        // SAFETY: the transaction came from solver_create_transaction and is freed exactly once, here.
        unsafe { sys::transaction_free(self.0.as_ptr()) };
    }
}

/// Appends an install job for every selector/id pair of a selection.
fn push_install_jobs(job: &mut Queue, selection: &Queue) {
    for pair in selection.as_slice().chunks_exact(2) {
        job.push2(pair[0] | sys::SOLVER_INSTALL as sys::Id, pair[1]);
    }
}

impl Pool {
    /// Solves `request` from scratch (nothing is installed yet).
    ///
    /// On success the packages come in installation order: providers before the packages that
    /// require them, deterministic for the same packages however the pool was loaded. On failure every problem is listed:
    /// specs that match nothing (`no package provides <spec>`) and each problem of the solver,
    /// all of its rules in words.
    pub fn solve(&mut self, request: &Request) -> Result<Transaction, SolveProblems> {
        self.ensure_prepared();
        let mut problems = Vec::new();
        let mut job = Queue::new();
        for spec in &request.install {
            match self.make_selection(spec) {
                Some(selection) => push_install_jobs(&mut job, &selection),
                None => problems.push(format!("no package provides {spec}")),
            }
        }
        for (repo_name, spec) in &request.install_from_repo {
            let Some(repo) = self.repo_by_name(repo_name) else {
                problems.push(format!("no repository named {repo_name} (requested for {spec})"));
                continue;
            };
            match self
                .make_selection(spec)
                .and_then(|selection| self.filter_selection_to_repo(selection, repo))
            {
                Some(selection) => push_install_jobs(&mut job, &selection),
                None => problems.push(format!("no package provides {spec} in repository {repo_name}")),
            }
        }

        // SAFETY: `self.raw` is a valid, prepared pool; solver_create aborts rather than return NULL.
        let solver =
            Solver(NonNull::new(unsafe { sys::solver_create(self.raw.as_ptr()) }).expect("solver_create"));
        if !request.weak_dependencies {
            // SAFETY: `solver` is a valid solver; the flag is a known libsolv solver flag.
            unsafe {
                sys::solver_set_flag(solver.0.as_ptr(), sys::SOLVER_FLAG_IGNORE_RECOMMENDED as i32, FLAG_ON)
            };
        }
        // SAFETY: `solver` is valid and `job` an initialised queue of selector/id pairs.
        let problem_count = unsafe { sys::solver_solve(solver.0.as_ptr(), job.as_mut_ptr()) };
        if problem_count > 0 {
            problems.extend((1..=problem_count).map(|problem| self.describe_problem(&solver, problem)));
        }
        if !problems.is_empty() {
            return Err(SolveProblems { problems });
        }
        Ok(Transaction { install: self.ordered_installs(&solver) })
    }

    /// One problem in words: libsolv's summary of it, then the other rules involved (plain job
    /// rules, "conflicting requests", only when there is nothing else to say).
    fn describe_problem(&self, solver: &Solver, problem: i32) -> String {
        let solver = solver.0.as_ptr();
        // SAFETY: `solver` is a valid solver that just failed with at least `problem` problems;
        // the string is in pool temporary space and copied at once.
        let summary = unsafe { c_string_to_owned(sys::solver_problem2str(solver, problem)) };
        let mut texts: Vec<String> = summary.into_iter().collect();
        let mut job_texts = Vec::new();
        let mut rules = Queue::new();
        // SAFETY: as above; `rules` is an initialised queue.
        unsafe { sys::solver_findallproblemrules(solver, problem, rules.as_mut_ptr()) };
        for &rule in rules.as_slice() {
            let (mut source, mut target, mut dependency): (sys::Id, sys::Id, sys::Id) = (0, 0, 0);
            // SAFETY: `rule` is a rule id libsolv returned for this solver; the out-pointers are
            // valid, and the text is copied before the next libsolv call.
            let (info, text) = unsafe {
                let info = sys::solver_ruleinfo(solver, rule, &mut source, &mut target, &mut dependency);
                (
                    info,
                    c_string_to_owned(sys::solver_problemruleinfo2str(
                        solver, info, source, target, dependency,
                    )),
                )
            };
            // A plain job rule only says "conflicting requests": noise next to the real causes.
            let is_plain_job_rule = info == sys::SolverRuleinfo_SOLVER_RULE_JOB;
            if let Some(text) = text
                && !texts.contains(&text)
            {
                if is_plain_job_rule { job_texts.push(text) } else { texts.push(text) }
            }
        }
        if texts.is_empty() {
            texts = job_texts;
        }
        if texts.is_empty() {
            format!("problem {problem} (no description from libsolv)")
        } else {
            texts.join(RULE_SEPARATOR)
        }
    }

    /// The packages the solver decided to install, in installation order (see [`crate::ordering`]).
    fn ordered_installs(&self, solver: &Solver) -> Vec<SolvableId> {
        // SAFETY: `solver` solved without problems; the transaction it creates is owned below.
        let transaction = unsafe { sys::solver_create_transaction(solver.0.as_ptr()) };
        let transaction = OwnedTransaction(NonNull::new(transaction).expect("solver_create_transaction"));
        // SAFETY: `steps` is an initialised queue of the valid transaction, read while it lives.
        let steps = unsafe { &(*transaction.0.as_ptr()).steps };
        let count = usize::try_from(steps.count).unwrap_or(0);
        if count == 0 || steps.elements.is_null() {
            return Vec::new();
        }
        // SAFETY: the queue holds `count` initialised ids; they are copied before the transaction is freed.
        let ids = unsafe { std::slice::from_raw_parts(steps.elements, count) };
        self.installation_order(ids.iter().copied().map(SolvableId).collect())
    }

    /// Orders packages for installation: ranked by name, EVR, arch and repository (and id), so
    /// that the result does not depend on how the pool was loaded, then topologically sorted.
    fn installation_order(&self, packages: Vec<SolvableId>) -> Vec<SolvableId> {
        let pool = self.raw.as_ptr();
        // (name, evr, arch, repository name, id): compared as strings without copying them.
        let mut ranked: Vec<(sys::Id, sys::Id, sys::Id, &str, SolvableId)> = packages
            .into_iter()
            .map(|id| {
                // SAFETY: `solvable_pointer` checked the id; only plain fields are read.
                let solvable = unsafe { &*self.solvable_pointer(id) };
                (solvable.name, solvable.evr, solvable.arch, self.repo_name(self.repo_of(id)), id)
            })
            .collect();
        // SAFETY: pool_id2str returns strings owned by the pool; nothing interns new strings (which
        // could move them) while the sort compares them.
        let text = |string: sys::Id| unsafe { CStr::from_ptr(sys::pool_id2str(pool, string)) }.to_bytes();
        ranked.sort_by(|left, right| {
            text(left.0)
                .cmp(text(right.0))
                .then_with(|| text(left.1).cmp(text(right.1)))
                .then_with(|| text(left.2).cmp(text(right.2)))
                .then_with(|| left.3.cmp(right.3))
                .then_with(|| left.4.cmp(&right.4))
        });
        let ranked: Vec<SolvableId> = ranked.into_iter().map(|(.., id)| id).collect();
        let edges = self.requirement_edges(&ranked);
        ordering::installation_order(ranked.len(), &edges).into_iter().map(|index| ranked[index]).collect()
    }
}
