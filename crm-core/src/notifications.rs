//! Notifications: per-user messages the domain creates (assignments).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    access::users::User,
    authz::{Action, Principal, Resource},
    crm::{Crm, PageRequest},
    entity::{Entity, entity_meta, reference, to_record},
    error::Result,
    fields::indexed_fields,
    id::{Id, Meta},
    journal::AssignmentNotice,
    storage::{EntityKind, Filter, Page, Record, Reference},
};

/// A message for one user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Notification {
    /// Common metadata.
    pub meta: Meta,
    /// The recipient.
    pub user_id: Id<User>,
    /// What happened.
    pub title: String,
    /// The kind of the record it is about.
    pub entity_kind: EntityKind,
    /// The id of that record.
    pub entity_id: Uuid,
    /// When the recipient read it; `None` while unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// The record of an assignment notice the unit of work journaled.
    pub(crate) fn record_notice(notice: AssignmentNotice) -> Result<Record> {
        to_record(&Self {
            meta: notice.meta,
            user_id: Id::from_uuid(notice.user),
            title: notice.title,
            entity_kind: notice.entity_kind,
            entity_id: notice.entity_id,
            read_at: None,
        })
    }
}

impl Entity for Notification {
    const KIND: EntityKind = EntityKind::Notification;
    const RESOURCE: Resource = Resource::Notifications;
    const OWNER_FIELD: Option<&'static str> = Some("user_id");
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
        user_id: Uuid [] = |e| e.user_id,
        read: Bool [] = |e| e.read_at.is_some(),
    }

    fn references(&self) -> Vec<Reference> {
        vec![reference("user_id", self.user_id)]
    }
    fn owners(&self) -> Vec<Uuid> {
        vec![self.user_id.uuid()]
    }
}

/// The notifications service: each principal sees only its own.
#[derive(Clone, Copy, Debug)]
pub struct Notifications<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The notifications service.
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications { crm: self }
    }
}

impl Notifications<'_> {
    /// The principal's notifications, newest first unless the page asks otherwise;
    /// `unread_only` keeps the unread ones.
    pub async fn list(&self, p: &Principal, unread_only: bool, page: &PageRequest) -> Result<Page<Notification>> {
        let filters = if unread_only { vec![Filter::eq("read", false)] } else { Vec::new() };
        self.crm.list(p, filters, page).await
    }

    /// Marks one notification read (idempotent).
    pub async fn mark_read(&self, p: &Principal, id: Id<Notification>) -> Result<Notification> {
        let before = self.crm.load_for(p, id, Action::Update, None).await?;
        if before.read_at.is_some() {
            return Ok(before);
        }
        let mut after = before.clone();
        after.read_at = Some(self.crm.now());
        let mut tx = self.crm.tx(p);
        tx.update(&before, &mut after)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Marks every unread notification of the principal read, in one atomic write;
    /// returns how many changed.
    pub async fn mark_all_read(&self, p: &Principal) -> Result<usize> {
        self.crm.authorize(p, Resource::Notifications, Action::Update)?;
        let mut changed = 0;
        let page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let unread = self.list(p, true, &page).await?;
            if unread.items.is_empty() {
                return Ok(changed);
            }
            let mut tx = self.crm.tx(p);
            for before in &unread.items {
                let mut after = before.clone();
                after.read_at = Some(tx.now());
                tx.update(before, &mut after)?;
            }
            tx.commit().await?;
            changed += unread.items.len();
        }
    }

    /// Deletes one notification.
    pub async fn delete(&self, p: &Principal, id: Id<Notification>) -> Result<()> {
        self.crm.delete(p, id, None).await
    }
}
