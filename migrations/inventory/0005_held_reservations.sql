-- Held reservations expire (INVENTORY_RESERVATION_TTL_SECS): the sweep looks
-- for the oldest held ones.
CREATE INDEX reservations_held ON reservations (created_at) WHERE status = 'held';
