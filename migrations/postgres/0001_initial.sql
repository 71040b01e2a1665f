-- arbor serve, initial schema (PostgreSQL). The same tables as migrations/sqlite/0001_initial.sql; see
-- notes/server-model.md. Times are milliseconds since the Unix epoch supplied by the server, never now().
-- Identity columns never reuse an id (cursors and leases rely on it). JSON is TEXT, as on SQLite.

CREATE TABLE streams (
    name TEXT PRIMARY KEY NOT NULL,
    branch TEXT NOT NULL,
    head_commit TEXT,
    head_subject TEXT,
    head_seen_at BIGINT,
    git_error TEXT,
    git_error_since BIGINT,
    git_failures BIGINT NOT NULL DEFAULT 0,
    git_next_attempt_at BIGINT,
    last_event TEXT,
    last_event_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    stream TEXT,
    arch TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    dedup_key TEXT,
    phase TEXT,
    -- Log lines appended so far (across attempts): the next line's seq is log_lines + 1.
    log_lines BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    error TEXT,
    result TEXT
);
CREATE UNIQUE INDEX jobs_dedup_key_queued ON jobs (dedup_key) WHERE state = 'queued';
CREATE INDEX jobs_claim ON jobs (state, priority DESC, id);
CREATE INDEX jobs_lease_expires ON jobs (state, lease_expires);
CREATE INDEX jobs_state_id ON jobs (state, id);

CREATE TABLE job_logs (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    seq BIGINT NOT NULL,
    time BIGINT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- The large columns come last, as on SQLite (PostgreSQL keeps them out of line anyway).
CREATE TABLE builds (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream TEXT NOT NULL,
    arch TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    git_subject TEXT,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'unchanged', 'cancelled')),
    job_id BIGINT REFERENCES jobs (id),
    previous_build_id BIGINT REFERENCES builds (id),
    version TEXT,
    inputhash TEXT,
    ostree_commit TEXT,
    image_reference TEXT,
    manifest_digest TEXT,
    download_bytes BIGINT,
    image_bytes BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    packages TEXT,
    package_diff TEXT,
    phases TEXT,
    error TEXT
);
CREATE INDEX builds_stream ON builds (stream, id DESC);
CREATE INDEX builds_stream_arch ON builds (stream, arch, id DESC);
CREATE INDEX builds_stream_arch_status ON builds (stream, arch, status, id DESC);
CREATE INDEX builds_git_commit ON builds (git_commit);
CREATE INDEX builds_job ON builds (job_id);

CREATE TABLE image_indexes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    reference TEXT NOT NULL,
    digest TEXT NOT NULL,
    build_ids TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX image_indexes_stream_commit ON image_indexes (stream, git_commit, id DESC);

CREATE TABLE tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE workers (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    arches TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('embedded', 'remote')),
    version TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    current_job_id BIGINT REFERENCES jobs (id),
    token_id BIGINT REFERENCES tokens (id)
);
