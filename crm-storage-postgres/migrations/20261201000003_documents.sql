-- Document numbers for quotes (`QUO-…`, set when sent) and delivery notes (`DN-…`, set
-- when shipped), gapless per tenant and year like invoices; and the corrections of an
-- invoice: credit notes (`CN-…`) and refunds of payments. Rows written before this
-- migration have no number (their `data` has none either).

ALTER TABLE quotes ADD COLUMN number text COLLATE "C";
ALTER TABLE quotes ADD CONSTRAINT quotes_number_key UNIQUE (tenant_id, number) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX quotes_number_idx ON quotes (tenant_id, number NULLS FIRST, id);
CREATE INDEX quotes_number_trgm ON quotes USING gin (lower(number COLLATE "default") gin_trgm_ops);

ALTER TABLE delivery_notes ADD COLUMN number text COLLATE "C";
ALTER TABLE delivery_notes ADD CONSTRAINT delivery_notes_number_key UNIQUE (tenant_id, number)
    DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX delivery_notes_number_idx ON delivery_notes (tenant_id, number NULLS FIRST, id);
CREATE INDEX delivery_notes_number_trgm ON delivery_notes USING gin (lower(number COLLATE "default") gin_trgm_ops);

CREATE TABLE credit_notes (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    number text COLLATE "C" NOT NULL,
    invoice_id uuid NOT NULL,
    company_id uuid NOT NULL,
    currency text COLLATE "C" NOT NULL,
    total numeric NOT NULL CHECK (total > 0),
    issue_date date NOT NULL,
    created_by uuid NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT credit_notes_number_key UNIQUE (tenant_id, number) DEFERRABLE INITIALLY DEFERRED
);
ALTER TABLE credit_notes ADD CONSTRAINT credit_notes_invoice_id_fkey FOREIGN KEY (tenant_id, invoice_id)
    REFERENCES invoices (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE credit_notes ADD CONSTRAINT credit_notes_created_by_fkey FOREIGN KEY (tenant_id, created_by)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX credit_notes_created_at_idx ON credit_notes (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX credit_notes_updated_at_idx ON credit_notes (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX credit_notes_number_idx ON credit_notes (tenant_id, number NULLS FIRST, id);
CREATE INDEX credit_notes_invoice_id_idx ON credit_notes (tenant_id, invoice_id NULLS FIRST, id);
CREATE INDEX credit_notes_company_id_idx ON credit_notes (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX credit_notes_currency_idx ON credit_notes (tenant_id, currency NULLS FIRST, id);
CREATE INDEX credit_notes_total_idx ON credit_notes (tenant_id, total NULLS FIRST, id);
CREATE INDEX credit_notes_issue_date_idx ON credit_notes (tenant_id, issue_date NULLS FIRST, id);
CREATE INDEX credit_notes_created_by_idx ON credit_notes (tenant_id, created_by NULLS FIRST, id);
CREATE INDEX credit_notes_number_trgm ON credit_notes USING gin (lower(number COLLATE "default") gin_trgm_ops);

CREATE TABLE refunds (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    payment_id uuid NOT NULL,
    invoice_id uuid NOT NULL,
    company_id uuid NOT NULL,
    amount numeric NOT NULL CHECK (amount > 0),
    currency text COLLATE "C" NOT NULL,
    refunded_on date NOT NULL,
    recorded_by uuid NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE refunds ADD CONSTRAINT refunds_payment_id_fkey FOREIGN KEY (tenant_id, payment_id)
    REFERENCES payments (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE refunds ADD CONSTRAINT refunds_invoice_id_fkey FOREIGN KEY (tenant_id, invoice_id)
    REFERENCES invoices (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE refunds ADD CONSTRAINT refunds_recorded_by_fkey FOREIGN KEY (tenant_id, recorded_by)
    REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX refunds_created_at_idx ON refunds (tenant_id, created_at NULLS FIRST, id);
CREATE INDEX refunds_updated_at_idx ON refunds (tenant_id, updated_at NULLS FIRST, id);
CREATE INDEX refunds_payment_id_idx ON refunds (tenant_id, payment_id NULLS FIRST, id);
CREATE INDEX refunds_invoice_id_idx ON refunds (tenant_id, invoice_id NULLS FIRST, id);
CREATE INDEX refunds_company_id_idx ON refunds (tenant_id, company_id NULLS FIRST, id);
CREATE INDEX refunds_amount_idx ON refunds (tenant_id, amount NULLS FIRST, id);
CREATE INDEX refunds_currency_idx ON refunds (tenant_id, currency NULLS FIRST, id);
CREATE INDEX refunds_refunded_on_idx ON refunds (tenant_id, refunded_on NULLS FIRST, id);
CREATE INDEX refunds_recorded_by_idx ON refunds (tenant_id, recorded_by NULLS FIRST, id);
