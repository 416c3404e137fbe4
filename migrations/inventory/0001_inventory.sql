-- Inventory: items, stock and the reservations that hold it.

CREATE TABLE items (
    sku         TEXT PRIMARY KEY CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    -- The database itself refuses to oversell, whatever the code does.
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A reservation holds stock for one caller until it is released.
CREATE TABLE reservations (
    id          UUID PRIMARY KEY,
    owner_sub   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('held', 'released')),
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    released_at TIMESTAMPTZ,
    CHECK ((status = 'released') = (released_at IS NOT NULL))
);
CREATE INDEX reservations_owner ON reservations (owner_sub, created_at DESC);

CREATE TABLE reservation_lines (
    reservation_id   UUID NOT NULL REFERENCES reservations (id),
    sku              TEXT NOT NULL REFERENCES items (sku),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    -- The price at reservation time: later price changes do not alter a reservation.
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (reservation_id, sku)
);
