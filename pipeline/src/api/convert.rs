//! Store rows as API bodies: times as [`Timestamp`]s, JSON text columns as JSON values, lease tokens and
//! token hashes left out.

use super::{Build, BuildSummary, Job, Layer, Phase, RequestOutcome, Timestamp, Token, Worker};
use crate::queue::EnqueueOutcome;
use crate::store;

impl From<&store::BuildSummary> for BuildSummary {
    fn from(build: &store::BuildSummary) -> Self {
        BuildSummary {
            id: build.id,
            stream: build.stream.clone(),
            arch: build.arch.clone(),
            git_commit: build.git_commit.clone(),
            git_subject: build.git_subject.clone(),
            status: build.status,
            job_id: build.job_id,
            previous_build_id: build.previous_build_id,
            version: build.version.clone(),
            inputhash: build.inputhash.clone(),
            ostree_commit: build.ostree_commit.clone(),
            image_reference: build.image_reference.clone(),
            manifest_digest: build.manifest_digest.clone(),
            download_bytes: build.download_bytes,
            image_bytes: build.image_bytes,
            created_at: Timestamp(build.created_at),
            started_at: Timestamp::from_optional(build.started_at),
            finished_at: Timestamp::from_optional(build.finished_at),
        }
    }
}

impl From<&store::Build> for Build {
    fn from(build: &store::Build) -> Self {
        Build {
            summary: BuildSummary::from(&build.summary),
            packages: build.packages.clone(),
            package_diff: build.package_diff.clone(),
            phases: build.phases.iter().map(Phase::from).collect(),
            error: build.error.clone(),
            layers: build.layers.as_ref().map(|layers| layers.iter().map(Layer::from).collect()),
        }
    }
}

impl From<&store::Layer> for Layer {
    fn from(layer: &store::Layer) -> Self {
        Layer {
            digest: layer.digest.clone(),
            size: layer.size,
            description: layer.description.clone(),
            components: layer.components.clone(),
        }
    }
}

impl From<&store::Phase> for Phase {
    fn from(phase: &store::Phase) -> Self {
        Phase {
            name: phase.name.clone(),
            started_at: Timestamp(phase.started_at),
            duration_ms: phase.duration_ms,
        }
    }
}

impl From<&store::Job> for Job {
    /// Payload and result are JSON text in the store; text that does not parse (never written by arbor) is
    /// shown as a JSON string rather than failing the whole answer.
    fn from(job: &store::Job) -> Self {
        let json = |text: &str| {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
        };
        Job {
            id: job.id,
            kind: job.kind.clone(),
            stream: job.stream.clone(),
            arch: job.arch.clone(),
            state: job.state,
            priority: job.priority,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            run_after: Timestamp(job.run_after),
            worker_id: job.lease_owner.clone(),
            lease_expires_at: Timestamp::from_optional(job.lease_expires),
            cancel_requested: job.cancel_requested,
            dedup_key: job.dedup_key.clone(),
            phase: job.phase.clone(),
            log_lines: job.log_lines,
            created_at: Timestamp(job.created_at),
            started_at: Timestamp::from_optional(job.started_at),
            finished_at: Timestamp::from_optional(job.finished_at),
            error: job.error.clone(),
            payload: json(&job.payload),
            result: job.result.as_deref().map(json),
        }
    }
}

impl Worker {
    /// The worker as the API shows it; `online` when seen at or after `online_since`.
    pub fn from_store(worker: &store::Worker, online_since: i64) -> Self {
        Worker {
            id: worker.id.clone(),
            name: worker.name.clone(),
            arches: worker.arches.clone(),
            kind: worker.kind,
            version: worker.version.clone(),
            registered_at: Timestamp(worker.registered_at),
            last_seen: Timestamp(worker.last_seen),
            online: worker.last_seen >= online_since,
            current_job_id: worker.current_job_id,
        }
    }
}

impl From<&store::Token> for Token {
    fn from(token: &store::Token) -> Self {
        Token {
            id: token.id,
            name: token.name.clone(),
            scopes: token.scopes.clone(),
            created_at: Timestamp(token.created_at),
            last_used_at: Timestamp::from_optional(token.last_used_at),
            expires_at: Timestamp::from_optional(token.expires_at),
            revoked_at: Timestamp::from_optional(token.revoked_at),
        }
    }
}

impl From<EnqueueOutcome> for RequestOutcome {
    fn from(outcome: EnqueueOutcome) -> Self {
        match outcome {
            EnqueueOutcome::Created => RequestOutcome::Created,
            EnqueueOutcome::Coalesced => RequestOutcome::Coalesced,
            EnqueueOutcome::Deduplicated => RequestOutcome::Deduplicated,
        }
    }
}
