-- guard's tables (services/guard/src/audit.rs and idempotency.rs), in the
-- database of every resource server (order, payment, inventory), each of which
-- owns its own rows. Applied by `guard::db::with_guard_migrations` before the
-- service's own migrations, in the same `_sqlx_migrations` table: guard's
-- versions are timestamps, the services' are 0001, 0002, … — never the same.
-- IF NOT EXISTS: databases made before these tables moved here (the services'
-- former 0002_audit*/0003_audit* migrations) already have them.

CREATE TABLE IF NOT EXISTS audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    action    TEXT NOT NULL,
    resource  TEXT NOT NULL,
    -- Who: the token's subject and client, the calling service (`act`, or the
    -- client when the token was relayed unchanged) and the token's `jti`.
    sub       TEXT NOT NULL,
    client_id TEXT NOT NULL,
    caller    TEXT NOT NULL,
    jti       TEXT NOT NULL,
    -- The W3C trace id of the request (its `traceparent`, or a fresh trace).
    trace_id  TEXT NOT NULL,
    detail    JSONB NOT NULL DEFAULT '{}'
);

-- One row per (caller, Idempotency-Key): the request it came with and the answer
-- every retry gets. The row is inserted first, inside the transaction doing the
-- work (so a concurrent retry waits on it), and completed before that
-- transaction commits: a committed row always has its status and response.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner_sub   TEXT NOT NULL,
    key         TEXT NOT NULL,
    request     JSONB NOT NULL,
    status_code SMALLINT,
    response    JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_sub, key)
);
