-- Leases (entity kind `lease`): named rights to work alone for a while (the outbox
-- relay, scheduled jobs), kept under the system tenant. No indexed field beyond the
-- timestamps (a lease is read by its id, derived from its name), no unique keys, no
-- references.
CREATE TABLE leases (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX leases_created_at_idx ON leases (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX leases_updated_at_idx ON leases (tenant_id, updated_at NULLS FIRST, id);
