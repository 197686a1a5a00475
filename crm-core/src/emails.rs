//! Which events send which emails: the [`EmailReaction`] the outbox relay runs for
//! every event. An assignment emails the assignee; an issued invoice emails its contact
//! a summary (number, total, due date, lines; text and HTML); an overdue invoice emails
//! its contact a reminder (the owner gets the in-app notification the scheduler wrote).
//!
//! Delivery is at least once: a relay that crashes after enqueueing and before acking
//! the event enqueues its emails again, so a recipient may get a duplicate. That is
//! accepted (a second identical email harms nobody); a lost email is not.
//!
//! The emails read the records as they are when the event is relayed, not as they
//! were when it happened: a record deleted since sends nothing.

use async_trait::async_trait;

use crate::{
    access::users::User,
    crm::Crm,
    customers::contacts::Contact,
    error::{CrmError, Result},
    events::Assigned,
    id::{Id, TenantId},
    jobs::Reaction,
    mail::{Email, escape_html},
    sales::{invoices::Invoice, lines::Line},
    storage::OutboxEvent,
};

/// Enqueues, for each outbox event, the emails it calls for on the CRM's job queue.
#[derive(Clone, Debug)]
pub struct EmailReaction {
    crm: Crm,
}

impl EmailReaction {
    /// The reaction of `crm` (its storage to read, its queue to enqueue on).
    pub fn new(crm: Crm) -> Self {
        Self { crm }
    }

    /// The emails `event` calls for (none for most events).
    pub async fn emails_for(&self, event: &OutboxEvent) -> Result<Vec<Email>> {
        let tenant = event.tenant_id;
        let found = match event.name.as_str() {
            "invoice.issued" => self.invoice_email(tenant, event, issued_email).await,
            "invoice.overdue" => self.invoice_email(tenant, event, overdue_email).await,
            name if name.ends_with(".assigned") => self.assignment_email(tenant, event).await,
            _ => Ok(None),
        };
        match found {
            Err(CrmError::NotFound { .. }) => Ok(Vec::new()),
            other => other.map(|email| email.into_iter().collect()),
        }
    }

    async fn invoice_email(
        &self,
        tenant: TenantId,
        event: &OutboxEvent,
        compose: fn(&Invoice, &Contact, &str) -> Email,
    ) -> Result<Option<Email>> {
        let invoice: Invoice = self.crm.fetch(tenant, Id::from_uuid(event.entity_id)).await?;
        let Some(contact_id) = invoice.contact_id else { return Ok(None) };
        let contact: Contact = self.crm.fetch(tenant, contact_id).await?;
        Ok(contact.email.clone().map(|to| compose(&invoice, &contact, &to)))
    }

    async fn assignment_email(&self, tenant: TenantId, event: &OutboxEvent) -> Result<Option<Email>> {
        let assigned: Assigned = serde_json::from_value(event.payload.clone())
            .map_err(|e| CrmError::Internal(format!("event {} has no assignee: {e}", event.id)))?;
        let user: User = self.crm.fetch(tenant, Id::from_uuid(assigned.user_id)).await?;
        if !user.active {
            return Ok(None);
        }
        let kind = event.entity_kind.as_str();
        let paragraphs =
            [format!("Hello {},", user.first_name), format!("the {kind} {} was assigned to you.", event.entity_id)];
        Ok(Some(Email::plain(user.email, format!("A {kind} was assigned to you"), &paragraphs)))
    }
}

#[async_trait]
impl Reaction for EmailReaction {
    fn name(&self) -> &'static str {
        "emails"
    }

    async fn react(&self, event: &OutboxEvent) -> Result<()> {
        let emails = self.emails_for(event).await?;
        if emails.is_empty() {
            return Ok(());
        }
        let jobs = emails.iter().map(Email::job).collect::<Result<Vec<_>>>()?;
        self.crm.jobs().enqueue_batch(jobs).await.map(drop)
    }
}

fn number_of(invoice: &Invoice) -> &str {
    invoice.number.as_deref().unwrap_or("without number")
}

fn due_of(invoice: &Invoice) -> String {
    invoice.due_date.map_or_else(|| "on receipt".to_owned(), |d| d.to_string())
}

/// The invoice's summary for its contact: number, total, due date and every line.
fn issued_email(invoice: &Invoice, contact: &Contact, to: &str) -> Email {
    let (number, currency, due) = (number_of(invoice), invoice.currency, due_of(invoice));
    let total = format!("{} {currency}", invoice.totals.total);
    let mut text = format!("Hello {},\n\nplease find invoice {number} below.\n\n", contact.first_name);
    for line in &invoice.lines {
        text.push_str(&format!(
            "- {}: {} × {} = {} {currency}\n",
            line.description, line.quantity, line.unit_price, line.total
        ));
    }
    text.push_str(&format!("\nTotal: {total}\nDue: {due}\n"));
    let rows: String = invoice.lines.iter().map(line_row).collect();
    let html = format!(
        "<p>Hello {name},</p>\n<p>please find invoice {number} below.</p>\n<table>\n<tr><th>Item</th><th>Quantity</th><th>Unit price</th><th>Total</th></tr>\n{rows}</table>\n<p>Total: <strong>{total}</strong><br>Due: {due}</p>",
        name = escape_html(&contact.first_name),
        number = escape_html(number),
        total = escape_html(&total),
        due = escape_html(&due),
    );
    Email { to: to.to_owned(), subject: format!("Invoice {number}: {total}, due {due}"), text, html }
}

fn line_row(line: &Line) -> String {
    let cells =
        [line.description.clone(), line.quantity.to_string(), line.unit_price.to_string(), line.total.to_string()];
    let cells: String = cells.iter().map(|c| format!("<td>{}</td>", escape_html(c))).collect();
    format!("<tr>{cells}</tr>\n")
}

/// A reminder to the invoice's contact of what is still owed.
fn overdue_email(invoice: &Invoice, contact: &Contact, to: &str) -> Email {
    let (number, due) = (number_of(invoice), due_of(invoice));
    let owed = format!("{} {}", invoice.balance_due, invoice.currency);
    let paragraphs = [
        format!("Hello {},", contact.first_name),
        format!("invoice {number} was due on {due}; {owed} is still open."),
        "If you have paid it already, please ignore this reminder.".to_owned(),
    ];
    Email::plain(to, format!("Reminder: invoice {number} is overdue"), &paragraphs)
}
