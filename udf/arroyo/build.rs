//! Refuses to build with more than one UDF feature: every `#[udf]` exports
//! the same `__run` symbol, so a library holds one UDF.

fn main() {
    let mut on: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_SP_").map(str::to_lowercase))
        .map(|n| format!("sp_{n}"))
        .collect();
    if on.len() > 1 {
        on.sort();
        eprintln!(
            "error: one Arroyo UDF per build (each exports `__run`), but these features are on: {}",
            on.join(", ")
        );
        std::process::exit(1);
    }
}
