//! The faults [`TestHttpServer`](super::TestHttpServer) can inject, and which one applies to a path.

use std::time::Duration;

/// A way to misbehave, set per path prefix with [`TestHttpServer::set_fault`](super::TestHttpServer::set_fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `404 Not Found` even if the file exists.
    NotFound,
    /// Answer with this status (and a short text body) on every request.
    Status(u16),
    /// Answer with `status` for the next `times` requests, then serve normally.
    FailTimes { status: u16, times: usize },
    /// Answer `429 Too Many Requests` with `Retry-After: retry_after_seconds`.
    TooManyRequests { retry_after_seconds: u64 },
    /// Send the headers with the full `Content-Length`, then only the first `bytes` bytes of the
    /// body, then close the connection.
    Truncate { bytes: usize },
    /// Send the normal headers (including the real `ETag`) with every body byte inverted
    /// (same length).
    Corrupt,
    /// Read the request and never answer; the connection is closed when the server is dropped.
    Hang,
    /// Read the request and close the connection without answering.
    DropConnection,
    /// Wait this long, then answer normally (to observe parallel downloads).
    Delay(Duration),
}

/// A fault on a path prefix, possibly for a limited number of requests.
#[derive(Clone, Debug)]
pub(super) struct FaultRule {
    pub prefix: String,
    pub fault: Fault,
    /// Requests left before the rule expires; `None` for a permanent rule.
    pub remaining: Option<usize>,
}

impl FaultRule {
    pub fn new(prefix: &str, fault: Fault, remaining: Option<usize>) -> Self {
        let prefix = if prefix.starts_with('/') { prefix.to_string() } else { format!("/{prefix}") };
        match fault {
            Fault::FailTimes { status, times } => {
                let remaining = Some(remaining.map_or(times, |limit| limit.min(times)));
                Self { prefix, fault: Fault::Status(status), remaining }
            }
            fault => Self { prefix, fault, remaining },
        }
    }
}

/// Takes the fault that applies to `path` (the longest matching prefix wins) and counts the use
/// against a limited rule, removing it once exhausted.
pub(super) fn take_fault(rules: &mut Vec<FaultRule>, path: &str) -> Option<Fault> {
    let (index, _) = rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| path.starts_with(&rule.prefix))
        .max_by_key(|(_, rule)| rule.prefix.len())?;
    let fault = rules[index].fault.clone();
    if let Some(remaining) = rules[index].remaining.as_mut() {
        *remaining = remaining.saturating_sub(1);
        if *remaining == 0 {
            rules.remove(index);
        }
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_limited_rules_expire() {
        let mut rules = vec![
            FaultRule::new("/", Fault::Status(503), None),
            FaultRule::new("repodata/", Fault::FailTimes { status: 500, times: 2 }, None),
        ];
        assert_eq!(take_fault(&mut rules, "/repodata/repomd.xml"), Some(Fault::Status(500)));
        assert_eq!(take_fault(&mut rules, "/repodata/repomd.xml"), Some(Fault::Status(500)));
        assert_eq!(take_fault(&mut rules, "/repodata/repomd.xml"), Some(Fault::Status(503)));
        assert_eq!(rules.len(), 1);
        assert_eq!(take_fault(&mut Vec::new(), "/x"), None);
    }
}
