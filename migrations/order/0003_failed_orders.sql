-- An order left `pending` by a crash mid-order (ORDER_PENDING_TTL_SECS) becomes
-- `failed`: kept, not deleted, so a retry with its Idempotency-Key is refused
-- rather than placed twice, and an operator can reconcile it with payment's
-- charge reference `order:<id>` should the crash have come after the charge.
-- Like a pending order, a failed one may lack its total, reservation and charge.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'paid', 'failed'));
ALTER TABLE orders DROP CONSTRAINT orders_check;
ALTER TABLE orders ADD CONSTRAINT orders_paid_complete
    CHECK (status <> 'paid' OR (total_cents IS NOT NULL AND reservation_id IS NOT NULL AND charge_id IS NOT NULL));
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'pending';
