-- The realm: users, roles, scopes and registered clients.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username <> '' AND length(username) <= 128),
    -- argon2id PHC string.
    password_hash  text NOT NULL,
    name           text NOT NULL DEFAULT '',
    email          text,
    email_verified boolean NOT NULL DEFAULT false,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_:-]{0,63}$'),
    description text NOT NULL DEFAULT ''
);

CREATE TABLE user_roles (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    text NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE scopes (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9:._-]{1,64}$'),
    description text NOT NULL DEFAULT ''
);

CREATE TABLE clients (
    id                        text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._~-]{1,64}$'),
    name                      text NOT NULL DEFAULT '',
    -- SHA-256 of a random 256-bit secret; NULL exactly for public clients.
    secret_hash               bytea CHECK (secret_hash IS NULL OR length(secret_hash) = 32),
    public                    boolean NOT NULL,
    redirect_uris             text[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris text[] NOT NULL DEFAULT '{}',
    grant_types               text[] NOT NULL,
    scopes                    text[] NOT NULL,
    -- The resources (access-token audiences) this client's tokens may reach.
    resources                 text[] NOT NULL CHECK (cardinality(resources) >= 1),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK (public = (secret_hash IS NULL)),
    CHECK (grant_types <@ ARRAY['authorization_code', 'refresh_token', 'client_credentials']),
    CHECK (NOT (public AND 'client_credentials' = ANY (grant_types)))
);
