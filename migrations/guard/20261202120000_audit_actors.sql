-- The whole actor chain of the token behind each audit row (RFC 8693 `act`,
-- latest hop first: ["order", "gateway"]); empty for a token used as issued
-- and for rows written before per-hop exchange.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS actors TEXT[] NOT NULL DEFAULT '{}';
