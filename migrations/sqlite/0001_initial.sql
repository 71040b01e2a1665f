-- arbor serve, initial schema (SQLite). The same tables as migrations/postgres/0001_initial.sql; see
-- notes/server-model.md. Times are milliseconds since the Unix epoch supplied by the server, never now().
-- Ids of jobs and builds use AUTOINCREMENT so an id is never reused (cursors and leases rely on it).

CREATE TABLE streams (
    name TEXT PRIMARY KEY NOT NULL,
    branch TEXT NOT NULL,
    head_commit TEXT,
    head_subject TEXT,
    head_seen_at INTEGER,
    git_error TEXT,
    git_error_since INTEGER,
    git_failures INTEGER NOT NULL DEFAULT 0,
    git_next_attempt_at INTEGER,
    last_event TEXT,
    last_event_at INTEGER,
    updated_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    stream TEXT,
    arch TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    dedup_key TEXT,
    phase TEXT,
    -- Log lines appended so far (across attempts): the next line's seq is log_lines + 1.
    log_lines INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    error TEXT,
    result TEXT
);
CREATE UNIQUE INDEX jobs_dedup_key_queued ON jobs (dedup_key) WHERE state = 'queued';
CREATE INDEX jobs_claim ON jobs (state, priority DESC, id);
CREATE INDEX jobs_lease_expires ON jobs (state, lease_expires);
CREATE INDEX jobs_state_id ON jobs (state, id);

CREATE TABLE job_logs (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- The large columns (packages, package_diff, phases, error) come last: SQLite walks a row's overflow
-- pages only to reach the columns after them, so listing builds never reads the package lists.
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    arch TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    git_subject TEXT,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'unchanged', 'cancelled')),
    job_id INTEGER REFERENCES jobs (id),
    previous_build_id INTEGER REFERENCES builds (id),
    version TEXT,
    inputhash TEXT,
    ostree_commit TEXT,
    image_reference TEXT,
    manifest_digest TEXT,
    download_bytes INTEGER,
    image_bytes INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    reference TEXT NOT NULL,
    digest TEXT NOT NULL,
    build_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX image_indexes_stream_commit ON image_indexes (stream, git_commit, id DESC);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE workers (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    arches TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('embedded', 'remote')),
    version TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    current_job_id INTEGER REFERENCES jobs (id),
    token_id INTEGER REFERENCES tokens (id)
);
