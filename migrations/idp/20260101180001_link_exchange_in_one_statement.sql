-- Token exchange links its new token to the subject token in one statement
-- (one round trip, one implicit transaction) instead of BEGIN, lock, INSERT,
-- COMMIT, and checks there every kind of revocation of the subject (jti, sid,
-- sub), so the exchange needs no separate revocation query before it.
-- The lock is the one `revocations_take_position` takes per subject token: a
-- VOLATILE function's statements each take a new snapshot, so the INSERT
-- below sees a revocation that committed while it waited for the lock.
CREATE FUNCTION link_exchange(
    p_jti text, p_subject_jti text, p_sid text, p_sub text, p_iat bigint,
    p_actor text, p_expires_at timestamptz
) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_subject_jti, 0));
    INSERT INTO token_exchanges (jti, subject_jti, actor, expires_at)
    SELECT p_jti, p_subject_jti, p_actor, p_expires_at
    WHERE NOT EXISTS (
        SELECT 1 FROM revocations
        WHERE (kind = 'jti' AND value = p_subject_jti)
           OR (kind = 'sid' AND value = p_sid)
           OR (kind = 'sub' AND value = p_sub AND issued_before > to_timestamp(p_iat)));
    RETURN FOUND;
END
$$;
