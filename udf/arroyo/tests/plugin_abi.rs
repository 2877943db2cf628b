//! Builds UDF plugins (`cargo build --features <udf>`), loads each library
//! with `libloading` and calls its `__run` through the plugin ABI, as
//! Arroyo's worker does: the arguments go in as Arrow C data
//! (`FfiArrays`), the answer comes back as a `RunResult`. The answers must
//! be those of `storepulse_tags`, with `NULL` handled by the plugin. One
//! test also builds an `arroyo_definition` the way Arroyo's compiler service
//! does (a `cdylib` crate `udf`, edition 2024, the definition as its
//! `lib.rs`, `arroyo-udf-plugin = "^0.2.0"` added to its dependencies).
//!
//! The plugins are built into `target/tmp/plugins` and the definition into
//! `target/tmp/definitions`, target directories of their own so that the
//! nested builds never wait on, or change, the outer `cargo test`'s; the
//! first run compiles the dependencies twice more (about two minutes on 2
//! cores), later runs only the UDF crates (about a second each).

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
    let target = plugins_dir();
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

/// The shared target directory of the nested builds.
fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugins")
}

/// Builds `arroyo_definition(udf)` as Arroyo's compiler service builds a
/// UDF definition, with this crate as a path dependency instead of git.
fn build_definition(udf: &str) -> PathBuf {
    let dependency = format!("{{ path = {:?} }}", env!("CARGO_MANIFEST_DIR"));
    let definition =
        storepulse_arroyo_udf::arroyo_definition(udf, &dependency).expect("a UDF of this crate");
    // Arroyo reads the dependencies from the comment and adds the plugin.
    let deps = definition
        .split_once("[dependencies]\n")
        .and_then(|(_, rest)| rest.split_once("*/"))
        .map(|(deps, _)| deps)
        .expect("a dependencies comment");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("definition-{udf}"));
    std::fs::create_dir_all(dir.join("src")).expect("temp crate dir");
    std::fs::write(dir.join("src/lib.rs"), &definition).expect("lib.rs written");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"udf\"\nversion = \"1.0.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\n{deps}arroyo-udf-plugin = \"^0.2.0\"\n\n\
             # Not in Arroyo's: keeps this crate out of the workspace around it.\n\
             [workspace]\n"
        ),
    )
    .expect("Cargo.toml written");
    // The same versions as this crate (a fresh resolution picks the same
    // chrono < 0.4.40 through arroyo-udf-common; this only saves rebuilds).
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("Cargo.lock copied");

    // Not `plugins_dir()`: there this crate's rlib (a workspace member's, so
    // its file name carries no hash) may be a plugin build with `__run`,
    // which the definition's own `__run` would then collide with.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("definitions");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--offline", "--target-dir"])
        .arg(&target)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the definition of {udf} failed");
    let lib = format!(
        "{}udf{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    target.join("debug").join(lib)
}

/// Loads the plugin of `udf` and runs it over one batch of `BIGINT` columns.
fn run_plugin(udf: &str, columns: Vec<Vec<Option<i64>>>) -> Vec<Option<i64>> {
    run_library(&build_plugin(udf), columns)
}

/// Loads a UDF library and runs its `__run` over one batch of `BIGINT`
/// columns.
fn run_library(path: &Path, columns: Vec<Vec<Option<i64>>>) -> Vec<Option<i64>> {
    let udf = path.display();
    // SAFETY: the library is this crate (or a definition calling it) built
    // above; loading it runs no initialisers beyond Rust's own.
    let library = unsafe { libloading::Library::new(path) }.expect("plugin loads");
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

#[test]
fn a_definition_built_like_arroyo_does_answers_the_same() {
    let path = build_definition("sp_store_loyal_with");
    // (sales, spend_cents, top_store_spend_cents, min_sales, min_share_permille)
    let rows: Vec<[Option<i64>; 5]> = vec![
        [Some(3), Some(1000), Some(600), Some(3), Some(600)], // exactly 60%
        [Some(3), Some(1000), Some(599), Some(3), Some(600)], // one below
        [Some(2), Some(1000), Some(1000), Some(3), Some(600)],
        [Some(3), Some(0), Some(0), Some(3), Some(600)], // no spend, no loyalty
        [Some(3), None, Some(600), Some(3), Some(600)],
        [Some(3), Some(-5), Some(0), Some(3), Some(600)],
    ];
    let columns = (0..5)
        .map(|c| rows.iter().map(|r| r[c]).collect())
        .collect();
    let out = run_library(&path, columns);
    assert_eq!(out, [Some(1), Some(0), Some(0), Some(0), None, None]);
    assert_eq!(
        out[0],
        Some(i64::from(tags::store_loyal(3, 1000, 600, 3, 600)))
    );
    assert_eq!(
        out[1],
        Some(i64::from(tags::store_loyal(3, 1000, 599, 3, 600)))
    );
}
