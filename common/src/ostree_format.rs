//! Facts of ostree's on-disk format that the package cache, publishing and the OCI exporter and importer
//! share: where a loose object lives, and the `st_mode` file type bits ostree records for files.

/// File type bits of `st_mode`.
pub const MODE_TYPE_MASK: u32 = 0o170_000;
pub const MODE_DIRECTORY: u32 = 0o040_000;
pub const MODE_REGULAR: u32 = 0o100_000;
pub const MODE_SYMLINK: u32 = 0o120_000;

/// Where a repository keeps an object: `ab/cdef….EXTENSION` (`file`, `dirtree`, `dirmeta`, `commit`, …),
/// relative to `objects/`.
pub fn loose_object_path(checksum: &str, extension: &str) -> String {
    let (prefix, rest) = checksum.split_at(2.min(checksum.len()));
    format!("{prefix}/{rest}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_live_under_their_first_two_hex_digits() {
        assert_eq!(loose_object_path("abcdef", "dirtree"), "ab/cdef.dirtree");
    }
}
