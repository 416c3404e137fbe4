-- Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the IdP
-- session (`sid`) and user (`sub`) of each gateway session, so that a logout
-- token naming either ends every gateway session that belongs to it. Both are
-- opaque identifiers issued by the IdP (they grant nothing), kept in the
-- clear only to be looked up; everything else stays sealed.
ALTER TABLE sessions
    ADD COLUMN idp_sid TEXT,
    ADD COLUMN idp_sub TEXT;

CREATE INDEX sessions_idp_sid ON sessions (idp_sid) WHERE idp_sid IS NOT NULL;
CREATE INDEX sessions_idp_sub ON sessions (idp_sub) WHERE idp_sub IS NOT NULL;

-- The `jti` of every logout token accepted, until the token has expired:
-- a replayed logout token is refused (§2.6 step 10).
CREATE TABLE logout_token_jtis (
    jti        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
