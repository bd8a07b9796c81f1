-- The provider's state, portable between SQLite and PostgreSQL (sqlx's Any driver). Times are
-- unix seconds. Codes, tokens and sessions are kept only as SHA-256 hashes: a copy of this
-- database lets nobody in. Client secrets are not stored at all: they are derived from the
-- master key and `generation`, like every credential of the fleet.

-- One client per app and addon: the app's own (`oidc`) and its proxyAuth wall's (`proxyAuth`).
-- The client id is a hash of the two, so the primary key keeps them unique; a second unique
-- index would defeat `ON CONFLICT (client_id)` when two replicas insert one client at once
-- (PostgreSQL only arbitrates on the index it is named).
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    addon TEXT NOT NULL,
    app_domain TEXT NOT NULL,
    generation BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    -- JSON arrays of exact URIs.
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    -- proxyAuth only: JSON {"path", "basic_auth", "supports_bearer_auth"}.
    wall TEXT
);
CREATE INDEX IF NOT EXISTS clients_by_app ON clients (app_id);
CREATE INDEX IF NOT EXISTS clients_by_domain ON clients (app_domain, addon);

-- Authorization codes: single use (deleted when exchanged), short-lived.
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    username TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS codes_by_client ON codes (client_id);

-- Access tokens (`kind` 'access') and refresh tokens ('refresh').
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    username TEXT NOT NULL,
    scope TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_client ON tokens (client_id);

-- Login sessions: the provider's own (client_id '') and each proxyAuth wall's (its client).
CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    username TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_client ON sessions (client_id);

-- Signing keys: every one is published (JWKS); the newest of each algorithm signs.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
