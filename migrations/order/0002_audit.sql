-- Audit trail; the same table exists in the order, payment and inventory
-- databases (each service owns its own).

CREATE TABLE audit_log (
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
