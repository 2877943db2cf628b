//! StorePulse's member tag predicates as Arroyo SQL UDFs, built with
//! `arroyo-udf-plugin` 0.2 (`#[udf]`).
//!
//! The SQL names, arguments and meanings are those of the DataFusion UDFs of
//! `storepulse-udf` (`udf/src/lib.rs` lists them with their signatures): both
//! compile the same row functions (`udf/src/row.rs`, included below as
//! [`row`]), which call `storepulse_tags`, the code the member processor
//! runs. Every function here is a one-line wrapper of its row function.
//!
//! # Tags are `BIGINT` 1/0 here, not `BOOLEAN`
//!
//! `arroyo-udf-plugin` 0.2.0 (the newest on crates.io, and what Arroyo's
//! compiler service builds UDFs with) cannot build a UDF that returns or
//! takes `bool`: its macro puts the result in a `PrimitiveBuilder<BooleanType>`,
//! which does not exist in arrow (`BooleanType` is not an
//! `ArrowPrimitiveType`), so the crate fails to compile; the fix is the open
//! pull request ArroyoSystems/arroyo#1023. So every tag function here returns
//! `BIGINT`: `1` tagged, `0` not, `NULL` as in DataFusion. A query that runs
//! unchanged on both engines writes `CAST(sp_frequent(sales) AS BOOLEAN)`
//! (a no-op in DataFusion). Once a fixed plugin is published, the return
//! types become `bool` / `Option<bool>` and the `.map(i64::from)` go.
//!
//! # Signatures
//!
//! ```text
//! sp_high_value(net_spend_cents BIGINT) -> BIGINT                 (i64 -> i64)
//! sp_high_value_with(net_spend_cents, min_net_spend_cents) -> BIGINT
//! sp_frequent(sales) / sp_frequent_with(sales, min_sales)
//! sp_multi_store(stores) / sp_multi_store_with(stores, min_stores)
//! sp_online_first(sales, online_sales)
//! sp_online_first_with(sales, online_sales, min_sales, min_share_permille)
//! sp_promo_responsive(lines, promo_lines)
//! sp_promo_responsive_with(lines, promo_lines, min_lines, min_share_permille)
//! sp_seasonal_buyer(sales, spend_cents, top_quarter_spend_cents)
//! sp_seasonal_buyer_with(sales, spend_cents, top_quarter_spend_cents, min_sales, min_share_permille)
//! sp_churn_risk(total_sales, sales_in_quiet_window)
//! sp_churn_risk_with(total_sales, sales_in_quiet_window, min_total_sales)
//! sp_new_member(days_since_registration)
//! sp_new_member_with(days_since_registration, window_days)
//! sp_store_loyal(sales, spend_cents, top_store_spend_cents)
//! sp_store_loyal_with(sales, spend_cents, top_store_spend_cents, min_sales, min_share_permille)
//! sp_share_at_least(part, whole, share_permille)
//! sp_quarter_of_day(day) -> BIGINT 0-3
//! ```
//!
//! Every argument is `BIGINT` (`i64`) and every result is `BIGINT`
//! (`i64`, or `Option<i64>` where out-of-domain arguments give `NULL`); see
//! [`UDFS`] for the exact Rust signatures.
//!
//! # Layout, and why it is not a member of the root workspace
//!
//! - **One UDF per library.** `#[udf]` keeps the function and adds
//!   `#[no_mangle] extern "C-unwind" fn __run(FfiArrays) -> RunResult`, the
//!   one symbol Arroyo's worker looks up in a UDF library. Two `#[udf]`s in
//!   one library would both define `__run`; Arroyo's own model is one source
//!   file with one `#[udf]` per UDF. So each function carries
//!   `#[cfg_attr(feature = "<name>", arroyo_udf_plugin::udf)]`: a build with
//!   the feature `sp_frequent` is the `sp_frequent` plugin, a build without
//!   features is a plain library of the 20 functions (what the tests and
//!   [`arroyo_definition`] use). `build.rs` refuses two features at once.
//!   This keeps the 20 UDFs in one crate and one file instead of 20 crates.
//! - **Its own workspace** (`[workspace]` in its `Cargo.toml`, its own
//!   `Cargo.lock`, `exclude`d by the root `Cargo.toml`). `arroyo-udf-plugin`
//!   0.2 (the newest on crates.io) is built on arrow 51, whose `arrow-arith`
//!   does not compile with chrono 0.4.40 or later, so its
//!   `arroyo-udf-common` 0.2.1 requires chrono `<0.4.40`; the root
//!   workspace's DataFusion (arrow 58) requires chrono `>=0.4.40`. One
//!   `Cargo.lock` holds one chrono 0.4.x, so the two cannot share a
//!   workspace. Commands therefore take `--manifest-path udf/arroyo/Cargo.toml`
//!   (or run in `udf/arroyo`) and write to `udf/arroyo/target/`.
//!
//! # Building a plugin
//!
//! ```sh
//! cargo build --release --locked --manifest-path udf/arroyo/Cargo.toml --features sp_high_value
//! # -> udf/arroyo/target/release/libstorepulse_arroyo_udf.so (.dylib on macOS)
//! ```
//!
//! The next build with another feature overwrites that file, so copy it
//! away (e.g. to `sp_high_value.so`) before building the next UDF. Its one
//! exported entry point is `__run`; `tests/plugin_abi.rs` builds four of
//! them, loads them with `libloading` and calls `__run` through the plugin's
//! Arrow C data interface, as Arroyo's worker does. It also builds one
//! [`arroyo_definition`] the way Arroyo's compiler service does (next
//! section) and runs that library the same way.
//!
//! # Registering in Arroyo
//!
//! Arroyo does not take a prebuilt library. Its API (`POST /api/v1/udfs`
//! with `{"prefix": "", "definition": "..."}`, or the `udfs` of a pipeline)
//! takes a UDF *definition*: Rust source with one `#[udf]` function and its
//! `[dependencies]` in a leading comment. Arroyo's compiler service writes it
//! as `src/lib.rs` of a `cdylib` crate, adds `arroyo-udf-plugin = "^0.2.0"`,
//! runs `cargo build --release` and stores `libudf.so` in its artifact
//! storage as `udfs/<name>_<hash of the definition>.so`, which workers load
//! (read in ArroyoSystems/arroyo, `crates/arroyo-compiler-service` and
//! `crates/arroyo-api/src/udfs.rs`, August 2026). [`arroyo_definition`]
//! writes that definition for each function: it depends on this crate (by
//! git, or a path on the compiler's machine) and calls the function, so the
//! library Arroyo builds runs this crate's code:
//!
//! ```text
//! /*
//! [dependencies]
//! storepulse-arroyo-udf = { git = "https://git.example/storepulse.git", rev = "<commit>" }
//! */
//! use arroyo_udf_plugin::udf;
//!
//! #[udf]
//! fn sp_high_value(net_spend_cents: i64) -> i64 {
//!     storepulse_arroyo_udf::sp_high_value(net_spend_cents)
//! }
//! ```
//!
//! The compiler machine needs a Rust toolchain and access to that git
//! repository. Its first UDF build compiles arrow 51 and the rest (minutes);
//! later ones reuse the compiler's build directory. A definition can be
//! checked without saving it with `POST /api/v1/udfs/validate`.
//!
//! # NULL
//!
//! For a non-`Option` argument the plugin answers `NULL` for a `NULL` input
//! without calling the function; `days_since_registration` is an
//! `Option<i64>` because `NULL` there means "never registered" (`0`).
//! A function answers `NULL` (`None`) for arguments outside the domain of
//! the predicate (a negative count, a share above 1000 permille), see
//! [`row`].

#[path = "../../src/row.rs"]
pub mod row;

/// `sp_high_value(net_spend_cents BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_high_value", arroyo_udf_plugin::udf)]
pub fn sp_high_value(net_spend_cents: i64) -> i64 {
    i64::from(row::sp_high_value(net_spend_cents))
}

/// `sp_high_value_with(net_spend_cents BIGINT, min_net_spend_cents BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_high_value_with", arroyo_udf_plugin::udf)]
pub fn sp_high_value_with(net_spend_cents: i64, min_net_spend_cents: i64) -> i64 {
    i64::from(row::sp_high_value_with(
        net_spend_cents,
        min_net_spend_cents,
    ))
}

/// `sp_frequent(sales BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_frequent", arroyo_udf_plugin::udf)]
pub fn sp_frequent(sales: i64) -> Option<i64> {
    row::sp_frequent(sales).map(i64::from)
}

/// `sp_frequent_with(sales BIGINT, min_sales BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_frequent_with", arroyo_udf_plugin::udf)]
pub fn sp_frequent_with(sales: i64, min_sales: i64) -> Option<i64> {
    row::sp_frequent_with(sales, min_sales).map(i64::from)
}

/// `sp_multi_store(stores BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_multi_store", arroyo_udf_plugin::udf)]
pub fn sp_multi_store(stores: i64) -> Option<i64> {
    row::sp_multi_store(stores).map(i64::from)
}

/// `sp_multi_store_with(stores BIGINT, min_stores BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_multi_store_with", arroyo_udf_plugin::udf)]
pub fn sp_multi_store_with(stores: i64, min_stores: i64) -> Option<i64> {
    row::sp_multi_store_with(stores, min_stores).map(i64::from)
}

/// `sp_online_first(sales BIGINT, online_sales BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_online_first", arroyo_udf_plugin::udf)]
pub fn sp_online_first(sales: i64, online_sales: i64) -> Option<i64> {
    row::sp_online_first(sales, online_sales).map(i64::from)
}

/// `sp_online_first_with(sales BIGINT, online_sales BIGINT, min_sales BIGINT,
/// min_share_permille BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_online_first_with", arroyo_udf_plugin::udf)]
pub fn sp_online_first_with(
    sales: i64,
    online_sales: i64,
    min_sales: i64,
    min_share_permille: i64,
) -> Option<i64> {
    row::sp_online_first_with(sales, online_sales, min_sales, min_share_permille).map(i64::from)
}

/// `sp_promo_responsive(lines BIGINT, promo_lines BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_promo_responsive", arroyo_udf_plugin::udf)]
pub fn sp_promo_responsive(lines: i64, promo_lines: i64) -> Option<i64> {
    row::sp_promo_responsive(lines, promo_lines).map(i64::from)
}

/// `sp_promo_responsive_with(lines BIGINT, promo_lines BIGINT, min_lines
/// BIGINT, min_share_permille BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_promo_responsive_with", arroyo_udf_plugin::udf)]
pub fn sp_promo_responsive_with(
    lines: i64,
    promo_lines: i64,
    min_lines: i64,
    min_share_permille: i64,
) -> Option<i64> {
    row::sp_promo_responsive_with(lines, promo_lines, min_lines, min_share_permille).map(i64::from)
}

/// `sp_seasonal_buyer(sales BIGINT, spend_cents BIGINT,
/// top_quarter_spend_cents BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_seasonal_buyer", arroyo_udf_plugin::udf)]
pub fn sp_seasonal_buyer(
    sales: i64,
    spend_cents: i64,
    top_quarter_spend_cents: i64,
) -> Option<i64> {
    row::sp_seasonal_buyer(sales, spend_cents, top_quarter_spend_cents).map(i64::from)
}

/// `sp_seasonal_buyer_with(sales BIGINT, spend_cents BIGINT,
/// top_quarter_spend_cents BIGINT, min_sales BIGINT, min_share_permille
/// BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_seasonal_buyer_with", arroyo_udf_plugin::udf)]
pub fn sp_seasonal_buyer_with(
    sales: i64,
    spend_cents: i64,
    top_quarter_spend_cents: i64,
    min_sales: i64,
    min_share_permille: i64,
) -> Option<i64> {
    row::sp_seasonal_buyer_with(
        sales,
        spend_cents,
        top_quarter_spend_cents,
        min_sales,
        min_share_permille,
    )
    .map(i64::from)
}

/// `sp_churn_risk(total_sales BIGINT, sales_in_quiet_window BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_churn_risk", arroyo_udf_plugin::udf)]
pub fn sp_churn_risk(total_sales: i64, sales_in_quiet_window: i64) -> Option<i64> {
    row::sp_churn_risk(total_sales, sales_in_quiet_window).map(i64::from)
}

/// `sp_churn_risk_with(total_sales BIGINT, sales_in_quiet_window BIGINT,
/// min_total_sales BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_churn_risk_with", arroyo_udf_plugin::udf)]
pub fn sp_churn_risk_with(
    total_sales: i64,
    sales_in_quiet_window: i64,
    min_total_sales: i64,
) -> Option<i64> {
    row::sp_churn_risk_with(total_sales, sales_in_quiet_window, min_total_sales).map(i64::from)
}

/// `sp_new_member(days_since_registration BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_new_member", arroyo_udf_plugin::udf)]
pub fn sp_new_member(days_since_registration: Option<i64>) -> Option<i64> {
    row::sp_new_member(days_since_registration).map(i64::from)
}

/// `sp_new_member_with(days_since_registration BIGINT, window_days BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_new_member_with", arroyo_udf_plugin::udf)]
pub fn sp_new_member_with(days_since_registration: Option<i64>, window_days: i64) -> Option<i64> {
    row::sp_new_member_with(days_since_registration, window_days).map(i64::from)
}

/// `sp_store_loyal(sales BIGINT, spend_cents BIGINT, top_store_spend_cents
/// BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_store_loyal", arroyo_udf_plugin::udf)]
pub fn sp_store_loyal(sales: i64, spend_cents: i64, top_store_spend_cents: i64) -> Option<i64> {
    row::sp_store_loyal(sales, spend_cents, top_store_spend_cents).map(i64::from)
}

/// `sp_store_loyal_with(sales BIGINT, spend_cents BIGINT,
/// top_store_spend_cents BIGINT, min_sales BIGINT, min_share_permille
/// BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_store_loyal_with", arroyo_udf_plugin::udf)]
pub fn sp_store_loyal_with(
    sales: i64,
    spend_cents: i64,
    top_store_spend_cents: i64,
    min_sales: i64,
    min_share_permille: i64,
) -> Option<i64> {
    row::sp_store_loyal_with(
        sales,
        spend_cents,
        top_store_spend_cents,
        min_sales,
        min_share_permille,
    )
    .map(i64::from)
}

/// `sp_share_at_least(part BIGINT, whole BIGINT, share_permille BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_share_at_least", arroyo_udf_plugin::udf)]
pub fn sp_share_at_least(part: i64, whole: i64, share_permille: i64) -> Option<i64> {
    row::sp_share_at_least(part, whole, share_permille).map(i64::from)
}

/// `sp_quarter_of_day(day BIGINT) -> BIGINT`
#[cfg_attr(feature = "sp_quarter_of_day", arroyo_udf_plugin::udf)]
pub fn sp_quarter_of_day(day: i64) -> Option<i64> {
    row::sp_quarter_of_day(day)
}

/// Every UDF: name, Rust parameters, Rust return type, as the functions
/// above declare them (a test checks the two agree).
pub const UDFS: [(&str, &str, &str); 20] = [
    ("sp_high_value", "net_spend_cents: i64", "i64"),
    ("sp_high_value_with", "net_spend_cents: i64, min_net_spend_cents: i64", "i64"),
    ("sp_frequent", "sales: i64", "Option<i64>"),
    ("sp_frequent_with", "sales: i64, min_sales: i64", "Option<i64>"),
    ("sp_multi_store", "stores: i64", "Option<i64>"),
    ("sp_multi_store_with", "stores: i64, min_stores: i64", "Option<i64>"),
    ("sp_online_first", "sales: i64, online_sales: i64", "Option<i64>"),
    (
        "sp_online_first_with",
        "sales: i64, online_sales: i64, min_sales: i64, min_share_permille: i64",
        "Option<i64>",
    ),
    ("sp_promo_responsive", "lines: i64, promo_lines: i64", "Option<i64>"),
    (
        "sp_promo_responsive_with",
        "lines: i64, promo_lines: i64, min_lines: i64, min_share_permille: i64",
        "Option<i64>",
    ),
    (
        "sp_seasonal_buyer",
        "sales: i64, spend_cents: i64, top_quarter_spend_cents: i64",
        "Option<i64>",
    ),
    (
        "sp_seasonal_buyer_with",
        "sales: i64, spend_cents: i64, top_quarter_spend_cents: i64, min_sales: i64, min_share_permille: i64",
        "Option<i64>",
    ),
    ("sp_churn_risk", "total_sales: i64, sales_in_quiet_window: i64", "Option<i64>"),
    (
        "sp_churn_risk_with",
        "total_sales: i64, sales_in_quiet_window: i64, min_total_sales: i64",
        "Option<i64>",
    ),
    ("sp_new_member", "days_since_registration: Option<i64>", "Option<i64>"),
    (
        "sp_new_member_with",
        "days_since_registration: Option<i64>, window_days: i64",
        "Option<i64>",
    ),
    (
        "sp_store_loyal",
        "sales: i64, spend_cents: i64, top_store_spend_cents: i64",
        "Option<i64>",
    ),
    (
        "sp_store_loyal_with",
        "sales: i64, spend_cents: i64, top_store_spend_cents: i64, min_sales: i64, min_share_permille: i64",
        "Option<i64>",
    ),
    ("sp_share_at_least", "part: i64, whole: i64, share_permille: i64", "Option<i64>"),
    ("sp_quarter_of_day", "day: i64", "Option<i64>"),
];

/// The Arroyo UDF definition of `name` (one of [`UDFS`]) to give Arroyo's
/// API or web UI: a `#[udf]` function of the same signature that calls this
/// crate's function. `dependency` is the TOML value of this crate's
/// dependency, e.g. `{ git = "https://...", rev = "..." }`.
///
/// `None` for a name that is not one of [`UDFS`].
pub fn arroyo_definition(name: &str, dependency: &str) -> Option<String> {
    let (name, params, ret) = UDFS.iter().find(|(n, _, _)| *n == name)?;
    let args: Vec<&str> = params
        .split(", ")
        .filter_map(|p| p.split(':').next())
        .collect();
    Some(format!(
        "/*\n[dependencies]\nstorepulse-arroyo-udf = {dependency}\n*/\n\
         use arroyo_udf_plugin::udf;\n\n\
         #[udf]\n\
         fn {name}({params}) -> {ret} {{\n    storepulse_arroyo_udf::{name}({})\n}}\n",
        args.join(", ")
    ))
}

#[cfg(test)]
mod tests;
