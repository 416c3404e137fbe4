-- Second factor (issue 17): TOTP authenticators (RFC 6238) with recovery
-- codes, and how each sign-in was made (`amr`, RFC 8176), carried from the
-- session to its codes and refresh tokens so every token says it.

-- One authenticator app per person. The secret is sealed with AES-256-GCM
-- under a key derived from the master key (as the signing keys are), bound
-- to the user's id; `last_step` is the newest RFC 6238 time step accepted, so
-- a code (or an older one still inside the clock-skew window) is never
-- accepted twice, on any replica.
CREATE TABLE totp_authenticators (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed bytea NOT NULL,
    last_step     bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Single-use recovery codes, stored as SHA-256 hashes only (random, 50 bits
-- each: no password hash needed, and guessing is throttled like TOTP codes).
CREATE TABLE recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- The authentication methods of the session's latest sign-in, and what its
-- codes and refresh tokens were issued under (as `auth_time` is).
ALTER TABLE sso_sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';
ALTER TABLE authorization_codes ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';
ALTER TABLE refresh_tokens ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';

-- Who must sign in with a second factor whatever the client asks: a person
-- (`idp users require-second-factor`), or everyone signing in to a client
-- (`idp clients require-second-factor`). Someone without an authenticator
-- app yet sets one up during that sign-in.
ALTER TABLE users ADD COLUMN second_factor_required boolean NOT NULL DEFAULT false;
ALTER TABLE clients ADD COLUMN second_factor_required boolean NOT NULL DEFAULT false;
