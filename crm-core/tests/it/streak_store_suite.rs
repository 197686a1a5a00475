//! The streak-store conformance suite on the in-process store.

use std::sync::Arc;

use crm_core::rate_limit::sign_in::{MemoryStreaks, StreakStore};

crm_core::streak_store_suite!(memory, || async { Arc::new(MemoryStreaks::default()) as Arc<dyn StreakStore> });
