-- Sessions (entity kind `session`): indexed fields user_id, expires_at, revoked; no
-- unique keys, no references (a session outlives nothing it points at).
CREATE TABLE sessions (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    user_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked boolean NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX sessions_created_at_idx ON sessions (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX sessions_updated_at_idx ON sessions (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX sessions_user_id_idx ON sessions (tenant_id, user_id NULLS FIRST, id);
CREATE INDEX sessions_expires_at_idx ON sessions (tenant_id, expires_at NULLS FIRST, id);
CREATE INDEX sessions_revoked_idx ON sessions (tenant_id, revoked NULLS FIRST, id);
