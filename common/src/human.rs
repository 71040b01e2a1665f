//! Sizes for people, shared by every report (compose summaries, image diffs, pushes).

/// Binary units: sizes of files and layers are read against KiB / MiB / GiB.
const BYTES_PER_UNIT: f64 = 1024.0;
const SIZE_UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];

/// B, KiB, MiB or GiB with one decimal.
pub fn human_bytes(bytes: u64) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= BYTES_PER_UNIT && unit + 1 < SIZE_UNITS.len() {
        value /= BYTES_PER_UNIT;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", SIZE_UNITS[unit]) }
}

/// Hex digits of a digest people see in tables and summaries: enough to tell images apart, short
/// enough to read (as `docker images` and `podman images` do).
const SHORT_DIGEST_HEX: usize = 12;

/// `sha256:0123456789ab` for `sha256:0123456789abcdef...`; the full digest stays one click or flag away.
pub fn short_digest(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    let short: String = hex.chars().take(SHORT_DIGEST_HEX).collect();
    if algorithm.is_empty() { short } else { format!("{algorithm}:{short}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests_for_people() {
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
        assert_eq!(short_digest("0123456789abcdef"), "0123456789ab");
    }
}
