//! Times in the JSON API: RFC 3339 strings in UTC with milliseconds (`2026-12-06T20:00:00.123Z`),
//! carried in Rust as the store's milliseconds since the Unix epoch.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: milliseconds since the Unix epoch, written as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-12-06T20:00:00.123Z")]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn milliseconds(self) -> i64 {
        self.0
    }

    /// An optional store time as an optional timestamp.
    pub fn from_optional(milliseconds: Option<i64>) -> Option<Timestamp> {
        milliseconds.map(Timestamp)
    }

    /// Parses RFC 3339 (`Z` or an offset; a fraction past milliseconds is dropped).
    pub fn parse(text: &str) -> Result<Timestamp, common::time::TimestampError> {
        common::time::parse_rfc3339_milliseconds(text).map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&common::time::format_utc_milliseconds(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_strings_both_ways() {
        let timestamp = Timestamp(1_700_000_000_123);
        let text = serde_json::to_string(&timestamp).unwrap();
        assert_eq!(text, "\"2023-11-14T22:13:20.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), timestamp);
        let error = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err().to_string();
        assert!(error.contains("is not an RFC 3339 date-time"), "{error}");
    }
}
