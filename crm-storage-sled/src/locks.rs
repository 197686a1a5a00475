//! Who waits for whom: the commits of one tenant run one at a time, a listing of a
//! tenant never sees half of one of its commits, and tenants never wait for each other.
//!
//! Why a tenant's commits are serialized: a commit reads committed state (for
//! [`crm_core::storage::check_batch`]: versions, the holders of unique keys, the counters
//! it advances, the referrers of what it deletes) and then writes. Those reads are plain
//! sled reads, outside the sled transaction that writes, so sled does not notice when
//! another commit changes them in between. If one could, two commits would both pass the
//! check and both apply: a lost update, a unique key held twice, a counter (an invoice
//! number) handed out twice, a record deleted while still referenced. The tenant's lock,
//! held exclusively from the check to the end of the apply, rules that out.
//!
//! Why listings and aggregates hold it shared: they read a kind's index entries and
//! records in many sled calls; a commit applied between two of them would show half of
//! itself (an index entry whose record no longer matches, a total that disagrees with
//! the rows). Listing plans rely on this: under a lone equality the index entry is taken
//! as proof of the match.
//!
//! Why one lock per tenant suffices: every key a commit reads or writes starts with its
//! tenant (records, index, uniques, references, counters). The only other keys are
//! outbox events, written under fresh ids that no check reads. Commits of different
//! tenants touch disjoint state, so no order between them is needed, and sled applies
//! each transaction atomically with respect to every read.
//!
//! Two store-wide gates remain, for work on the whole store. An export must see no
//! commit and no outbox acknowledgement of any tenant; an import must see nothing at
//! all. Commits and acknowledgements hold `writes` shared, listings hold `reads` shared;
//! an export takes `writes` exclusively (listings go on), an import both. Locks are
//! always taken in the order `writes`, `reads`, one tenant's (or `acks`, which outbox
//! acknowledgements hold alone so positions are given in order); nothing holds two tenants'.
//!
//! These are blocking locks: they are only ever taken on tokio's blocking pool (see
//! [`crate::store`]), never on a runtime worker.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use crm_core::TenantId;

/// Below this many tenants the map of tenant locks is never pruned.
const PRUNE_FLOOR: usize = 64;

type TenantLock = Arc<RwLock<()>>;

/// The locks of one data directory (shared by every handle on it).
#[derive(Default)]
pub(crate) struct Locks {
    /// Held shared by commits and outbox acknowledgements; exclusively by export and import.
    writes: RwLock<()>,
    /// Held shared by listings and aggregates; exclusively by import.
    reads: RwLock<()>,
    /// Held by every outbox acknowledgement and prune: positions are given one ack at a time.
    acks: Mutex<()>,
    tenants: Mutex<TenantLocks>,
}

/// The lock of every tenant in use; a lock nobody holds is dropped once the map doubles.
#[derive(Default)]
struct TenantLocks {
    by_tenant: HashMap<TenantId, TenantLock>,
    prune_at: usize,
}

impl Locks {
    /// Runs a commit's check and apply with no other commit or listing of `tenant`, and
    /// no export or import, at the same time.
    pub(crate) fn commit<T>(&self, tenant: TenantId, check_and_apply: impl FnOnce() -> T) -> T {
        let _writes = self.writes.read().unwrap_or_else(PoisonError::into_inner);
        let lock = self.tenant(tenant);
        let _tenant = lock.write().unwrap_or_else(PoisonError::into_inner);
        check_and_apply()
    }

    /// Runs a multi-call read of `tenant` (a listing, an aggregate) between its commits.
    pub(crate) fn read<T>(&self, tenant: TenantId, read: impl FnOnce() -> T) -> T {
        let _reads = self.reads.read().unwrap_or_else(PoisonError::into_inner);
        let lock = self.tenant(tenant);
        let _tenant = lock.read().unwrap_or_else(PoisonError::into_inner);
        read()
    }

    /// Runs an outbox acknowledgement (or prune) alone, outside any export or import.
    pub(crate) fn outbox_ack<T>(&self, ack: impl FnOnce() -> T) -> T {
        let _writes = self.writes.read().unwrap_or_else(PoisonError::into_inner);
        let _acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        ack()
    }

    /// Runs an export with no commit or acknowledgement at the same time; listings go on.
    pub(crate) fn export<T>(&self, export: impl FnOnce() -> T) -> T {
        let _writes = self.writes.write().unwrap_or_else(PoisonError::into_inner);
        export()
    }

    /// Runs a step of an import with nothing else at the same time.
    pub(crate) fn import<T>(&self, import: impl FnOnce() -> T) -> T {
        let _writes = self.writes.write().unwrap_or_else(PoisonError::into_inner);
        let _reads = self.reads.write().unwrap_or_else(PoisonError::into_inner);
        import()
    }

    /// The lock of one tenant. Clones are handed out only under the map's mutex, so a
    /// lock whose only holder is the map is held by nobody and can go.
    fn tenant(&self, tenant: TenantId) -> TenantLock {
        let mut locks = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.by_tenant.len() >= locks.prune_at {
            locks.by_tenant.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.prune_at = (2 * locks.by_tenant.len()).max(PRUNE_FLOOR);
        }
        Arc::clone(locks.by_tenant.entry(tenant).or_default())
    }

    #[cfg(test)]
    fn tenants_tracked(&self) -> usize {
        self.tenants.lock().unwrap_or_else(PoisonError::into_inner).by_tenant.len()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Barrier, mpsc},
        thread,
        time::Duration,
    };

    use uuid::Uuid;

    use super::*;

    fn tenant(n: u128) -> TenantId {
        TenantId(Uuid::from_u128(n))
    }

    /// Holds `tenant`'s commit lock on another thread until the returned sender is used.
    fn hold_commit(locks: &Arc<Locks>, tenant: TenantId) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
        let (release, released) = mpsc::channel::<()>();
        let started = Arc::new(Barrier::new(2));
        let (locks, inside) = (Arc::clone(locks), Arc::clone(&started));
        let holder = thread::spawn(move || {
            locks.commit(tenant, || {
                inside.wait();
                released.recv().expect("the test releases the lock");
            });
        });
        started.wait();
        (release, holder)
    }

    #[test]
    fn other_tenants_do_not_wait_for_a_commit() {
        let locks = Arc::new(Locks::default());
        let (release, holder) = hold_commit(&locks, tenant(1));
        // Would block forever if the lock were shared by every tenant.
        locks.read(tenant(2), || ());
        locks.commit(tenant(2), || ());
        release.send(()).expect("holder alive");
        holder.join().expect("holder finished");
    }

    #[test]
    fn a_tenants_listing_waits_for_its_commit() {
        let locks = Arc::new(Locks::default());
        let (release, holder) = hold_commit(&locks, tenant(1));
        let (done, finished) = mpsc::channel();
        let reader = {
            let locks = Arc::clone(&locks);
            thread::spawn(move || locks.read(tenant(1), || done.send(()).expect("test alive")))
        };
        assert!(finished.recv_timeout(Duration::from_millis(100)).is_err(), "the listing ran inside the commit");
        release.send(()).expect("holder alive");
        finished.recv_timeout(Duration::from_secs(5)).expect("the listing runs once the commit is done");
        holder.join().expect("holder finished");
        reader.join().expect("reader finished");
    }

    #[test]
    fn an_export_waits_for_commits_of_every_tenant() {
        let locks = Arc::new(Locks::default());
        let (release, holder) = hold_commit(&locks, tenant(7));
        let (done, finished) = mpsc::channel();
        let exporter = {
            let locks = Arc::clone(&locks);
            thread::spawn(move || locks.export(|| done.send(()).expect("test alive")))
        };
        assert!(finished.recv_timeout(Duration::from_millis(100)).is_err(), "the export ran inside a commit");
        release.send(()).expect("holder alive");
        finished.recv_timeout(Duration::from_secs(5)).expect("the export runs once the commit is done");
        holder.join().expect("holder finished");
        exporter.join().expect("exporter finished");
    }

    #[test]
    fn locks_nobody_holds_are_pruned() {
        let locks = Locks::default();
        for n in 0..10 * PRUNE_FLOOR as u128 {
            locks.commit(tenant(n), || ());
        }
        assert!(locks.tenants_tracked() <= PRUNE_FLOOR, "{} tenant locks kept", locks.tenants_tracked());
    }
}
