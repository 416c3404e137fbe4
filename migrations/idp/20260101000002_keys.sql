-- Signing keys. The public part is published in JWKS; the private part is a
-- PKCS#8 document sealed with AES-256-GCM under IDP_KEY_ENCRYPTION_KEY
-- (12-byte nonce || ciphertext || tag, the kid as associated data).
--
-- Life of a key: published from created_at, signs from not_before until
-- retire_at (when its successor takes over), published until expire_at
-- (retire_at + the longest token lifetime), then dropped from JWKS.

CREATE TABLE signing_keys (
    kid                   text PRIMARY KEY,
    alg                   text NOT NULL CHECK (alg IN ('RS256', 'ES256', 'EdDSA')),
    public_jwk            jsonb NOT NULL,
    private_key_encrypted bytea NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    not_before            timestamptz NOT NULL,
    retire_at             timestamptz,
    expire_at             timestamptz,
    CHECK (retire_at IS NULL OR retire_at >= not_before),
    CHECK (expire_at IS NULL OR (retire_at IS NOT NULL AND expire_at >= retire_at))
);

CREATE INDEX signing_keys_published ON signing_keys (expire_at);
