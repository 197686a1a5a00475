//! The request being served, as a task-local every layer can reach: its id (for error
//! envelopes and logs), who it acts as, and the tightest rate-limit decision taken for
//! it. The edge middleware opens the scope; handlers and the error mapping write and
//! read it.

use std::sync::{Arc, Mutex, PoisonError};

use crm_core::rate_limit::RateDecision;

/// The request being served, visible to everything that runs inside it.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) id: String,
    pub(crate) user_id: Mutex<Option<String>>,
    /// The most restrictive limit decision taken while serving the request.
    pub(crate) tightest: Mutex<Option<RateDecision>>,
}

impl RequestInfo {
    pub(crate) fn record(&self, decision: RateDecision) {
        let mut tightest = self.tightest.lock().unwrap_or_else(PoisonError::into_inner);
        *tightest = Some(tighter(*tightest, decision));
    }
}

/// The decision the client should hear about: a refusal first, then the fewest left.
fn tighter(current: Option<RateDecision>, new: RateDecision) -> RateDecision {
    match current {
        Some(old) if (old.allowed, old.remaining) <= (new.allowed, new.remaining) => old,
        _ => new,
    }
}

tokio::task_local! {
    pub(crate) static REQUEST: Arc<RequestInfo>;
}

/// The id of the request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST.try_with(|r| r.id.clone()).ok()
}

/// Records who the request acts as, for the log line.
pub fn set_current_user(user_id: String) {
    let _ = REQUEST.try_with(|r| *r.user_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(user_id));
}

/// Records a rate-limit decision taken for the request (per user, per account…), so its
/// response carries the `RateLimit-*` headers of whichever limit is closest.
pub fn record_limit(decision: RateDecision) {
    let _ = REQUEST.try_with(|r| r.record(decision));
}
