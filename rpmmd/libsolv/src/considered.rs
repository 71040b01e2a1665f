//! Excluding packages from solving: the bit map `pool->considered` points to, built in Rust
//! because libsolv's `MAPSET`/`MAPCLR` are macros.

#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::c_int;

use libsolv_sys as sys;

use crate::pool::{Pool, SolvableId};

/// Bits in one byte of a libsolv `Map`.
const BITS_PER_BYTE: usize = 8;

/// A libsolv `Map` over all solvables whose buffer lives in Rust. Both the `Map` struct (boxed)
/// and the byte buffer (never resized after construction) keep their addresses when moved, so
/// `pool->considered` may point to them for as long as this value lives.
pub(crate) struct ConsideredMap {
    /// Owns the buffer `map.map` points to; only read through that pointer (and by tests).
    #[cfg_attr(not(test), allow(dead_code))]
    bytes: Vec<u8>,
    map: Box<sys::Map>,
}

impl ConsideredMap {
    /// A map of `solvable_count` bits, all set except those of `excluded` that are in range.
    fn new(solvable_count: usize, excluded: &BTreeSet<SolvableId>) -> ConsideredMap {
        let mut bytes = vec![u8::MAX; solvable_count.div_ceil(BITS_PER_BYTE)];
        for id in excluded {
            if let Ok(index) = usize::try_from(id.0)
                && index < solvable_count
            {
                bytes[index / BITS_PER_BYTE] &= !(1 << (index % BITS_PER_BYTE));
            }
        }
        let size = c_int::try_from(bytes.len()).expect("solvable count fits in a C int");
        let map = Box::new(sys::Map { map: bytes.as_mut_ptr(), size });
        ConsideredMap { bytes, map }
    }

    fn as_mut_ptr(&mut self) -> *mut sys::Map {
        &mut *self.map
    }

    #[cfg(test)]
    fn is_considered(&self, index: usize) -> bool {
        self.bytes[index / BITS_PER_BYTE] & (1 << (index % BITS_PER_BYTE)) != 0
    }
}

impl Pool {
    /// Excludes these packages from solving and selecting, replacing the previous exclusion set.
    /// An empty set makes every package eligible again. Ids of other pools are ignored.
    pub fn set_excluded(&mut self, excluded: &BTreeSet<SolvableId>) {
        self.excluded = excluded.clone();
        self.refresh_considered();
    }

    /// Rebuilds `pool->considered` for the current solvables; called on every change of the
    /// exclusion set and after solvables were added (the map must cover every solvable id).
    pub(crate) fn refresh_considered(&mut self) {
        let mut map = if self.excluded.is_empty() {
            None
        } else {
            // SAFETY: `self.raw` is a valid pool; only a plain field is read.
            let count = unsafe { (*self.raw.as_ptr()).nsolvables };
            Some(ConsideredMap::new(usize::try_from(count).unwrap_or(0), &self.excluded))
        };
        let pointer = map.as_mut().map_or(std::ptr::null_mut(), ConsideredMap::as_mut_ptr);
        // SAFETY: `self.raw` is a valid pool; `pointer` is NULL or points to a map covering all
        // solvables that `self.considered` keeps alive until it is replaced (after this store)
        // or the pool is freed.
        unsafe { (*self.raw.as_ptr()).considered = pointer };
        self.considered = map;
        self.whatprovides_current.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_clears_only_excluded_bits() {
        let excluded: BTreeSet<SolvableId> = [SolvableId(3), SolvableId(9), SolvableId(500)].into();
        let map = ConsideredMap::new(17, &excluded);
        assert_eq!(map.map.size, 3);
        let cleared: Vec<usize> = (0..17).filter(|index| !map.is_considered(*index)).collect();
        assert_eq!(cleared, [3, 9]);
    }
}
