-- Outbox positions: an acknowledged event stays (with its place in the one global
-- sequence of acknowledgements and when it was acknowledged) for the live stream, until
-- pruned. Pending events have neither.
ALTER TABLE outbox
    ADD COLUMN position bigint UNIQUE CHECK (position > 0),
    ADD COLUMN acked_at timestamptz,
    ADD CONSTRAINT outbox_acked_whole CHECK ((position IS NULL) = (acked_at IS NULL));

-- The last position given; its row lock serializes acknowledgements, so a reader that
-- has seen position N never later sees a new event at or below N.
CREATE TABLE outbox_sequence (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last bigint NOT NULL CHECK (last >= 0)
);
INSERT INTO outbox_sequence (singleton, last) VALUES (true, 0);

CREATE INDEX outbox_pending_idx ON outbox (id) WHERE position IS NULL;
CREATE INDEX outbox_stream_idx ON outbox (tenant_id, position) WHERE position IS NOT NULL;
CREATE INDEX outbox_acked_at_idx ON outbox (acked_at) WHERE acked_at IS NOT NULL;
