//! The fraud rules file and its hot reload.
//!
//! The rules in force live in one TOML file (`[fraud] rules_file`, default
//! `fraud-rules.toml`), a list of `[[rule]]` tables (see
//! `storepulse_processors::fraud::rules` for the fields). A missing file
//! means RULES.md's defaults.
//!
//! Two ways change the rules, both without a restart and both for the
//! events that follow (the driver applies a batch under the fraud lock, so
//! a change lands between batches):
//! - the risk team edits the file: [`RulesHandle::watch`] polls it (content
//!   hash, every `reload_interval_secs`) and installs a valid new set; an
//!   invalid file is refused with the reason logged and returned to the
//!   caller's callback, and the old rules stay in force;
//! - `PUT /v1/rules/{name}` / `DELETE`: [`RulesHandle::put`] validates
//!   the new set, writes the file atomically (tmp, fsync, rename), then
//!   installs it, so the file always says what runs.
//!
//! In Kafka mode a [`RulesPublisher`] ([`RulesHandle::with_publisher`])
//! also publishes every set installed here to the rules topic, which the
//! processors and the other `serve` instances follow.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use storepulse_core::StoreMaster;
use storepulse_processors::fraud::{RuleSet, RuleSpec};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xxhash_rust::xxh3::xxh3_64;

use crate::shared::Shared;

pub use storepulse_processors::fraud::rules::{parse, render, RulesFile};

/// Reads a rules file: `Ok(None)` when it does not exist.
///
/// # Errors
/// Unreadable, or invalid (the message says where).
pub fn read(path: &Path, stores: &StoreMaster) -> Result<Option<(RuleSet, u64)>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, stores)
            .map(|set| Some((set, xxh3_64(text.as_bytes()))))
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes a rule set to `path` atomically; returns the content hash.
///
/// # Errors
/// I/O failures (the old file stays).
pub fn write(path: &Path, rules: &RuleSet) -> Result<u64, String> {
    let text = render(rules)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(xxh3_64(text.as_bytes()))
}

/// A change of the rules, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesChange {
    /// A valid new set is in force (`by`: `file` or the API key's name).
    Installed { by: String, rules: Vec<RuleSpec> },
    /// The file changed but is invalid; the old rules stay.
    Refused { reason: String },
}

/// Publishes a rule set where the other processes follow it (Kafka mode);
/// resolves once it is durable there.
pub type RulesPublisher = Arc<
    dyn Fn(
            Vec<RuleSpec>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// The rules in force and the file behind them.
#[derive(Clone)]
pub struct RulesHandle {
    path: PathBuf,
    /// Where installed sets are published (Kafka mode).
    publish: Option<RulesPublisher>,
    stores: Arc<StoreMaster>,
    shared: Arc<Shared>,
    /// Hash of the file content last installed or refused.
    seen: Arc<Mutex<u64>>,
    /// Serialises writers (API and watcher).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for RulesHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesHandle")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RulesHandle {
    /// Loads the rules at start: the file, or the defaults when it is
    /// missing.
    ///
    /// # Errors
    /// An invalid file stops the start (the message names the rule and
    /// field).
    pub fn load(path: &Path, stores: &Arc<StoreMaster>) -> Result<(RuleSet, u64), String> {
        match read(path, stores)? {
            Some(found) => Ok(found),
            None => Ok((RuleSet::defaults(stores)?, 0)),
        }
    }

    /// A handle over the rules already installed in `shared`.
    pub fn new(path: PathBuf, stores: Arc<StoreMaster>, shared: Arc<Shared>, hash: u64) -> Self {
        Self {
            path,
            publish: None,
            stores,
            shared,
            seen: Arc::new(Mutex::new(hash)),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Publishes every set installed from now on (Kafka mode).
    #[must_use]
    pub fn with_publisher(mut self, publish: RulesPublisher) -> Self {
        self.publish = Some(publish);
        self
    }

    /// Publishes `rules` if this handle has a publisher.
    async fn publish(&self, rules: &RuleSet) -> Result<(), String> {
        match &self.publish {
            Some(publish) => publish(rules.specs()).await,
            None => Ok(()),
        }
    }

    /// The rules in force.
    pub fn current(&self) -> RuleSet {
        self.shared
            .fraud()
            .as_ref()
            .map_or_else(RuleSet::empty, |f| f.rules().clone())
    }

    fn install(&self, rules: RuleSet, hash: u64) {
        if let Some(f) = self.shared.fraud_mut().as_mut() {
            f.set_rules(rules);
        }
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hash;
    }

    /// Adds or replaces one rule: validated, written to the file, then in
    /// force for the events that follow.
    ///
    /// # Errors
    /// An invalid rule (the old rules stay) or a file that cannot be
    /// written (then nothing changed).
    pub async fn put(&self, spec: RuleSpec) -> Result<RuleSet, String> {
        let _guard = self.write_lock.lock().await;
        let next = self.current().with_rule(spec, &self.stores)?;
        self.write_and_install(next).await
    }

    /// Removes one rule; `Ok(None)` when there is no such rule.
    ///
    /// # Errors
    /// The file cannot be written (then nothing changed).
    pub async fn delete(&self, name: &str) -> Result<Option<RuleSet>, String> {
        let _guard = self.write_lock.lock().await;
        match self.current().without_rule(name) {
            Some(next) => self.write_and_install(next).await.map(Some),
            None => Ok(None),
        }
    }

    async fn write_and_install(&self, next: RuleSet) -> Result<RuleSet, String> {
        let path = self.path.clone();
        let to_write = next.clone();
        let hash = tokio::task::spawn_blocking(move || write(&path, &to_write))
            .await
            .map_err(|e| e.to_string())??;
        self.publish(&next)
            .await
            .map_err(|e| format!("written to the rules file but not published: {e}"))?;
        self.install(next.clone(), hash);
        Ok(next)
    }

    /// Re-reads the file; installs it when its content changed and is
    /// valid. `None` when nothing changed.
    pub async fn reload(&self) -> Option<RulesChange> {
        let _guard = self.write_lock.lock().await;
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            // A deleted file is not a change of rules (the defaults would
            // silently replace what the risk team set).
            Err(_) => return None,
        };
        let hash = xxh3_64(text.as_bytes());
        {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == hash {
                return None;
            }
            *seen = hash;
        }
        match parse(&text, &self.stores) {
            Ok(rules) => {
                let specs = rules.specs();
                if let Err(e) = self.publish(&rules).await {
                    warn!(path = %self.path.display(), error = %e, "fraud rules file changed but not published; retried at the next change");
                    // Not marked seen: the next poll tries again.
                    *self
                        .seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = 0;
                    return None;
                }
                self.install(rules, hash);
                info!(path = %self.path.display(), rules = specs.len(), "fraud rules reloaded");
                Some(RulesChange::Installed {
                    by: "file".into(),
                    rules: specs,
                })
            }
            Err(reason) => {
                warn!(path = %self.path.display(), %reason, "fraud rules file refused; the old rules stay in force");
                Some(RulesChange::Refused { reason })
            }
        }
    }

    /// Polls the file every `interval` until `shutdown`, calling
    /// `on_change` for each change (to audit it).
    pub async fn watch(
        self,
        interval: Duration,
        shutdown: CancellationToken,
        on_change: impl Fn(RulesChange) + Send + 'static,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Some(change) = self.reload().await {
                on_change(change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storepulse_processors::fraud::{FraudConfig, FraudProcessor};
    use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};

    fn stores() -> Arc<StoreMaster> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        Arc::new(StoreMaster::load(&path).expect("stores"))
    }

    fn shared(stores: &Arc<StoreMaster>, rules: RuleSet) -> Arc<Shared> {
        let inventory = InventoryProcessor::new(InventoryConfig::default(), stores.clone());
        let fraud = FraudProcessor::new(FraudConfig::default(), rules, stores.clone());
        Arc::new(
            Shared::new(
                inventory,
                crate::alerts::AlertBook::new(1),
                Default::default(),
            )
            .with_fraud(fraud, crate::review::ReviewQueue::new(10)),
        )
    }

    #[test]
    fn the_defaults_round_trip_through_the_file_format() {
        let stores = stores();
        let defaults = RuleSet::defaults(&stores).expect("defaults");
        let text = render(&defaults).expect("render");
        let back = parse(&text, &stores).expect("parse");
        assert_eq!(back.specs(), defaults.specs());
    }

    #[tokio::test]
    async fn file_edits_are_reloaded_and_bad_ones_refused() {
        let stores = stores();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules.toml");
        let (rules, hash) = RulesHandle::load(&path, &stores).expect("defaults");
        assert_eq!(rules.rules().len(), 4);
        let handle = RulesHandle::new(path.clone(), stores.clone(), shared(&stores, rules), hash);
        assert_eq!(handle.reload().await, None, "no file: nothing to reload");

        let mut lower = RuleSpec::multi_store_large_purchase();
        lower.when.total_cents = 1;
        let set = RuleSet::compile(&[lower], &stores).expect("valid");
        write(&path, &set).expect("write");
        match handle.reload().await {
            Some(RulesChange::Installed { by, rules }) => {
                assert_eq!(by, "file");
                assert_eq!(rules[0].when.total_cents, 1);
            }
            other => panic!("expected an install, got {other:?}"),
        }
        assert_eq!(handle.current().rules().len(), 1);
        assert_eq!(handle.reload().await, None, "unchanged file");

        std::fs::write(&path, "[[rule]]\nname = \"x\"\nkey = \"planet\"\n").expect("write");
        match handle.reload().await {
            Some(RulesChange::Refused { reason }) => assert!(reason.contains("planet"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(handle.current().rules().len(), 1, "old rules stay");
    }

    #[tokio::test]
    async fn put_writes_the_file_and_installs_and_a_bad_rule_changes_nothing() {
        let stores = stores();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules.toml");
        let (rules, hash) = RulesHandle::load(&path, &stores).expect("defaults");
        let handle = RulesHandle::new(path.clone(), stores.clone(), shared(&stores, rules), hash);
        let mut spec = RuleSpec::shared_payment_account();
        spec.window_minutes = 10;
        handle.put(spec).await.expect("valid");
        let (on_disk, _) = read(&path, &stores).expect("valid").expect("written");
        assert_eq!(
            on_disk
                .get("shared_payment_account")
                .map(|r| r.spec.window_minutes),
            Some(10)
        );
        assert_eq!(handle.reload().await, None, "its own write is not a change");
        let mut bad = RuleSpec::shared_payment_account();
        bad.window_minutes = 100_000;
        assert!(handle.put(bad).await.is_err());
        assert_eq!(
            handle
                .current()
                .get("shared_payment_account")
                .map(|r| r.spec.window_minutes),
            Some(10)
        );
        assert!(handle
            .delete("large_single_purchase")
            .await
            .expect("ok")
            .is_some());
        assert!(handle.delete("nope").await.expect("ok").is_none());
        assert_eq!(handle.current().rules().len(), 3);
    }
}
