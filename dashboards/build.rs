//! Makes sure Apache ECharts, pinned in `web/package-lock.json`, is on disk
//! before `src/web.rs` embeds `web/node_modules/echarts/dist/echarts.min.js`
//! into the binary (stores' machines have no internet, so the dashboard
//! serves its own copy). When the file is missing, runs
//! `npm ci --ignore-scripts --no-audit --no-fund` in `web/` (the npm
//! registry is needed once per checkout); `node_modules` is git-ignored.

use std::path::Path;
use std::process::Command;

const ECHARTS: &str = "web/node_modules/echarts/dist/echarts.min.js";

fn main() {
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-changed={ECHARTS}");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest);
    if root.join(ECHARTS).is_file() {
        return;
    }
    let web = root.join("web");
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(&web)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`npm ci` in {} failed ({s}); it installs Apache ECharts for the dashboard \
             (needs the npm registry once)",
            web.display()
        ),
        Err(e) => panic!(
            "npm is needed once to fetch Apache ECharts for the dashboard ({e}): install \
             Node.js/npm (e.g. apt-get install npm), or put echarts.min.js at {}",
            root.join(ECHARTS).display()
        ),
    }
    assert!(
        root.join(ECHARTS).is_file(),
        "`npm ci` ran but {ECHARTS} is still missing"
    );
}
