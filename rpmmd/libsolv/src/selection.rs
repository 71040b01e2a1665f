//! Selecting packages by spec: name, name with version constraint, provide, file path or glob.

#![allow(unsafe_code)]

use std::ffi::CString;

use libsolv_sys as sys;

use crate::pool::{Pool, RepoHandle, SolvableId};
use crate::queue::Queue;

/// What a spec may match: a name (also `name.arch`), a provide, a file path, with an optional
/// `<op> <evr>` constraint and glob patterns, else a canonical `name-[E:]V-R[.arch]`.
const SELECTION_FLAGS: u32 = sys::SELECTION_NAME
    | sys::SELECTION_PROVIDES
    | sys::SELECTION_FILELIST
    | sys::SELECTION_REL
    | sys::SELECTION_GLOB
    | sys::SELECTION_DOTARCH
    | sys::SELECTION_CANON;

impl Pool {
    /// Packages matching `spec`:
    /// - a package name (`podman`), also with an architecture (`podman.x86_64`);
    /// - a name or provide with a version constraint (`podman >= 4.1`; operators `<`, `<=`, `=`, `>=`, `>`);
    /// - a provide (`libfoo.so.1()(64bit)`, `config(bash)`, `virtual-thing`);
    /// - a file path (`/usr/bin/foo`);
    /// - a glob (`foo*`);
    /// - a full `name-[E:]V-R[.arch]`.
    ///
    /// Names win over provides: a spec that names a package does not also return other packages
    /// that merely provide that name. Excluded packages ([`Pool::set_excluded`]) and packages of
    /// other architectures are never returned. Sorted by id; empty when nothing matches.
    pub fn select(&self, spec: &str) -> Vec<SolvableId> {
        let Some(mut selection) = self.make_selection(spec) else { return Vec::new() };
        let mut solvables = Queue::new();
        // SAFETY: `self.raw` is a valid pool and both queues are initialised.
        unsafe {
            sys::selection_solvables(self.raw.as_ptr(), selection.as_mut_ptr(), solvables.as_mut_ptr())
        };
        let mut ids: Vec<SolvableId> = solvables.as_slice().iter().copied().map(SolvableId).collect();
        ids.sort_unstable();
        ids
    }

    /// libsolv's selection (pairs of job selector and id) for `spec`; `None` when nothing matches.
    pub(crate) fn make_selection(&self, spec: &str) -> Option<Queue> {
        let spec = CString::new(spec.trim()).ok()?;
        self.ensure_prepared();
        let mut selection = Queue::new();
        // SAFETY: `self.raw` is a valid pool with up-to-date whatprovides, `selection` is an
        // initialised queue and `spec` a NUL-terminated string that outlives the call.
        unsafe {
            sys::selection_make(
                self.raw.as_ptr(),
                selection.as_mut_ptr(),
                spec.as_ptr(),
                SELECTION_FLAGS as i32,
            )
        };
        (!selection.is_empty()).then_some(selection)
    }

    /// Narrows a selection to the packages of one repository; `None` when none are left.
    pub(crate) fn filter_selection_to_repo(&self, mut selection: Queue, repo: RepoHandle) -> Option<Queue> {
        let raw_repo = self.repository(repo).raw.as_ptr();
        let mut repo_filter = Queue::new();
        // SAFETY: `raw_repo` is a repository of this pool; only a plain field is read.
        repo_filter.push2((sys::SOLVER_SOLVABLE_REPO | sys::SOLVER_SETREPO) as sys::Id, unsafe {
            (*raw_repo).repoid
        });
        // SAFETY: `self.raw` is a valid pool and both queues are initialised.
        unsafe { sys::selection_filter(self.raw.as_ptr(), selection.as_mut_ptr(), repo_filter.as_mut_ptr()) };
        (!selection.is_empty()).then_some(selection)
    }
}
