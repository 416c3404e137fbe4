-- A reservation that became part of a paid order is `committed`: its stock is
-- sold and can no longer be released (by anyone: with a relayed token,
-- inventory cannot tell the order service's compensation from a direct call).
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('held', 'committed', 'released'));
