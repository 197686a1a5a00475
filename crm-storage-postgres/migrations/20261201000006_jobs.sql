-- Jobs of the storage job queue (entity kind `job`), all under the system tenant (the
-- nil UUID); indexed fields queue, state, due_at. No unique keys, no references.
-- Reservations ask for the due jobs of one queue in due order: the composite index
-- serves that; the per-field ones serve the contract's other listings.
CREATE TABLE jobs (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    queue text COLLATE "C" NOT NULL,
    state text COLLATE "C" NOT NULL CHECK (state IN ('ready', 'reserved', 'dead')),
    due_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX jobs_created_at_idx ON jobs (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX jobs_updated_at_idx ON jobs (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX jobs_queue_idx ON jobs (tenant_id, queue NULLS FIRST, id);
CREATE INDEX jobs_state_idx ON jobs (tenant_id, state NULLS FIRST, id);
CREATE INDEX jobs_due_at_idx ON jobs (tenant_id, due_at NULLS FIRST, id);
CREATE INDEX jobs_queue_due_at_idx ON jobs (tenant_id, queue, due_at NULLS FIRST, id);
