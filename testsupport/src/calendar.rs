//! UTC calendar arithmetic for the date formats the fixtures write and parse (no time-zone database).

/// Seconds in one day.
const SECONDS_PER_DAY: i64 = 86_400;

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UtcTime {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday .. 6 = Saturday
    pub weekday: u32,
}

/// Converts seconds since the Unix epoch to UTC (Howard Hinnant's `civil_from_days`).
pub(crate) fn utc_from_unix(seconds: i64) -> UtcTime {
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // 1970-01-01 was a Thursday (weekday 4).
    let weekday = (days + 4).rem_euclid(7) as u32;
    UtcTime {
        year,
        month,
        day,
        hour: (second_of_day / 3600) as u32,
        minute: (second_of_day / 60 % 60) as u32,
        second: (second_of_day % 60) as u32,
        weekday,
    }
}

/// Converts a UTC date and time to seconds since the Unix epoch (`days_from_civil`).
pub(crate) fn unix_from_utc(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * SECONDS_PER_DAY + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_instants() {
        let time = utc_from_unix(1_700_000_000);
        assert_eq!(
            (time.year, time.month, time.day, time.hour, time.minute, time.second),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(time.weekday, 2, "2023-11-14 was a Tuesday");
        assert_eq!(unix_from_utc(2023, 11, 14, 22, 13, 20), 1_700_000_000);
        assert_eq!(unix_from_utc(1994, 11, 6, 8, 49, 37), 784_111_777);
        for seconds in [0, 951_782_400, 1_709_164_800, 4_102_444_800] {
            let time = utc_from_unix(seconds);
            let back = unix_from_utc(time.year, time.month, time.day, time.hour, time.minute, time.second);
            assert_eq!(back, seconds);
        }
    }
}
