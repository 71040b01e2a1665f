//! Calendar arithmetic for timestamps people and formats read (lockfiles, image configs, versions, the
//! server's JSON API): UTC only, no time zone database.

/// Seconds in a day; UTC has no leap seconds in Unix time.
pub const SECONDS_PER_DAY: u64 = 86_400;

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) in the proleptic Gregorian calendar to days since 1970-01-01 (the inverse of
/// [`civil_from_days`], Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Milliseconds in a day.
const MILLISECONDS_PER_DAY: i64 = 86_400_000;

/// RFC 3339 in UTC with milliseconds, `YYYY-MM-DDTHH:MM:SS.mmmZ`, for milliseconds since 1970: always
/// the same width, so such times sort as text.
pub fn format_utc_milliseconds(unix_milliseconds: i64) -> String {
    let days = unix_milliseconds.div_euclid(MILLISECONDS_PER_DAY);
    let of_day = unix_milliseconds.rem_euclid(MILLISECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60,
        of_day % 1000
    )
}

/// Why a text is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not an RFC 3339 date-time like 2026-12-06T20:00:00Z or 2026-12-06T21:00:00.5+01:00: {problem}"
)]
pub struct TimestampError {
    pub text: String,
    pub problem: &'static str,
}

/// Milliseconds since 1970 of an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`;
/// digits of the fraction past milliseconds are dropped).
pub fn parse_rfc3339_milliseconds(text: &str) -> Result<i64, TimestampError> {
    let error = |problem| TimestampError { text: text.to_string(), problem };
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Result<u32, TimestampError> {
        let digits = bytes.get(range).ok_or_else(|| error("it is too short"))?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(error("a digit is missing"));
        }
        Ok(digits.iter().fold(0, |value, digit| value * 10 + u32::from(digit - b'0')))
    };
    let separator = |index: usize, expected: &[u8], problem| {
        if bytes.get(index).is_some_and(|byte| expected.contains(byte)) {
            Ok(())
        } else {
            Err(error(problem))
        }
    };
    let year = number(0..4)?;
    separator(4, b"-", "the date needs YYYY-MM-DD")?;
    let month = number(5..7)?;
    separator(7, b"-", "the date needs YYYY-MM-DD")?;
    let day = number(8..10)?;
    separator(10, b"Tt", "the date and the time are separated by T")?;
    let hour = number(11..13)?;
    separator(13, b":", "the time needs HH:MM:SS")?;
    let minute = number(14..16)?;
    separator(16, b":", "the time needs HH:MM:SS")?;
    let second = number(17..19)?;
    let mut index = 19;
    let mut milliseconds = 0;
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        let start = index;
        while bytes.get(index).is_some_and(u8::is_ascii_digit) {
            if index - start < 3 {
                milliseconds = milliseconds * 10 + i64::from(bytes[index] - b'0');
            }
            index += 1;
        }
        if index == start {
            return Err(error("a fraction of a second needs digits after the point"));
        }
        for _ in (index - start)..3 {
            milliseconds *= 10;
        }
    }
    let offset_minutes = match bytes.get(index) {
        Some(b'Z' | b'z') if index + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if index + 6 == bytes.len() => {
            let hours = number(index + 1..index + 3)?;
            separator(index + 3, b":", "the offset needs +HH:MM or -HH:MM")?;
            let minutes = number(index + 4..index + 6)?;
            if hours > 23 || minutes > 59 {
                return Err(error("the offset is out of range"));
            }
            let offset = i64::from(hours * 60 + minutes);
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return Err(error("it must end with Z or an offset +HH:MM / -HH:MM")),
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(error("the month is out of range")),
    };
    if day == 0 || day > days_in_month {
        return Err(error("the day is out of range"));
    }
    // 60 is a leap second; Unix time has none, so it counts as the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(error("the time is out of range"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Ok(seconds * 1000 + milliseconds)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC).
pub fn format_utc(unix_seconds: u64) -> String {
    let days = (unix_seconds / SECONDS_PER_DAY) as i64;
    let seconds_of_day = unix_seconds % SECONDS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_713_120_671, "2024-04-14T18:51:11Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(format_utc(seconds), expected);
        }
    }

    #[test]
    fn days_round_trip() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_000, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
        }
    }

    #[test]
    fn milliseconds_format_and_parse() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ];
        for (milliseconds, text) in cases {
            assert_eq!(format_utc_milliseconds(milliseconds), text);
            assert_eq!(parse_rfc3339_milliseconds(text), Ok(milliseconds), "{text}");
        }
        let equivalent = [
            ("2023-11-14T22:13:20Z", 1_700_000_000_000),
            ("2023-11-14t22:13:20.1z", 1_700_000_000_100),
            ("2023-11-14T23:13:20.123456789+01:00", 1_700_000_000_123),
            ("2023-11-14T21:43:20-00:30", 1_700_000_000_000),
        ];
        for (text, milliseconds) in equivalent {
            assert_eq!(parse_rfc3339_milliseconds(text), Ok(milliseconds), "{text}");
        }
    }

    #[test]
    fn malformed_date_times_say_what_is_wrong() {
        let cases = [
            ("2023-11", "the date needs YYYY-MM-DD"),
            ("2023-11-1", "it is too short"),
            ("2023-11-14", "the date and the time are separated by T"),
            ("2023-11-14 22:13:20Z", "the date and the time are separated by T"),
            ("2023-11-14T22:13:20", "it must end with Z or an offset +HH:MM / -HH:MM"),
            ("2023-11-14T22:13:20.Z", "a fraction of a second needs digits after the point"),
            ("2023-02-29T00:00:00Z", "the day is out of range"),
            ("2023-13-01T00:00:00Z", "the month is out of range"),
            ("2023-11-14T24:00:00Z", "the time is out of range"),
            ("2023-11-14T22:13:20+1:00", "it must end with Z or an offset +HH:MM / -HH:MM"),
            ("2023-1x-14T22:13:20Z", "a digit is missing"),
        ];
        for (text, problem) in cases {
            assert_eq!(parse_rfc3339_milliseconds(text).unwrap_err().problem, problem, "{text}");
        }
    }
}
