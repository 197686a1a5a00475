//! The rate-limiter conformance suite on the in-process GCRA limiter.

use std::{sync::Arc, time::Duration};

use crm_core::rate_limit::{RateLimiter, gcra::GcraLimiter};

crm_core::rate_limiter_suite!(memory_gcra, |limit: u32, period: Duration| async move {
    Arc::new(GcraLimiter::new(limit, period)) as Arc<dyn RateLimiter>
});
