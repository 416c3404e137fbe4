-- The realm fully as data (issue 15 item 3): resources (the audiences access
-- tokens may name) become rows beside scopes, the default scopes are rows from
-- the start, clients can be disabled and choose their ID-token algorithm, and
-- administrative actions on users are audited.

CREATE TABLE resources (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9:._-]{1,64}$'),
    description text NOT NULL DEFAULT ''
);

-- Every resource a client already names stays valid.
INSERT INTO resources (name)
SELECT DISTINCT unnest(resources) FROM clients
ON CONFLICT DO NOTHING;

-- The default scopes (what `idp seed` used to insert); an install can add and
-- remove scopes with `idp scopes ...` from now on.
INSERT INTO scopes (name, description) VALUES
    ('openid', 'Sign you in'),
    ('profile', 'Your name and username'),
    ('email', 'Your email address'),
    ('offline_access', 'Stay signed in'),
    ('orders:read', 'See orders'),
    ('orders:write', 'Place orders'),
    ('payments:read', 'See payments'),
    ('payments:write', 'Make payments'),
    ('payments:refund', 'Refund payments'),
    ('inventory:read', 'See inventory'),
    ('inventory:write', 'Change inventory'),
    ('revocations:read', 'Subscribe to the revocation stream (resource servers)')
ON CONFLICT DO NOTHING;
INSERT INTO scopes (name)
SELECT DISTINCT unnest(scopes) FROM clients
ON CONFLICT DO NOTHING;

ALTER TABLE clients
    -- A disabled client cannot authenticate nor start a sign-in; it stays registered.
    ADD COLUMN disabled boolean NOT NULL DEFAULT false,
    -- OIDC Dynamic Client Registration §2; NULL: the IdP's IDP_SIGNING_ALG.
    ADD COLUMN id_token_signed_response_alg text
        CHECK (id_token_signed_response_alg IN ('RS256', 'ES256', 'EdDSA'));

ALTER TABLE auth_events DROP CONSTRAINT auth_events_kind_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_kind_check
    CHECK (kind IN ('login_succeeded', 'login_failed', 'login_locked',
                    'client_auth_failed', 'client_auth_locked',
                    'user_disabled', 'user_enabled', 'user_deleted'));
