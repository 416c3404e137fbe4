-- Attempts in flight: a sign-in reserves its place on its throttle keys before
-- the password is hashed, so concurrent attempts cannot exceed a key's limit
-- (they all used to pass the lock-out check before any failure was counted).
-- A reservation older than the request timeout is stale (its process died)
-- and no longer counts.

ALTER TABLE auth_throttle
    ADD COLUMN in_flight       integer NOT NULL DEFAULT 0,
    ADD COLUMN in_flight_since timestamptz;
