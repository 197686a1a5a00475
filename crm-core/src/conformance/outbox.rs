//! The outbox stream: positions given in acknowledgement order, per-tenant streams a
//! subscriber resumes after a position, and pruning of what was acknowledged long ago.

// A failing case is a panic with a message: that is how the suite reports.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::{World, support::*};
use crate::{
    TenantId,
    storage::{EntityKind, OutboxEvent, StreamedEvent, WriteBatch},
};

/// Commits `n` events of `tenant` in one batch and returns them (in id order).
pub async fn commit_events(s: &Store, tenant: TenantId, n: usize) -> Vec<OutboxEvent> {
    let events: Vec<OutboxEvent> = (0..n)
        .map(|i| OutboxEvent {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            name: "test.streamed".into(),
            entity_kind: EntityKind::Company,
            entity_id: Uuid::now_v7(),
            payload: json!({ "n": i }),
            occurred_at: Utc::now(),
        })
        .collect();
    s.commit(tenant, WriteBatch { ops: vec![], counters: vec![], events: events.clone() }).await.unwrap();
    events
}

fn ids(events: &[OutboxEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

fn positions(streamed: &[StreamedEvent]) -> Vec<u64> {
    streamed.iter().map(|e| e.position).collect()
}

/// Positions start at 1 and follow the order of the ids acknowledged, across calls;
/// the acknowledged events leave the pending list and come back whole in the stream.
pub async fn outbox_positions_follow_ack_order(s: Store) {
    let w = World::new(s.clone()).await;
    assert_eq!(s.outbox_position().await.unwrap(), 0, "no acknowledgement yet");
    let events = commit_events(&s, tenant(&w), 4).await;
    // Acked out of id order: the ack order decides.
    s.outbox_ack(&[events[2].id, events[0].id]).await.unwrap();
    s.outbox_ack(&[events[3].id, events[1].id]).await.unwrap();
    let streamed = s.outbox_stream(tenant(&w), 0, 100).await.unwrap();
    assert_eq!(positions(&streamed), vec![1, 2, 3, 4]);
    let order: Vec<Uuid> = streamed.iter().map(|e| e.event.id).collect();
    assert_eq!(order, vec![events[2].id, events[0].id, events[3].id, events[1].id]);
    assert_eq!(streamed[0].event, events[2], "the streamed event comes back whole");
    assert_eq!(s.outbox_position().await.unwrap(), 4);
    let pending = ids(&s.outbox_pending(10_000).await.unwrap());
    assert!(events.iter().all(|e| !pending.contains(&e.id)), "acknowledged events are no longer pending");
    let after_two = s.outbox_stream(tenant(&w), 2, 100).await.unwrap();
    assert_eq!(positions(&after_two), vec![3, 4], "the stream resumes after a position");
    assert_eq!(positions(&s.outbox_stream(tenant(&w), 0, 3).await.unwrap()), vec![1, 2, 3], "limit");
}

/// Acknowledging again (alone, or beside a new id, or twice in one call) gives no new
/// position and moves nothing; unknown ids are ignored.
pub async fn outbox_reack_changes_nothing(s: Store) {
    let w = World::new(s.clone()).await;
    let events = commit_events(&s, tenant(&w), 2).await;
    s.outbox_ack(&[events[0].id, events[0].id, Uuid::now_v7()]).await.unwrap();
    assert_eq!(s.outbox_position().await.unwrap(), 1, "an id twice in one call is acknowledged once");
    s.outbox_ack(&[events[0].id]).await.unwrap();
    assert_eq!(s.outbox_position().await.unwrap(), 1);
    s.outbox_ack(&[events[0].id, events[1].id]).await.unwrap();
    let streamed = s.outbox_stream(tenant(&w), 0, 100).await.unwrap();
    let got: Vec<(u64, Uuid)> = streamed.iter().map(|e| (e.position, e.event.id)).collect();
    assert_eq!(got, vec![(1, events[0].id), (2, events[1].id)]);
    assert_eq!(s.outbox_position().await.unwrap(), 2);
}

/// A tenant's stream holds only its own events, in position order, with the other
/// tenants' positions skipped.
pub async fn outbox_stream_is_per_tenant_and_ordered(s: Store) {
    let a = World::new(s.clone()).await;
    let b = World::new(s.clone()).await;
    let of_a = commit_events(&s, tenant(&a), 3).await;
    let of_b = commit_events(&s, tenant(&b), 3).await;
    let interleaved = [of_a[0].id, of_b[0].id, of_b[1].id, of_a[1].id, of_a[2].id, of_b[2].id];
    s.outbox_ack(&interleaved).await.unwrap();
    let stream_a = s.outbox_stream(tenant(&a), 0, 100).await.unwrap();
    let stream_b = s.outbox_stream(tenant(&b), 0, 100).await.unwrap();
    assert_eq!(positions(&stream_a), vec![1, 4, 5]);
    assert_eq!(positions(&stream_b), vec![2, 3, 6]);
    assert!(stream_a.iter().all(|e| e.event.tenant_id == tenant(&a)), "{stream_a:?}");
    assert!(stream_b.iter().all(|e| e.event.tenant_id == tenant(&b)), "{stream_b:?}");
    assert!(s.outbox_stream(TenantId(Uuid::now_v7()), 0, 100).await.unwrap().is_empty(), "an unknown tenant");
}

/// Many concurrent acknowledgements: positions are exactly 1..=n, and a reader polling
/// after the last position it saw (or after the published `outbox_position`) never
/// misses an event that shows up behind it.
pub async fn outbox_concurrent_acks_leave_no_gap(s: Store) {
    const ACKERS: usize = 8;
    const EACH: usize = 12;
    let w = World::new(s.clone()).await;
    let mut batches = Vec::new();
    for _ in 0..ACKERS {
        batches.push(commit_events(&s, tenant(&w), EACH).await);
    }
    let done = AtomicBool::new(false);
    let acks = async {
        // Each acker acknowledges its events one or two at a time, racing the others.
        join_all(batches.iter().map(|batch| {
            let s = s.clone();
            async move {
                for chunk in batch.chunks(2) {
                    s.outbox_ack(&ids(chunk)).await.unwrap();
                }
            }
        }))
        .await;
        done.store(true, Ordering::SeqCst);
    };
    let reader = async {
        let mut seen: Vec<StreamedEvent> = Vec::new();
        loop {
            let finished = done.load(Ordering::SeqCst);
            let published = s.outbox_position().await.unwrap();
            let after = seen.last().map_or(0, |e| e.position);
            let fresh = s.outbox_stream(tenant(&w), after, 10_000).await.unwrap();
            assert!(fresh.iter().all(|e| e.position > after), "the stream returned a position ≤ {after}");
            seen.extend(fresh);
            let last = seen.last().map_or(0, |e| e.position);
            assert!(last >= published, "position {published} was published but the stream stops at {last}");
            if finished {
                return seen;
            }
            sleep(Duration::from_millis(1)).await;
        }
    };
    let ((), seen) = futures::join!(acks, reader);
    let everything = s.outbox_stream(tenant(&w), 0, 10_000).await.unwrap();
    let n = (ACKERS * EACH) as u64;
    assert_eq!(positions(&everything), (1..=n).collect::<Vec<_>>(), "no gap, no duplicate");
    assert_eq!(positions(&seen), positions(&everything), "the polling reader missed an event behind its cursor");
    assert_eq!(s.outbox_position().await.unwrap(), n);
}

/// Pruning deletes only events acknowledged before the instant, oldest first and at
/// most `limit`; pending events stay whatever their age, and positions are not reused.
pub async fn outbox_prune_takes_only_acked_before(s: Store) {
    let w = World::new(s.clone()).await;
    let old = commit_events(&s, tenant(&w), 3).await;
    let recent = commit_events(&s, tenant(&w), 2).await;
    let pending = commit_events(&s, tenant(&w), 2).await;
    s.outbox_ack(&ids(&old)).await.unwrap();
    sleep(Duration::from_millis(50)).await;
    let cut = Utc::now();
    sleep(Duration::from_millis(50)).await;
    s.outbox_ack(&ids(&recent)).await.unwrap();

    assert_eq!(s.outbox_prune(cut, 2).await.unwrap(), 2, "at most `limit`");
    assert_eq!(positions(&s.outbox_stream(tenant(&w), 0, 100).await.unwrap()), vec![3, 4, 5], "oldest first");
    assert_eq!(s.outbox_prune(cut, 100).await.unwrap(), 1);
    assert_eq!(s.outbox_prune(cut, 100).await.unwrap(), 0, "nothing else was acknowledged before the cut");
    assert_eq!(positions(&s.outbox_stream(tenant(&w), 0, 100).await.unwrap()), vec![4, 5]);

    let later = Utc::now() + chrono::Duration::days(1);
    assert_eq!(s.outbox_prune(later, 100).await.unwrap(), 2, "pending events are not counted");
    assert!(s.outbox_stream(tenant(&w), 0, 100).await.unwrap().is_empty());
    let still = ids(&s.outbox_pending(10_000).await.unwrap());
    assert!(pending.iter().all(|e| still.contains(&e.id)), "pending events are never pruned");
    assert_eq!(s.outbox_position().await.unwrap(), 5, "the sequence does not go back");
    s.outbox_ack(&ids(&pending)).await.unwrap();
    assert_eq!(positions(&s.outbox_stream(tenant(&w), 0, 100).await.unwrap()), vec![6, 7], "positions are not reused");
}
