-- Webhook endpoints (entity kind `webhook_endpoint`) and their delivery log (entity
-- kind `webhook_delivery`). Indexed fields as crm-core declares them: url (sort),
-- active; endpoint_id, status, next_attempt_at (what the worker asks for: pending
-- deliveries due by now). The secret stays inside `data`.
CREATE TABLE webhook_endpoints (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    url text COLLATE "C" NOT NULL,
    active boolean NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_endpoints_created_at_idx ON webhook_endpoints (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX webhook_endpoints_updated_at_idx ON webhook_endpoints (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX webhook_endpoints_url_idx ON webhook_endpoints (tenant_id, url NULLS FIRST, id);
CREATE INDEX webhook_endpoints_active_idx ON webhook_endpoints (tenant_id, active NULLS FIRST, id);

CREATE TABLE webhook_deliveries (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    endpoint_id uuid NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    next_attempt_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_endpoint_id_fkey FOREIGN KEY (tenant_id, endpoint_id)
    REFERENCES webhook_endpoints (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX webhook_deliveries_created_at_idx ON webhook_deliveries (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX webhook_deliveries_updated_at_idx ON webhook_deliveries (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX webhook_deliveries_endpoint_id_idx ON webhook_deliveries (tenant_id, endpoint_id NULLS FIRST, id);
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (tenant_id, status NULLS FIRST, id);
CREATE INDEX webhook_deliveries_next_attempt_at_idx ON webhook_deliveries (tenant_id, next_attempt_at NULLS FIRST, id);
