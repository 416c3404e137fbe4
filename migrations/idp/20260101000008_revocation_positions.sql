-- The revocation log is read in commit order, never in id order.
--
-- A `bigserial` id is taken at INSERT and becomes visible at COMMIT, so two
-- concurrent revocations can commit as 8 then 7: a reader that had moved past
-- 8 never saw 7. Each row now gets a `position` at commit time instead: a
-- deferred constraint trigger runs in the committing transaction's last step,
-- takes a transaction-scoped advisory lock (held until the commit is complete
-- and visible) and draws the next number. Positions are therefore handed out
-- in the order their rows become visible: whoever sees position p committed
-- also sees every position below p. Readers page by `position`; an aborted
-- transaction leaves a gap in the numbers, never a row that appears later.
-- The trigger also sends the NOTIFY that wakes every IdP replica's stream.

-- RFC 8693: every exchanged token names the token it was exchanged from, so
-- revoking the subject token revokes what was derived from it (recursively).
CREATE TABLE token_exchanges (
    jti         text PRIMARY KEY,
    subject_jti text NOT NULL,
    actor       text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX token_exchanges_subject ON token_exchanges (subject_jti);
CREATE INDEX token_exchanges_expiry ON token_exchanges (expires_at);

CREATE SEQUENCE revocation_positions;

ALTER TABLE revocations ADD COLUMN position bigint;

-- Rows from before this migration are all committed: their id order is final.
UPDATE revocations r SET position = o.p
FROM (SELECT id, row_number() OVER (ORDER BY id) AS p FROM revocations) o
WHERE r.id = o.id;
SELECT setval('revocation_positions', COALESCE(max(position), 0) + 1, false) FROM revocations;

ALTER TABLE revocations ADD CONSTRAINT revocations_position_key UNIQUE (position);

-- Also cascades a token's revocation to the tokens exchanged from it (see
-- `token_exchanges` above), under a lock per subject token that the exchange
-- takes too: either the exchange commits first and its link is seen here, or
-- this commits first and the exchange sees the revocation and is refused.
CREATE FUNCTION revocations_take_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- 0x6261746f6e726576 = 'batonrev': one lock for the whole log.
    PERFORM pg_advisory_xact_lock(7089074032745768310);
    IF NEW.kind = 'jti' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(NEW.value, 0));
        INSERT INTO revocations (kind, value, reason, expires_at)
        SELECT 'jti', e.jti, NEW.reason || ' (exchanged token)', e.expires_at
        FROM token_exchanges e
        WHERE e.subject_jti = NEW.value AND e.expires_at > now()
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'jti' AND r.value = e.jti);
    END IF;
    UPDATE revocations SET position = nextval('revocation_positions') WHERE id = NEW.id;
    PERFORM pg_notify('baton_idp_revocations', '');
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER revocations_take_position
    AFTER INSERT ON revocations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION revocations_take_position();

-- How far housekeeping has deleted: a subscriber resuming from a position at
-- or below this may have missed rows that are gone, so it gets a snapshot.
CREATE TABLE revocation_log (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    purged_through bigint NOT NULL DEFAULT 0
);
INSERT INTO revocation_log DEFAULT VALUES;

-- Subject revocations are exact to the microsecond; a token carries whole
-- seconds, so the IdP waits out the revocation's second before it signs for
-- that subject again (see `revocations::wait_out_subject_revocation`).
CREATE INDEX revocations_subject ON revocations (value, issued_before) WHERE kind = 'sub';
