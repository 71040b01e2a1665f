//! rpm's version ordering (rpmvercmp) and EVR comparison, for package diffs without a solver pool.

use std::cmp::Ordering;

/// Compares two version or release strings the way rpm does: alternating numeric and alphabetic
/// segments, numbers newer than letters, `~` sorts before anything (pre-releases), `^` after the
/// base version but before anything else appended.
pub fn compare_versions(left: &str, right: &str) -> Ordering {
    if left == right {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (left.as_bytes(), right.as_bytes());
    let is_separator = |byte: u8| !byte.is_ascii_alphanumeric() && byte != b'~' && byte != b'^';
    loop {
        while one.first().is_some_and(|&byte| is_separator(byte)) {
            one = &one[1..];
        }
        while two.first().is_some_and(|&byte| is_separator(byte)) {
            two = &two[1..];
        }
        if one.first() == Some(&b'~') || two.first() == Some(&b'~') {
            if one.first() != Some(&b'~') {
                return Ordering::Greater;
            }
            if two.first() != Some(&b'~') {
                return Ordering::Less;
            }
            one = &one[1..];
            two = &two[1..];
            continue;
        }
        if one.first() == Some(&b'^') || two.first() == Some(&b'^') {
            if one.is_empty() {
                return Ordering::Less;
            }
            if two.is_empty() {
                return Ordering::Greater;
            }
            if one.first() != Some(&b'^') {
                return Ordering::Greater;
            }
            if two.first() != Some(&b'^') {
                return Ordering::Less;
            }
            one = &one[1..];
            two = &two[1..];
            continue;
        }
        if one.is_empty() || two.is_empty() {
            break;
        }
        let numeric = one[0].is_ascii_digit();
        let segment_end = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|byte| if numeric { !byte.is_ascii_digit() } else { !byte.is_ascii_alphabetic() })
                .unwrap_or(bytes.len())
        };
        let (segment_one, rest_one) = one.split_at(segment_end(one));
        let (segment_two, rest_two) = two.split_at(segment_end(two));
        if segment_two.is_empty() {
            // Different segment types: a number is newer than letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let ordering = if numeric {
            let trim = |segment: &[u8]| {
                let start = segment.iter().position(|&byte| byte != b'0').unwrap_or(segment.len());
                segment[start..].to_vec()
            };
            let (number_one, number_two) = (trim(segment_one), trim(segment_two));
            number_one.len().cmp(&number_two.len()).then_with(|| number_one.cmp(&number_two))
        } else {
            segment_one.cmp(segment_two)
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
        one = rest_one;
        two = rest_two;
    }
    match (one.is_empty(), two.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, _) => Ordering::Greater,
    }
}

/// Splits `[E:]V[-R]` into (epoch, version, release).
pub fn split_evr(evr: &str) -> (u64, &str, Option<&str>) {
    let (epoch, rest) = match evr.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|byte| byte.is_ascii_digit()) => {
            (epoch.parse().unwrap_or(0), rest)
        }
        _ => (0, evr),
    };
    match rest.rsplit_once('-') {
        Some((version, release)) => (epoch, version, Some(release)),
        None => (epoch, rest, None),
    }
}

/// Compares two `[E:]V-R` strings: epoch, then version, then release (if both have one).
pub fn compare_evr(left: &str, right: &str) -> Ordering {
    let (epoch_one, version_one, release_one) = split_evr(left);
    let (epoch_two, version_two, release_two) = split_evr(right);
    epoch_one.cmp(&epoch_two).then_with(|| compare_versions(version_one, version_two)).then_with(|| {
        match (release_one, release_two) {
            (Some(one), Some(two)) => compare_versions(one, two),
            _ => Ordering::Equal,
        }
    })
}

/// `E:V-R` with a zero epoch written out or not is the same version: drop `0:`.
pub fn normalize_evr(evr: &str) -> &str {
    evr.strip_prefix("0:").unwrap_or(evr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn rpmvercmp_cases() {
        // Cases from rpm's own test suite semantics.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("2.0", "2.0.1", Less),
            ("1.0a", "1.0", Greater),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("1.0010", "1.9", Greater),
            ("1.05", "1.5", Equal),
            ("1_0", "1.0", Equal),
            ("a", "1", Less),
            ("1", "a", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git", "1.0~rc1", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.01", Less),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("9+deb12u4", "9+deb12u4.u3", Less),
            ("2.36-9", "2.36-10", Less),
        ];
        for (left, right, expected) in cases {
            assert_eq!(compare_versions(left, right), expected, "{left} vs {right}");
            assert_eq!(compare_versions(right, left), expected.reverse(), "{right} vs {left}");
        }
    }

    #[test]
    fn evr_comparison() {
        let cases = [
            ("1:1.0-1", "2.0-1", Greater),
            ("0:1.0-1", "1.0-1", Equal),
            ("1.0-1.fc41", "1.0-2.fc41", Less),
            ("1.0", "1.0-5", Equal),
        ];
        for (left, right, expected) in cases {
            assert_eq!(compare_evr(left, right), expected, "{left} vs {right}");
        }
        assert_eq!(split_evr("2:1.2-3.fc41"), (2, "1.2", Some("3.fc41")));
    }
}
