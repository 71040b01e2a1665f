//! The requirement graph among a set of packages, read from libsolv, for [`crate::ordering`].

#![allow(unsafe_code)]

use libsolv_sys as sys;

use crate::ordering::Edge;
use crate::pool::{Pool, SolvableId};
use crate::queue::Queue;

/// `marker` argument of `solvable_lookup_deparray` that returns all requirements, the
/// `SOLVABLE_PREREQMARKER` between the run-time and the `Requires(pre)` ones included.
const ALL_REQUIREMENTS: sys::Id = 0;

/// Position of a solvable that is not among the packages being ordered.
const NOT_IN_SET: usize = usize::MAX;

impl Pool {
    /// Edges "provider before requirer" among `packages` (indexes into the slice), with
    /// `prerequisite` set for `Requires(pre)`.
    pub(crate) fn requirement_edges(&self, packages: &[SolvableId]) -> Vec<Edge> {
        self.ensure_prepared();
        // Dense: solvable id -> position in `packages` (NOT_IN_SET elsewhere); one lookup per provider.
        let highest = packages.iter().map(|id| id.0).max().unwrap_or(0).max(0) as usize;
        let mut position = vec![NOT_IN_SET; highest + 1];
        for (index, id) in packages.iter().enumerate() {
            if let Ok(slot) = usize::try_from(id.0) {
                position[slot] = index;
            }
        }
        let prerequisite_marker = sys::solv_knownid_SOLVABLE_PREREQMARKER as sys::Id;
        let mut edges = Vec::new();
        let mut requirements = Queue::new();
        for (to, id) in packages.iter().enumerate() {
            let solvable = self.solvable_pointer(*id);
            // libsolv 0.7.23 leaves the queue untouched for a package without requirements.
            requirements.clear();
            // SAFETY: `solvable` is a checked pointer to a live solvable; `requirements` is an
            // initialised queue that libsolv fills.
            unsafe {
                sys::solvable_lookup_deparray(
                    solvable,
                    sys::solv_knownid_SOLVABLE_REQUIRES as sys::Id,
                    requirements.as_mut_ptr(),
                    ALL_REQUIREMENTS,
                )
            };
            let mut prerequisite = false;
            for &dependency in requirements.as_slice() {
                if dependency == prerequisite_marker {
                    prerequisite = true;
                    continue;
                }
                self.for_each_provider(dependency, |provider| {
                    let from = usize::try_from(provider).ok().and_then(|slot| position.get(slot)).copied();
                    if let Some(from) = from.filter(|from| *from != NOT_IN_SET) {
                        edges.push(Edge { from, to, prerequisite });
                    }
                });
            }
        }
        edges
    }

    /// Calls `visit` with every solvable providing `dependency` (libsolv's whatprovides index, rich
    /// dependencies included), without allocating.
    fn for_each_provider(&self, dependency: sys::Id, mut visit: impl FnMut(i32)) {
        let pool = self.raw.as_ptr();
        // SAFETY: `pool` is valid with an up-to-date whatprovides index (ensured by the caller);
        // pool_whatprovides returns an offset into `whatprovidesdata` of a 0-terminated list, and
        // `visit` cannot change the index (it has no access to the pool).
        unsafe {
            let offset = sys::pool_whatprovides(pool, dependency);
            let mut entry = (*pool).whatprovidesdata.add(offset as usize);
            while *entry != 0 {
                visit(*entry);
                entry = entry.add(1);
            }
        }
    }
}
