//! The store's dictionary of names (format 3): every field name and entity kind that a
//! key or a stored entry mentions is written as a small number instead.
//!
//! The `names` tree maps each name (UTF-8) to its number (a big-endian u16), given in
//! order of first use and never changed or reused, so a number means the same name for
//! as long as the store lives, whatever later builds declare. A commit that uses a name
//! for the first time writes its entry in the same sled transaction as the keys and
//! entries that use it ([`NameIds::pending`]), so no stored number ever lacks its name,
//! even after a crash. Numbers given but not yet written (a failed commit) are written
//! by the next commit that uses them.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, OnceLock, PoisonError, RwLock},
};

use crm_core::storage::StorageError;
use sled::Tree;

use crate::entry::{backend, corrupt};

/// The name of the dictionary's tree.
pub(crate) const NAMES_TREE: &str = "names";

/// A name as `&'static str`: names of records are static already; names read from a
/// store are kept once per process (they are field and kind names: a bounded set).
pub(crate) fn intern_str(name: &str) -> &'static str {
    static KEPT: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut kept = KEPT.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = kept.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    kept.insert(leaked);
    leaked
}

#[derive(Default)]
struct State {
    ids: HashMap<&'static str, (u16, bool)>,
    by_id: Vec<Option<&'static str>>,
}

/// The dictionary of one store, loaded at open.
pub(crate) struct Names {
    tree: Tree,
    state: RwLock<State>,
}

impl Names {
    /// Reads the dictionary of `db` (empty in a new store).
    pub(crate) fn load(db: &sled::Db) -> Result<Self, StorageError> {
        let tree = db.open_tree(NAMES_TREE).map_err(backend)?;
        let mut state = State::default();
        for item in tree.iter() {
            let (key, value) = item.map_err(backend)?;
            let name = std::str::from_utf8(&key).map_err(|_| corrupt("a dictionary name is not UTF-8"))?;
            let id = <[u8; 2]>::try_from(value.as_ref())
                .map(u16::from_be_bytes)
                .map_err(|_| corrupt(format_args!("the number of the name {name:?} is not a u16")))?;
            let name = intern_str(name);
            let slot = usize::from(id);
            if state.by_id.len() <= slot {
                state.by_id.resize(slot + 1, None);
            }
            if state.by_id[slot].is_some() {
                return Err(corrupt(format_args!("two names share the number {id}")));
            }
            state.by_id[slot] = Some(name);
            state.ids.insert(name, (id, true));
        }
        Ok(Self { tree, state: RwLock::new(state) })
    }

    /// The dictionary's tree.
    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The number of a name, if the store has ever used it (for reads: a name without
    /// a number is in no key).
    pub(crate) fn id(&self, name: &str) -> Option<u16> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).ids.get(name).map(|(id, _)| *id)
    }

    /// Decodes names under one read of the dictionary.
    pub(crate) fn reader(&self) -> NameReader<'_> {
        NameReader(self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Starts giving numbers for one write.
    pub(crate) fn writer(&self) -> NameIds<'_> {
        NameIds { names: self, pending: Vec::new() }
    }

    /// Marks names as written, once the transaction holding their entries is applied.
    pub(crate) fn written(&self, pending: &[(&'static str, u16)]) {
        if pending.is_empty() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for (name, _) in pending {
            if let Some(entry) = state.ids.get_mut(name) {
                entry.1 = true;
            }
        }
    }
}

/// Numbers back to names, under one read of the dictionary.
pub(crate) struct NameReader<'a>(std::sync::RwLockReadGuard<'a, State>);

impl NameReader<'_> {
    /// The name of a number; a number the dictionary lacks is corruption.
    pub(crate) fn name(&self, id: u16) -> Result<&'static str, StorageError> {
        self.0
            .by_id
            .get(usize::from(id))
            .copied()
            .flatten()
            .ok_or_else(|| corrupt(format_args!("the name number {id} is not in the dictionary")))
    }
}

/// The numbers of the names one write uses, with the dictionary entries it must write.
pub(crate) struct NameIds<'a> {
    names: &'a Names,
    /// Names this write must add to the `names` tree (in its transaction).
    pub(crate) pending: Vec<(&'static str, u16)>,
}

impl NameIds<'_> {
    /// The number of `name`, given now if it has none.
    pub(crate) fn id(&mut self, name: &'static str) -> Result<u16, StorageError> {
        {
            let state = self.names.state.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(&(id, written)) = state.ids.get(name) {
                if !written && !self.pending.iter().any(|(n, _)| *n == name) {
                    self.pending.push((name, id));
                }
                return Ok(id);
            }
        }
        let mut state = self.names.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&(id, written)) = state.ids.get(name) {
            if !written && !self.pending.iter().any(|(n, _)| *n == name) {
                self.pending.push((name, id));
            }
            return Ok(id);
        }
        let id = u16::try_from(state.by_id.len())
            .map_err(|_| StorageError::Invalid("the store's dictionary of field names is full".into()))?;
        state.by_id.push(Some(name));
        state.ids.insert(name, (id, false));
        self.pending.push((name, id));
        Ok(id)
    }

    /// The dictionary entries to write: `name` → big-endian number.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        self.pending.iter().map(|(name, id)| (name.as_bytes().to_vec(), id.to_be_bytes().to_vec()))
    }
}
