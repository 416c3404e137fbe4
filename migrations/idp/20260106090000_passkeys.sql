-- Passkeys (issue 17 item 2): WebAuthn credentials, each signing a person in
-- on its own (a discoverable credential with user verification) or standing
-- as the second factor after the password.

-- One row per credential. `credential` is the public part as webauthn-rs
-- keeps it (the COSE public key, the signature counter, the backup flags):
-- no secret is stored, so nothing is sealed. A credential id belongs to one
-- person only (WebAuthn §7.1 step 22: refuse one registered before).
-- `sign_count` is the authenticator's signature counter last accepted.
CREATE TABLE passkeys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id bytea NOT NULL UNIQUE,
    credential    jsonb NOT NULL,
    sign_count    bigint NOT NULL DEFAULT 0,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- The server side of a WebAuthn ceremony in progress: the challenge and what
-- it may be answered with. Taken with `DELETE … RETURNING`, so an answer
-- counts once, on any replica; `binding` is the SHA-256 of what started it
-- (the session for a registration, the sign-in flow otherwise), so another
-- browser cannot finish it. Expired rows are swept by housekeeping.
CREATE TABLE passkey_ceremonies (
    id         uuid PRIMARY KEY,
    binding    bytea NOT NULL,
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    state      jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX passkey_ceremonies_by_expiry ON passkey_ceremonies (expires_at);

-- The audit kinds of passkeys, added to the whole set.
ALTER TABLE auth_events DROP CONSTRAINT auth_events_kind_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_kind_check
    CHECK (kind IN ('login_succeeded', 'login_failed', 'login_locked',
                    'client_auth_failed', 'client_auth_locked',
                    'user_disabled', 'user_enabled', 'user_deleted',
                    'totp_failed', 'totp_enrolled', 'totp_disabled',
                    'recovery_code_used', 'second_factor_reset',
                    'password_changed', 'password_change_failed', 'session_signed_out',
                    'passkey_registered', 'passkey_failed', 'passkey_removed',
                    'passkey_change_refused'));
