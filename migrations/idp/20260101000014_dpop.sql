-- DPoP (RFC 9449). Proofs presented at /token, remembered until they can no
-- longer be accepted, so that a proof is used once across every IdP replica;
-- and the key a public client's refresh-token family is bound to (a refresh
-- needs a proof of that key).
CREATE TABLE dpop_proofs (
    replay_key bytea PRIMARY KEY,          -- SHA-256 of the key thumbprint and the proof's jti
    expires_at timestamptz NOT NULL
);
CREATE INDEX dpop_proofs_expires_at ON dpop_proofs (expires_at);

ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt text;
