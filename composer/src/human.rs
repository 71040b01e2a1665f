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
