//! `GET /api/v1/events`: each subscriber receives exactly the relayed events it may
//! read and its own notifications; a reconnection with `Last-Event-ID` receives what it
//! missed; a subscriber that does not keep up is disconnected and resumes without loss;
//! idle connections get heartbeats.

use std::{sync::Arc, time::Duration};

use crm_core::{
    Principal,
    customers::leads::{LeadSource, NewLead},
    leases::MemoryLeases,
};
use crm_jobs::Relay;
use futures::{Stream, StreamExt};
use poem::http::StatusCode;
use serde_json::Value;

use crate::support::{Harness, harness};

/// One SSE frame: its id, event name and data (comments have none of them).
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    id: Option<u64>,
    event: Option<String>,
    data: Option<Value>,
}

/// A subscriber's connection, read frame by frame.
struct Subscriber {
    body: std::pin::Pin<Box<dyn Stream<Item = Result<Vec<u8>, std::io::Error>> + Send>>,
    buffer: String,
}

impl Subscriber {
    async fn connect(h: &Harness, p: &Principal, last_event_id: Option<u64>) -> Subscriber {
        let token = h.token(p).await;
        let mut request = h.cli.get("/api/v1/events").header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await;
        assert_eq!(response.0.status(), StatusCode::OK);
        let content_type = response.0.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let body = response.0.into_body().into_bytes_stream().map(|chunk| chunk.map(|bytes| bytes.to_vec()));
        Subscriber { body: Box::pin(body), buffer: String::new() }
    }

    /// The next frame within `wait`; `Err(true)` when the stream ended, `Err(false)` on
    /// a timeout.
    async fn frame(&mut self, wait: Duration) -> Result<Frame, bool> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame { id: None, event: None, data: None };
                for line in raw.lines() {
                    match line.split_once(':').map(|(k, v)| (k, v.trim_start())) {
                        Some(("id", v)) => frame.id = v.parse().ok(),
                        Some(("event", v)) => frame.event = Some(v.to_owned()),
                        Some(("data", v)) => frame.data = serde_json::from_str(v).ok(),
                        _ => {}
                    }
                }
                return Ok(frame);
            }
            match tokio::time::timeout(wait, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(_)) | None) => return Err(true),
                Err(_) => return Err(false),
            }
        }
    }

    /// The events (frames with an id) that arrive until none comes for `quiet`.
    async fn events_until_quiet(&mut self, quiet: Duration) -> Vec<Frame> {
        let mut events = Vec::new();
        let mut last = tokio::time::Instant::now();
        while last.elapsed() < quiet {
            match self.frame(quiet).await {
                Ok(frame) if frame.id.is_some() => {
                    events.push(frame);
                    last = tokio::time::Instant::now();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        events
    }
}

/// Relays what is pending, as the server's relay would.
async fn relay(h: &Harness) {
    let leases = Arc::new(MemoryLeases::new(Arc::new(crm_core::SystemClock)));
    let relay = Relay::new(h.w.crm.storage().clone(), leases, "test", vec![]);
    while relay.pass().await.unwrap().relayed > 0 {}
}

/// A lead created by the manager and owned by `owner`.
async fn assign_lead(h: &Harness, owner: &Principal, name: &str) -> uuid::Uuid {
    let input = NewLead {
        first_name: name.into(),
        last_name: "Lead".into(),
        source: LeadSource::Website,
        owner_id: Some(crm_core::Id::from_uuid(owner.user_uuid())),
        email: None,
        phone: None,
        company_name: None,
        score: None,
        notes: None,
    };
    h.w.crm.leads().create(&h.w.manager, input).await.unwrap().meta.id
}

fn names(events: &[Frame]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|f| {
            let data = f.data.as_ref().unwrap();
            let subject = data["subject"]["id"].as_str().unwrap().to_owned();
            (f.event.clone().unwrap(), subject)
        })
        .collect()
}

#[tokio::test]
async fn each_role_receives_exactly_the_events_it_may_read_and_its_own_notifications() {
    let h = harness().await;
    let mut user = Subscriber::connect(&h, &h.w.user, None).await;
    let mut other = Subscriber::connect(&h, &h.w.other_user, None).await;
    let mut admin = Subscriber::connect(&h, &h.w.admin, None).await;
    let mut client = Subscriber::connect(&h, &h.w.client, None).await;
    let mine = assign_lead(&h, &h.w.user, "Mine").await;
    let theirs = assign_lead(&h, &h.w.other_user, "Theirs").await;
    relay(&h).await;

    let quiet = Duration::from_millis(600);
    let (got_user, got_other) = (user.events_until_quiet(quiet).await, other.events_until_quiet(quiet).await);
    let (got_admin, got_client) = (admin.events_until_quiet(quiet).await, client.events_until_quiet(quiet).await);
    let assigned = |lead| ("lead.assigned".to_owned(), uuid::Uuid::to_string(&lead));
    let notified = |frames: &[Frame]| -> Vec<String> {
        let notes = frames.iter().filter(|f| f.event.as_deref() == Some("notification.created"));
        notes.map(|f| f.data.as_ref().unwrap()["data"]["entity_id"].as_str().unwrap().to_owned()).collect()
    };
    // Users read every lead of the tenant (as a GET would), and only their own
    // notifications.
    for (got, own_lead) in [(&got_user, mine), (&got_other, theirs)] {
        let seen = names(got);
        assert!(seen.contains(&assigned(mine)) && seen.contains(&assigned(theirs)), "{seen:?}");
        assert_eq!(notified(got), vec![own_lead.to_string()], "their own notification only: {seen:?}");
        assert_eq!(seen.len(), 3, "{seen:?}");
    }
    let admin_names = names(&got_admin);
    assert!(admin_names.contains(&assigned(mine)) && admin_names.contains(&assigned(theirs)), "{admin_names:?}");
    assert!(notified(&got_admin).is_empty(), "others' notifications are theirs alone: {admin_names:?}");
    assert!(got_client.is_empty(), "a client may read no lead: {:?}", names(&got_client));
    let ids: Vec<u64> = got_admin.iter().map(|f| f.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids are increasing positions: {ids:?}");
}

#[tokio::test]
async fn a_reconnection_with_last_event_id_receives_what_it_missed() {
    let h = harness().await;
    let mut first = Subscriber::connect(&h, &h.w.admin, None).await;
    let a = assign_lead(&h, &h.w.user, "A").await;
    relay(&h).await;
    let seen = first.events_until_quiet(Duration::from_millis(400)).await;
    assert_eq!(names(&seen), vec![("lead.assigned".to_owned(), a.to_string())]);
    let last = seen[0].id.unwrap();
    drop(first);

    let b = assign_lead(&h, &h.w.user, "B").await;
    let c = assign_lead(&h, &h.w.other_user, "C").await;
    relay(&h).await;
    let mut again = Subscriber::connect(&h, &h.w.admin, Some(last)).await;
    let missed = again.events_until_quiet(Duration::from_millis(400)).await;
    let expected: Vec<(String, String)> =
        [b, c].iter().map(|lead| ("lead.assigned".to_owned(), lead.to_string())).collect();
    assert_eq!(names(&missed), expected, "what was missed, in order, and nothing before");

    let d = assign_lead(&h, &h.w.user, "D").await;
    relay(&h).await;
    let live = again.events_until_quiet(Duration::from_millis(400)).await;
    assert_eq!(names(&live), vec![("lead.assigned".to_owned(), d.to_string())], "then it follows live");
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_disconnected_and_resumes_without_loss() {
    let h = harness().await;
    let mut slow = Subscriber::connect(&h, &h.w.admin, None).await;
    let mut leads = vec![assign_lead(&h, &h.w.user, "First").await];
    relay(&h).await;
    let mut received = slow.events_until_quiet(Duration::from_millis(300)).await;
    assert_eq!(received.len(), 1, "following live");
    // Then it reads nothing while more events come than the feed holds.
    let capacity = crate::support::TEST_LIVE.capacity;
    for i in 0..capacity * 2 {
        leads.push(assign_lead(&h, &h.w.user, &format!("N{i}")).await);
    }
    relay(&h).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ended = loop {
        match slow.frame(Duration::from_secs(5)).await {
            Ok(frame) if frame.id.is_some() => received.push(frame),
            Ok(_) => {}
            Err(ended) => break ended,
        }
    };
    assert!(ended, "the stream of a subscriber that fell behind ends");
    assert!(received.len() < leads.len(), "it was cut off before the end: {}", received.len());

    let resume_from = received.last().and_then(|f| f.id).unwrap();
    let mut resumed = Subscriber::connect(&h, &h.w.admin, Some(resume_from)).await;
    received.extend(resumed.events_until_quiet(Duration::from_millis(500)).await);
    let expected: Vec<(String, String)> =
        leads.iter().map(|lead| ("lead.assigned".to_owned(), lead.to_string())).collect();
    assert_eq!(names(&received), expected, "every event once, in order");
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_and_needs_credentials() {
    let h = harness().await;
    let mut idle = Subscriber::connect(&h, &h.w.user, None).await;
    let heartbeat = crate::support::TEST_LIVE.heartbeat;
    let frame = idle.frame(heartbeat * 5).await.expect("a heartbeat comes while nothing happens");
    assert_eq!(frame, Frame { id: None, event: None, data: None }, "a comment line");
    let anonymous = h.cli.get("/api/v1/events").send().await;
    assert_eq!(anonymous.0.status(), StatusCode::UNAUTHORIZED);
    let token = h.token(&h.w.user).await;
    let bad = h
        .cli
        .get("/api/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .header("last-event-id", "x")
        .send()
        .await;
    assert_eq!(bad.0.status(), StatusCode::BAD_REQUEST, "Last-Event-ID is a position");
}

#[tokio::test]
async fn another_tenants_subscribers_receive_nothing_of_this_tenant() {
    let h = harness().await;
    let elsewhere = crm_core::conformance::World::new(h.w.crm.storage().clone()).await;
    let mut outsider = Subscriber::connect(&h, &elsewhere.admin, None).await;
    let mut insider = Subscriber::connect(&h, &h.w.admin, None).await;
    let lead = assign_lead(&h, &h.w.user, "Walled").await;
    relay(&h).await;
    let quiet = Duration::from_millis(500);
    assert_eq!(names(&insider.events_until_quiet(quiet).await), vec![("lead.assigned".to_owned(), lead.to_string())]);
    assert!(outsider.events_until_quiet(quiet).await.is_empty(), "a tenant's events stay in the tenant");
    // Not even by resuming from the start of the stream.
    let mut replay = Subscriber::connect(&h, &elsewhere.admin, Some(0)).await;
    let replayed = replay.events_until_quiet(quiet).await;
    assert!(names(&replayed).iter().all(|(_, subject)| *subject != lead.to_string()), "{:?}", names(&replayed));
}
