-- The refresh lease of a session: who is redeeming its refresh token, and until when.
--
-- A refresh is claimed with one short UPDATE (only while the lease is free or
-- has run out), the IdP is called with no transaction open, and the new tokens
-- are stored only while the lease is still the claimer's. So one refresh token
-- is redeemed once, across gateway replicas, without a row lock held across
-- the call to the IdP.
ALTER TABLE sessions
    ADD COLUMN refresh_owner TEXT,
    ADD COLUMN refresh_until TIMESTAMPTZ;
