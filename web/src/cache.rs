//! The serialized JSON of build-list pages, so the busiest read of the API costs a hash lookup instead of
//! a query and a serialization.
//!
//! A page is keyed by its stream, filters, cursor and limit, and stored with the store's
//! [`builds_generation`](pipeline::Store::builds_generation) read *before* its query. Every write to
//! builds through this process's store bumps the generation after committing, so a page filled before a
//! write is never served after the write returned: within one process nothing stale is served.
//! Writes by other processes (other `arbor serve` replicas sharing a PostgreSQL database) do not bump
//! it; pages older than [`BuildListCache::DEFAULT_TIME_TO_LIVE`] are read again, so such writes show
//! within that time (a page past it is read again by one request, while the others still get it: only
//! another process's writes can have made it outdated). Build writes are rare (a few per build), so one generation for all streams costs
//! nothing measurable against a counter per stream.
//!
//! The builds part of the stream list (`GET /api/v1/streams` and `/streams/{name}`, the dashboard's home
//! and stream pages: the newest and the last good build per stream and arch, two queries each) is kept
//! the same way in a [`StreamBuildsCache`]; the streams' own rows (branch heads, git problems, which the
//! scheduler writes) are read every time, in one query.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline::api::ArchBuilds;
use pipeline::store::BuildStatus;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};

/// Pages kept at most; past it stale pages go, then all of them (each is refilled by one query).
const CAPACITY: usize = 4096;
/// Locks that make requests missing the same page wait for one refill instead of each querying (when a
/// busy page expires, every client asking for it misses at once); pages share them by hash, so
/// different pages rarely wait for each other.
const REFILL_STRIPES: usize = 64;

/// What a page of builds is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BuildListKey {
    pub stream: String,
    pub arch: Option<String>,
    pub status: Option<BuildStatus>,
    pub cursor: Option<String>,
    pub limit: u32,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    filled_at: Instant,
    body: Bytes,
}

#[derive(Debug)]
pub(crate) struct BuildListCache {
    /// `None`: disabled (every page is read from the database).
    time_to_live: Option<Duration>,
    entries: Mutex<HashMap<BuildListKey, Entry>>,
    refills: Vec<AsyncMutex<()>>,
    hasher: RandomState,
}

impl BuildListCache {
    /// How stale a page may be for writes made by other processes (see the module documentation).
    pub(crate) const DEFAULT_TIME_TO_LIVE: Duration = Duration::from_secs(1);

    pub(crate) fn new(time_to_live: Duration) -> Self {
        BuildListCache {
            time_to_live: Some(time_to_live),
            entries: Mutex::default(),
            refills: (0..REFILL_STRIPES).map(|_| AsyncMutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn disabled() -> Self {
        BuildListCache { time_to_live: None, ..BuildListCache::new(Duration::ZERO) }
    }

    fn stripe(&self, key: &BuildListKey) -> &AsyncMutex<()> {
        &self.refills[self.hasher.hash_one(key) as usize % self.refills.len()]
    }

    /// Held while refilling `key` (see [`REFILL_STRIPES`]); `None` when the cache is disabled.
    pub(crate) async fn refilling(&self, key: &BuildListKey) -> Option<AsyncMutexGuard<'_, ()>> {
        self.time_to_live?;
        Some(self.stripe(key).lock().await)
    }

    /// The refill lock of `key` if no other request holds it.
    pub(crate) fn try_refilling(&self, key: &BuildListKey) -> Option<AsyncMutexGuard<'_, ()>> {
        self.time_to_live?;
        self.stripe(key).try_lock().ok()
    }

    /// The page filled at `generation`, however old: no write of this process made it stale.
    pub(crate) fn aged(&self, key: &BuildListKey, generation: u64) -> Option<Bytes> {
        self.time_to_live?;
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.get(key)?;
        (entry.generation == generation).then(|| entry.body.clone())
    }

    /// The page, if it was filled at `generation` less than the time to live ago.
    pub(crate) fn get(&self, key: &BuildListKey, generation: u64) -> Option<Bytes> {
        let time_to_live = self.time_to_live?;
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.get(key)?;
        (entry.generation == generation && entry.filled_at.elapsed() < time_to_live)
            .then(|| entry.body.clone())
    }

    /// Keeps a page read at `generation` (read before the page's query).
    pub(crate) fn insert(&self, key: BuildListKey, generation: u64, body: Bytes) {
        let Some(time_to_live) = self.time_to_live else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| {
                entry.generation == generation && entry.filled_at.elapsed() < time_to_live
            });
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, Entry { generation, filled_at: Instant::now(), body });
    }
}

/// Per configured stream (in the configuration's order), its arches' newest and last good builds, with
/// the generation they were read at.
pub(crate) type StreamBuilds = Vec<Vec<ArchBuilds>>;

#[derive(Debug)]
pub(crate) struct StreamBuildsCache {
    /// `None`: disabled.
    time_to_live: Option<Duration>,
    entry: Mutex<Option<(u64, Instant, StreamBuilds)>>,
    refill: AsyncMutex<()>,
}

impl StreamBuildsCache {
    pub(crate) fn new(time_to_live: Duration) -> Self {
        StreamBuildsCache {
            time_to_live: Some(time_to_live),
            entry: Mutex::default(),
            refill: AsyncMutex::new(()),
        }
    }

    pub(crate) fn disabled() -> Self {
        StreamBuildsCache { time_to_live: None, ..StreamBuildsCache::new(Duration::ZERO) }
    }

    /// Held while refilling, so one request refills and the others wait for it; `None` when disabled.
    pub(crate) async fn refilling(&self) -> Option<AsyncMutexGuard<'_, ()>> {
        self.time_to_live?;
        Some(self.refill.lock().await)
    }

    /// The refill lock if no other request holds it.
    pub(crate) fn try_refilling(&self) -> Option<AsyncMutexGuard<'_, ()>> {
        self.time_to_live?;
        self.refill.try_lock().ok()
    }

    /// The builds read at `generation`, however old: no write of this process made them stale.
    pub(crate) fn aged(&self, generation: u64) -> Option<StreamBuilds> {
        self.time_to_live?;
        let entry = self.entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (filled_generation, _, builds) = entry.as_ref()?;
        (*filled_generation == generation).then(|| builds.clone())
    }

    /// The builds, if they were read at `generation` less than the time to live ago.
    pub(crate) fn get(&self, generation: u64) -> Option<StreamBuilds> {
        let time_to_live = self.time_to_live?;
        let entry = self.entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (filled_generation, filled_at, list) = entry.as_ref()?;
        (*filled_generation == generation && filled_at.elapsed() < time_to_live).then(|| list.clone())
    }

    /// Keeps builds read at `generation` (read before their queries).
    pub(crate) fn insert(&self, generation: u64, builds: StreamBuilds) {
        if self.time_to_live.is_some() {
            *self.entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
                Some((generation, Instant::now(), builds));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stream: &str) -> BuildListKey {
        BuildListKey { stream: stream.into(), arch: None, status: None, cursor: None, limit: 50 }
    }

    #[test]
    fn pages_are_served_only_at_their_generation_and_age() {
        let cache = BuildListCache::new(Duration::from_millis(200));
        cache.insert(key("a"), 3, Bytes::from_static(b"page"));
        assert_eq!(cache.get(&key("a"), 3).as_deref(), Some(&b"page"[..]));
        assert_eq!(cache.get(&key("a"), 4), None, "a write happened since");
        assert_eq!(cache.get(&key("b"), 3), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get(&key("a"), 3), None, "too old");
        assert_eq!(cache.aged(&key("a"), 3).as_deref(), Some(&b"page"[..]), "old, but no write since");
        assert_eq!(cache.aged(&key("a"), 4), None);
        assert!(cache.try_refilling(&key("a")).is_some());
    }

    #[test]
    fn stream_builds_are_served_only_at_their_generation_and_age() {
        let list =
            vec![vec![ArchBuilds { arch: "x86_64".into(), latest: None, last_good_build_id: Some(4) }]];
        let cache = StreamBuildsCache::new(Duration::from_millis(200));
        cache.insert(3, list.clone());
        assert_eq!(cache.get(3), Some(list.clone()));
        assert_eq!(cache.get(4), None, "a write happened since");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get(3), None, "too old");
        let disabled = StreamBuildsCache::disabled();
        disabled.insert(1, list);
        assert_eq!(disabled.get(1), None);
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = BuildListCache::disabled();
        cache.insert(key("a"), 1, Bytes::from_static(b"page"));
        assert_eq!(cache.get(&key("a"), 1), None);
    }
}
