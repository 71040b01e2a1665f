//! Builds: one compose of one stream's commit for one arch. A build is created (`queued`) together with
//! its compose job; its status follows the job (see [`crate::queue`]) and its results are recorded in the
//! transaction that completes the job. Lists are newest first with cursor pagination.

use std::fmt;

use super::cursor::{self, Page};
use super::{Store, StoreError};
use crate::queue::{EnqueueOutcome, NewJob};

/// The status of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// The inputs hash to the previous build's: nothing was composed.
    Unchanged,
    Cancelled,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 6] = [
        BuildStatus::Queued,
        BuildStatus::Running,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Unchanged,
        BuildStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Unchanged => "unchanged",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<BuildStatus> {
        BuildStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl TryFrom<String> for BuildStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        BuildStatus::parse(&text).ok_or_else(|| format!("unknown build status {text:?}"))
    }
}

/// One timed phase of a compose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Phase {
    pub name: String,
    pub started_at: i64,
    pub duration_ms: i64,
}

/// One layer of a build's image, in the manifest's order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub digest: String,
    /// Compressed, as clients download it.
    pub size: i64,
    /// What the layer holds, e.g. "ostree commit" or "kernel and 2 more".
    pub description: String,
    /// The packages (or other components) whose content is in it.
    #[serde(default)]
    pub components: Vec<String>,
}

/// A build to create with its compose job.
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub stream: String,
    pub arch: String,
    pub git_commit: String,
    pub git_subject: Option<String>,
}

/// What [`Store::create_build`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedBuild {
    pub build_id: i64,
    pub job_id: i64,
    /// `Coalesced`: the still-queued build of this stream and arch now builds the new commit.
    pub outcome: EnqueueOutcome,
}

/// What a compose job records about its build when it succeeds.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildResult {
    /// `Succeeded` or `Unchanged`.
    pub status: BuildStatus,
    /// The build the package diff and the download bytes are against.
    pub previous_build_id: Option<i64>,
    pub version: Option<String>,
    pub inputhash: Option<String>,
    pub ostree_commit: Option<String>,
    pub image_reference: Option<String>,
    pub manifest_digest: Option<String>,
    /// NEVRAs.
    pub packages: Option<Vec<String>>,
    pub package_diff: Option<serde_json::Value>,
    /// What a client of the previous build downloads.
    pub download_bytes: Option<i64>,
    pub image_bytes: Option<i64>,
    pub phases: Vec<Phase>,
    /// The image's layers.
    pub layers: Option<Vec<Layer>>,
}

impl BuildResult {
    pub fn new(status: BuildStatus) -> Self {
        BuildResult {
            status,
            previous_build_id: None,
            version: None,
            inputhash: None,
            ostree_commit: None,
            image_reference: None,
            manifest_digest: None,
            packages: None,
            package_diff: None,
            download_bytes: None,
            image_bytes: None,
            phases: Vec::new(),
            layers: None,
        }
    }
}

/// A build without its large columns (package list, package diff, phases, error), as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct BuildSummary {
    pub id: i64,
    pub stream: String,
    pub arch: String,
    pub git_commit: String,
    pub git_subject: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: BuildStatus,
    pub job_id: Option<i64>,
    pub previous_build_id: Option<i64>,
    pub version: Option<String>,
    pub inputhash: Option<String>,
    pub ostree_commit: Option<String>,
    pub image_reference: Option<String>,
    pub manifest_digest: Option<String>,
    pub download_bytes: Option<i64>,
    pub image_bytes: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A build with everything recorded about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Build {
    #[serde(flatten)]
    pub summary: BuildSummary,
    pub packages: Option<Vec<String>>,
    pub package_diff: Option<serde_json::Value>,
    pub phases: Vec<Phase>,
    /// The whole error chain of a failed build, one cause per line.
    pub error: Option<String>,
    pub layers: Option<Vec<Layer>>,
}

#[derive(sqlx::FromRow)]
struct BuildRow {
    #[sqlx(flatten)]
    summary: BuildSummary,
    packages: Option<String>,
    package_diff: Option<String>,
    phases: Option<String>,
    error: Option<String>,
    layers: Option<String>,
}

/// Which builds a list shows; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct BuildFilter {
    pub stream: Option<String>,
    pub arch: Option<String>,
    pub status: Option<BuildStatus>,
    pub git_commit: Option<String>,
}

/// The columns of [`BuildSummary`], as a literal for `concat!`.
macro_rules! summary_columns {
    () => {
        "id, stream, arch, git_commit, git_subject, status, job_id, previous_build_id, version, inputhash, \
         ostree_commit, image_reference, manifest_digest, download_bytes, image_bytes, created_at, started_at, \
         finished_at"
    };
}

/// The columns of [`BuildRow`].
macro_rules! build_columns {
    () => {
        concat!(summary_columns!(), ", packages, package_diff, phases, error, layers")
    };
}

/// The letter of build cursors.
const CURSOR_KIND: char = 'b';

impl Store {
    /// Creates a build (`queued`) and its compose job in one transaction. The job's stream and arch are the
    /// build's. When the job coalesces into a still-queued one (same dedup key), that job's build now
    /// builds `build.git_commit` instead, and its id is returned.
    pub async fn create_build(&self, build: &NewBuild, job: &NewJob) -> Result<CreatedBuild, StoreError> {
        let now = self.now();
        let job =
            NewJob { stream: Some(build.stream.clone()), arch: Some(build.arch.clone()), ..job.clone() };
        let created = dispatch!(self, write, |pool, dialect| {
            async {
                let mut transaction = pool.begin_with(dialect.begin()).await?;
                let (job_id, outcome) = enqueue_job!(&mut transaction, dialect, &job, now)?;
                let existing: Option<i64> = match outcome {
                    EnqueueOutcome::Created => None,
                    EnqueueOutcome::Coalesced => {
                        sqlx::query_scalar(
                            "UPDATE builds SET git_commit = $2, git_subject = $3 \
                             WHERE job_id = $1 AND status = 'queued' RETURNING id",
                        )
                        .bind(job_id)
                        .bind(&build.git_commit)
                        .bind(build.git_subject.as_deref())
                        .fetch_optional(&mut *transaction)
                        .await?
                    }
                    EnqueueOutcome::Deduplicated => {
                        sqlx::query_scalar("SELECT id FROM builds WHERE job_id = $1 ORDER BY id DESC LIMIT 1")
                            .bind(job_id)
                            .fetch_optional(&mut *transaction)
                            .await?
                    }
                };
                let build_id = match existing {
                    Some(build_id) => build_id,
                    None => {
                        sqlx::query_scalar(
                            "INSERT INTO builds (stream, arch, git_commit, git_subject, status, job_id, \
                             created_at) VALUES ($1, $2, $3, $4, 'queued', $5, $6) RETURNING id",
                        )
                        .bind(&build.stream)
                        .bind(&build.arch)
                        .bind(&build.git_commit)
                        .bind(build.git_subject.as_deref())
                        .bind(job_id)
                        .bind(now)
                        .fetch_one(&mut *transaction)
                        .await?
                    }
                };
                transaction.commit().await?;
                Ok::<_, sqlx::Error>(CreatedBuild { build_id, job_id, outcome })
            }
            .await
        })
        .map_err(|source| {
            self.failed(
                format!("creating a build of {} for {} ({})", build.git_commit, build.stream, build.arch),
                source,
            )
        })?;
        self.builds_changed();
        if created.outcome == EnqueueOutcome::Created {
            self.wake().bump();
        }
        Ok(created)
    }

    /// One build with everything recorded about it.
    pub async fn get_build(&self, id: i64) -> Result<Option<Build>, StoreError> {
        const SQL: &str = concat!("SELECT ", build_columns!(), " FROM builds WHERE id = $1");
        let row = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, BuildRow>(SQL).bind(id).fetch_optional(pool).await
        })
        .map_err(|source| self.failed(format!("reading build {id}"), source))?;
        row.map(|row| self.build_from_row(row)).transpose()
    }

    /// Builds matching `filter`, newest first, `limit` per page (at most
    /// [`MAXIMUM_PAGE_SIZE`](super::cursor::MAXIMUM_PAGE_SIZE)); pass the previous page's `next_cursor` for
    /// the next page.
    pub async fn list_builds(
        &self,
        filter: &BuildFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<BuildSummary>, StoreError> {
        let before = cursor::decode(CURSOR_KIND, cursor)?;
        let rows = dispatch!(self, read, |pool, dialect| {
            let mut query =
                sqlx::QueryBuilder::new(concat!("SELECT ", summary_columns!(), " FROM builds WHERE id < "));
            query.push_bind(before);
            if let Some(stream) = &filter.stream {
                query.push(" AND stream = ").push_bind(stream);
            }
            if let Some(arch) = &filter.arch {
                query.push(" AND arch = ").push_bind(arch);
            }
            if let Some(status) = filter.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(git_commit) = &filter.git_commit {
                query.push(" AND git_commit = ").push_bind(git_commit);
            }
            query.push(" ORDER BY id DESC LIMIT ").push_bind(cursor::fetch_limit(limit));
            query.build_query_as::<BuildSummary>().fetch_all(pool).await
        })
        .map_err(|source| self.failed(format!("listing builds ({})", describe_filter(filter)), source))?;
        Ok(cursor::page(rows, limit, CURSOR_KIND, |build| build.id))
    }

    /// The newest build of a stream for an arch, whatever its status.
    pub async fn latest_build(&self, stream: &str, arch: &str) -> Result<Option<BuildSummary>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM builds WHERE stream = $1 AND arch = $2 ORDER BY id DESC LIMIT 1"
        );
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, BuildSummary>(SQL).bind(stream).bind(arch).fetch_optional(pool).await
        })
        .map_err(|source| {
            self.failed(format!("reading the latest build of stream {stream} ({arch})"), source)
        })
    }

    /// The newest build of a stream for an arch that left an image: `succeeded`, or `unchanged` with an
    /// image reference. The next compose diffs against it.
    pub async fn last_good_build(&self, stream: &str, arch: &str) -> Result<Option<Build>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            build_columns!(),
            " FROM builds WHERE stream = $1 AND arch = $2 AND status IN ('succeeded', 'unchanged') \
             AND image_reference IS NOT NULL ORDER BY id DESC LIMIT 1"
        );
        let row = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, BuildRow>(SQL).bind(stream).bind(arch).fetch_optional(pool).await
        })
        .map_err(|source| {
            self.failed(format!("reading the last good build of stream {stream} ({arch})"), source)
        })?;
        row.map(|row| self.build_from_row(row)).transpose()
    }

    /// The newest good build (as [`Store::last_good_build`]) of a stream and arch that is older than build
    /// `before`: what build `before` plans its layers against, diffs its packages with and stops early on.
    /// The claim and the completion of a compose both ask this, so they agree on it.
    pub async fn previous_good_build(
        &self,
        stream: &str,
        arch: &str,
        before: i64,
    ) -> Result<Option<Build>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            build_columns!(),
            " FROM builds WHERE stream = $1 AND arch = $2 AND status IN ('succeeded', 'unchanged') \
             AND image_reference IS NOT NULL AND id < $3 ORDER BY id DESC LIMIT 1"
        );
        let row = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, BuildRow>(SQL).bind(stream).bind(arch).bind(before).fetch_optional(pool).await
        })
        .map_err(|source| {
            self.failed(format!("reading the build before {before} of stream {stream} ({arch})"), source)
        })?;
        row.map(|row| self.build_from_row(row)).transpose()
    }

    /// The newest build a job runs (a compose job has one; other jobs none).
    pub async fn build_of_job(&self, job_id: i64) -> Result<Option<BuildSummary>, StoreError> {
        const SQL: &str =
            concat!("SELECT ", summary_columns!(), " FROM builds WHERE job_id = $1 ORDER BY id DESC LIMIT 1");
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, BuildSummary>(SQL).bind(job_id).fetch_optional(pool).await
        })
        .map_err(|source| self.failed(format!("reading the build of job {job_id}"), source))
    }

    /// The id of [`last_good_build`](Self::last_good_build), without reading the build.
    pub async fn last_good_build_id(&self, stream: &str, arch: &str) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM builds WHERE stream = $1 AND arch = $2 \
                           AND status IN ('succeeded', 'unchanged') AND image_reference IS NOT NULL \
                           ORDER BY id DESC LIMIT 1";
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_scalar(SQL).bind(stream).bind(arch).fetch_optional(pool).await
        })
        .map_err(|source| {
            self.failed(format!("reading the last good build of stream {stream} ({arch})"), source)
        })
    }

    /// Every build of one commit of a stream (all arches, all attempts), newest first: what a join job
    /// looks at before making an image index.
    pub async fn builds_of_commit(
        &self,
        stream: &str,
        git_commit: &str,
    ) -> Result<Vec<BuildSummary>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM builds WHERE git_commit = $2 AND stream = $1 ORDER BY id DESC"
        );
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, BuildSummary>(SQL).bind(stream).bind(git_commit).fetch_all(pool).await
        })
        .map_err(|source| {
            self.failed(format!("reading the builds of {git_commit} in stream {stream}"), source)
        })
    }

    fn build_from_row(&self, row: BuildRow) -> Result<Build, StoreError> {
        let id = row.summary.id;
        let packages =
            parse_json(self, row.packages.as_deref(), || format!("the package list of build {id}"))?;
        let package_diff =
            parse_json(self, row.package_diff.as_deref(), || format!("the package diff of build {id}"))?;
        let phases = parse_json(self, row.phases.as_deref(), || format!("the phases of build {id}"))?;
        let layers = parse_json(self, row.layers.as_deref(), || format!("the layers of build {id}"))?;
        Ok(Build {
            summary: row.summary,
            packages,
            package_diff,
            phases: phases.unwrap_or_default(),
            error: row.error,
            layers,
        })
    }
}

/// Parses an optional JSON column.
fn parse_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    text: Option<&str>,
    what: impl FnOnce() -> String,
) -> Result<Option<T>, StoreError> {
    text.map(serde_json::from_str).transpose().map_err(|source| store.json_error(what(), source))
}

fn describe_filter(filter: &BuildFilter) -> String {
    let mut parts = Vec::new();
    if let Some(stream) = &filter.stream {
        parts.push(format!("stream {stream}"));
    }
    if let Some(arch) = &filter.arch {
        parts.push(format!("arch {arch}"));
    }
    if let Some(status) = filter.status {
        parts.push(format!("status {status}"));
    }
    if let Some(git_commit) = &filter.git_commit {
        parts.push(format!("commit {git_commit}"));
    }
    if parts.is_empty() { "all".to_string() } else { parts.join(", ") }
}
