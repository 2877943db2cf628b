//! End-to-end test harness: start the real `storepulse` program as a child
//! process on 127.0.0.1, talk to it over HTTP, kill it with SIGKILL.
//!
//! Tests live in `tests/tests/`; each uses its own data directory and port,
//! so they run in parallel and again.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod kafka;
pub mod mart;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free TCP port on 127.0.0.1 (bound and released; the kernel does not
/// hand it out again at once).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A `storepulse` command with the test configuration: the checked-in
/// config, data in `data_dir`, the shipped store master, and the fraud
/// rules file beside `data_dir` (`<data_dir>.fraud-rules.toml`).
pub fn storepulse(exe: &str, data_dir: &Path) -> Command {
    storepulse_with_config(exe, &repo().join("storepulse.toml"), data_dir)
}

/// Like [`storepulse`] with another configuration file.
pub fn storepulse_with_config(exe: &str, config: &Path, data_dir: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(config)
        .env("STOREPULSE__STORAGE__DATA_DIR", data_dir)
        .env(
            "STOREPULSE__STORAGE__STORES_CSV",
            repo().join("data/stores.csv"),
        )
        // Each test its own rules file (missing: RULES.md's defaults), so
        // a test that changes rules through the API changes only its own.
        .env(
            "STOREPULSE__FRAUD__RULES_FILE",
            data_dir.with_extension("fraud-rules.toml"),
        )
        .env("STOREPULSE__TELEMETRY__LEVEL", "warn")
        .env_remove("RUST_LOG");
    cmd
}

/// A running `storepulse run`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts `storepulse run` on `port` (0: any) and waits until it listens.
    ///
    /// # Panics
    /// When it does not start within 60 s (the message has its stderr).
    pub fn start(exe: &str, data_dir: &Path, port: u16, extra_env: &[(&str, &str)]) -> Server {
        Self::start_with_config(
            exe,
            &repo().join("storepulse.toml"),
            data_dir,
            port,
            extra_env,
        )
    }

    /// [`Server::start`] with another configuration file.
    ///
    /// # Panics
    /// As [`Server::start`].
    pub fn start_with_config(
        exe: &str,
        config: &Path,
        data_dir: &Path,
        port: u16,
        extra_env: &[(&str, &str)],
    ) -> Server {
        Self::start_role(exe, config, data_dir, port, "run", extra_env)
    }

    /// Starts one role (`run`, `ingest`, `process`, `serve`) and waits
    /// until it listens.
    ///
    /// # Panics
    /// As [`Server::start`].
    pub fn start_role(
        exe: &str,
        config: &Path,
        data_dir: &Path,
        port: u16,
        role: &str,
        extra_env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = storepulse_with_config(exe, config, data_dir);
        cmd.arg(role)
            .env("STOREPULSE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn storepulse");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("storepulse listening on ") {
                    let _ = tx.send(Ok(addr.trim().to_owned()));
                    sent = true;
                } else if !sent {
                    let _ = tx.send(Err(line.clone()));
                }
                eprintln!("[storepulse] {line}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut early = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(base)) => return Server { child, base },
                Ok(Err(line)) => early.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "storepulse {role} did not start listening; stderr:\n{}",
                        early.join("\n")
                    );
                }
            }
        }
    }

    /// SIGKILL: no shutdown, no final checkpoint, no flush.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: the graceful path. Returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 60 s) until the server has applied everything in its log.
///
/// # Panics
/// On timeout.
pub async fn wait_caught_up(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["lag"] == 0 {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "processing did not catch up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every (store_id, sku) -> on_hand the API knows, over all stores (read
/// with the demo HQ key).
///
/// # Panics
/// On an HTTP error.
pub async fn all_stock(client: &reqwest::Client, base: &str) -> BTreeMap<(String, String), i64> {
    let stores = std::fs::read_to_string(repo().join("data/stores.csv")).expect("stores.csv");
    let mut out = BTreeMap::new();
    for line in stores.lines().skip(1) {
        let store = line.split(',').next().unwrap_or_default().to_owned();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{base}/v1/stock/{store}?limit=1000");
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let page: serde_json::Value = client
                .get(&url)
                .bearer_auth(HQ_KEY)
                .send()
                .await
                .expect("GET stock page")
                .json()
                .await
                .expect("stock page JSON");
            for item in page["items"].as_array().expect("items") {
                let sku = item["sku"].as_str().expect("sku").to_owned();
                out.insert(
                    (store.clone(), sku),
                    item["on_hand"].as_i64().expect("on_hand"),
                );
            }
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => break,
            }
        }
    }
    out
}

/// Reads a `stock.csv` written by `replay`.
///
/// # Panics
/// On an unreadable file.
pub fn read_stock_csv(path: &Path) -> BTreeMap<(String, String), i64> {
    let text = std::fs::read_to_string(path).expect("stock.csv");
    text.lines()
        .skip(1)
        .map(|l| {
            let mut parts = l.rsplitn(2, ',');
            let on_hand: i64 = parts.next().and_then(|v| v.parse().ok()).expect("on_hand");
            let rest = parts.next().expect("store,sku");
            let (store, sku) = rest.split_once(',').expect("store,sku");
            ((store.to_owned(), sku.to_owned()), on_hand)
        })
        .collect()
}

/// Runs `storepulse replay` and returns its stock.
///
/// # Panics
/// When replay fails.
pub fn replay(exe: &str, input: &Path, out: &Path) -> BTreeMap<(String, String), i64> {
    let status = storepulse(exe, out)
        .args(["replay", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("spawn replay");
    assert!(status.success(), "replay failed: {status}");
    read_stock_csv(&out.join("stock.csv"))
}

/// The text of `{base}/metrics`.
///
/// # Panics
/// On an HTTP error.
pub async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The samples of the metric `name` in a `/metrics` text, one per label set.
pub fn metric_samples(text: &str, name: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .collect()
}

/// Sum of the samples of the metric `name` (every label set) on
/// `{base}/metrics`.
///
/// # Panics
/// On an HTTP error.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    metric_samples(&metrics_text(client, base).await, name)
        .iter()
        .sum()
}

/// `GET url` with the API key `key`; the JSON answer, or `Null` when the
/// answer is not JSON (a server still starting).
///
/// # Panics
/// When the request cannot be sent.
pub async fn get_json_as(client: &reqwest::Client, url: &str, key: &str) -> serde_json::Value {
    client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .unwrap_or_default()
}

/// The demo ingest key of `storepulse.toml` (role ingest).
pub const INGEST_KEY: &str = "storepulse-demo-key";

/// The demo key of `storepulse.toml` with roles hq, member_data, privacy
/// and auditor.
pub const HQ_KEY: &str = "storepulse-demo-hq";
/// The demo key of `storepulse.toml` of KM-001's store manager (no
/// member_data role).
pub const STORE_KEY: &str = "storepulse-demo-km001";

/// The demo risk-team key of the shipped config (role `risk`).
pub const RISK_KEY: &str = "storepulse-demo-risk";

/// A member as `members.ndjson` and the API both give it, without `as_of`.
pub type MemberLine = (Vec<String>, i64, Vec<String>, Option<String>);

fn member_line(v: &serde_json::Value) -> (String, MemberLine) {
    let strings = |key: &str| -> Vec<String> {
        let mut list: Vec<String> = v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        list.sort();
        list
    };
    (
        v["member_id"].as_str().unwrap_or_default().to_owned(),
        (
            strings("aliases"),
            v["points_balance"].as_i64().unwrap_or(i64::MIN),
            strings("tags"),
            v["favorite_store"].as_str().map(String::from),
        ),
    )
}

/// `members.ndjson` of a replay output directory, by member id.
///
/// # Panics
/// When the file is missing or malformed.
pub fn read_members(path: &Path) -> BTreeMap<String, MemberLine> {
    std::fs::read_to_string(path)
        .expect("members.ndjson")
        .lines()
        .map(|l| member_line(&serde_json::from_str(l).expect("members.ndjson line")))
        .collect()
}

/// Every member the server holds, paging `GET /v1/members` with `key`.
///
/// # Panics
/// On an HTTP error.
pub async fn all_members(
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> BTreeMap<String, MemberLine> {
    let mut out = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let page: serde_json::Value = client
            .get(format!("{base}/v1/members?limit=1000&cursor={cursor}"))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET /v1/members")
            .error_for_status()
            .expect("GET /v1/members status")
            .json()
            .await
            .expect("members page");
        for m in page["members"].as_array().expect("members") {
            let (id, line) = member_line(m);
            out.insert(id, line);
        }
        match page["next_cursor"].as_u64() {
            Some(next) => cursor = next,
            None => return out,
        }
    }
}
