//! The provider's state: clients, codes, tokens, sessions and signing keys, in an embedded
//! SQLite file by default or in PostgreSQL when several replicas serve one issuer (sqlx's
//! `Any` driver, one portable schema under `migrations/`).
//!
//! Codes, tokens and sessions are looked up by the SHA-256 of the value the browser or client
//! holds ([`hash`]); the values themselves are never stored. Client secrets are not stored
//! either: they are derived from the master key and the client's generation.

use fleet_shared::{Secret, error::AddonError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, AssertSqlSafe};

use crate::{
    error::classify,
    keys::{Algorithm, SigningKey},
};

/// An app's client, as Provision last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `cid-` and 32 hex digits, derived from the app id and addon.
    pub client_id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// `oidc` (the app's own login) or `proxyAuth` (its wall).
    pub addon: String,
    /// The app's primary domain.
    pub app_domain: String,
    /// Rotation counter its secret is derived with.
    pub generation: u32,
    /// How its ID tokens are signed.
    pub algorithm: Algorithm,
    /// Where codes may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// The wall's rules, for a proxyAuth client.
    pub wall: Option<Wall>,
}

/// What a proxyAuth wall protects and how it lets requests through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wall {
    /// `/admin` protects that prefix only; `!/webhooks` everything but it; empty: everything.
    pub path: String,
    /// HTTP Basic checked against the directory.
    pub basic_auth: bool,
    /// Requests with `Authorization: Bearer` go to the app untouched.
    pub supports_bearer_auth: bool,
}

/// What writing a client found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upsert {
    /// The client is as given.
    Written,
    /// The client id belongs to another app; nothing was changed.
    Taken {
        /// The app that holds it.
        owner: String,
    },
}

/// What removing a client found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The client and everything issued to it are gone (or were never there).
    Removed,
    /// The client id belongs to another app; nothing was removed.
    Taken {
        /// The app that holds it.
        owner: String,
    },
}

/// An authorization code's grant, as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub client_id: String,
    pub username: String,
    pub redirect_uri: String,
    /// Space-separated scopes granted.
    pub scope: String,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge, if the request carried one.
    pub code_challenge: Option<String>,
    /// When the user authenticated (unix seconds).
    pub auth_time: i64,
    /// When the code stops being accepted (unix seconds).
    pub expires_at: i64,
}

/// What an access or refresh token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    pub username: String,
    /// Space-separated scopes granted.
    pub scope: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// The two kinds of token the provider issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A login session: the provider's own (`client_id` empty) or a proxyAuth wall's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub client_id: String,
    pub username: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// The `client_id` of the provider's own login sessions.
pub const PROVIDER_SESSION: &str = "";

/// The hex SHA-256 of a code, token or session value: how the store keys it.
pub fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The provider's state.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

type ClientRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
);

const CLIENT_COLUMNS: &str = "client_id, app_id, addon, app_domain, generation, algorithm, \
                              redirect_uris, post_logout_redirect_uris, wall";

impl Store {
    /// Opens (and creates, for SQLite) the store at `url` and brings its schema up to date.
    pub async fn open(url: &Secret<String>) -> Result<Self, AddonError> {
        let pool = fleet_shared::state::connect(url.expose())
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(e) => {
                    AddonError::Internal(format!("FLEET_OIDC_STATE_URL is not usable: {e}"))
                }
                other => classify(other),
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| AddonError::Internal(format!("state store migration: {e}")))?;
        Ok(Self { pool })
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Writes `client` unless its id belongs to another app.
    pub async fn upsert_client(&self, client: &Client) -> Result<Upsert, AddonError> {
        let written = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (client_id) DO UPDATE SET app_domain = excluded.app_domain, \
             generation = excluded.generation, algorithm = excluded.algorithm, \
             redirect_uris = excluded.redirect_uris, \
             post_logout_redirect_uris = excluded.post_logout_redirect_uris, wall = excluded.wall \
             WHERE clients.app_id = excluded.app_id AND clients.addon = excluded.addon"
        )))
        .bind(&client.client_id)
        .bind(&client.app_id)
        .bind(&client.addon)
        .bind(&client.app_domain)
        .bind(i64::from(client.generation))
        .bind(client.algorithm.as_str())
        .bind(json(&client.redirect_uris)?)
        .bind(json(&client.post_logout_redirect_uris)?)
        .bind(client.wall.as_ref().map(json).transpose()?)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        if written.rows_affected() == 1 {
            return Ok(Upsert::Written);
        }
        match self.owner(&client.client_id).await? {
            Some(owner) if owner != client.app_id => Ok(Upsert::Taken { owner }),
            _ => Err(AddonError::Internal(format!(
                "client {} was neither written nor held by another app",
                client.client_id
            ))),
        }
    }

    /// The client `client_id`.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, AddonError> {
        let row: Option<ClientRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
        )))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(client_from_row).transpose()
    }

    /// The proxyAuth client of the app served on `domain`.
    pub async fn wall_for_domain(&self, domain: &str) -> Result<Option<Client>, AddonError> {
        let row: Option<ClientRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE app_domain = $1 AND addon = $2 \
             ORDER BY client_id LIMIT 1"
        )))
        .bind(domain)
        .bind("proxyAuth")
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(client_from_row).transpose()
    }

    async fn owner(&self, client_id: &str) -> Result<Option<String>, AddonError> {
        sqlx::query_scalar("SELECT app_id FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    /// Removes `app_id`'s client `client_id` with every code, token and session issued to it,
    /// in one transaction.
    pub async fn remove_client(
        &self,
        app_id: &str,
        client_id: &str,
    ) -> Result<Removal, AddonError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT app_id FROM clients WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        if let Some(owner) = owner.filter(|owner| owner != app_id) {
            return Ok(Removal::Taken { owner });
        }
        for table in ["codes", "tokens", "sessions", "clients"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE client_id = $1"
            )))
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Removal::Removed)
    }

    /// The apps that have a client, sorted, each once.
    pub async fn app_ids(&self) -> Result<Vec<String>, AddonError> {
        sqlx::query_scalar("SELECT DISTINCT app_id FROM clients ORDER BY app_id")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    /// Records an authorization code by its hash.
    pub async fn insert_code(&self, code_hash: &str, code: &Code) -> Result<(), AddonError> {
        sqlx::query(
            "INSERT INTO codes (code_hash, client_id, username, redirect_uri, scope, nonce, \
             code_challenge, auth_time, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(code_hash)
        .bind(&code.client_id)
        .bind(&code.username)
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(code.nonce.as_deref())
        .bind(code.code_challenge.as_deref())
        .bind(code.auth_time)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Takes the code with this hash: whoever calls first gets it, every later call `None`
    /// (codes are single-use even between replicas). Expiry is the caller's to check.
    pub async fn take_code(&self, code_hash: &str) -> Result<Option<Code>, AddonError> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM codes WHERE code_hash = $1 RETURNING client_id, username, redirect_uri, \
             scope, nonce, code_challenge, auth_time, expires_at",
        )
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(
            |(
                client_id,
                username,
                redirect_uri,
                scope,
                nonce,
                code_challenge,
                auth_time,
                expires_at,
            )| Code {
                client_id,
                username,
                redirect_uri,
                scope,
                nonce,
                code_challenge,
                auth_time,
                expires_at,
            },
        ))
    }

    /// Records a token by its hash.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        grant: &Grant,
    ) -> Result<(), AddonError> {
        sqlx::query(
            "INSERT INTO tokens (token_hash, kind, client_id, username, scope, auth_time, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(kind.as_str())
        .bind(&grant.client_id)
        .bind(&grant.username)
        .bind(&grant.scope)
        .bind(grant.auth_time)
        .bind(grant.expires_at)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The grant of the token of `kind` with this hash, if it has not expired at `now`.
    pub async fn token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> Result<Option<Grant>, AddonError> {
        let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT client_id, username, scope, auth_time, expires_at FROM tokens \
             WHERE token_hash = $1 AND kind = $2 AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(grant_from_row))
    }

    /// Takes the token of `kind` with this hash (refresh tokens are single-use: each refresh
    /// issues a new one); expiry is the caller's to check.
    pub async fn take_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
    ) -> Result<Option<Grant>, AddonError> {
        let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "DELETE FROM tokens WHERE token_hash = $1 AND kind = $2 \
             RETURNING client_id, username, scope, auth_time, expires_at",
        )
        .bind(token_hash)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(grant_from_row))
    }

    /// Revokes every token and session of `username` (the user left the directory).
    pub async fn revoke_user(&self, username: &str) -> Result<(), AddonError> {
        for table in ["tokens", "sessions"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE username = $1"
            )))
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        }
        Ok(())
    }

    /// Records a login session by its hash.
    pub async fn insert_session(
        &self,
        session_hash: &str,
        session: &Session,
    ) -> Result<(), AddonError> {
        sqlx::query(
            "INSERT INTO sessions (session_hash, client_id, username, auth_time, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash)
        .bind(&session.client_id)
        .bind(&session.username)
        .bind(session.auth_time)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The session with this hash for `client_id` ([`PROVIDER_SESSION`] for the provider's
    /// own), if it has not expired at `now`.
    pub async fn session(
        &self,
        session_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Session>, AddonError> {
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT client_id, username, auth_time, expires_at FROM sessions \
             WHERE session_hash = $1 AND client_id = $2 AND expires_at > $3",
        )
        .bind(session_hash)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(
            row.map(|(client_id, username, auth_time, expires_at)| Session {
                client_id,
                username,
                auth_time,
                expires_at,
            }),
        )
    }

    /// Ends the session with this hash.
    pub async fn delete_session(&self, session_hash: &str) -> Result<(), AddonError> {
        sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Every signing key.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, AddonError> {
        let rows: Vec<(String, String, String, i64)> =
            sqlx::query_as("SELECT kid, algorithm, private_pem, created_at FROM signing_keys")
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        rows.into_iter()
            .map(|(kid, algorithm, private_pem, created_at)| {
                Ok(SigningKey {
                    kid,
                    algorithm: algorithm.parse().map_err(|_| {
                        AddonError::Internal(format!("unknown key algorithm {algorithm:?}"))
                    })?,
                    private_pem: Secret::new(private_pem),
                    created_at,
                })
            })
            .collect()
    }

    /// Adds a signing key.
    pub async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), AddonError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(key.private_pem.expose())
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Deletes codes, tokens and sessions that expired before `now`.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, AddonError> {
        let mut purged = 0;
        for table in ["codes", "tokens", "sessions"] {
            purged += sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE expires_at <= $1"
            )))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(classify)?
            .rows_affected();
        }
        Ok(purged)
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, AddonError> {
    serde_json::to_string(value).map_err(|e| AddonError::Internal(format!("encoding: {e}")))
}

fn parse_json<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, AddonError> {
    serde_json::from_str(text).map_err(|e| AddonError::Internal(format!("stored client: {e}")))
}

fn client_from_row(row: ClientRow) -> Result<Client, AddonError> {
    let (
        client_id,
        app_id,
        addon,
        app_domain,
        generation,
        algorithm,
        redirect_uris,
        post_logout_redirect_uris,
        wall,
    ) = row;
    Ok(Client {
        algorithm: algorithm
            .parse()
            .map_err(|_| AddonError::Internal(format!("unknown algorithm {algorithm:?}")))?,
        generation: u32::try_from(generation)
            .map_err(|_| AddonError::Internal(format!("generation {generation} out of range")))?,
        redirect_uris: parse_json(&redirect_uris)?,
        post_logout_redirect_uris: parse_json(&post_logout_redirect_uris)?,
        wall: wall.as_deref().map(parse_json).transpose()?,
        client_id,
        app_id,
        addon,
        app_domain,
    })
}

fn grant_from_row(
    (client_id, username, scope, auth_time, expires_at): (String, String, String, i64, i64),
) -> Grant {
    Grant {
        client_id,
        username,
        scope,
        auth_time,
        expires_at,
    }
}
