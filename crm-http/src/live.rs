//! The live event stream (`GET /api/v1/events`): Server-Sent Events of the caller's
//! tenant, each one an event the relay acknowledged, filtered by what the caller may
//! read ([`crm_core::Crm::may_see`]).
//!
//! Every server reads the outbox stream from the storage, so a client connected to any
//! server receives every event of its tenant, whichever server committed it. One
//! [`LiveHub`] per process polls the stream once per tenant with subscribers and fans
//! each event out through a bounded channel; a connection first catches up from its
//! `Last-Event-ID` (an outbox position) through the storage, then follows the channel.
//! A subscriber that falls a channel's length behind is disconnected (it never buffers
//! without bound) and resumes from its last id on reconnecting, losing nothing the
//! outbox still holds. A connection ends after the access token's lifetime, so a
//! revoked session or a changed role takes effect at the reconnection at the latest.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crm_core::{
    Crm, Principal, TenantId,
    storage::{Storage, StreamedEvent},
    webhooks::message::WebhookEnvelope,
};
use futures::{Stream, StreamExt};
use poem::web::sse::Event;
use tokio::sync::broadcast::{self, error::RecvError};

/// How the hub paces and bounds the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// Events a subscriber may fall behind before it is disconnected.
    pub capacity: usize,
    /// How often the outbox stream is read for new events.
    pub poll: Duration,
    /// How often an idle connection gets a comment line, so proxies keep it open.
    pub heartbeat: Duration,
    /// How long one connection lasts (the access token's lifetime).
    pub lifetime: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            capacity: 256,
            poll: Duration::from_millis(250),
            heartbeat: Duration::from_secs(15),
            lifetime: Duration::from_secs(15 * 60),
        }
    }
}

type Feed = broadcast::Sender<Arc<StreamedEvent>>;

/// One process's fan-out of the outbox stream, per tenant.
pub struct LiveHub {
    storage: Arc<dyn Storage>,
    options: LiveOptions,
    feeds: Mutex<HashMap<TenantId, Feed>>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub").field("options", &self.options).finish_non_exhaustive()
    }
}

impl LiveHub {
    /// A hub reading `storage`'s outbox stream, paced by `options`.
    pub fn new(storage: Arc<dyn Storage>, options: LiveOptions) -> Arc<Self> {
        Arc::new(LiveHub { storage, options, feeds: Mutex::default() })
    }

    /// The hub's options.
    pub fn options(&self) -> LiveOptions {
        self.options
    }

    /// A receiver of `tenant`'s events, starting the tenant's poller after `position`
    /// if none runs (a running one may be before or past it: the subscriber catches up
    /// from the storage either way).
    fn subscribe(self: &Arc<Self>, tenant: TenantId, position: u64) -> broadcast::Receiver<Arc<StreamedEvent>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(feed) = feeds.get(&tenant) {
            return feed.subscribe();
        }
        let (feed, receiver) = broadcast::channel(self.options.capacity.max(1));
        feeds.insert(tenant, feed.clone());
        tokio::spawn(self.clone().poll(tenant, feed, position));
        receiver
    }

    /// Reads `tenant`'s stream after `after` and sends each event to `feed` until it
    /// has no receiver.
    async fn poll(self: Arc<Self>, tenant: TenantId, feed: Feed, mut after: u64) {
        loop {
            if self.retire_if_unheard(tenant, &feed) {
                return;
            }
            match self.storage.outbox_stream(tenant, after, 500).await {
                Ok(events) if !events.is_empty() => {
                    for event in events {
                        after = event.position;
                        // No receiver right now is fine: the next check retires the feed.
                        let _ = feed.send(Arc::new(event));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the live stream cannot read the outbox; retrying"),
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    /// Removes `tenant`'s feed if nobody listens; checked under the lock subscribers
    /// take, so none subscribes to a feed that is about to stop.
    fn retire_if_unheard(&self, tenant: TenantId, feed: &Feed) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        if feed.receiver_count() > 0 {
            return false;
        }
        feeds.remove(&tenant);
        true
    }
}

/// One subscriber's stream of SSE events, after position `after` (its `Last-Event-ID`,
/// or the current position).
pub async fn subscribe(
    hub: &Arc<LiveHub>,
    crm: Crm,
    principal: Principal,
    after: Option<u64>,
) -> crm_core::Result<impl Stream<Item = Event> + Send + 'static> {
    let after = match after {
        Some(after) => after,
        None => crm.storage().outbox_position().await?,
    };
    // Subscribed before catching up: what the storage holds when the catching up ends
    // reaches past every event the feed sent before, so nothing falls between the two.
    let receiver = hub.subscribe(principal.tenant_id(), after);
    let connection = Connection { crm, principal, after, pending: VecDeque::new(), catching_up: true, receiver };
    let events = futures::stream::unfold(connection, Connection::next);
    let lifetime = tokio::time::sleep(hub.options.lifetime);
    Ok(events.take_until(lifetime))
}

struct Connection {
    crm: Crm,
    principal: Principal,
    /// The position of the last event handled (sent or filtered out).
    after: u64,
    pending: VecDeque<StreamedEvent>,
    /// Still reading the storage, before following the feed.
    catching_up: bool,
    receiver: broadcast::Receiver<Arc<StreamedEvent>>,
}

impl Connection {
    /// The next event this subscriber may see, or `None` to end the stream.
    async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            if let Some(streamed) = self.pending.pop_front() {
                if streamed.position <= self.after {
                    continue;
                }
                self.after = streamed.position;
                match self.crm.may_see(&self.principal, &streamed.event).await {
                    Ok(true) => return Some((sse_event(&streamed), self)),
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "live stream ended: the visibility check failed");
                        return None;
                    }
                }
            }
            if self.catching_up {
                let tenant = self.principal.tenant_id();
                match self.crm.storage().outbox_stream(tenant, self.after, 200).await {
                    Ok(events) if !events.is_empty() => self.pending.extend(events),
                    Ok(_) => self.catching_up = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "live stream ended: the outbox could not be read");
                        return None;
                    }
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(streamed) => self.pending.push_back(StreamedEvent::clone(&streamed)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, after = self.after, "live stream ended: a slow consumer fell behind");
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// `id:` the position, `event:` the event's name, `data:` its envelope (as webhooks
/// get it).
fn sse_event(streamed: &StreamedEvent) -> Event {
    let envelope = WebhookEnvelope::of(&streamed.event);
    let data = serde_json::to_string(&envelope).unwrap_or_default();
    Event::message(data).id(streamed.position.to_string()).event_type(streamed.event.name.clone())
}
