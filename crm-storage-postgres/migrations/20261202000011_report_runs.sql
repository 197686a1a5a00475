-- Report runs (entity kind `report_run`): a report requested now and computed by a
-- worker. Indexed fields as crm-core declares them: requested_by (only the requester
-- sees a run), status, expires_at (what the purge deletes). Parameters and the result
-- stay inside `data`. requested_by is no foreign key: runs outlive nothing but their
-- retention, and a user's runs must not block removing the user.
CREATE TABLE report_runs (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    requested_by uuid NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX report_runs_created_at_idx ON report_runs (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX report_runs_updated_at_idx ON report_runs (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX report_runs_requested_by_idx ON report_runs (tenant_id, requested_by NULLS FIRST, id);
CREATE INDEX report_runs_status_idx ON report_runs (tenant_id, status NULLS FIRST, id);
CREATE INDEX report_runs_expires_at_idx ON report_runs (tenant_id, expires_at NULLS FIRST, id);
