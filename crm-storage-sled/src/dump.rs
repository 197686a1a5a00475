//! Export and import of a whole store as JSON lines: a portable file another storage
//! (PostgreSQL) can load.

use std::io::{self, BufRead, Write};

use crm_core::{
    TenantId,
    storage::{Document, EntityKind, FieldValue, OutboxEvent, StorageError},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    commit::{TreeRef, Writes},
    entry::{self, Entry, IndexData, backend, corrupt},
    keys::{self, IMPORTING_KEY},
    names::intern_str,
    shared::{Shared, decode_counter},
    store::SledStorage,
};

/// The `format` of a dump's header line.
pub const DUMP_FORMAT: &str = "crm-rs-dump";
const DUMP_VERSION: u32 = 1;
/// Records written per transaction while importing.
const IMPORT_CHUNK: usize = 1_000;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header { format: String, version: u32 },
    Record(RecordLine),
    Counter { tenant: TenantId, key: String, value: u64 },
    Outbox(OutboxEvent),
}

#[derive(Serialize, Deserialize)]
struct RecordLine {
    tenant: TenantId,
    kind: EntityKind,
    id: Uuid,
    version: u64,
    data: serde_json::Value,
    #[serde(flatten)]
    index: IndexLine,
}

/// A record's index data in the dump: names in full.
#[derive(Serialize, Deserialize)]
struct IndexLine {
    fields: Vec<(String, FieldValue)>,
    uniques: Vec<(String, String)>,
    references: Vec<(String, EntityKind, Uuid)>,
}

impl From<IndexData> for IndexLine {
    fn from(index: IndexData) -> Self {
        Self {
            fields: index.fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            uniques: index.uniques.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            references: index.references.into_iter().map(|(n, k, id)| (n.to_owned(), k, id)).collect(),
        }
    }
}

impl From<IndexLine> for IndexData {
    fn from(index: IndexLine) -> Self {
        Self {
            fields: index.fields.into_iter().map(|(n, v)| (intern_str(&n), v)).collect(),
            uniques: index.uniques.into_iter().map(|(n, v)| (intern_str(&n), v)).collect(),
            references: index.references.into_iter().map(|(n, k, id)| (intern_str(&n), k, id)).collect(),
        }
    }
}

/// What an export wrote or an import read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Records.
    pub records: u64,
    /// Counters.
    pub counters: u64,
    /// Unacknowledged outbox events.
    pub events: u64,
}

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Reading or writing the file failed.
    #[error("dump file: {0}")]
    Io(#[from] io::Error),
    /// A line is not a dump line.
    #[error("dump line {line}: {message}")]
    Parse {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file is not a dump, or one of another version.
    #[error("not a {DUMP_FORMAT} version {DUMP_VERSION} file: {0}")]
    Format(String),
    /// Imports only go into an empty store.
    #[error("the store already holds data; import into an empty store")]
    NotEmpty,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl SledStorage {
    /// Writes every record, counter and pending outbox event as JSON lines. Commits and
    /// outbox acknowledgements wait while it runs, so the dump is one consistent state;
    /// listings and reads go on. It blocks the calling thread until the whole store is
    /// written: from async code, call it on a blocking thread
    /// ([`tokio::task::spawn_blocking`]).
    ///
    /// The first line is `{"header":{"format":"crm-rs-dump","version":1}}`; every other line
    /// is one of
    /// - `{"record":{"tenant":…,"kind":…,"id":…,"version":…,"data":{…},"fields":[[name,value],…],"uniques":[[field,value],…],"references":[[field,kind,id],…]}}`
    ///   (the document plus what the adapter indexes and enforces for it, values in
    ///   [`crm_core::storage::FieldValue`]'s tagged JSON form),
    /// - `{"counter":{"tenant":…,"key":…,"value":…}}`,
    /// - `{"outbox":{…}}` (an [`crm_core::storage::OutboxEvent`] not yet acknowledged).
    pub fn export(&self, out: impl Write) -> Result<DumpStats, DumpError> {
        let shared = self.shared();
        shared.locks.export(|| export_blocking(shared, out))
    }

    /// Loads a dump made by [`SledStorage::export`] into this store, which must be empty,
    /// and flushes it to disk. Reading `input` and writing the store run on tokio's
    /// blocking pool. A failed import leaves the store empty again; a crash during one
    /// leaves it marked, and opening it then says so.
    pub async fn import(&self, input: impl BufRead + Send + 'static) -> Result<DumpStats, DumpError> {
        self.on_blocking_pool(mark_importing_blocking).await?;
        self.flush().await?;
        let stats = self.on_blocking_pool(move |shared| load_or_wipe_blocking(shared, input)).await?;
        self.flush().await?;
        Ok(stats)
    }
}

fn export_blocking(shared: &Shared, out: impl Write) -> Result<DumpStats, DumpError> {
    let mut out = io::BufWriter::new(out);
    let mut stats = DumpStats::default();
    write_line(&mut out, &Line::Header { format: DUMP_FORMAT.into(), version: DUMP_VERSION })?;
    for &kind in EntityKind::ALL {
        for item in shared.kind(kind)?.records.iter() {
            let (key, value) = item.map_err(backend)?;
            let (tenant, id) = split_tenant(&key)
                .and_then(|(t, rest)| Some((t, Uuid::from_slice(rest).ok()?)))
                .ok_or_else(|| corrupt(format_args!("a {kind} record key is not tenant ‖ id")))?;
            let entry = Entry::parse(&value)?;
            let index = entry.index(&shared.names.reader())?.into();
            let record = RecordLine { tenant, kind, id, version: entry.version, data: entry.data()?.to_value(), index };
            write_line(&mut out, &Line::Record(record))?;
            stats.records += 1;
        }
    }
    for item in shared.counters.iter() {
        let (key, value) = item.map_err(backend)?;
        let (tenant, name) = split_tenant(&key).ok_or_else(|| corrupt("a counter key without a tenant"))?;
        let key = String::from_utf8(name.to_vec()).map_err(|_| corrupt("a counter name is not UTF-8"))?;
        let value = decode_counter(&key, &value)?;
        write_line(&mut out, &Line::Counter { tenant, key, value })?;
        stats.counters += 1;
    }
    for item in shared.outbox.iter() {
        let (_, value) = item.map_err(backend)?;
        let event: OutboxEvent = serde_json::from_slice(&value).map_err(backend)?;
        write_line(&mut out, &Line::Outbox(event))?;
        stats.events += 1;
    }
    out.flush()?;
    Ok(stats)
}

/// Refuses a store that holds data; marks an empty one as being imported into.
fn mark_importing_blocking(shared: &Shared) -> Result<(), DumpError> {
    shared.locks.import(|| {
        let mut trees = EntityKind::ALL.iter().map(|&kind| shared.kind(kind).map(|trees| &trees.records));
        let records_empty = trees.try_fold(true, |empty, tree| Ok::<_, StorageError>(empty && tree?.is_empty()))?;
        if !records_empty || !shared.counters.is_empty() || !shared.outbox.is_empty() || !shared.acked.is_empty() {
            return Err(DumpError::NotEmpty);
        }
        shared.meta.insert(IMPORTING_KEY, &[]).map_err(backend)?;
        Ok(())
    })
}

/// Loads the dump and removes the import marker; on failure, removes everything loaded.
fn load_or_wipe_blocking(shared: &Shared, input: impl BufRead) -> Result<DumpStats, DumpError> {
    shared.locks.import(|| match load(shared, input) {
        Ok(stats) => {
            shared.meta.remove(IMPORTING_KEY).map_err(backend)?;
            Ok(stats)
        }
        Err(e) => {
            wipe(shared)?;
            Err(e)
        }
    })
}

fn load(shared: &Shared, input: impl BufRead) -> Result<DumpStats, DumpError> {
    let mut stats = DumpStats::default();
    let mut writes = Writes::new(shared);
    let mut pending = 0;
    let mut saw_header = false;
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        let number = number + 1;
        let parsed: Line =
            serde_json::from_str(&line).map_err(|e| DumpError::Parse { line: number, message: e.to_string() })?;
        match parsed {
            Line::Header { format, version } if number == 1 => {
                if format != DUMP_FORMAT || version != DUMP_VERSION {
                    return Err(DumpError::Format(format!("its header says {format} version {version}")));
                }
                saw_header = true;
                continue;
            }
            _ if number == 1 => return Err(DumpError::Format("the first line is not a header".into())),
            Line::Header { .. } => {
                return Err(DumpError::Parse { line: number, message: "a second header".into() });
            }
            Line::Record(r) => {
                let document = Document::from(&r.data);
                writes.record_entry(
                    r.tenant,
                    r.kind,
                    r.id,
                    r.version,
                    entry::document_bytes(&document),
                    &r.index.into(),
                )?;
                stats.records += 1;
            }
            Line::Counter { tenant, key, value } => {
                writes.put(TreeRef::Counters, keys::counter_key(tenant, &key), value.to_be_bytes().to_vec());
                stats.counters += 1;
            }
            Line::Outbox(event) => {
                let value = serde_json::to_vec(&event).map_err(backend)?;
                writes.put(TreeRef::Outbox, event.id.as_bytes().to_vec(), value);
                stats.events += 1;
            }
        }
        pending += 1;
        if pending == IMPORT_CHUNK {
            std::mem::replace(&mut writes, Writes::new(shared)).apply(shared)?;
            pending = 0;
        }
    }
    if !saw_header {
        return Err(DumpError::Format("the file is empty".into()));
    }
    writes.apply(shared)?;
    Ok(stats)
}

/// Removes everything an interrupted import wrote, and its marker.
fn wipe(shared: &Shared) -> Result<(), StorageError> {
    for &kind in EntityKind::ALL {
        let trees = shared.kind(kind)?;
        for tree in [&trees.records, &trees.index, &trees.uniques, &trees.sorted] {
            tree.clear().map_err(backend)?;
        }
    }
    for tree in [&shared.references, &shared.counters, &shared.outbox, &shared.acked, &shared.stream] {
        tree.clear().map_err(backend)?;
    }
    shared.meta.remove(IMPORTING_KEY).map_err(backend)?;
    Ok(())
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), DumpError> {
    serde_json::to_writer(&mut *out, line).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn split_tenant(key: &[u8]) -> Option<(TenantId, &[u8])> {
    let tenant = Uuid::from_slice(key.get(..16)?).ok()?;
    Some((TenantId(tenant), &key[16..]))
}
