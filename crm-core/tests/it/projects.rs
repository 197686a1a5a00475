//! Projects, milestones and tasks.

use crm_core::{
    CrmError, PageRequest,
    customers::companies::{Company, NewCompany},
    entity::Entity,
    storage::EntityKind,
    work::{
        milestones::MilestoneStatus,
        projects::{NewProject, Project, ProjectStatus},
        tasks::{NewTask, TaskFilter, TaskStatus},
    },
};
use rust_decimal_macros::dec;

use crate::support::{World, world};

async fn project(w: &World, company: &Company) -> Project {
    let input = NewProject {
        name: "Rollout".into(),
        company_id: company.id(),
        deal_id: None,
        budget: Some(dec!(10000.00)),
        currency: Some(crm_core::money::Currency::EUR),
        start_date: None,
        end_date: None,
        manager_id: None,
    };
    w.crm.projects().create(&w.manager, input).await.unwrap()
}

fn task(project: &Project, title: &str) -> NewTask {
    NewTask {
        project_id: project.id(),
        milestone_id: None,
        title: title.into(),
        description: None,
        assignee_id: None,
        priority: None,
        due_date: None,
    }
}

#[tokio::test]
async fn tasks_follow_their_state_machine_and_count_towards_progress() {
    let w = world().await;
    let p = project(&w, &w.client_company).await;
    let t1 = w.crm.tasks().create(&w.user, task(&p, "One")).await.unwrap();
    w.crm.tasks().create(&w.user, task(&p, "Two")).await.unwrap();
    let err = w.crm.tasks().set_status(&w.user, t1.id(), TaskStatus::Done, None).await.unwrap_err();
    assert!(
        matches!(&err, CrmError::InvalidTransition { kind: EntityKind::Task, from, to } if from == "todo" && to == "done"),
        "{err:?}"
    );
    for status in [TaskStatus::InProgress, TaskStatus::Review, TaskStatus::Done] {
        w.crm.tasks().set_status(&w.user, t1.id(), status, None).await.unwrap();
    }
    let progress = w.crm.projects().progress(&w.manager, p.id()).await.unwrap();
    assert_eq!((progress.total, progress.percent_done), (2, dec!(50.00)));
    assert_eq!(
        progress.tasks_by_status,
        vec![(TaskStatus::Todo, 1), (TaskStatus::InProgress, 0), (TaskStatus::Review, 0), (TaskStatus::Done, 1)]
    );
    let err = w.crm.projects().set_status(&w.manager, p.id(), ProjectStatus::Completed, None).await.unwrap_err();
    assert!(matches!(err, CrmError::InvalidTransition { .. }), "planning cannot jump to completed");
}

#[tokio::test]
async fn only_managers_assign_others_and_assignees_are_notified() {
    let w = world().await;
    let p = project(&w, &w.client_company).await;
    let err = w
        .crm
        .tasks()
        .create(&w.user, crm_core::work::tasks::NewTask { assignee_id: Some(w.other_user.user_id()), ..task(&p, "x") })
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)), "{err:?}");
    let mine = w
        .crm
        .tasks()
        .create(&w.user, crm_core::work::tasks::NewTask { assignee_id: Some(w.user.user_id()), ..task(&p, "Mine") })
        .await
        .unwrap();
    let err = w.crm.tasks().assign(&w.user, mine.id(), Some(w.other_user.user_id()), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Forbidden(_)));
    w.crm.tasks().assign(&w.manager, mine.id(), Some(w.other_user.user_id()), None).await.unwrap();
    let inbox = w.crm.notifications().list(&w.other_user, true, &PageRequest::default()).await.unwrap();
    assert_eq!(inbox.items.iter().map(|n| n.title.as_str()).collect::<Vec<_>>(), ["Task assigned to you: Mine"]);
    assert!(
        w.crm.notifications().list(&w.user, true, &PageRequest::default()).await.unwrap().items.is_empty(),
        "self-assignment is silent"
    );
    let theirs = TaskFilter { assignee_id: Some(w.other_user.user_id()), ..TaskFilter::default() };
    assert_eq!(w.crm.tasks().list(&w.admin, &theirs, &PageRequest::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn clients_read_their_company_projects_and_tasks_only() {
    let w = world().await;
    let theirs = project(&w, &w.client_company).await;
    let elsewhere = w
        .crm
        .companies()
        .create(&w.admin, NewCompany { name: "Elsewhere".into(), ..NewCompany::default() })
        .await
        .unwrap();
    let other = project(&w, &elsewhere).await;
    let t = w.crm.tasks().create(&w.manager, task(&theirs, "Visible")).await.unwrap();
    let hidden = w.crm.tasks().create(&w.manager, task(&other, "Hidden")).await.unwrap();
    assert_eq!(w.crm.projects().get(&w.client, theirs.id()).await.unwrap().id(), theirs.id());
    assert!(matches!(w.crm.projects().get(&w.client, other.id()).await, Err(CrmError::NotFound { .. })));
    assert_eq!(w.crm.tasks().get(&w.client, t.id()).await.unwrap().company_id, w.client_company.id());
    assert!(matches!(w.crm.tasks().get(&w.client, hidden.id()).await, Err(CrmError::NotFound { .. })));
    let listed = w.crm.tasks().list(&w.client, &TaskFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|x| x.id()).collect::<Vec<_>>(), vec![t.id()]);
    assert!(matches!(
        w.crm.tasks().set_status(&w.client, t.id(), TaskStatus::InProgress, None).await,
        Err(CrmError::Forbidden(_))
    ));
}

#[tokio::test]
async fn milestones_belong_to_one_project() {
    let w = world().await;
    let a = project(&w, &w.client_company).await;
    let b = project(&w, &w.client_company).await;
    let m = w.crm.milestones().create(&w.manager, a.id(), "Beta".into(), None).await.unwrap();
    let err = w
        .crm
        .tasks()
        .create(&w.manager, NewTask { milestone_id: Some(m.id()), ..task(&b, "Wrong project") })
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::Validation(v) if v.fields[0].field == "milestone_id"), "{err:?}");
    w.crm
        .tasks()
        .create(&w.manager, NewTask { milestone_id: Some(m.id()), ..task(&a, "Right project") })
        .await
        .unwrap();
    let m = w.crm.milestones().set_status(&w.manager, m.id(), MilestoneStatus::InProgress, Some(1)).await.unwrap();
    assert_eq!(m.status, MilestoneStatus::InProgress);
    let err = w.crm.milestones().delete(&w.manager, m.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Referenced { by: EntityKind::Task, .. }));
    let err = w.crm.projects().delete(&w.manager, a.id(), None).await.unwrap_err();
    assert!(matches!(err, CrmError::Referenced { .. }));
}
