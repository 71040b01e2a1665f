//! Cursor pagination: lists are newest first by id, and a page's cursor is an opaque text naming the last
//! id it returned, so pages stay stable while new rows arrive.

use super::StoreError;

/// The most rows one page returns.
pub const MAXIMUM_PAGE_SIZE: u32 = 500;

/// One page of a list and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The cursor after `id` in a list of `kind` (a letter, so a jobs cursor is not taken for a builds one).
pub(crate) fn encode(kind: char, id: i64) -> String {
    format!("{kind}{id:x}")
}

/// The id before which the next page starts; no cursor starts at the newest row.
pub(crate) fn decode(kind: char, cursor: Option<&str>) -> Result<i64, StoreError> {
    let Some(cursor) = cursor else {
        return Ok(i64::MAX);
    };
    let invalid = || StoreError::InvalidCursor { cursor: cursor.to_string() };
    let digits = cursor.strip_prefix(kind).ok_or_else(invalid)?;
    i64::from_str_radix(digits, 16).ok().filter(|id| *id > 0).ok_or_else(invalid)
}

/// The limit to ask the database for: one more than the page, to know whether another page follows.
pub(crate) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAXIMUM_PAGE_SIZE)) + 1
}

/// Cuts the extra row off and makes the next cursor from the page's last id.
pub(crate) fn page<T>(mut items: Vec<T>, limit: u32, kind: char, id: impl Fn(&T) -> i64) -> Page<T> {
    let limit = limit.clamp(1, MAXIMUM_PAGE_SIZE) as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(|last| encode(kind, id(last))) } else { None };
    Page { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode('b', Some(&encode('b', 12345))).unwrap(), 12345);
        assert_eq!(decode('b', None).unwrap(), i64::MAX);
        for foreign in ["j3039", "b", "bxyz", "b-1", "b0", "3039"] {
            assert!(matches!(decode('b', Some(foreign)), Err(StoreError::InvalidCursor { .. })), "{foreign}");
        }
    }

    #[test]
    fn pages_cut_the_extra_row() {
        let full = page(vec![5, 4, 3], 2, 'b', |id| *id);
        assert_eq!(full, Page { items: vec![5, 4], next_cursor: Some(encode('b', 4)) });
        let last = page(vec![2, 1], 2, 'b', |id| *id);
        assert_eq!(last, Page { items: vec![2, 1], next_cursor: None });
    }
}
