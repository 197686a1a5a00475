//! State guards: what a record's state forbids (issue 10, item 19).

use chrono::{DateTime, Duration, Utc};
use crm_core::{
    CrmError,
    customers::companies::{Company, NewCompany},
    customers::deals::{DealPatch, DealStage, NewDeal},
    customers::leads::{ConvertCompany, ConvertLead, LeadSource, NewLead},
    entity::Entity,
    money::Currency,
    sales::invoices::{InvoicePatch, InvoiceStatus},
    sales::lines::LineInput,
    sales::quotes::NewQuote,
    work::{
        closing::ProjectStatusChange,
        milestones::MilestoneStatus,
        projects::{NewProject, Project, ProjectStatus},
        tasks::{NewTask, TaskStatus},
    },
};
use rust_decimal_macros::dec;

use std::sync::{Arc, Mutex};

use crm_core::{
    TenantId,
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        StreamedEvent, WriteBatch, WriteOp, memory::MemoryStorage,
    },
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::support::{World, world};

fn fields(err: &CrmError) -> Vec<&str> {
    match err {
        CrmError::Validation(v) => v.fields.iter().map(|f| f.field.as_str()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn company(w: &World) -> Company {
    w.crm.companies().create(&w.admin, NewCompany { name: "Initech".into(), ..NewCompany::default() }).await.unwrap()
}

#[tokio::test]
async fn a_closed_deals_amount_currency_and_probability_are_final() {
    let w = world().await;
    for (stage, reason) in [(DealStage::ClosedWon, None), (DealStage::ClosedLost, Some("price".to_owned()))] {
        let new = NewDeal {
            title: "Big".into(),
            company_id: None,
            contact_id: None,
            owner_id: None,
            amount: dec!(1000.00),
            currency: Currency::EUR,
            stage: None,
            expected_close_date: None,
        };
        let deal = w.crm.deals().create(&w.manager, new).await.unwrap();
        let closed = w.crm.deals().change_stage(&w.manager, deal.id(), stage, reason, None).await.unwrap();
        let patch = DealPatch {
            amount: Some(dec!(5000.00)),
            currency: Some(Currency::USD),
            probability: Some(50),
            ..DealPatch::default()
        };
        let err = w.crm.deals().update(&w.manager, deal.id(), patch).await.unwrap_err();
        assert_eq!(fields(&err), ["amount", "currency", "probability"], "{stage}");
        // Other fields, and the same values sent back, stay editable.
        let same = DealPatch {
            title: Some("Big, renamed".into()),
            amount: Some(closed.amount),
            probability: Some(closed.probability),
            ..DealPatch::default()
        };
        let renamed = w.crm.deals().update(&w.manager, deal.id(), same).await.unwrap();
        assert_eq!((renamed.title.as_str(), renamed.amount), ("Big, renamed", dec!(1000.00)));
    }
}

async fn active_project(w: &World, company: &Company) -> Project {
    let input = NewProject {
        name: "Rollout".into(),
        company_id: company.id(),
        deal_id: None,
        budget: None,
        currency: None,
        start_date: None,
        end_date: None,
        manager_id: None,
    };
    let project = w.crm.projects().create(&w.manager, input).await.unwrap();
    w.crm.projects().set_status(&w.manager, project.id(), ProjectStatus::Active, None).await.unwrap()
}

fn task(project: &Project) -> NewTask {
    NewTask {
        project_id: project.id(),
        milestone_id: None,
        title: "Install".into(),
        description: None,
        assignee_id: None,
        priority: None,
        due_date: None,
    }
}

#[tokio::test]
async fn a_project_closes_with_open_work_only_when_told_to_close_it_too() {
    let w = world().await;
    let customer = company(&w).await;
    for to in [ProjectStatus::Completed, ProjectStatus::Cancelled] {
        let project = active_project(&w, &customer).await;
        let open = w.crm.tasks().create(&w.user, task(&project)).await.unwrap();
        let mut done = w.crm.tasks().create(&w.user, task(&project)).await.unwrap();
        for status in [TaskStatus::InProgress, TaskStatus::Review, TaskStatus::Done] {
            done = w.crm.tasks().set_status(&w.user, done.id(), status, None).await.unwrap();
        }
        let milestone = w.crm.milestones().create(&w.manager, project.id(), "Go-live".into(), None).await.unwrap();
        let err = w.crm.projects().set_status(&w.manager, project.id(), to, None).await.unwrap_err();
        assert_eq!(fields(&err), ["close_open_work"], "{to}");
        assert_eq!(w.crm.projects().get(&w.manager, project.id()).await.unwrap().status, ProjectStatus::Active);

        let change = ProjectStatusChange { status: to, close_open_work: true };
        let closed = w.crm.projects().change_status(&w.manager, project.id(), change, None).await.unwrap();
        assert_eq!(closed.status, to);
        let open = w.crm.tasks().get(&w.user, open.id()).await.unwrap();
        assert_eq!((open.status, open.completed_at.is_some()), (TaskStatus::Done, true));
        assert_eq!(w.crm.tasks().get(&w.user, done.id()).await.unwrap(), done, "done work is left as it was");
        let milestone = w.crm.milestones().get(&w.manager, milestone.id()).await.unwrap();
        assert_eq!(milestone.status, MilestoneStatus::Completed);
    }
}

#[tokio::test]
async fn a_project_without_open_work_closes_without_the_flag() {
    let w = world().await;
    let project = active_project(&w, &company(&w).await).await;
    let closed = w.crm.projects().set_status(&w.manager, project.id(), ProjectStatus::Completed, None).await.unwrap();
    assert_eq!(closed.status, ProjectStatus::Completed);
}

#[tokio::test]
async fn no_work_is_added_to_a_closed_project() {
    let w = world().await;
    let customer = company(&w).await;
    for to in [ProjectStatus::Completed, ProjectStatus::Cancelled] {
        let project = active_project(&w, &customer).await;
        w.crm.projects().set_status(&w.manager, project.id(), to, None).await.unwrap();
        let err = w.crm.tasks().create(&w.user, task(&project)).await.unwrap_err();
        assert_eq!(fields(&err), ["project_id"], "task in a {to} project");
        let err = w.crm.milestones().create(&w.manager, project.id(), "Late".into(), None).await.unwrap_err();
        assert_eq!(fields(&err), ["project_id"], "milestone in a {to} project");
    }
}

async fn accepted_quote_draft(w: &World) -> crm_core::sales::invoices::Invoice {
    let customer = company(w).await;
    let new = NewQuote {
        company_id: customer.id(),
        contact_id: None,
        deal_id: None,
        owner_id: None,
        currency: Currency::EUR,
        lines: vec![LineInput::new("Licence", dec!(2), dec!(100))],
        valid_until: w.crm.today(w.admin.tenant_id()).await.unwrap() + Duration::days(7),
        notes: None,
    };
    let quote = w.crm.quotes().create(&w.manager, new).await.unwrap();
    let quote = w.crm.quotes().send(&w.manager, quote.id(), None).await.unwrap();
    w.crm.quotes().accept(&w.manager, quote.id(), None).await.unwrap().1
}

#[tokio::test]
async fn the_draft_invoice_of_an_accepted_quote_is_cancelled_never_deleted() {
    let w = world().await;
    let draft = accepted_quote_draft(&w).await;
    let err = w.crm.invoices().delete(&w.manager, draft.id(), None).await.unwrap_err();
    assert_eq!(fields(&err), ["quote_id"]);
    assert!(w.crm.invoices().get(&w.manager, draft.id()).await.is_ok());
    let cancelled = w.crm.invoices().cancel(&w.manager, draft.id(), None).await.unwrap();
    assert_eq!(cancelled.status, InvoiceStatus::Cancelled);
}

#[tokio::test]
async fn the_draft_invoice_of_an_accepted_quote_keeps_the_accepted_lines() {
    let w = world().await;
    let draft = accepted_quote_draft(&w).await;
    let patch =
        InvoicePatch { lines: Some(vec![LineInput::new("Licence", dec!(20), dec!(100))]), ..InvoicePatch::default() };
    let err = w.crm.invoices().update(&w.manager, draft.id(), patch).await.unwrap_err();
    assert_eq!(fields(&err), ["lines"]);
    let kept = w.crm.invoices().get(&w.manager, draft.id()).await.unwrap();
    assert_eq!((kept.lines.clone(), kept.totals.total), (draft.lines.clone(), draft.totals.total));
    // Terms and notes are the seller's to set before issuing.
    let terms = InvoicePatch { payment_terms_days: Some(14), ..InvoicePatch::default() };
    assert_eq!(w.crm.invoices().update(&w.manager, draft.id(), terms).await.unwrap().payment_terms_days, 14);
}

#[tokio::test]
async fn lead_conversion_validates_the_new_company_like_any_company() {
    let w = world().await;
    let lead = NewLead {
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        email: None,
        phone: None,
        company_name: Some("Globex".into()),
        source: LeadSource::Referral,
        score: None,
        owner_id: None,
        notes: None,
    };
    let long = "x".repeat(201);
    for bad in ["", long.as_str()] {
        let lead = w.crm.leads().create(&w.manager, lead.clone()).await.unwrap();
        let input = ConvertLead { version: None, company: ConvertCompany::New(Some(bad.to_owned())), deal: None };
        let err = w.crm.leads().convert(&w.manager, lead.id(), input).await.unwrap_err();
        assert_eq!(fields(&err), ["company.name"], "{} characters", bad.len());
        // The same name is refused by a plain create, with the same rule.
        let direct = NewCompany { name: bad.into(), ..NewCompany::default() };
        let err = w.crm.companies().create(&w.manager, direct).await.unwrap_err();
        assert_eq!(fields(&err), ["name"]);
        let kept = w.crm.leads().get(&w.manager, lead.id()).await.unwrap();
        assert_eq!(kept.meta.version, lead.meta.version, "nothing written");
    }
}

/// Memory storage that, once armed, holds the next commit updating a project until
/// told to go: the window in which a close has looked for open work but not committed.
struct HeldProjectCommit {
    inner: MemoryStorage,
    gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

#[async_trait::async_trait]
impl Storage for HeldProjectCommit {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn get(&self, t: TenantId, k: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        self.inner.get(t, k, id).await
    }
    async fn get_many(&self, t: TenantId, k: EntityKind, ids: &[Uuid]) -> Result<Vec<StoredRecord>, StorageError> {
        self.inner.get_many(t, k, ids).await
    }
    async fn list(&self, t: TenantId, k: EntityKind, q: &ListQuery) -> Result<Page<StoredRecord>, StorageError> {
        self.inner.list(t, k, q).await
    }
    async fn aggregate(
        &self,
        t: TenantId,
        k: EntityKind,
        q: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.inner.aggregate(t, k, q).await
    }
    async fn counter(&self, t: TenantId, key: &str) -> Result<u64, StorageError> {
        self.inner.counter(t, key).await
    }
    async fn commit(&self, t: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        let updates_project = batch
            .ops
            .iter()
            .any(|op| matches!(op, WriteOp::Update { record, .. } if record.kind == EntityKind::Project));
        let gate = if updates_project { self.gate.lock().unwrap().take() } else { None };
        if let Some((paused, go)) = gate {
            paused.send(()).unwrap();
            go.await.unwrap();
        }
        self.inner.commit(t, batch).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        self.inner.outbox_pending(limit).await
    }
    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        self.inner.outbox_ack(ids).await
    }
    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        self.inner.outbox_stream(tenant, after, limit).await
    }
    async fn outbox_position(&self) -> Result<u64, StorageError> {
        self.inner.outbox_position().await
    }
    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        self.inner.outbox_prune(acked_before, limit).await
    }
    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }
}

#[tokio::test]
async fn a_close_decides_again_when_work_was_added_while_it_committed() {
    let storage = Arc::new(HeldProjectCommit { inner: MemoryStorage::new(), gate: Mutex::new(None) });
    let w = World::new(storage.clone()).await;
    let project = active_project(&w, &company(&w).await).await;
    let (paused_tx, paused) = oneshot::channel();
    let (go, go_rx) = oneshot::channel();
    *storage.gate.lock().unwrap() = Some((paused_tx, go_rx));
    let closer = {
        let (crm, manager, id) = (w.crm.clone(), w.manager.clone(), project.id());
        tokio::spawn(async move { crm.projects().set_status(&manager, id, ProjectStatus::Completed, None).await })
    };
    // The close found no open work and is about to commit; a task arrives meanwhile.
    paused.await.unwrap();
    let added = w.crm.tasks().create(&w.user, task(&project)).await.unwrap();
    go.send(()).unwrap();
    let err = closer.await.unwrap().unwrap_err();
    assert_eq!(fields(&err), ["close_open_work"], "the close saw the added task when it decided again");
    assert_eq!(w.crm.projects().get(&w.manager, project.id()).await.unwrap().status, ProjectStatus::Active);
    assert_eq!(w.crm.tasks().get(&w.user, added.id()).await.unwrap().status, TaskStatus::Todo);
}
