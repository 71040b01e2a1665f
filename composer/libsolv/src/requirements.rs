//! The requirement graph among a set of packages, read from libsolv, for [`crate::ordering`].

#![allow(unsafe_code)]

use std::collections::HashMap;

use libsolv_sys as sys;

use crate::ordering::Edge;
use crate::pool::{Pool, SolvableId};
use crate::queue::Queue;

/// `marker` argument of `solvable_lookup_deparray` that returns all requirements, the
/// `SOLVABLE_PREREQMARKER` between the run-time and the `Requires(pre)` ones included.
const ALL_REQUIREMENTS: sys::Id = 0;

impl Pool {
    /// Edges "provider before requirer" among `packages` (indexes into the slice), with
    /// `prerequisite` set for `Requires(pre)`.
    pub(crate) fn requirement_edges(&self, packages: &[SolvableId]) -> Vec<Edge> {
        self.ensure_prepared();
        let position: HashMap<i32, usize> =
            packages.iter().enumerate().map(|(index, id)| (id.0, index)).collect();
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
                for provider in self.providers(dependency) {
                    if let Some(&from) = position.get(&provider) {
                        edges.push(Edge { from, to, prerequisite });
                    }
                }
            }
        }
        edges
    }

    /// The solvables providing `dependency` (libsolv's whatprovides index, rich dependencies included).
    fn providers(&self, dependency: sys::Id) -> Vec<i32> {
        let pool = self.raw.as_ptr();
        // SAFETY: `pool` is valid with an up-to-date whatprovides index (ensured by the caller);
        // pool_whatprovides returns an offset into `whatprovidesdata` of a 0-terminated list,
        // which is read before anything can change the index.
        unsafe {
            let offset = sys::pool_whatprovides(pool, dependency);
            let mut entry = (*pool).whatprovidesdata.add(offset as usize);
            let mut providers = Vec::new();
            while *entry != 0 {
                providers.push(*entry);
                entry = entry.add(1);
            }
            providers
        }
    }
}
