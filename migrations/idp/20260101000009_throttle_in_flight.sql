-- Attempts in flight: a sign-in reserves its place on its throttle keys before
-- the password is hashed, so concurrent attempts cannot exceed a key's limit
-- (they all used to pass the lock-out check before any failure was counted).
-- A reservation older than the request timeout is stale (its process died)
-- and no longer counts. `busy` counts the attempts answered "try again"
-- (password queue full) since the key's last success in its window: a key
-- that keeps being turned away loses its place ahead of the queue.

ALTER TABLE auth_throttle
    ADD COLUMN in_flight       integer NOT NULL DEFAULT 0,
    ADD COLUMN in_flight_since timestamptz,
    ADD COLUMN busy            integer NOT NULL DEFAULT 0;
