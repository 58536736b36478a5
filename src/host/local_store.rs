//! The native module's replay store: Envoy's shared data as a dynamic
//! module has none, so a map with compare-and-swap tokens shared by every
//! worker of the process. No fault knobs: test doubles wrap it
//! (`host::testing::FaultyStore`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{HostError, SharedStore, StoreError};

/// Values with their CAS tokens.
type Entries = HashMap<String, (Vec<u8>, u32)>;

#[derive(Debug, Clone, Default)]
pub struct LocalStore {
    entries: Arc<Mutex<Entries>>,
}

impl LocalStore {
    pub(super) fn entries(&self) -> MutexGuard<'_, Entries> {
        // A worker that panicked while holding the lock (caught at the hook)
        // leaves data that is still consistent: every write is one insert.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

impl SharedStore for LocalStore {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        Ok(match self.entries().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut map = self.entries();
        let current = map.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Err(StoreError::CasMismatch);
        }
        map.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(())
    }
}
