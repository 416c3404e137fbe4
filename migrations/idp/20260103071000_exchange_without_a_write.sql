-- Token exchange no longer writes: an exchanged token names the tokens it was
-- derived from (its `derived_from` claim), and every validator refuses it when
-- any of them is revoked, so a root's revocation reaches it through the
-- revocation stream like any other. The link table, the function that wrote
-- it and the trigger's cascade over it go; the trigger keeps assigning
-- positions in commit order and sending the NOTIFY (see `…000008`).
-- Tokens exchanged before this migration carry no `derived_from`: revoking
-- their root no longer reaches them, so deploy it with the services'
-- exchanged tokens left to expire (at most one access-token lifetime).
CREATE OR REPLACE FUNCTION revocations_take_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- 0x6261746f6e726576 = 'batonrev': one lock for the whole log.
    PERFORM pg_advisory_xact_lock(7089074032745768310);
    UPDATE revocations SET position = nextval('revocation_positions') WHERE id = NEW.id;
    PERFORM pg_notify('baton_idp_revocations', '');
    RETURN NULL;
END
$$;

DROP FUNCTION link_exchange(text, text, text, text, bigint, text, timestamptz);
DROP TABLE token_exchanges;
