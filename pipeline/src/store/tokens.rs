//! API tokens: `arbor_` + 32 random base62 characters, shown once when created; only the hex SHA-256 of
//! the whole token is stored (a high-entropy token needs no slow hash, and a fast one is an index lookup).

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Store, StoreError};
use crate::clock::millis;
use crate::random;

/// How stale `last_used_at` may get before a lookup writes it again: a token used on every request
/// would otherwise turn every read into a write.
pub const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

/// What a token allows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reading builds, jobs, logs, streams.
    Read,
    /// Composing, retrying and cancelling.
    Write,
    /// Tokens, workers and promotion.
    Admin,
    /// The worker API only.
    Worker,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Worker => "worker",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<i64>,
}

/// A token's row (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Token {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A created token: the plaintext exists only here, to be shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedToken {
    pub token: Token,
    pub plaintext: String,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("plaintext", &"<secret>")
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The hex SHA-256 of a token, as stored.
pub fn token_hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

macro_rules! token_columns {
    () => {
        "id, name, scopes, created_at, last_used_at, expires_at, revoked_at"
    };
}

impl Store {
    /// Creates a token; the returned plaintext is not stored anywhere.
    pub async fn create_token(&self, new: &NewToken) -> Result<CreatedToken, StoreError> {
        let plaintext =
            random::api_token().map_err(|source| StoreError::Random { what: "a token", source })?;
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        let scopes_text = scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" ");
        let now = self.now();
        let id: i64 = dispatch!(self, write, |pool, dialect| {
            sqlx::query_scalar(
                "INSERT INTO tokens (name, token_hash, scopes, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(&new.name)
            .bind(token_hash(&plaintext))
            .bind(&scopes_text)
            .bind(now)
            .bind(new.expires_at)
            .fetch_one(pool)
            .await
        })
        .map_err(|source| self.failed(format!("creating token {}", new.name), source))?;
        let token = Token {
            id,
            name: new.name.clone(),
            scopes,
            created_at: now,
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        Ok(CreatedToken { token, plaintext })
    }

    /// The token a request presented, if it exists, is not revoked and has not expired. Records the use
    /// when the last recorded one is older than [`LAST_USED_GRANULARITY`].
    pub async fn authenticate_token(&self, plaintext: &str) -> Result<Option<Token>, StoreError> {
        const SQL: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_hash = $1");
        let now = self.now();
        let row = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, TokenRow>(SQL).bind(token_hash(plaintext)).fetch_optional(pool).await
        })
        .map_err(|source| self.failed("looking up a token", source))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut token = self.token_from_row(row)?;
        if token.revoked_at.is_some() || token.expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Ok(None);
        }
        let stale_before = now - millis(LAST_USED_GRANULARITY);
        if token.last_used_at.is_none_or(|last_used_at| last_used_at < stale_before) {
            dispatch!(self, write, |pool, dialect| {
                sqlx::query(
                    "UPDATE tokens SET last_used_at = $2 WHERE id = $1 \
                     AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(token.id)
                .bind(now)
                .bind(stale_before)
                .execute(pool)
                .await
                .map(|_| ())
            })
            .map_err(|source| self.failed(format!("recording the use of token {}", token.id), source))?;
            token.last_used_at = Some(now);
        }
        Ok(Some(token))
    }

    /// Every token, newest first (revoked and expired ones too).
    pub async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        const SQL: &str = concat!("SELECT ", token_columns!(), " FROM tokens ORDER BY id DESC");
        let rows = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, TokenRow>(SQL).fetch_all(pool).await
        })
        .map_err(|source| self.failed("listing tokens", source))?;
        rows.into_iter().map(|row| self.token_from_row(row)).collect()
    }

    /// Revokes a token; `false` when there is no such token or it was revoked already.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.now();
        let changed = dispatch!(self, write, |pool, dialect| {
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(|result| result.rows_affected())
        })
        .map_err(|source| self.failed(format!("revoking token {id}"), source))?;
        Ok(changed > 0)
    }

    fn token_from_row(&self, row: TokenRow) -> Result<Token, StoreError> {
        let scopes = row
            .scopes
            .split_whitespace()
            .map(|scope| Scope::parse(scope).ok_or_else(|| self.unknown_value("a token scope", scope)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Token {
            id: row.id,
            name: row.name,
            scopes,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}
