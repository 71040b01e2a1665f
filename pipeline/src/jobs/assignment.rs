//! What a worker is handed when it claims a job: the job, its lease, and what only the server can look
//! up (workers never read the database nor the mirror): the build a compose records, the previous good
//! build it plans against, and the commit's time for reproducible commits.

use serde::{Deserialize, Serialize};

use super::COMPOSE_KIND;
use super::payload::{ComposePayload, PreviousBuild};
use crate::git::{CommitId, GitError, Mirror};
use crate::queue::{ClaimedJob, Lease};
use crate::store::{Store, StoreError};

/// A claimed job as the worker protocol carries it (`job` of a claim's answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedJob {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub stream: Option<String>,
    pub arch: Option<String>,
    /// The build a compose job records.
    #[serde(default)]
    pub build_id: Option<i64>,
    /// The stream and arch's good build before this one.
    #[serde(default)]
    pub previous: Option<PreviousBuild>,
    /// The commit's committer time in seconds since the epoch (`SOURCE_DATE_EPOCH`).
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
}

/// A claimed job with its lease.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub job: AssignedJob,
    pub lease: Lease,
    pub lease_expires_at: i64,
}

/// Why a claimed job could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("job {job_id} has an invalid compose payload")]
    Payload {
        job_id: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("reading the inputs of job {job_id}")]
    Git {
        job_id: i64,
        #[source]
        source: GitError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AssignError {
    /// Whether handing the job out can never work (its payload or commit is broken), so it fails at once.
    pub fn is_permanent(&self) -> bool {
        match self {
            AssignError::Payload { .. } => true,
            AssignError::Git { source, .. } => {
                matches!(source, GitError::UnknownCommit { .. } | GitError::InvalidCommitId { .. })
            }
            AssignError::Store(_) => false,
        }
    }
}

/// Describes a claimed job for its worker.
pub async fn assign(store: &Store, mirror: &Mirror, claimed: ClaimedJob) -> Result<Assignment, AssignError> {
    let ClaimedJob { job, lease } = claimed;
    let payload: serde_json::Value = serde_json::from_str(&job.payload)
        .map_err(|source| AssignError::Payload { job_id: job.id, source })?;
    let mut assigned = AssignedJob {
        id: job.id,
        kind: job.kind.clone(),
        payload,
        attempt: job.attempts,
        stream: job.stream.clone(),
        arch: job.arch.clone(),
        build_id: None,
        previous: None,
        source_date_epoch: None,
    };
    if job.kind == COMPOSE_KIND {
        let compose: ComposePayload = serde_json::from_value(assigned.payload.clone())
            .map_err(|source| AssignError::Payload { job_id: job.id, source })?;
        let git = |source| AssignError::Git { job_id: job.id, source };
        let commit = CommitId::parse(&compose.commit).map_err(git)?;
        let information = mirror.commit_info(&commit).await.map_err(git)?;
        assigned.source_date_epoch = u64::try_from(information.committer_time / 1000).ok();
        if let Some(build) = store.build_of_job(job.id).await? {
            assigned.build_id = Some(build.id);
            let previous = store.previous_good_build(&compose.stream, &compose.arch, build.id).await?;
            assigned.previous = previous.and_then(|previous| {
                let reference = previous.summary.image_reference?;
                Some(PreviousBuild {
                    build_id: previous.summary.id,
                    image: format!("registry:{reference}"),
                    inputhash: previous.summary.inputhash,
                })
            });
        }
    }
    Ok(Assignment { job: assigned, lease, lease_expires_at: job.lease_expires.unwrap_or_default() })
}
