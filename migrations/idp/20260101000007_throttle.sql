-- Brute-force defence: failure counters with growing lock-outs, per account
-- name, per client id and per network address, and an audit trail of
-- authentication events.

CREATE TABLE auth_throttle (
    key          text PRIMARY KEY,          -- 'user:<name>', 'client:<id>', 'addr:<ip>'
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);

CREATE TABLE auth_events (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL CHECK (kind IN ('login_succeeded', 'login_failed', 'login_locked',
                                            'client_auth_failed', 'client_auth_locked')),
    username  text,
    client_id text,
    addr      text NOT NULL
);

CREATE INDEX auth_events_at ON auth_events (at);
