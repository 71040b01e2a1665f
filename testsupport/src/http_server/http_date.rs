//! HTTP dates (RFC 9110 IMF-fixdate, e.g. `Tue, 14 Nov 2023 22:13:20 GMT`): formatting and parsing.

use crate::calendar::{unix_from_utc, utc_from_unix};

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub fn format_http_date(seconds_since_epoch: i64) -> String {
    let time = utc_from_unix(seconds_since_epoch);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[time.weekday as usize],
        time.day,
        MONTHS[time.month as usize - 1],
        time.year,
        time.hour,
        time.minute,
        time.second
    )
}

/// Parses an IMF-fixdate into seconds since the Unix epoch; `None` for anything else (an invalid
/// date in a conditional header is ignored, as RFC 9110 requires).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let (_weekday, rest) = text.trim().split_once(", ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, clock, "GMT"] = fields.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|name| name == month)? as u32 + 1;
    let clock: Vec<u32> = clock.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
    let [hour, minute, second] = clock.as_slice() else {
        return None;
    };
    let (day, year): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    if !(1..=31).contains(&day) || *hour > 23 || *minute > 59 || *second > 60 {
        return None;
    }
    Some(unix_from_utc(year, month, day, *hour, *minute, *second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_imf_fixdate() {
        assert_eq!(format_http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date(&format_http_date(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }
}
