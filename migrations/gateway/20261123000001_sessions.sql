-- Browser sessions of the gateway (backend-for-frontend).
--
-- The cookie holds a random 256-bit session id; only its SHA-256 is stored, so
-- a copy of this table cannot be replayed as cookies. Everything else (tokens,
-- user, CSRF token) is in `sealed`: AES-256-GCM under GATEWAY_SESSION_KEY,
-- bound to `id_hash` so rows cannot be swapped.
CREATE TABLE sessions (
    id_hash       BYTEA PRIMARY KEY,
    sealed        BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Sliding idle expiry, bounded by the absolute expiry.
    idle_until    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    CHECK (idle_until <= expires_at)
);

CREATE INDEX sessions_idle_until ON sessions (idle_until);
