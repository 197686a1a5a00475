-- Tenant settings (entity kind `tenant_settings`): one record per tenant, its id the
-- tenant's; no indexed fields beyond the timestamps, no unique keys, no references.
CREATE TABLE tenant_settings (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (id = tenant_id)
);
CREATE INDEX tenant_settings_created_at_idx ON tenant_settings (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX tenant_settings_updated_at_idx ON tenant_settings (tenant_id, updated_at NULLS FIRST, id);
