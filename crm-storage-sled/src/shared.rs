//! What every handle on one data directory shares: the `Db`, its trees, the flushing
//! thread and the locks; and the reads of single keys on them.
//!
//! It is one value per directory and process ([`crate::open`] keeps the registry), so
//! two handles opened on the same directory also share the locks that serialize commits.
//! The `*_blocking` methods call sled and may wait for the disk: they are synchronous
//! halves that [`crate::store`] runs on tokio's blocking pool. `get_many` reads its
//! records one by one, without a lock: each is whole, but a commit may land between two.

use std::{collections::HashMap, num::NonZeroUsize, path::PathBuf, sync::Arc};

use crm_core::{
    TenantId,
    storage::{EntityKind, StorageError, StoredRecord},
};
use sled::{IVec, Tree};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    entry::{Entry, backend, corrupt},
    flusher::Flusher,
    keys,
    locks::Locks,
    names::Names,
};

/// The trees of one entity kind. Field names in keys are their numbers in the store's
/// dictionary ([`crate::names`]).
pub(crate) struct KindTrees {
    /// `tenant ‖ id` → the record's entry ([`crate::entry`]).
    pub(crate) records: Tree,
    /// `tenant ‖ field ‖ value ‖ id` → nothing, one key per indexed field of a record
    /// ([`keys::is_indexed`]).
    pub(crate) index: Tree,
    /// `tenant ‖ field ‖ value` → the id of the record holding the unique key.
    pub(crate) uniques: Tree,
    /// `tenant ‖ filter ‖ value ‖ sort ‖ value ‖ id` → nothing, one key per
    /// [`keys::sorted_pairs`] pair of a record: a filtered listing's sorted walk.
    pub(crate) sorted: Tree,
}

/// The names of a kind's trees in format 3: records, index, uniques, sorted.
pub(crate) fn kind_tree_names(kind: EntityKind) -> [String; 4] {
    [format!("r/{kind}"), format!("i/{kind}"), format!("u/{kind}"), format!("s/{kind}")]
}

/// The references tree's name in format 3.
pub(crate) const REFERENCES_TREE: &str = "refs";

impl KindTrees {
    /// Opens (or creates) the format 3 trees of `kind`.
    pub(crate) fn open(db: &sled::Db, kind: EntityKind) -> sled::Result<Self> {
        let [records, index, uniques, sorted] = kind_tree_names(kind);
        Ok(Self {
            records: db.open_tree(records)?,
            index: db.open_tree(index)?,
            uniques: db.open_tree(uniques)?,
            sorted: db.open_tree(sorted)?,
        })
    }
}

/// One open data directory.
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    /// The data directory; `None` for a temporary store.
    pub(crate) path: Option<PathBuf>,
    kinds: HashMap<EntityKind, KindTrees>,
    /// `tenant ‖ target kind ‖ target id ‖ referrer kind ‖ referrer id` → nothing.
    pub(crate) references: Tree,
    /// `tenant ‖ name` → the counter's value (a big-endian u64).
    pub(crate) counters: Tree,
    /// Event id → the unacknowledged event (JSON).
    pub(crate) outbox: Tree,
    /// Position (a big-endian u64) → an acknowledged event and when (JSON), until pruned.
    pub(crate) acked: Tree,
    /// `tenant ‖ position` → nothing: each tenant's stream of acknowledged events.
    pub(crate) stream: Tree,
    /// The format version and the import marker ([`keys::FORMAT_VERSION_KEY`]).
    pub(crate) meta: Tree,
    /// The dictionary of field and kind names ([`crate::names`]).
    pub(crate) names: Names,
    pub(crate) flusher: Flusher,
    pub(crate) locks: Locks,
    /// One permit per scanning read that may run ([`crate::SledOptions::scan_concurrency`]).
    pub(crate) scans: Arc<Semaphore>,
}

impl Shared {
    /// Opens every tree of `db` and starts its flushing thread.
    pub(crate) fn new(db: sled::Db, path: Option<PathBuf>, scan_concurrency: NonZeroUsize) -> Result<Self, String> {
        let names = Names::load(&db).map_err(|e| e.to_string())?;
        let flusher = Flusher::start(db.clone()).map_err(|e| e.to_string())?;
        Self::open_trees(db, path, scan_concurrency, names, flusher).map_err(|e| e.to_string())
    }

    fn open_trees(
        db: sled::Db,
        path: Option<PathBuf>,
        scan_concurrency: NonZeroUsize,
        names: Names,
        flusher: Flusher,
    ) -> sled::Result<Self> {
        let mut kinds = HashMap::new();
        for &kind in EntityKind::ALL {
            kinds.insert(kind, KindTrees::open(&db, kind)?);
        }
        Ok(Self {
            names,
            references: db.open_tree(REFERENCES_TREE)?,
            counters: db.open_tree("counters")?,
            outbox: db.open_tree("outbox")?,
            acked: db.open_tree("outbox_acked")?,
            stream: db.open_tree("outbox_stream")?,
            meta: db.open_tree("meta")?,
            flusher,
            locks: Locks::default(),
            scans: Arc::new(Semaphore::new(scan_concurrency.get())),
            kinds,
            path,
            db,
        })
    }

    /// The trees of `kind`.
    pub(crate) fn kind(&self, kind: EntityKind) -> Result<&KindTrees, StorageError> {
        self.kinds.get(&kind).ok_or_else(|| StorageError::Invalid(format!("no trees for kind {kind}")))
    }

    /// The stored entry of one record.
    pub(crate) fn entry_blocking(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        id: Uuid,
    ) -> Result<Option<IVec>, StorageError> {
        self.kind(kind)?.records.get(keys::record_key(tenant, id)).map_err(backend)
    }

    /// One record, as the contract hands it out.
    pub(crate) fn get_blocking(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        id: Uuid,
    ) -> Result<Option<StoredRecord>, StorageError> {
        let bytes = self.entry_blocking(tenant, kind, id)?;
        bytes.map(|b| Entry::parse(&b)?.to_stored(kind, id)).transpose()
    }

    /// The records of `ids` that exist, in the order asked.
    pub(crate) fn get_many_blocking(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let mut found = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(record) = self.get_blocking(tenant, kind, id)? {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// A counter's value: 0 if it was never written, an error if it does not decode.
    pub(crate) fn counter_blocking(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        let Some(value) = self.counters.get(keys::counter_key(tenant, key)).map_err(backend)? else {
            return Ok(0);
        };
        decode_counter(key, &value)
    }

    /// Reads one key, so a dead store answers with an error.
    pub(crate) fn ping_blocking(&self) -> Result<(), StorageError> {
        self.meta.get(keys::FORMAT_VERSION_KEY).map(drop).map_err(backend)
    }
}

/// A stored counter value: exactly 8 bytes, big-endian.
pub(crate) fn decode_counter(key: &str, value: &[u8]) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(format_args!("counter {key:?} holds {} bytes, not an 8-byte number", value.len())))
}
