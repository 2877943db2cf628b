//! StorePulse's member tag predicates as SQL functions, so that SQL engines
//! tag members exactly as the member processor does.
//!
//! Three engines evaluate the tags of RULES.md, and all three run the same
//! code, `storepulse-tags` (`tags/src/lib.rs`):
//! - the member processor (`storepulse-processors`) calls it directly;
//! - the embedded mart's DataFusion calls it through the scalar UDFs of this
//!   crate ([`register_tag_udfs`]);
//! - Arroyo SQL pipelines call it through the UDF plugin in `udf/arroyo/`
//!   (crate `storepulse-arroyo-udf`).
//!
//! What a SQL argument means (types, `NULL`, out-of-range values, default
//! thresholds) is defined once, in [`row`], which both this crate and the
//! Arroyo plugin compile, so the two SQL engines cannot drift apart either.
//!
//! # Functions
//!
//! Every argument is `BIGINT`; shares are in permille (`700` = 70%, compared
//! exactly in integers). The functions without `_with` use RULES.md's
//! thresholds (`TagRules::default()`); the `_with` ones take them as
//! arguments. The names and arguments are the same in DataFusion and in
//! Arroyo; the DataFusion signatures are:
//!
//! ```text
//! sp_high_value(net_spend_cents BIGINT) -> BOOLEAN
//! sp_high_value_with(net_spend_cents BIGINT, min_net_spend_cents BIGINT) -> BOOLEAN
//! sp_frequent(sales BIGINT) -> BOOLEAN
//! sp_frequent_with(sales BIGINT, min_sales BIGINT) -> BOOLEAN
//! sp_multi_store(stores BIGINT) -> BOOLEAN
//! sp_multi_store_with(stores BIGINT, min_stores BIGINT) -> BOOLEAN
//! sp_online_first(sales BIGINT, online_sales BIGINT) -> BOOLEAN
//! sp_online_first_with(sales BIGINT, online_sales BIGINT, min_sales BIGINT, min_share_permille BIGINT) -> BOOLEAN
//! sp_promo_responsive(lines BIGINT, promo_lines BIGINT) -> BOOLEAN
//! sp_promo_responsive_with(lines BIGINT, promo_lines BIGINT, min_lines BIGINT, min_share_permille BIGINT) -> BOOLEAN
//! sp_seasonal_buyer(sales BIGINT, spend_cents BIGINT, top_quarter_spend_cents BIGINT) -> BOOLEAN
//! sp_seasonal_buyer_with(sales BIGINT, spend_cents BIGINT, top_quarter_spend_cents BIGINT, min_sales BIGINT, min_share_permille BIGINT) -> BOOLEAN
//! sp_churn_risk(total_sales BIGINT, sales_in_quiet_window BIGINT) -> BOOLEAN
//! sp_churn_risk_with(total_sales BIGINT, sales_in_quiet_window BIGINT, min_total_sales BIGINT) -> BOOLEAN
//! sp_new_member(days_since_registration BIGINT) -> BOOLEAN
//! sp_new_member_with(days_since_registration BIGINT, window_days BIGINT) -> BOOLEAN
//! sp_store_loyal(sales BIGINT, spend_cents BIGINT, top_store_spend_cents BIGINT) -> BOOLEAN
//! sp_store_loyal_with(sales BIGINT, spend_cents BIGINT, top_store_spend_cents BIGINT, min_sales BIGINT, min_share_permille BIGINT) -> BOOLEAN
//! sp_share_at_least(part BIGINT, whole BIGINT, share_permille BIGINT) -> BOOLEAN
//! sp_quarter_of_day(day BIGINT) -> BIGINT
//! ```
//!
//! The arguments are the member's window aggregates of `storepulse_tags`
//! (`WindowStats`) over the rule's window of whole China days; the SQL
//! computes them, the function only applies the threshold. `day` is days
//! since 1970-01-01 (China); `sp_quarter_of_day` answers 0 (Jan-Mar) to 3.
//!
//! **NULL**: a `NULL` argument gives `NULL`, except `days_since_registration`,
//! where `NULL` means "never registered" and gives `false` (as in the
//! processor). An argument outside the predicate's domain (a negative count
//! or amount, a count above 2^32 - 1, a share outside 0..=1000, a day
//! outside 32 bits) also gives `NULL`: the predicates take unsigned counts,
//! and a clamped value could answer differently from the processor.
//!
//! **In Arroyo the tags are `BIGINT` 1/0**, not `BOOLEAN`:
//! `arroyo-udf-plugin` 0.2.0 cannot build a UDF returning `bool` (its macro
//! uses `PrimitiveBuilder<BooleanType>`, which arrow does not have; fix
//! pending in ArroyoSystems/arroyo#1023). `CAST(sp_frequent(s) AS BOOLEAN)`
//! reads the same on both engines.
//!
//! # DataFusion (the embedded mart)
//!
//! ```no_run
//! # async fn mart() -> datafusion::error::Result<()> {
//! let ctx = datafusion::prelude::SessionContext::new();
//! storepulse_udf::register_tag_udfs(&ctx);
//! ctx.sql("SELECT member_id, sp_frequent(sales_30d) FROM member_windows")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! DataFusion coerces `INT`/`SMALLINT` columns and untyped `NULL` to
//! `BIGINT`; unsigned 64-bit columns must be cast. The workspace pins
//! DataFusion 54 (the newest release whose rust-version, 1.88, is within the
//! workspace's 1.89) with default features off and only `sql` on: no parquet,
//! compression, regex or unicode functions, which these UDFs do not need (a
//! crate that does adds the feature to its own dependency line). A cold
//! debug build of this crate with DataFusion took 4 minutes on 2 cores.
//!
//! # Arroyo
//!
//! `udf/arroyo/` (crate `storepulse-arroyo-udf`, see its crate doc) exposes
//! the same 20 functions with `arroyo-udf-plugin`'s `#[udf]`. It is a
//! separate Cargo workspace, because `arroyo-udf-plugin` 0.2 needs chrono
//! `<0.4.40` (arrow 51) and DataFusion here needs `>=0.4.40`. Arroyo loads a
//! UDF as a `cdylib` exporting one `__run`, so one build holds one UDF,
//! chosen by a feature of the same name:
//!
//! ```sh
//! cargo build --release --locked --manifest-path udf/arroyo/Cargo.toml --features sp_high_value
//! # -> udf/arroyo/target/release/libstorepulse_arroyo_udf.so
//! cargo test --locked --manifest-path udf/arroyo/Cargo.toml   # loads built plugins through __run
//! ```
//!
//! Being its own workspace, it is not in `cargo test --workspace`: its
//! clippy and tests need their own CI step with
//! `--manifest-path udf/arroyo/Cargo.toml`.
//!
//! Arroyo itself does not accept a prebuilt `.so`: its API and web UI take a
//! UDF definition (Rust source with one `#[udf]` function and a
//! `[dependencies]` comment) and Arroyo's compiler service builds and stores
//! the library. `storepulse_arroyo_udf::arroyo_definition` writes the
//! definition of each function: a `#[udf]` wrapper that depends on
//! `storepulse-arroyo-udf` (git) and calls it, so the library Arroyo builds
//! runs this code.
//!
//! # Layout
//!
//! - [`row`]: one SQL row: `BIGINT`s in, the predicate's answer out (shared
//!   with `udf/arroyo` by `#[path]`).
//! - [`df`]: the DataFusion `ScalarUDFImpl` over Arrow arrays, and
//!   [`register_tag_udfs`].
//!
//! There is no error type: registering cannot fail, and DataFusion reports
//! the only possible failure of a call (arguments that are not `Int64` after
//! coercion) as its own `DataFusionError`.

pub mod df;
pub mod row;

pub use df::{register_tag_udfs, tag_udfs, TagFunction, TagUdf};

#[cfg(test)]
mod tests;
