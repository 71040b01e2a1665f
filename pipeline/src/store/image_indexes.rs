//! Image indexes: the per-arch images of one commit joined into one OCI image index once every arch
//! succeeded.

use super::{Store, StoreError};

/// An image index to record.
#[derive(Debug, Clone)]
pub struct NewImageIndex {
    pub stream: String,
    pub git_commit: String,
    pub reference: String,
    pub digest: String,
    /// The builds whose images it joins.
    pub build_ids: Vec<i64>,
}

/// A recorded image index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageIndex {
    pub id: i64,
    pub stream: String,
    pub git_commit: String,
    pub reference: String,
    pub digest: String,
    pub build_ids: Vec<i64>,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct ImageIndexRow {
    id: i64,
    stream: String,
    git_commit: String,
    reference: String,
    digest: String,
    build_ids: String,
    created_at: i64,
}

impl Store {
    /// Records an image index and returns its id.
    pub async fn record_image_index(&self, index: &NewImageIndex) -> Result<i64, StoreError> {
        let build_ids = serde_json::to_string(&index.build_ids)
            .map_err(|source| self.json_error("image index builds", source))?;
        let now = self.now();
        dispatch!(self, write, |pool, dialect| {
            sqlx::query_scalar(
                "INSERT INTO image_indexes (stream, git_commit, reference, digest, build_ids, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&index.stream)
            .bind(&index.git_commit)
            .bind(&index.reference)
            .bind(&index.digest)
            .bind(&build_ids)
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(|source| {
            self.failed(
                format!("recording the image index of {} in stream {}", index.git_commit, index.stream),
                source,
            )
        })
    }

    /// The newest image index of a commit of a stream.
    pub async fn get_image_index(
        &self,
        stream: &str,
        git_commit: &str,
    ) -> Result<Option<ImageIndex>, StoreError> {
        let row = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, ImageIndexRow>(
                "SELECT id, stream, git_commit, reference, digest, build_ids, created_at FROM image_indexes \
                 WHERE stream = $1 AND git_commit = $2 ORDER BY id DESC LIMIT 1",
            )
            .bind(stream)
            .bind(git_commit)
            .fetch_optional(pool)
            .await
        })
        .map_err(|source| {
            self.failed(format!("reading the image index of {git_commit} in stream {stream}"), source)
        })?;
        row.map(|row| {
            let build_ids = serde_json::from_str(&row.build_ids)
                .map_err(|source| self.json_error(format!("the builds of image index {}", row.id), source))?;
            Ok(ImageIndex {
                id: row.id,
                stream: row.stream,
                git_commit: row.git_commit,
                reference: row.reference,
                digest: row.digest,
                build_ids,
                created_at: row.created_at,
            })
        })
        .transpose()
    }
}
