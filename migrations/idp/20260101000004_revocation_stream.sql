-- Revocations become an append-only log served as a stream (SSE with
-- Last-Event-ID): every revocation is a new row with a new id, also when the
-- same token is revoked twice, so a subscriber never misses an update.
-- Adds revocation by subject ("every token of this user issued before T").

ALTER TABLE revocations DROP CONSTRAINT revocations_kind_value_key;
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check CHECK (kind IN ('jti', 'sid', 'sub'));
ALTER TABLE revocations ADD COLUMN issued_before timestamptz;
ALTER TABLE revocations ADD CONSTRAINT revocations_subject_time CHECK ((kind = 'sub') = (issued_before IS NOT NULL));

CREATE INDEX revocations_lookup ON revocations (kind, value);
CREATE INDEX revocations_expiry ON revocations (expires_at);
