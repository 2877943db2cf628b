//! [`ClickHouseMart`]: the mart on a ClickHouse server, as a
//! [`MartWriter`] (the sink loop writes through it) and a
//! [`storepulse_mart::query::MartReader`] (`query.rs`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use clickhouse::{Client, Compression};
use storepulse_mart::rows::{EraseAction, Erasure, MartBatch, SourcePos, Table};
use storepulse_mart::write::{MartWriter, StoredPositions};
use storepulse_mart::MartError;

use super::config::ClickHouseConfig;
use super::migrations;
use super::rows::{
    AlertCh, AlertDecisionCh, ChRow, MemberRegistrationCh, PointsCh, RejectedEventCh, ReturnLineCh,
    SaleLineCh, StockChangeCh, StockLevelCh, TagChangeCh,
};
use super::sql::{classify, quote, quote_list};
use crate::error::{Result, SinkError};

/// Most rows sent in one `INSERT`. ClickHouse forms blocks of
/// `max_insert_block_size` rows (1,048,576 by default, also set on every
/// insert) and a table without `PARTITION BY` writes a block as one part,
/// so an insert of at most this many rows is all-or-nothing. Larger tables
/// of a batch are sent in several inserts in position order: a crash
/// leaves a prefix, which "highest stored position" describes exactly.
pub const MAX_INSERT_ROWS: usize = 1_000_000;

/// How often an erasure polls `system.mutations`.
const MUTATION_POLL: Duration = Duration::from_millis(100);

/// The mart on a ClickHouse server.
#[derive(Clone)]
pub struct ClickHouseMart {
    client: Client,
    config: ClickHouseConfig,
}

impl std::fmt::Debug for ClickHouseMart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseMart")
            .field("url", &self.config.url)
            .field("database", &self.config.database)
            .finish_non_exhaustive()
    }
}

impl ClickHouseMart {
    /// Validates the config, creates the database if asked, and applies
    /// the migrations.
    ///
    /// # Errors
    /// [`SinkError::Config`] for a bad config; [`SinkError::Mart`] when the
    /// server is away or refuses; a migration error when the database was
    /// migrated by another version.
    pub async fn connect(config: ClickHouseConfig) -> Result<Self> {
        config.validate()?;
        let base = Self::base_client(&config)?;
        if config.create_database {
            base.query_raw(&format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                config.database
            ))
            .execute()
            .await
            .map_err(|e| SinkError::Mart(classify(&e)))?;
        }
        let client = base.with_database(config.database.clone());
        migrations::apply(&client).await?;
        Ok(Self { client, config })
    }

    fn base_client(config: &ClickHouseConfig) -> Result<Client> {
        let mut c = Client::default()
            .with_url(config.url.clone())
            .with_user(config.user.clone())
            // 18.16 has no RowBinaryWithNamesAndTypes; the row structs are
            // checked against system.columns in a test instead.
            .with_validation(false)
            .with_compression(if config.compression {
                Compression::Lz4
            } else {
                Compression::None
            });
        if let Some(p) = config.resolve_password()? {
            c = c.with_password(p);
        }
        Ok(c)
    }

    /// The client, bound to the mart's database.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The config it was connected with.
    pub fn config(&self) -> &ClickHouseConfig {
        &self.config
    }

    /// Runs `fut` under the query timeout.
    pub(crate) async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = clickhouse::error::Result<T>>,
    ) -> std::result::Result<T, MartError> {
        match tokio::time::timeout(self.config.query_timeout(), fut).await {
            Ok(r) => r.map_err(|e| classify(&e)),
            Err(_) => Err(MartError::Unavailable(format!(
                "no answer within {} ms",
                self.config.query_timeout_ms
            ))),
        }
    }

    /// Runs a statement that returns nothing.
    /// The query id of every insert into this database. One id for all:
    /// an insert of a sink that was killed can still be running on the
    /// server (its data was sent, its answer never read); while it runs,
    /// another insert with the same id is refused (code 216, retried), and
    /// [`MartWriter::stored_positions`] waits for it to end, so positions
    /// are never read before a dead sink's last insert has landed (or
    /// failed). Without this, a restarted sink re-sent rows the dead one's
    /// insert was about to store (found by the SIGKILL test under load).
    pub fn insert_query_id(&self) -> String {
        format!("storepulse-sink-{}", self.config.database)
    }

    /// Waits until no insert of this database is running on the server
    /// (at most the mutation timeout).
    async fn wait_inserts_ended(&self) -> std::result::Result<(), MartError> {
        let deadline = Instant::now() + Duration::from_secs(self.config.mutation_timeout_secs);
        let sql = format!(
            "SELECT count() FROM system.processes WHERE query_id = {}",
            quote(&self.insert_query_id())
        );
        loop {
            let running: u64 = self.timed(self.client.query_raw(&sql).fetch_one()).await?;
            if running == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(MartError::Unavailable(format!(
                    "an earlier insert ({}) still running after {} s",
                    self.insert_query_id(),
                    self.config.mutation_timeout_secs
                )));
            }
            tokio::time::sleep(MUTATION_POLL).await;
        }
    }

    pub(crate) async fn exec(&self, sql: &str) -> std::result::Result<(), MartError> {
        self.timed(self.client.query_raw(sql).execute()).await
    }

    async fn positions_of(
        &self,
        table: Table,
        out: &mut StoredPositions,
    ) -> std::result::Result<(), MartError> {
        // The lexicographic max of (offset, index) per partition: the
        // greatest offset, then the greatest index at that offset.
        let t = table.name();
        let sql = format!(
            "SELECT src_partition, src_offset, max(src_index) FROM {t} \
             WHERE (src_partition, src_offset) IN \
             (SELECT src_partition, max(src_offset) FROM {t} GROUP BY src_partition) \
             GROUP BY src_partition, src_offset"
        );
        let rows: Vec<(u32, u64, u32)> =
            self.timed(self.client.query_raw(&sql).fetch_all()).await?;
        for (partition, offset, index) in rows {
            out.insert(
                (table, partition),
                SourcePos {
                    partition,
                    offset,
                    index,
                },
            );
        }
        Ok(())
    }

    /// Waits until no mutation of `tables` is pending.
    async fn wait_mutations(&self, tables: &[&str]) -> std::result::Result<(), MartError> {
        let deadline = Instant::now() + Duration::from_secs(self.config.mutation_timeout_secs);
        let sql = format!(
            "SELECT count() FROM system.mutations WHERE database = {} AND table IN ({}) AND is_done = 0",
            quote(&self.config.database),
            quote_list(tables)
        );
        loop {
            let pending: u64 = self.timed(self.client.query_raw(&sql).fetch_one()).await?;
            if pending == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(MartError::Unavailable(format!(
                    "{pending} erasure mutations still running after {} s",
                    self.config.mutation_timeout_secs
                )));
            }
            tokio::time::sleep(MUTATION_POLL).await;
        }
    }
}

/// Inserts one table's rows in chunks of at most [`MAX_INSERT_ROWS`].
macro_rules! insert_table {
    ($self:ident, $ty:ident, $rows:expr) => {{
        let rows = &$rows;
        for chunk in rows.chunks(MAX_INSERT_ROWS) {
            let client = &$self.client;
            let timeout = $self.config.query_timeout();
            let run = async move {
                let mut ins = client
                    .insert::<$ty<'_>>(<$ty<'_> as ChRow<'_>>::TABLE)
                    .await?
                    .with_setting("query_id", $self.insert_query_id())
                    .with_setting("max_insert_block_size", "1048576")
                    .with_timeouts(Some(timeout), Some(timeout));
                for r in chunk {
                    ins.write(&$ty::of(r)).await?;
                }
                ins.end().await
            };
            run.await.map_err(|e| classify(&e))?;
        }
    }};
}

#[async_trait]
impl MartWriter for ClickHouseMart {
    async fn stored_positions(&self) -> std::result::Result<StoredPositions, MartError> {
        self.wait_inserts_ended().await?;
        let mut out = StoredPositions::new();
        for table in Table::ALL {
            self.positions_of(table, &mut out).await?;
        }
        Ok(out)
    }

    async fn write(&self, batch: &MartBatch) -> std::result::Result<(), MartError> {
        if !batch.sale_lines.is_empty() {
            insert_table!(self, SaleLineCh, batch.sale_lines);
        }
        if !batch.return_lines.is_empty() {
            insert_table!(self, ReturnLineCh, batch.return_lines);
        }
        if !batch.stock_changes.is_empty() {
            insert_table!(self, StockChangeCh, batch.stock_changes);
        }
        if !batch.stock_levels.is_empty() {
            insert_table!(self, StockLevelCh, batch.stock_levels);
        }
        if !batch.points_ledger.is_empty() {
            insert_table!(self, PointsCh, batch.points_ledger);
        }
        if !batch.member_registrations.is_empty() {
            insert_table!(self, MemberRegistrationCh, batch.member_registrations);
        }
        if !batch.tag_changes.is_empty() {
            insert_table!(self, TagChangeCh, batch.tag_changes);
        }
        if !batch.alerts.is_empty() {
            insert_table!(self, AlertCh, batch.alerts);
        }
        if !batch.alert_decisions.is_empty() {
            insert_table!(self, AlertDecisionCh, batch.alert_decisions);
        }
        if !batch.rejected_events.is_empty() {
            insert_table!(self, RejectedEventCh, batch.rejected_events);
        }
        Ok(())
    }

    async fn erase(&self, erasure: &Erasure) -> std::result::Result<(), MartError> {
        if erasure.member_ids.is_empty() {
            return Ok(());
        }
        let ids = quote_list(&erasure.member_ids);
        let mut touched = Vec::new();
        for table in Table::ALL.into_iter().filter(|t| t.has_member()) {
            let t = table.name();
            let sql = match table.erase_action() {
                Some(EraseAction::Delete) if table == Table::MemberRegistrations => format!(
                    "ALTER TABLE {t} DELETE WHERE member_id IN ({ids}) OR canonical_id IN ({ids})"
                ),
                Some(EraseAction::Delete) => {
                    format!("ALTER TABLE {t} DELETE WHERE member_id IN ({ids})")
                }
                Some(EraseAction::Anonymise) => {
                    format!("ALTER TABLE {t} UPDATE member_id = '' WHERE member_id IN ({ids})")
                }
                None => continue,
            };
            self.exec(&sql).await?;
            touched.push(t);
        }
        self.wait_mutations(&touched).await?;
        tracing::info!(
            event_id = %erasure.event_id,
            tables = touched.len(),
            "clickhouse erasure rewritten"
        );
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "clickhouse"
    }
}
