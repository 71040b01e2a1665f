//! The version of the libsolv library the process runs with (which may differ from the one the
//! bindings were generated against): what a cached depsolve result is only valid for.

#![allow(unsafe_code)]

use libsolv_sys as sys;

/// `MAJOR.MINOR.PATCH` of the libsolv library loaded at run time, e.g. `0.7.23`.
pub fn library_version() -> String {
    // SAFETY: libsolv defines these as initialised `int` globals (solvversion.c) that nothing
    // writes; they are read by value, no reference to them is made.
    let (major, minor, patch) =
        unsafe { (sys::solv_version_major, sys::solv_version_minor, sys::solv_version_patch) };
    format!("{major}.{minor}.{patch}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_has_three_numbers() {
        let version = super::library_version();
        let parts: Vec<&str> = version.split('.').collect();
        assert_eq!(parts.len(), 3, "{version}");
        assert!(parts.iter().all(|part| part.parse::<u32>().is_ok()), "{version}");
    }
}
