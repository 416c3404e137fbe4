-- A replayed code is marked, so that a redemption still in flight when the
-- replay arrives revokes what it issues instead of handing it out.
ALTER TABLE authorization_codes ADD COLUMN replayed_at timestamptz;
