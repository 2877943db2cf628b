//! Builds UDF plugins (`cargo build --features <udf>`), loads each library
//! with `libloading` and calls its `__run` through the plugin ABI, as
//! Arroyo's worker does: the arguments go in as Arrow C data
//! (`FfiArrays`), the answer comes back as a `RunResult`. The answers must
//! be those of `storepulse_tags`, with `NULL` handled by the plugin.
//!
//! The plugins are built into `target/tmp/plugins`, a target directory of
//! their own so that the nested build never waits on, or changes, the outer
//! `cargo test`'s; the first run compiles the dependencies once more (about
//! a minute), later runs only this crate (half a second per plugin).

// Loading a library and calling a foreign function is unsafe by nature;
// each use below says why it is sound.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use arroyo_udf_plugin::arrow::array::{Array, ArrayRef, Int64Array};
use arroyo_udf_plugin::arrow::ffi::from_ffi;
use arroyo_udf_plugin::{FfiArraySchema, FfiArrays, RunResult};
use storepulse_tags as tags;

/// The signature of `__run` (`arroyo-udf-host`'s `UdfDylibInterface`).
type Run = unsafe extern "C-unwind" fn(FfiArrays) -> RunResult;

/// Builds go one at a time: each overwrites the same library file.
static BUILD: Mutex<()> = Mutex::new(());

/// Builds the plugin of one UDF and copies it to `<udf>.so`.
fn build_plugin(udf: &str) -> PathBuf {
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--locked", "--features", udf, "--target-dir"])
        .arg(&target)
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the {udf} plugin failed");
    let lib = format!(
        "{}storepulse_arroyo_udf{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let copy = target.join(format!("{udf}{}", std::env::consts::DLL_SUFFIX));
    std::fs::copy(target.join("debug").join(lib), &copy).expect("plugin built");
    copy
}

/// Loads the plugin of `udf` and runs it over one batch of `BIGINT` columns.
fn run_plugin(udf: &str, columns: Vec<Vec<Option<i64>>>) -> Vec<Option<i64>> {
    let path = build_plugin(udf);
    // SAFETY: the library is this crate built by `build_plugin`; loading it
    // runs no initialisers beyond Rust's own.
    let library = unsafe { libloading::Library::new(&path) }.expect("plugin loads");
    // SAFETY: `#[udf]` exports `__run` with exactly this signature, and the
    // library was built against the same arroyo-udf-common (one Cargo.lock).
    let run = unsafe { library.get::<Run>(b"__run") }.expect("plugin exports __run");

    let args = FfiArrays::from_vec(
        columns
            .into_iter()
            .map(|c| Int64Array::from(c).to_data())
            .collect(),
    );
    // SAFETY: `args` is a valid FfiArrays whose ownership passes to the UDF,
    // as in Arroyo's host.
    let result = unsafe { run(args) };
    let RunResult::Ok(FfiArraySchema(array, schema)) = result else {
        panic!("{udf} answered RunResult::Err");
    };
    // SAFETY: the UDF exported a valid Arrow C array and its schema; the
    // array's release callback lives in `library`, which is never unloaded.
    let data = unsafe { from_ffi(array, &schema) }.expect("valid Arrow C data");
    let out: ArrayRef = arroyo_udf_plugin::arrow::array::make_array(data);
    let out = out
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("the tag UDFs answer BIGINT")
        .iter()
        .collect();
    // Never unloaded (Arroyo's worker keeps its UDF libraries too): the
    // library's Rust runtime may have registered thread-local destructors
    // that run at thread exit, after a `dlclose` they would jump into
    // unmapped code.
    std::mem::forget(library);
    out
}

#[test]
fn online_first_with_answers_through_the_plugin_abi() {
    // (sales, online_sales, min_sales, min_share_permille)
    let rows: Vec<[Option<i64>; 4]> = vec![
        [Some(10), Some(7), Some(3), Some(700)], // exactly 70%
        [Some(10), Some(6), Some(3), Some(700)], // one below
        [Some(2), Some(2), Some(3), Some(700)],  // too few sales
        [Some(3), Some(3), Some(3), Some(700)],  // exactly the minimum
        [None, Some(7), Some(3), Some(700)],     // NULL in, NULL out
        [Some(10), Some(7), Some(3), None],
        [Some(10), Some(7), Some(3), Some(1001)], // outside the domain
        [Some(-1), Some(0), Some(3), Some(700)],
    ];
    let columns = (0..4)
        .map(|c| rows.iter().map(|r| r[c]).collect())
        .collect();
    let out = run_plugin("sp_online_first_with", columns);

    let expected: Vec<Option<i64>> = rows
        .iter()
        .map(|r| {
            let [s, o, m, p] = r.map(|v| v.and_then(|v| u32::try_from(v).ok()));
            let p = p.filter(|p| *p <= 1000);
            Some(i64::from(tags::online_first(s?, o?, m?, p?)))
        })
        .collect();
    assert_eq!(out, expected);
    assert_eq!(out[..5], [Some(1), Some(0), Some(0), Some(1), None]);
}

#[test]
fn new_member_takes_null_as_never_registered() {
    let days = vec![Some(0), Some(29), Some(30), Some(31), None, Some(-1)];
    let out = run_plugin("sp_new_member", vec![days.clone()]);
    let window = tags::TagRules::default().new_member_days;
    let expected: Vec<Option<i64>> = days
        .iter()
        .map(|d| match d {
            Some(d) => u32::try_from(*d)
                .ok()
                .map(|d| i64::from(tags::new_member(Some(d), window))),
            None => Some(i64::from(tags::new_member(None, window))),
        })
        .collect();
    assert_eq!(out, expected);
    assert_eq!(out, [Some(1), Some(1), Some(0), Some(0), Some(0), None]);
}

#[test]
fn high_value_and_quarter_of_day_through_the_plugin_abi() {
    let nets = vec![Some(499_999), Some(500_000), None, Some(i64::MIN)];
    let out = run_plugin("sp_high_value", vec![nets]);
    assert_eq!(out, [Some(0), Some(1), None, Some(0)]);

    let days = vec![Some(20_782), Some(20_819), Some(-1), Some(i64::MAX)];
    let out = run_plugin("sp_quarter_of_day", vec![days]);
    assert_eq!(
        out,
        [
            Some(i64::from(tags::quarter_of_day(20_782))),
            Some(0),
            Some(3),
            None
        ]
    );
}
