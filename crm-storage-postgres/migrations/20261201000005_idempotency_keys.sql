-- Idempotency keys (entity kind `idempotency_key`): the first response to a POST,
-- kept per tenant, principal and key; indexed field expires_at (pruning). No unique
-- keys (the id is derived from the principal and the key), no references.
CREATE TABLE idempotency_keys (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX idempotency_keys_updated_at_idx ON idempotency_keys (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (tenant_id, expires_at NULLS FIRST, id);
