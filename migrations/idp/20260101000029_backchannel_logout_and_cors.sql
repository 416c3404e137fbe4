-- OpenID Connect Back-Channel Logout 1.0 and per-client CORS.
--
-- A client may register where the IdP posts a logout token when an SSO
-- session it took part in ends, and the browser origins allowed to call the
-- token, userinfo, revoke, discovery and JWKS endpoints (nothing by default).
ALTER TABLE clients
    ADD COLUMN backchannel_logout_uri              text,
    ADD COLUMN backchannel_logout_session_required boolean NOT NULL DEFAULT false,
    ADD COLUMN allowed_origins                     text[] NOT NULL DEFAULT '{}';

-- The outbox of logout tokens to deliver: one row per (ended session, client),
-- written in the transaction that ends the session, so a delivery is never
-- lost; the token itself is signed at each attempt (fresh iat, exp, jti).
-- Replicas claim due rows with FOR UPDATE SKIP LOCKED and push
-- `next_attempt_at` past the attempt, so no two deliver the same row at once
-- and a replica that dies mid-attempt leaves the row to be retried.
CREATE TABLE backchannel_logout_outbox (
    id              bigserial PRIMARY KEY,
    session_id      uuid NOT NULL,
    user_id         uuid NOT NULL,
    client_id       text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, client_id)
);

CREATE INDEX backchannel_logout_outbox_due ON backchannel_logout_outbox (next_attempt_at);

-- The clients of a session are those that redeemed a code in it: found by
-- session when the session ends.
CREATE INDEX authorization_codes_session ON authorization_codes (session_id);
