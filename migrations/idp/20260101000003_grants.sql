-- Sessions and grants. Every bearer secret (session cookie, code, refresh
-- token) is stored only as its SHA-256 hash.

CREATE TABLE sso_sessions (
    id          uuid PRIMARY KEY,                 -- the `sid` claim
    token_hash  bytea NOT NULL UNIQUE,            -- SHA-256 of the cookie value
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz
);

CREATE INDEX sso_sessions_user ON sso_sessions (user_id);

CREATE TABLE authorization_codes (
    code_hash      bytea PRIMARY KEY,
    client_id      text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     uuid NOT NULL REFERENCES sso_sessions (id) ON DELETE CASCADE,
    redirect_uri   text NOT NULL,
    scope          text NOT NULL,
    nonce          text,
    code_challenge text,
    auth_time      timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    consumed_at    timestamptz,
    -- What redeeming the code issued, so that a replay can revoke it.
    issued_jti     text,
    issued_access_expires_at timestamptz,
    issued_family  uuid
);

CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    family_id   uuid NOT NULL,
    parent_id   uuid REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    client_id   text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  uuid NOT NULL REFERENCES sso_sessions (id) ON DELETE CASCADE,
    scope       text NOT NULL,
    auth_time   timestamptz NOT NULL,
    -- The access token issued together with this refresh token.
    access_jti  text NOT NULL,
    access_expires_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Revocations of tokens that are validated locally (JWT access tokens):
-- by `jti` or by `sid`. Rows can be dropped after `expires_at`, when every
-- token they concern has expired anyway. The id orders them for a stream.
CREATE TABLE revocations (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('jti', 'sid')),
    value      text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    UNIQUE (kind, value)
);
