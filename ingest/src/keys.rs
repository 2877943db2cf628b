//! Ingest keys: each POS (or back-office tool) authenticates with a key
//! bound to the store(s) it may send events for.
//!
//! Keys are configured by their SHA-256 (hex), never in clear: a key is a
//! long random secret, so a fast hash is enough to make a leaked config file
//! useless (`storepulse keys hash` prints the hash of a new key). A key bound
//! to `"*"` may send for every store (head office tools, the simulator).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use storepulse_core::{StoreIdx, StoreMaster};

/// One configured key (`[[ingest.keys]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs and metrics (e.g. `pos-km-001`). Not secret.
    pub name: String,
    /// Lower-case hex SHA-256 of the key (`storepulse keys hash KEY`).
    pub sha256: String,
    /// Store ids this key may send events for; `["*"]` for all stores.
    pub stores: Vec<String>,
}

/// Which stores a key may send for.
#[derive(Debug, Clone)]
pub enum StoreScope {
    All,
    Only(HashSet<StoreIdx>),
}

impl StoreScope {
    /// Whether the scope includes a store.
    pub fn allows(&self, store: StoreIdx) -> bool {
        match self {
            StoreScope::All => true,
            StoreScope::Only(set) => set.contains(&store),
        }
    }
}

/// An authenticated key.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub name: String,
    pub scope: StoreScope,
}

/// The keys, by hash.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    by_hash: HashMap<String, KeyGrant>,
}

/// Lower-case hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

impl KeyTable {
    /// Builds the table, checking every key against the store master.
    ///
    /// # Errors
    /// A message naming the key and the field (`ingest.keys[2].stores: unknown store "XX-1"`).
    pub fn build(keys: &[KeyConfig], stores: &StoreMaster) -> Result<Self, String> {
        let mut by_hash = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let hash = key.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "ingest.keys[{i}].sha256: must be 64 hex characters (SHA-256)"
                ));
            }
            if key.stores.is_empty() {
                return Err(format!(
                    "ingest.keys[{i}].stores: must name at least one store, or \"*\""
                ));
            }
            let scope = if key.stores.iter().any(|s| s == "*") {
                StoreScope::All
            } else {
                let mut set = HashSet::new();
                for s in &key.stores {
                    let idx = stores
                        .lookup(s)
                        .ok_or_else(|| format!("ingest.keys[{i}].stores: unknown store {s:?}"))?;
                    set.insert(idx);
                }
                StoreScope::Only(set)
            };
            if by_hash
                .insert(
                    hash,
                    KeyGrant {
                        name: key.name.clone(),
                        scope,
                    },
                )
                .is_some()
            {
                return Err(format!(
                    "ingest.keys[{i}].sha256: the same key is configured twice"
                ));
            }
        }
        Ok(Self { by_hash })
    }

    /// The grant of a presented key, if it is configured.
    pub fn authenticate(&self, presented: &str) -> Option<&KeyGrant> {
        self.by_hash.get(&hash_key(presented))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no key is configured (then nobody can ingest over HTTP).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn stores() -> StoreMaster {
        StoreMaster::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv"))
            .unwrap()
    }

    #[test]
    fn keys_are_matched_by_hash_and_scoped() {
        let s = stores();
        let table = KeyTable::build(
            &[KeyConfig {
                name: "pos".into(),
                sha256: hash_key("secret-1"),
                stores: vec!["KM-001".into()],
            }],
            &s,
        )
        .unwrap();
        let grant = table.authenticate("secret-1").unwrap();
        assert!(grant.scope.allows(s.lookup("KM-001").unwrap()));
        assert!(!grant.scope.allows(s.lookup("KM-002").unwrap()));
        assert!(table.authenticate("secret-2").is_none());
    }

    #[test]
    fn unknown_store_in_a_key_names_the_field() {
        let err = KeyTable::build(
            &[KeyConfig {
                name: "pos".into(),
                sha256: hash_key("k"),
                stores: vec!["XX-1".into()],
            }],
            &stores(),
        )
        .unwrap_err();
        assert_eq!(err, "ingest.keys[0].stores: unknown store \"XX-1\"");
    }
}
