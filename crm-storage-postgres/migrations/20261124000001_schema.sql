-- crm-rs PostgreSQL schema, version 1.
--
-- One table per entity kind. Every table has the same four columns the adapter needs
-- (tenant_id, id, version, data) plus one typed column per indexed field of the kind,
-- named after the field (see src/schema.rs, which must list exactly these columns).
-- `data` is the whole entity as the core serialized it (line items included: they are
-- read and written with their document, never queried on their own).
--
-- Text columns use the "C" collation: the storage contract orders text byte-wise.
-- Foreign keys are composite on (tenant_id, id), so a record can never point into
-- another tenant, and DEFERRABLE INITIALLY DEFERRED, so one batch can detach and
-- delete, or create both ends, in any order. Unique keys are deferred for the same
-- reason (a key may move from one record to another within one batch).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE tenants (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (id = tenant_id)
);

CREATE TABLE users (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    email text COLLATE "C" NOT NULL,
    first_name text COLLATE "C" NOT NULL,
    last_name text COLLATE "C" NOT NULL,
    role text COLLATE "C" NOT NULL CHECK (role IN ('admin', 'manager', 'user', 'client')),
    company_id uuid,
    active boolean NOT NULL,
    PRIMARY KEY (tenant_id, id),
    -- The core stores emails lower-cased: this is unique on lower(email).
    CONSTRAINT users_email_key UNIQUE (tenant_id, email) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE companies (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    name text COLLATE "C" NOT NULL,
    email text COLLATE "C",
    industry text COLLATE "C",
    owner_id uuid NOT NULL,
    company_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (company_id = id)
);

CREATE TABLE contacts (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    first_name text COLLATE "C" NOT NULL,
    last_name text COLLATE "C" NOT NULL,
    email text COLLATE "C",
    company_id uuid,
    owner_id uuid NOT NULL,
    lead_id uuid,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE leads (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    first_name text COLLATE "C" NOT NULL,
    last_name text COLLATE "C" NOT NULL,
    email text COLLATE "C",
    company_name text COLLATE "C",
    source text COLLATE "C" NOT NULL
        CHECK (source IN ('website', 'referral', 'social', 'email', 'event', 'cold_call', 'other')),
    score bigint NOT NULL CHECK (score BETWEEN 0 AND 100),
    status text COLLATE "C" NOT NULL CHECK (status IN ('new', 'contacted', 'qualified', 'unqualified', 'converted')),
    owner_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE deals (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    title text COLLATE "C" NOT NULL,
    company_id uuid,
    contact_id uuid,
    owner_id uuid NOT NULL,
    stage text COLLATE "C" NOT NULL CHECK (stage IN
        ('prospecting', 'qualification', 'proposal', 'negotiation', 'closed_won', 'closed_lost')),
    currency text COLLATE "C" NOT NULL,
    amount numeric NOT NULL CHECK (amount >= 0),
    weighted_amount numeric NOT NULL CHECK (weighted_amount >= 0),
    expected_close_date date,
    closed_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE quotes (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    company_id uuid NOT NULL,
    contact_id uuid,
    deal_id uuid,
    owner_id uuid NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('draft', 'sent', 'accepted', 'rejected', 'expired')),
    currency text COLLATE "C" NOT NULL,
    total numeric NOT NULL CHECK (total >= 0),
    valid_until date NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE invoices (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    number text COLLATE "C",
    company_id uuid NOT NULL,
    contact_id uuid,
    quote_id uuid,
    owner_id uuid NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('draft', 'issued', 'partially_paid', 'paid', 'cancelled')),
    currency text COLLATE "C" NOT NULL,
    total numeric NOT NULL CHECK (total >= 0),
    amount_paid numeric NOT NULL CHECK (amount_paid >= 0),
    balance_due numeric NOT NULL CHECK (balance_due >= 0),
    issue_date date,
    due_date date,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT invoices_number_key UNIQUE (tenant_id, number) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE payments (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    invoice_id uuid NOT NULL,
    company_id uuid NOT NULL,
    amount numeric NOT NULL CHECK (amount > 0),
    currency text COLLATE "C" NOT NULL,
    method text COLLATE "C" NOT NULL CHECK (method IN ('bank_transfer', 'card', 'cash', 'check', 'other')),
    paid_on date NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('completed', 'voided')),
    recorded_by uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE delivery_notes (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    invoice_id uuid NOT NULL,
    company_id uuid NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered')),
    created_by uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE projects (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    name text COLLATE "C" NOT NULL,
    company_id uuid NOT NULL,
    deal_id uuid,
    status text COLLATE "C" NOT NULL CHECK (status IN ('planning', 'active', 'on_hold', 'completed', 'cancelled')),
    manager_id uuid NOT NULL,
    start_date date,
    end_date date,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE milestones (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    project_id uuid NOT NULL,
    name text COLLATE "C" NOT NULL,
    due_date date,
    status text COLLATE "C" NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    owner_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE tasks (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    project_id uuid NOT NULL,
    company_id uuid,
    milestone_id uuid,
    title text COLLATE "C" NOT NULL,
    assignee_id uuid,
    created_by uuid NOT NULL,
    status text COLLATE "C" NOT NULL CHECK (status IN ('todo', 'in_progress', 'review', 'done')),
    priority text COLLATE "C" NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    due_date date,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE products (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    sku text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    unit_price numeric NOT NULL CHECK (unit_price >= 0),
    active boolean NOT NULL,
    category_id uuid,
    PRIMARY KEY (tenant_id, id),
    -- The core stores SKUs lower-cased: this is unique on lower(sku).
    CONSTRAINT products_sku_key UNIQUE (tenant_id, sku) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE product_categories (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    name text COLLATE "C" NOT NULL,
    parent_id uuid,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE notifications (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    user_id uuid NOT NULL,
    read boolean NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE api_keys (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    name text COLLATE "C" NOT NULL,
    owner_id uuid NOT NULL,
    prefix text COLLATE "C" NOT NULL,
    revoked boolean NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT api_keys_prefix_key UNIQUE (tenant_id, prefix) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE audit_log (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version = 1),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    actor_id uuid,
    action text COLLATE "C" NOT NULL,
    entity_kind text COLLATE "C" NOT NULL,
    entity_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The audit log is append-only, whoever connects.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- Every reference a record declares (including those that are not a column, such as
-- the products of an invoice's lines): answers "who points at this record?".
CREATE TABLE record_refs (
    tenant_id uuid NOT NULL,
    kind text COLLATE "C" NOT NULL,
    id uuid NOT NULL,
    field text COLLATE "C" NOT NULL,
    target_kind text COLLATE "C" NOT NULL,
    target_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, kind, id, field, target_id)
);
CREATE INDEX record_refs_target ON record_refs (tenant_id, target_kind, target_id);

-- Per-tenant counters (document numbers), moved with compare-and-set in the batch's
-- transaction: numbers are gapless.
CREATE TABLE counters (
    tenant_id uuid NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bigint NOT NULL CHECK (value >= 0),
    PRIMARY KEY (tenant_id, key)
);

-- The transactional outbox; acknowledged events are deleted.
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    entity_kind text COLLATE "C" NOT NULL,
    entity_id uuid NOT NULL,
    payload jsonb NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- timestamptz keeps microseconds; this keeps the event's instant exact.
    occurred_at_nanos integer NOT NULL CHECK (occurred_at_nanos BETWEEN 0 AND 1999999999)
);

-- Foreign keys: one per reference field that is a column.
ALTER TABLE users ADD CONSTRAINT users_company_id_fkey FOREIGN KEY (tenant_id, company_id)
    REFERENCES companies (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE companies ADD CONSTRAINT companies_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE contacts ADD CONSTRAINT contacts_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE contacts ADD CONSTRAINT contacts_company_id_fkey FOREIGN KEY (tenant_id, company_id)
    REFERENCES companies (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE leads ADD CONSTRAINT leads_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE deals ADD CONSTRAINT deals_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE deals ADD CONSTRAINT deals_company_id_fkey FOREIGN KEY (tenant_id, company_id)
    REFERENCES companies (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE deals ADD CONSTRAINT deals_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
    REFERENCES contacts (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE quotes ADD CONSTRAINT quotes_company_id_fkey FOREIGN KEY (tenant_id, company_id)
    REFERENCES companies (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE quotes ADD CONSTRAINT quotes_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE quotes ADD CONSTRAINT quotes_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
    REFERENCES contacts (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE quotes ADD CONSTRAINT quotes_deal_id_fkey FOREIGN KEY (tenant_id, deal_id)
    REFERENCES deals (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE invoices ADD CONSTRAINT invoices_company_id_fkey FOREIGN KEY (tenant_id, company_id)
    REFERENCES companies (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE invoices ADD CONSTRAINT invoices_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE invoices ADD CONSTRAINT invoices_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
    REFERENCES contacts (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE invoices ADD CONSTRAINT invoices_quote_id_fkey FOREIGN KEY (tenant_id, quote_id)
    REFERENCES quotes (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE payments ADD CONSTRAINT payments_invoice_id_fkey FOREIGN KEY (tenant_id, invoice_id)
    REFERENCES invoices (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE payments ADD CONSTRAINT payments_recorded_by_fkey FOREIGN KEY (tenant_id, recorded_by)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE delivery_notes ADD CONSTRAINT delivery_notes_invoice_id_fkey FOREIGN KEY (tenant_id, invoice_id)
    REFERENCES invoices (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE delivery_notes ADD CONSTRAINT delivery_notes_created_by_fkey FOREIGN KEY (tenant_id, created_by)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE projects ADD CONSTRAINT projects_company_id_fkey FOREIGN KEY (tenant_id, company_id)
    REFERENCES companies (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE projects ADD CONSTRAINT projects_manager_id_fkey FOREIGN KEY (tenant_id, manager_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE projects ADD CONSTRAINT projects_deal_id_fkey FOREIGN KEY (tenant_id, deal_id)
    REFERENCES deals (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE milestones ADD CONSTRAINT milestones_project_id_fkey FOREIGN KEY (tenant_id, project_id)
    REFERENCES projects (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE milestones ADD CONSTRAINT milestones_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE tasks ADD CONSTRAINT tasks_project_id_fkey FOREIGN KEY (tenant_id, project_id)
    REFERENCES projects (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE tasks ADD CONSTRAINT tasks_created_by_fkey FOREIGN KEY (tenant_id, created_by)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE tasks ADD CONSTRAINT tasks_milestone_id_fkey FOREIGN KEY (tenant_id, milestone_id)
    REFERENCES milestones (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE tasks ADD CONSTRAINT tasks_assignee_id_fkey FOREIGN KEY (tenant_id, assignee_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE products ADD CONSTRAINT products_category_id_fkey FOREIGN KEY (tenant_id, category_id)
    REFERENCES product_categories (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE product_categories ADD CONSTRAINT product_categories_parent_id_fkey FOREIGN KEY (tenant_id, parent_id)
    REFERENCES product_categories (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE notifications ADD CONSTRAINT notifications_user_id_fkey FOREIGN KEY (tenant_id, user_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_owner_id_fkey FOREIGN KEY (tenant_id, owner_id)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;

-- Every indexed field is filterable and sortable: (tenant, value, id) serves equality,
-- ranges and keyset pages in either direction (nulls sort first, as in the contract).
CREATE INDEX tenants_created_at_idx ON tenants (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX tenants_updated_at_idx ON tenants (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX users_created_at_idx ON users (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX users_updated_at_idx ON users (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX users_email_idx ON users (tenant_id, email NULLS FIRST, id);
CREATE INDEX users_first_name_idx ON users (tenant_id, first_name NULLS FIRST, id);
CREATE INDEX users_last_name_idx ON users (tenant_id, last_name NULLS FIRST, id);
CREATE INDEX users_role_idx ON users (tenant_id, role NULLS FIRST, id);
CREATE INDEX users_company_id_idx ON users (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX users_active_idx ON users (tenant_id, active NULLS FIRST, id);
CREATE INDEX companies_created_at_idx ON companies (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX companies_updated_at_idx ON companies (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX companies_name_idx ON companies (tenant_id, name NULLS FIRST, id);
CREATE INDEX companies_email_idx ON companies (tenant_id, email NULLS FIRST, id);
CREATE INDEX companies_industry_idx ON companies (tenant_id, industry NULLS FIRST, id);
CREATE INDEX companies_owner_id_idx ON companies (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX contacts_created_at_idx ON contacts (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX contacts_updated_at_idx ON contacts (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX contacts_first_name_idx ON contacts (tenant_id, first_name NULLS FIRST, id);
CREATE INDEX contacts_last_name_idx ON contacts (tenant_id, last_name NULLS FIRST, id);
CREATE INDEX contacts_email_idx ON contacts (tenant_id, email NULLS FIRST, id);
CREATE INDEX contacts_company_id_idx ON contacts (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX contacts_owner_id_idx ON contacts (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX contacts_lead_id_idx ON contacts (tenant_id, lead_id NULLS FIRST, id);
CREATE INDEX leads_created_at_idx ON leads (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX leads_updated_at_idx ON leads (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX leads_first_name_idx ON leads (tenant_id, first_name NULLS FIRST, id);
CREATE INDEX leads_last_name_idx ON leads (tenant_id, last_name NULLS FIRST, id);
CREATE INDEX leads_email_idx ON leads (tenant_id, email NULLS FIRST, id);
CREATE INDEX leads_company_name_idx ON leads (tenant_id, company_name NULLS FIRST, id);
CREATE INDEX leads_source_idx ON leads (tenant_id, source NULLS FIRST, id);
CREATE INDEX leads_score_idx ON leads (tenant_id, score NULLS FIRST, id);
CREATE INDEX leads_status_idx ON leads (tenant_id, status NULLS FIRST, id);
CREATE INDEX leads_owner_id_idx ON leads (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX deals_created_at_idx ON deals (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX deals_updated_at_idx ON deals (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX deals_title_idx ON deals (tenant_id, title NULLS FIRST, id);
CREATE INDEX deals_company_id_idx ON deals (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX deals_contact_id_idx ON deals (tenant_id, contact_id NULLS FIRST, id);
CREATE INDEX deals_owner_id_idx ON deals (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX deals_stage_idx ON deals (tenant_id, stage NULLS FIRST, id);
CREATE INDEX deals_currency_idx ON deals (tenant_id, currency NULLS FIRST, id);
CREATE INDEX deals_amount_idx ON deals (tenant_id, amount NULLS FIRST, id);
CREATE INDEX deals_weighted_amount_idx ON deals (tenant_id, weighted_amount NULLS FIRST, id);
CREATE INDEX deals_expected_close_date_idx ON deals (tenant_id, expected_close_date NULLS FIRST, id);
CREATE INDEX deals_closed_at_idx ON deals (tenant_id, closed_at NULLS FIRST, id);
CREATE INDEX quotes_created_at_idx ON quotes (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX quotes_updated_at_idx ON quotes (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX quotes_company_id_idx ON quotes (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX quotes_contact_id_idx ON quotes (tenant_id, contact_id NULLS FIRST, id);
CREATE INDEX quotes_deal_id_idx ON quotes (tenant_id, deal_id NULLS FIRST, id);
CREATE INDEX quotes_owner_id_idx ON quotes (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX quotes_status_idx ON quotes (tenant_id, status NULLS FIRST, id);
CREATE INDEX quotes_currency_idx ON quotes (tenant_id, currency NULLS FIRST, id);
CREATE INDEX quotes_total_idx ON quotes (tenant_id, total NULLS FIRST, id);
CREATE INDEX quotes_valid_until_idx ON quotes (tenant_id, valid_until NULLS FIRST, id);
CREATE INDEX invoices_created_at_idx ON invoices (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX invoices_updated_at_idx ON invoices (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX invoices_number_idx ON invoices (tenant_id, number NULLS FIRST, id);
CREATE INDEX invoices_company_id_idx ON invoices (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX invoices_contact_id_idx ON invoices (tenant_id, contact_id NULLS FIRST, id);
CREATE INDEX invoices_quote_id_idx ON invoices (tenant_id, quote_id NULLS FIRST, id);
CREATE INDEX invoices_owner_id_idx ON invoices (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX invoices_status_idx ON invoices (tenant_id, status NULLS FIRST, id);
CREATE INDEX invoices_currency_idx ON invoices (tenant_id, currency NULLS FIRST, id);
CREATE INDEX invoices_total_idx ON invoices (tenant_id, total NULLS FIRST, id);
CREATE INDEX invoices_amount_paid_idx ON invoices (tenant_id, amount_paid NULLS FIRST, id);
CREATE INDEX invoices_balance_due_idx ON invoices (tenant_id, balance_due NULLS FIRST, id);
CREATE INDEX invoices_issue_date_idx ON invoices (tenant_id, issue_date NULLS FIRST, id);
CREATE INDEX invoices_due_date_idx ON invoices (tenant_id, due_date NULLS FIRST, id);
CREATE INDEX payments_created_at_idx ON payments (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX payments_updated_at_idx ON payments (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX payments_invoice_id_idx ON payments (tenant_id, invoice_id NULLS FIRST, id);
CREATE INDEX payments_company_id_idx ON payments (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX payments_amount_idx ON payments (tenant_id, amount NULLS FIRST, id);
CREATE INDEX payments_currency_idx ON payments (tenant_id, currency NULLS FIRST, id);
CREATE INDEX payments_method_idx ON payments (tenant_id, method NULLS FIRST, id);
CREATE INDEX payments_paid_on_idx ON payments (tenant_id, paid_on NULLS FIRST, id);
CREATE INDEX payments_status_idx ON payments (tenant_id, status NULLS FIRST, id);
CREATE INDEX payments_recorded_by_idx ON payments (tenant_id, recorded_by NULLS FIRST, id);
CREATE INDEX delivery_notes_created_at_idx ON delivery_notes (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX delivery_notes_updated_at_idx ON delivery_notes (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX delivery_notes_invoice_id_idx ON delivery_notes (tenant_id, invoice_id NULLS FIRST, id);
CREATE INDEX delivery_notes_company_id_idx ON delivery_notes (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX delivery_notes_status_idx ON delivery_notes (tenant_id, status NULLS FIRST, id);
CREATE INDEX delivery_notes_created_by_idx ON delivery_notes (tenant_id, created_by NULLS FIRST, id);
CREATE INDEX projects_created_at_idx ON projects (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX projects_updated_at_idx ON projects (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX projects_name_idx ON projects (tenant_id, name NULLS FIRST, id);
CREATE INDEX projects_company_id_idx ON projects (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX projects_deal_id_idx ON projects (tenant_id, deal_id NULLS FIRST, id);
CREATE INDEX projects_status_idx ON projects (tenant_id, status NULLS FIRST, id);
CREATE INDEX projects_manager_id_idx ON projects (tenant_id, manager_id NULLS FIRST, id);
CREATE INDEX projects_start_date_idx ON projects (tenant_id, start_date NULLS FIRST, id);
CREATE INDEX projects_end_date_idx ON projects (tenant_id, end_date NULLS FIRST, id);
CREATE INDEX milestones_created_at_idx ON milestones (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX milestones_updated_at_idx ON milestones (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX milestones_project_id_idx ON milestones (tenant_id, project_id NULLS FIRST, id);
CREATE INDEX milestones_name_idx ON milestones (tenant_id, name NULLS FIRST, id);
CREATE INDEX milestones_due_date_idx ON milestones (tenant_id, due_date NULLS FIRST, id);
CREATE INDEX milestones_status_idx ON milestones (tenant_id, status NULLS FIRST, id);
CREATE INDEX milestones_owner_id_idx ON milestones (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX tasks_created_at_idx ON tasks (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX tasks_updated_at_idx ON tasks (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX tasks_project_id_idx ON tasks (tenant_id, project_id NULLS FIRST, id);
CREATE INDEX tasks_company_id_idx ON tasks (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX tasks_milestone_id_idx ON tasks (tenant_id, milestone_id NULLS FIRST, id);
CREATE INDEX tasks_title_idx ON tasks (tenant_id, title NULLS FIRST, id);
CREATE INDEX tasks_assignee_id_idx ON tasks (tenant_id, assignee_id NULLS FIRST, id);
CREATE INDEX tasks_created_by_idx ON tasks (tenant_id, created_by NULLS FIRST, id);
CREATE INDEX tasks_status_idx ON tasks (tenant_id, status NULLS FIRST, id);
CREATE INDEX tasks_priority_idx ON tasks (tenant_id, priority NULLS FIRST, id);
CREATE INDEX tasks_due_date_idx ON tasks (tenant_id, due_date NULLS FIRST, id);
CREATE INDEX products_created_at_idx ON products (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX products_updated_at_idx ON products (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX products_sku_idx ON products (tenant_id, sku NULLS FIRST, id);
CREATE INDEX products_name_idx ON products (tenant_id, name NULLS FIRST, id);
CREATE INDEX products_unit_price_idx ON products (tenant_id, unit_price NULLS FIRST, id);
CREATE INDEX products_active_idx ON products (tenant_id, active NULLS FIRST, id);
CREATE INDEX products_category_id_idx ON products (tenant_id, category_id NULLS FIRST, id);
CREATE INDEX product_categories_created_at_idx ON product_categories (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX product_categories_updated_at_idx ON product_categories (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX product_categories_name_idx ON product_categories (tenant_id, name NULLS FIRST, id);
CREATE INDEX product_categories_parent_id_idx ON product_categories (tenant_id, parent_id NULLS FIRST, id);
CREATE INDEX notifications_created_at_idx ON notifications (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX notifications_updated_at_idx ON notifications (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX notifications_user_id_idx ON notifications (tenant_id, user_id NULLS FIRST, id);
CREATE INDEX notifications_read_idx ON notifications (tenant_id, read NULLS FIRST, id);
CREATE INDEX api_keys_created_at_idx ON api_keys (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX api_keys_updated_at_idx ON api_keys (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX api_keys_name_idx ON api_keys (tenant_id, name NULLS FIRST, id);
CREATE INDEX api_keys_owner_id_idx ON api_keys (tenant_id, owner_id NULLS FIRST, id);
CREATE INDEX api_keys_prefix_idx ON api_keys (tenant_id, prefix NULLS FIRST, id);
CREATE INDEX api_keys_revoked_idx ON api_keys (tenant_id, revoked NULLS FIRST, id);
CREATE INDEX audit_log_created_at_idx ON audit_log (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX audit_log_updated_at_idx ON audit_log (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX audit_log_actor_id_idx ON audit_log (tenant_id, actor_id NULLS FIRST, id);
CREATE INDEX audit_log_action_idx ON audit_log (tenant_id, action NULLS FIRST, id);
CREATE INDEX audit_log_entity_kind_idx ON audit_log (tenant_id, entity_kind NULLS FIRST, id);
CREATE INDEX audit_log_entity_id_idx ON audit_log (tenant_id, entity_id NULLS FIRST, id);

-- Text search: case-insensitive substring match backed by trigram indexes.
CREATE INDEX companies_name_trgm ON companies USING gin (lower(name COLLATE "default") gin_trgm_ops);
CREATE INDEX companies_email_trgm ON companies USING gin (lower(email COLLATE "default") gin_trgm_ops);
CREATE INDEX contacts_first_name_trgm ON contacts USING gin (lower(first_name COLLATE "default") gin_trgm_ops);
CREATE INDEX contacts_last_name_trgm ON contacts USING gin (lower(last_name COLLATE "default") gin_trgm_ops);
CREATE INDEX contacts_email_trgm ON contacts USING gin (lower(email COLLATE "default") gin_trgm_ops);
CREATE INDEX deals_title_trgm ON deals USING gin (lower(title COLLATE "default") gin_trgm_ops);
CREATE INDEX invoices_number_trgm ON invoices USING gin (lower(number COLLATE "default") gin_trgm_ops);
CREATE INDEX leads_first_name_trgm ON leads USING gin (lower(first_name COLLATE "default") gin_trgm_ops);
CREATE INDEX leads_last_name_trgm ON leads USING gin (lower(last_name COLLATE "default") gin_trgm_ops);
CREATE INDEX leads_email_trgm ON leads USING gin (lower(email COLLATE "default") gin_trgm_ops);
CREATE INDEX leads_company_name_trgm ON leads USING gin (lower(company_name COLLATE "default") gin_trgm_ops);
CREATE INDEX products_sku_trgm ON products USING gin (lower(sku COLLATE "default") gin_trgm_ops);
CREATE INDEX products_name_trgm ON products USING gin (lower(name COLLATE "default") gin_trgm_ops);
CREATE INDEX product_categories_name_trgm ON product_categories USING gin (lower(name COLLATE "default") gin_trgm_ops);
CREATE INDEX projects_name_trgm ON projects USING gin (lower(name COLLATE "default") gin_trgm_ops);
CREATE INDEX tasks_title_trgm ON tasks USING gin (lower(title COLLATE "default") gin_trgm_ops);
CREATE INDEX users_email_trgm ON users USING gin (lower(email COLLATE "default") gin_trgm_ops);
CREATE INDEX users_first_name_trgm ON users USING gin (lower(first_name COLLATE "default") gin_trgm_ops);
CREATE INDEX users_last_name_trgm ON users USING gin (lower(last_name COLLATE "default") gin_trgm_ops);

CREATE INDEX outbox_tenant ON outbox (tenant_id, id);
