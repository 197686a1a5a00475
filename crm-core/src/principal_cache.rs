//! The principals of recently authenticated credentials, so a request does not read its
//! session and its user (or its API key and owner) from the storage every time.
//!
//! The bound on staleness is the rule: an entry is used for at most the cache's TTL
//! after it was read (and never past its session's or key's expiry). Changes made
//! through this process's `Crm` (a session revoked, a user deactivated or its role
//! changed, a key revoked) drop the entries they touch at once; changes made by another
//! process take effect here within the TTL. A read that raced with such a change is
//! not kept: every entry is offered with the generation seen before its read, and an
//! invalidation raises the generation.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{authz::Principal, id::TenantId};

/// How long a cached principal is used unless the CRM is built with another TTL
/// ([`crate::CrmBuilder::principal_cache`]): also the longest a revocation made by
/// another server takes to reach this one.
pub const DEFAULT_PRINCIPAL_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// How many principals are kept at most, unless the CRM is built with another bound.
pub const DEFAULT_PRINCIPAL_CAPACITY: usize = 10_000;

/// What a principal was authenticated by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Credential {
    /// A session of a tenant (the access token's `sid`).
    Session(TenantId, Uuid),
    /// An API key, by the digest of the whole token (so a wrong secret never matches).
    ApiKey(String),
}

#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    until: DateTime<Utc>,
}

/// A bounded map from credentials to the principals they authenticated.
#[derive(Debug)]
pub(crate) struct PrincipalCache {
    ttl: chrono::Duration,
    capacity: usize,
    generation: AtomicU64,
    entries: Mutex<HashMap<Credential, Entry>>,
}

impl PrincipalCache {
    /// A cache keeping at most `capacity` principals for `ttl` each; a zero TTL or
    /// capacity keeps none.
    pub(crate) fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        Self {
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            capacity,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        self.capacity > 0 && self.ttl > chrono::Duration::zero()
    }

    /// The principal `credential` authenticated, if read less than the TTL ago.
    pub(crate) fn get(&self, credential: &Credential, now: DateTime<Utc>) -> Option<Principal> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(credential).filter(|e| now < e.until).map(|e| e.principal.clone())
    }

    /// The generation to offer a read under: take it before reading the storage.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `principal`, read under `generation`, until the TTL passes or `expires`,
    /// whichever is first; a read older than an invalidation is not kept.
    pub(crate) fn offer(
        &self,
        generation: u64,
        credential: Credential,
        principal: &Principal,
        now: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
    ) {
        if !self.enabled() {
            return;
        }
        let until = expires.map_or(now + self.ttl, |e| e.min(now + self.ttl));
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Checked under the lock: an invalidation raises the generation while holding it.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(credential, Entry { principal: principal.clone(), until });
    }

    /// Drops every principal `matches` selects, and every read in flight.
    pub(crate) fn invalidate(&self, matches: impl Fn(&Principal) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, e| !matches(&e.principal));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;
    use crate::authz::Role;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
    }

    fn principal() -> Principal {
        Principal::new(TenantId(Uuid::from_u128(1)), Uuid::from_u128(2), Role::User, None)
    }

    #[test]
    fn a_read_that_raced_with_an_invalidation_is_not_kept() {
        let cache = PrincipalCache::new(DEFAULT_PRINCIPAL_TTL, 10);
        let key = Credential::ApiKey("k".into());
        let before = cache.generation();
        cache.invalidate(|_| false);
        cache.offer(before, key.clone(), &principal(), now(), None);
        assert!(cache.get(&key, now()).is_none());
        cache.offer(cache.generation(), key.clone(), &principal(), now(), None);
        assert!(cache.get(&key, now()).is_some());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = PrincipalCache::new(DEFAULT_PRINCIPAL_TTL, 3);
        for i in 0..10 {
            cache.offer(cache.generation(), Credential::ApiKey(i.to_string()), &principal(), now(), None);
            assert!(cache.entries.lock().unwrap().len() <= 3);
        }
        assert!(cache.get(&Credential::ApiKey("9".into()), now()).is_some());
    }
}
