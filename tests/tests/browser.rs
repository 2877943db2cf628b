//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` crate) against the real
//! program on 127.0.0.1, fed by `storepulse simulate` (today since
//! midnight, and the same day last week).
//!
//! Logs in as a store manager and as HQ (the demo users of
//! `storepulse.toml`), checks that every chart rendered the numbers the API
//! gives that user (read in the page with `echarts.getInstanceByDom(el)
//! .getOption()`), that the store manager's filters and charts hold only
//! its store, and saves screenshots under `target/screenshots/`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`
//! (`deploy/test.sh` installs them); without them the test fails saying so.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use storepulse_tests::mart::wait_mart_caught_up;
use storepulse_tests::{free_port, repo, Server};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The demo users of `storepulse.toml`.
const STORE_USER: (&str, &str) = ("km001-manager", "demo-km001");
const HQ_USER: (&str, &str) = ("analyst", "demo-analyst");
const RISK_USER: (&str, &str) = ("risk-analyst", "demo-risk");

/// The chart panels and the API route each shows.
const CHARTS: &[&str] = &["chart-sales", "chart-top", "chart-tags", "chart-new"];

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_chromedriver() -> Driver {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: the browser test needs the Debian packages chromium and \
             chromium-driver (apt-get install -y chromium chromium-driver; deploy/test.sh \
             installs them); missing package: {package}"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// Sends `events` simulated events to `base`, event time from `start`
/// over `span` (spread evenly at the simulator's assumed 200 events/s).
fn simulate(
    base: &str,
    start: chrono::DateTime<chrono::FixedOffset>,
    span: Duration,
    events: u32,
    seed: u32,
    plant_fraud: u32,
) {
    let speedup = (span.as_secs_f64() * 200.0 / f64::from(events)).max(1.0);
    let status = Command::new(EXE)
        .args(["simulate", "--url", base, "--rate", "0", "--quiet"])
        .args(["--events", &events.to_string(), "--seed", &seed.to_string()])
        .args(["--plant-fraud", &plant_fraud.to_string()])
        .args([
            "--start",
            &start.to_rfc3339(),
            "--speedup",
            &format!("{speedup:.3}"),
        ])
        .arg("--stores")
        .arg(repo().join("data/stores.csv"))
        .stdout(Stdio::null())
        .status()
        .expect("spawn simulate");
    assert!(status.success(), "simulate failed: {status}");
}

/// The API as a logged-in user (session cookie), like the page.
struct Session {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

impl Session {
    async fn login(base: &str, (name, password): (&str, &str)) -> Session {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{base}/v1/login"))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {name}");
        let set = r.headers()["set-cookie"].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        Session {
            client,
            base: base.to_owned(),
            cookie,
        }
    }

    async fn status(&self, path: &str) -> reqwest::StatusCode {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// Waits until the mart holds every applied event ([`wait_mart_caught_up`])
/// and has sale lines. Totals that stop changing between two polls are no
/// such signal: on a loaded machine the sink can pause longer than the
/// poll, and the page then drew a mart still filling (CI, 2026-12-05).
async fn wait_mart_written(http: &reqwest::Client, api: &Session, base: &str) {
    let r = api.status("/v1/mart/totals").await;
    assert_ne!(
        r, 503,
        "the data mart is not served: is [mart] enabled (cli/src/serve.rs wires its reader)?"
    );
    wait_mart_caught_up(http, base).await;
    let totals = api.get("/v1/mart/totals").await;
    assert!(
        totals["lines"].as_u64().unwrap_or(0) > 0,
        "the mart caught up with no sale line: {totals}"
    );
}

/// What the page shows: each chart's series (from ECharts), the filters'
/// choices, the totals cards.
const READ_PAGE: &str = r##"
const charts = {};
for (const id of arguments[0]) {
  const el = document.getElementById(id);
  const chart = el && echarts.getInstanceByDom(el);
  if (!chart) { charts[id] = null; continue; }
  const option = chart.getOption();
  charts[id] = {
    series: option.series.map((s) => ({ id: s.id, data: s.data })),
    categories: (option.yAxis[0].data || option.xAxis[0].data || []),
    values: JSON.parse(el.dataset.values || "null"),
  };
}
const options = (id) => [...document.getElementById(id).options].map((o) => o.value);
const cards = {};
for (const c of document.querySelectorAll("#totals .card")) cards[c.dataset.key] = Number(c.dataset.value);
return {
  user: document.body.dataset.user || null,
  refreshed: document.body.dataset.refreshed || null,
  status: document.getElementById("status").textContent,
  regions: options("f-region"),
  stores: options("f-store"),
  from: document.getElementById("f-from").value,
  to: document.getElementById("f-to").value,
  title: document.querySelector("h1").textContent,
  charts,
  cards,
};
"##;

async fn read_page(client: &Client) -> Value {
    client
        .execute(READ_PAGE, vec![json!(CHARTS)])
        .await
        .unwrap()
}

/// Logs in through the form and waits until every chart has drawn twice
/// (two refreshes: the numbers are the settled ones).
async fn log_in(client: &Client, base: &str, user: (&str, &str)) -> Value {
    log_in_form(client, base, user).await;
    wait_rendered(client, user.0).await
}

/// Fills and sends the login form.
async fn log_in_form(client: &Client, base: &str, (name, password): (&str, &str)) {
    client.goto(&format!("{base}/")).await.unwrap();
    let field = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#login-name"))
        .await
        .unwrap();
    field.send_keys(name).await.unwrap();
    client
        .find(Locator::Css("#login-password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits until every chart has drawn twice (two refreshes: the numbers
/// are the settled ones) and returns what the page shows.
async fn wait_rendered(client: &Client, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first_refresh = None;
    loop {
        let page = read_page(client).await;
        let drawn = CHARTS.iter().all(|id| !page["charts"][id].is_null());
        if page["user"] == name && drawn {
            match &first_refresh {
                None => first_refresh = Some(page["refreshed"].clone()),
                Some(r) if *r != page["refreshed"] => return page,
                Some(_) => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not render for {name}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// As the page shows money: cents / 100.
fn yuan(cents: &Value) -> f64 {
    cents.as_f64().unwrap() / 100.0
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Every chart of `page` shows what the API gives `api` for the page's filters.
async fn check_charts_match_api(page: &Value, api: &Session) {
    let (from, to) = (page["from"].as_str().unwrap(), page["to"].as_str().unwrap());
    // Sales per hour: the day's line and last week's are the sums of the
    // groups' hours; each group's bars are its hours.
    let sales = api
        .get(&format!("/v1/mart/sales_by_hour?day={to}&group=store"))
        .await;
    let chart = &page["charts"]["chart-sales"];
    let series = |id: &str| {
        chart["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no series {id} in {chart}"))["data"]
            .clone()
    };
    for (line, field) in [("today", "today"), ("last_week", "last_week")] {
        let expected: Vec<f64> = (0..24)
            .map(|h| {
                let cents: i64 = sales["series"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s[field][h].as_i64().unwrap())
                    .sum();
                yuan(&json!(cents))
            })
            .collect();
        assert_eq!(numbers(&series(line)), expected, "{line} per hour");
    }
    for group in sales["series"].as_array().unwrap() {
        let key = group["key"].as_str().unwrap();
        let expected: Vec<f64> = group["today"]
            .as_array()
            .unwrap()
            .iter()
            .map(yuan)
            .collect();
        assert_eq!(
            numbers(&series(&format!("group:{key}"))),
            expected,
            "bars of {key}"
        );
    }
    // Top SKUs: the same SKUs with the same units.
    let top = api
        .get(&format!("/v1/mart/top_skus?from={from}&to={to}&limit=10"))
        .await;
    assert_eq!(
        page["charts"]["chart-top"]["values"], top["items"],
        "top SKUs"
    );
    let units: Vec<f64> = top["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|i| i["units"].as_f64().unwrap())
        .collect();
    assert_eq!(
        numbers(&page["charts"]["chart-top"]["series"][0]["data"]),
        units
    );
    // Members by tag and new members per day.
    let tags = api.get("/v1/mart/members_by_tag").await;
    assert_eq!(
        page["charts"]["chart-tags"]["values"], tags["tags"],
        "members by tag"
    );
    let counts: Vec<f64> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["members"].as_f64().unwrap())
        .collect();
    assert_eq!(
        numbers(&page["charts"]["chart-tags"]["series"][0]["data"]),
        counts
    );
    let new = api
        .get(&format!("/v1/mart/new_members?from={from}&to={to}"))
        .await;
    let per_day: Vec<f64> = new["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["members"].as_f64().unwrap())
        .collect();
    assert_eq!(
        numbers(&page["charts"]["chart-new"]["series"][0]["data"]),
        per_day,
        "new members"
    );
    // The totals cards.
    let totals = api
        .get(&format!("/v1/mart/totals?from={from}&to={to}"))
        .await;
    for key in ["net_cents", "units", "lines", "orders", "refund_cents"] {
        assert_eq!(
            page["cards"][key].as_f64(),
            totals[key].as_f64(),
            "card {key}"
        );
    }
}

fn screenshots() -> PathBuf {
    let dir = repo().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_chromium_for_a_store_manager_and_hq() {
    let driver = start_chromedriver();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(EXE, &dir.path().join("data"), 0, &[]);
    let base = server.base.clone();

    // Today since midnight (China time) and the same hours last week; last
    // week first, so that today's events do not make it late.
    let china = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let now = chrono::Utc::now().with_timezone(&china);
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(china)
        .unwrap();
    let span = ((now - midnight).to_std().unwrap().mul_f64(0.9)).max(Duration::from_secs(60));
    simulate(
        &base,
        midnight - chrono::Duration::days(7),
        span,
        1500,
        7,
        0,
    );
    simulate(
        &base,
        midnight.min(now - chrono::Duration::seconds(90)),
        span,
        3000,
        8,
        2,
    );
    let http = reqwest::Client::new();

    let screenshots = screenshots();

    // The store manager of KM-001.
    let store_api = Session::login(&base, STORE_USER).await;
    wait_mart_written(&http, &store_api, &base).await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let page = log_in(&client, &base, STORE_USER).await;
    std::fs::write(
        screenshots.join("store-manager.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    assert_eq!(
        page["stores"],
        json!(["", "KM-001"]),
        "only its store to choose: {page}"
    );
    assert_eq!(page["regions"], json!(["", "central"]), "{page}");
    assert_eq!(page["status"], "", "no panel failed: {page}");
    let keys: Vec<&str> = page["charts"]["chart-sales"]["values"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["KM-001"],
        "the store manager's sales are its store's"
    );
    check_charts_match_api(&page, &store_api).await;
    // Nothing else of the chain through the URL either.
    for path in [
        "/v1/mart/totals?store=KM-002",
        "/v1/mart/sales_by_hour?region=west",
        "/v1/stock/KM-002",
    ] {
        assert_eq!(store_api.status(path).await, 403, "{path}");
    }
    client.close().await.unwrap();

    // HQ: every region, and the language switch.
    let hq_api = Session::login(&base, HQ_USER).await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let page = log_in(&client, &base, HQ_USER).await;
    assert_eq!(
        page["regions"],
        json!(["", "central", "east", "south", "west"]),
        "{page}"
    );
    assert_eq!(
        page["stores"].as_array().unwrap().len(),
        41,
        "all and the 40 stores"
    );
    assert_eq!(page["status"], "", "no panel failed: {page}");
    let groups = page["charts"]["chart-sales"]["values"]["series"]
        .as_array()
        .unwrap()
        .len();
    assert!(groups > 1, "HQ sees many stores: {groups}");
    check_charts_match_api(&page, &hq_api).await;
    assert!(
        page["title"].as_str().unwrap().contains("看板"),
        "Chinese by default"
    );
    std::fs::write(
        screenshots.join("hq.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client
        .find(Locator::Css("#lang"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = read_page(&client).await;
    assert_eq!(page["title"], "StorePulse live dashboard");
    std::fs::write(
        screenshots.join("hq-en.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client.close().await.unwrap();

    // The risk team: the review queue with its buttons, no sales panels;
    // "false alarm" on the first open alert decides it.
    let risk_api = Session::login(&base, RISK_USER).await;
    let open = risk_api.get("/v1/alerts?status=open&limit=50").await;
    let first = open["alerts"][0]["alert_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the planted fraud raised no alert: {open}"))
        .to_owned();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in_form(&client, &base, RISK_USER).await;
    let button = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            "button.dismiss[data-alert=\"{first}\"]"
        )))
        .await
        .unwrap();
    let shown: Value = client
        .execute(
            "return { queue: JSON.parse(document.getElementById('table-fraud').dataset.values), \
             sales_hidden: document.getElementById('panel-sales').hidden };",
            vec![],
        )
        .await
        .unwrap();
    let listed: Vec<Value> = open["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].clone())
        .collect();
    assert_eq!(shown["queue"], json!(listed), "the queue the API gives");
    assert_eq!(shown["sales_hidden"], true, "risk has no sales panels");
    std::fs::write(
        screenshots.join("risk.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    button.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alert = risk_api.get(&format!("/v1/alerts/{first}")).await;
        if alert["status"] == "false_alarm" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the button did not decide {first}: {alert}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.close().await.unwrap();
    drop(server);
}
