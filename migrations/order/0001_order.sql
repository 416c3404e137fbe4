-- Orders. A row is written `pending` before any downstream call, so a retry of
-- the same Idempotency-Key finds it and the downstream idempotency keys derived
-- from its id; it becomes `paid` once stock is reserved and the charge
-- succeeded, and is deleted (with an audit row) when the order fails after its
-- reservation was released: there is never a half-made order that looks real.
CREATE TABLE orders (
    id              UUID PRIMARY KEY,
    owner_sub       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'paid')),
    lines           JSONB NOT NULL,
    total_cents     BIGINT CHECK (total_cents >= 0),
    reservation_id  UUID,
    charge_id       UUID,
    -- The identity each hop validated (service, sub, roles, jti), in call order.
    relay           JSONB NOT NULL DEFAULT '[]',
    idempotency_key TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (status = 'pending' OR (total_cents IS NOT NULL AND reservation_id IS NOT NULL AND charge_id IS NOT NULL)),
    UNIQUE (owner_sub, idempotency_key)
);
CREATE INDEX orders_owner ON orders (owner_sub, created_at DESC);
CREATE INDEX orders_created ON orders (created_at DESC);
