-- Payment: charges and their refunds.

CREATE TABLE charges (
    id             UUID PRIMARY KEY,
    owner_sub      TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
    status         TEXT NOT NULL CHECK (status IN ('succeeded', 'declined')),
    decline_reason TEXT,
    description    TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- What the charge is for, e.g. an order id; chosen by the caller.
    reference      TEXT CHECK (length(reference) <= 200),
    refunded_cents BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
    CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    CHECK (status = 'succeeded' OR refunded_cents = 0)
);
CREATE INDEX charges_owner ON charges (owner_sub, created_at DESC);

CREATE TABLE refunds (
    id           UUID PRIMARY KEY,
    charge_id    UUID NOT NULL REFERENCES charges (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    refunded_by  TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refunds_charge ON refunds (charge_id);
