-- RFC 8693 token exchange: a service (a confidential client) trades the access
-- token it received for a narrower one that names it as the actor (`act`).
ALTER TABLE clients DROP CONSTRAINT clients_grant_types_check;
ALTER TABLE clients ADD CONSTRAINT clients_grant_types_check CHECK (grant_types <@ ARRAY[
    'authorization_code', 'refresh_token', 'client_credentials',
    'urn:ietf:params:oauth:grant-type:token-exchange'
]);
ALTER TABLE clients DROP CONSTRAINT clients_check1;
ALTER TABLE clients ADD CONSTRAINT clients_public_no_service_grants CHECK (NOT (public AND grant_types && ARRAY[
    'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'
]));
