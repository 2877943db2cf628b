//! The role matrix end to end: every route of `openapi.json` and every page,
//! against the real program with the shipped `storepulse.toml`, as no one,
//! as each demo user (hq, region:west, store:KM-001, risk; logged in with a
//! session cookie) and as the demo channel key (API key), with the exact
//! status each must get. A route missing from the matrix fails the test.
//! Also: a region manager cannot read another region by changing the URL
//! or a filter, and logging out ends the session.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use storepulse_tests::{repo, wait_caught_up, Server};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");
const SKEW: (&str, &str) = ("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "3153600000");

/// Who calls, in the order of the expectation arrays.
#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    /// A demo user of `storepulse.toml`, with a session.
    User(&'static str, &'static str),
    /// A demo API key.
    Key(&'static str),
}

const WHO: [Who; 6] = [
    Who::Nobody,
    Who::User("analyst", "demo-analyst"),
    Who::User("west-manager", "demo-west"),
    Who::User("km001-manager", "demo-km001"),
    Who::User("risk-analyst", "demo-risk"),
    Who::Key("storepulse-demo-channel"),
];

const OK: u16 = 200;
const NO: u16 = 401;
const DENY: u16 = 403;
const NONE: u16 = 404;
/// The mart routes, for those they authorise: 200 (the embedded mart of
/// `storepulse run`).
const MART: u16 = 0;

struct Case {
    method: &'static str,
    /// The OpenAPI path it covers.
    path: &'static str,
    uri: String,
    body: Option<Value>,
    want: [u16; 6],
}

fn case(
    method: &'static str,
    path: &'static str,
    uri: &str,
    body: Option<Value>,
    want: [u16; 6],
) -> Case {
    Case {
        method,
        path,
        uri: uri.to_owned(),
        body,
        want,
    }
}

fn cases() -> Vec<Case> {
    let route = json!({"lines":[{"sku":"SKU-1","qty":1}],"deliver_to":{"lat":25.0,"lon":102.7}});
    let rule = json!({"key": "order", "when": {"total_cents": 99_999_999}});
    let backtest =
        json!({"rule": {"name": "probe", "key": "order", "when": {"total_cents": 99_999_999}}});
    let decision = json!({"decision": "false_alarm", "comment": "matrix"});
    let page = [OK; 6];
    let redirect = [303; 6];
    let mut cases = vec![
        // Ingest takes ingest keys only (a session or API key is not one).
        case("POST", "/v1/events", "/v1/events", Some(json!([])), [NO; 6]),
        // Stock: the scope, or channel.
        case(
            "GET",
            "/v1/stock/{store_id}/{sku}",
            "/v1/stock/KM-001/SKU-1",
            None,
            [NO, NONE, DENY, NONE, DENY, NONE],
        ),
        case(
            "GET",
            "/v1/stock/{store_id}/{sku}",
            "/v1/stock/DL-001/SKU-1",
            None,
            [NO, NONE, NONE, DENY, DENY, NONE],
        ),
        case(
            "GET",
            "/v1/stock/{store_id}",
            "/v1/stock/KM-001",
            None,
            [NO, OK, DENY, OK, DENY, OK],
        ),
        case(
            "GET",
            "/v1/stock/{store_id}",
            "/v1/stock/DL-001",
            None,
            [NO, OK, OK, DENY, DENY, OK],
        ),
        case(
            "GET",
            "/v1/skus/{sku}/availability",
            "/v1/skus/SKU-1/availability?near=DL-001",
            None,
            [NO, OK, OK, DENY, DENY, OK],
        ),
        case(
            "POST",
            "/v1/route",
            "/v1/route",
            Some(route),
            [NO, 422, DENY, DENY, DENY, 422],
        ),
        case(
            "GET",
            "/v1/suggestions/replenish",
            "/v1/suggestions/replenish?store_id=KM-001",
            None,
            [NO, OK, DENY, OK, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/suggestions/transfers",
            "/v1/suggestions/transfers",
            None,
            [NO, OK, OK, OK, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/suggestions/transfers",
            "/v1/suggestions/transfers?region=west",
            None,
            [NO, OK, OK, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/suggestions/transfers",
            "/v1/suggestions/transfers?region=east",
            None,
            [NO, OK, DENY, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/dlq",
            "/v1/dlq",
            None,
            [NO, OK, DENY, DENY, DENY, DENY],
        ),
        // Alerts: the book by scope; the review queue for risk and hq.
        case(
            "GET",
            "/v1/alerts",
            "/v1/alerts?kind=stock",
            None,
            [NO, OK, OK, OK, OK, DENY],
        ),
        case(
            "GET",
            "/v1/alerts",
            "/v1/alerts?status=open",
            None,
            [NO, OK, DENY, DENY, OK, DENY],
        ),
        case(
            "GET",
            "/v1/alerts/{alert_id}",
            "/v1/alerts/nope",
            None,
            [NO, NONE, DENY, DENY, NONE, DENY],
        ),
        case(
            "POST",
            "/v1/alerts/{alert_id}/decision",
            "/v1/alerts/nope/decision",
            Some(decision),
            [NO, DENY, DENY, DENY, NONE, DENY],
        ),
        case(
            "GET",
            "/v1/rules",
            "/v1/rules",
            None,
            [NO, OK, DENY, DENY, OK, DENY],
        ),
        case(
            "PUT",
            "/v1/rules/{name}",
            "/v1/rules/matrix_probe",
            Some(rule),
            [NO, DENY, DENY, DENY, OK, DENY],
        ),
        case(
            "GET",
            "/v1/rules/{name}",
            "/v1/rules/matrix_probe",
            None,
            [NO, OK, DENY, DENY, OK, DENY],
        ),
        case(
            "DELETE",
            "/v1/rules/{name}",
            "/v1/rules/matrix_probe",
            None,
            [NO, DENY, DENY, DENY, OK, DENY],
        ),
        case(
            "POST",
            "/v1/backtest",
            "/v1/backtest",
            Some(backtest),
            [NO, DENY, DENY, DENY, OK, DENY],
        ),
        // Members: member_data (no demo user has it), privacy, auditor; the
        // marketing view for a store in scope; settlement for hq.
        case(
            "GET",
            "/v1/members",
            "/v1/members",
            None,
            [NO, DENY, DENY, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/members/{member_id}",
            "/v1/members/M-1",
            None,
            [NO, DENY, DENY, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/members/{member_id}/ledger",
            "/v1/members/M-1/ledger",
            None,
            [NO, DENY, DENY, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/members/{member_id}/export",
            "/v1/members/M-1/export",
            None,
            [NO, DENY, DENY, DENY, DENY, DENY],
        ),
        case(
            "DELETE",
            "/v1/members/{member_id}",
            "/v1/members/M-1",
            None,
            [NO, DENY, DENY, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/stores/{store_id}/marketing",
            "/v1/stores/KM-001/marketing",
            None,
            [NO, OK, DENY, OK, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/stores/{store_id}/marketing",
            "/v1/stores/DL-001/marketing",
            None,
            [NO, OK, OK, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/reports/settlement",
            "/v1/reports/settlement?date=2026-11-21",
            None,
            [NO, OK, DENY, DENY, DENY, DENY],
        ),
        case(
            "GET",
            "/v1/audit",
            "/v1/audit",
            None,
            [NO, DENY, DENY, DENY, DENY, DENY],
        ),
        // Who am I. A failed login is a 401 whoever sends it, and the sixth
        // failure of one name in 5 minutes is refused (429, the limit).
        case("GET", "/v1/me", "/v1/me", None, [NO, OK, OK, OK, OK, OK]),
        case(
            "POST",
            "/v1/login",
            "/v1/login",
            Some(json!({"name": "analyst", "password": "nope"})),
            [NO, NO, NO, NO, NO, 429],
        ),
        // Operations and pages: public.
        case("GET", "/healthz", "/healthz", None, page),
        case("GET", "/metrics", "/metrics", None, page),
        case("GET", "/openapi.json", "/openapi.json", None, page),
        case("GET", "/", "/", None, redirect),
        case("GET", "/dashboard", "/dashboard", None, redirect),
        case("GET", "/dashboard/", "/dashboard/", None, page),
        case(
            "GET",
            "/dashboard/assets/{file}",
            "/dashboard/assets/app.js",
            None,
            page,
        ),
        case(
            "GET",
            "/dashboard/assets/{file}",
            "/dashboard/assets/echarts.min.js",
            None,
            page,
        ),
    ];
    // The mart: a store role; scope ∩ filters; another region or store by
    // filter is refused.
    for path in [
        "/v1/mart/sales_by_hour",
        "/v1/mart/top_skus",
        "/v1/mart/members_by_tag",
        "/v1/mart/new_members",
        "/v1/mart/totals",
    ] {
        for (filter, want) in [
            ("", [NO, MART, MART, MART, DENY, DENY]),
            ("?region=west", [NO, MART, MART, DENY, DENY, DENY]),
            ("?region=central", [NO, MART, DENY, MART, DENY, DENY]),
            ("?store=KM-001", [NO, MART, DENY, MART, DENY, DENY]),
            ("?store=DL-001", [NO, MART, MART, DENY, DENY, DENY]),
            (
                "?region=west&store=DL-002",
                [NO, MART, MART, DENY, DENY, DENY],
            ),
        ] {
            cases.push(case("GET", path, &format!("{path}{filter}"), None, want));
        }
    }
    // Logout last (it ends the sessions).
    cases.push(case("POST", "/v1/logout", "/v1/logout", None, [204; 6]));
    cases
}

const PROBE_PASSWORD: &str = "pässwörd with spaces";

/// The shipped config plus a user `probe` (store:QJ-001) whose hash comes
/// from `storepulse users hash` (password on stdin).
fn config_with_hashed_user(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let mut child = std::process::Command::new(EXE)
        .args(["users", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PROBE_PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let mut text = std::fs::read_to_string(repo().join("storepulse.toml")).unwrap();
    text.push_str(&format!(
        "\n[[access.users]]\nname = \"probe\"\npassword_hash = \"{hash}\"\nroles = [\"store:QJ-001\"]\n"
    ));
    let path = dir.join("storepulse.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_and_page_against_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_hashed_user(dir.path());
    let server = Server::start_with_config(EXE, &config, &dir.path().join("data"), 0, &[SKEW]);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    // A little stock, so that the stock pages have something.
    let receipt = json!([{"v":1,"event_id":"rcv-1","event_type":"stock_receipt","occurred_at":"2026-11-25T07:31:00+08:00","store_id":"KM-001","channel":"backoffice","lines":[{"sku":"SKU-2","qty":5}]},
        {"v":1,"event_id":"rcv-2","event_type":"stock_receipt","occurred_at":"2026-11-25T07:31:00+08:00","store_id":"DL-001","channel":"backoffice","lines":[{"sku":"SKU-2","qty":5}]}]);
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth("storepulse-demo-key")
        .json(&receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_caught_up(&client, &base).await;

    // Sessions of the demo users.
    let mut auth: Vec<Option<(&str, String)>> = Vec::new();
    for who in WHO {
        auth.push(match who {
            Who::Nobody => None,
            Who::Key(key) => Some(("authorization", format!("Bearer {key}"))),
            Who::User(name, password) => {
                let r = client
                    .post(format!("{base}/v1/login"))
                    .json(&json!({"name": name, "password": password}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "login {name}");
                let cookie = r.headers()["set-cookie"].to_str().unwrap();
                Some(("cookie", cookie.split(';').next().unwrap().to_owned()))
            }
        });
    }
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let cases = cases();
    // Every documented route is in the matrix.
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/openapi.json")).unwrap(),
    )
    .unwrap();
    let covered: BTreeSet<(String, &str)> = cases
        .iter()
        .map(|c| (c.method.to_ascii_lowercase(), c.path))
        .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                covered.contains(&(method.clone(), path.as_str())),
                "the role matrix lacks {method} {path}"
            );
        }
    }

    let mut failures = Vec::new();
    for c in &cases {
        for ((who, header), want) in WHO.iter().zip(&auth).zip(c.want) {
            let method = Method::from_bytes(c.method.as_bytes()).unwrap();
            let mut request = no_redirects.request(method, format!("{base}{}", c.uri));
            if let Some((name, value)) = header {
                request = request.header(*name, value);
            }
            if let Some(body) = &c.body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let ok = if want == MART {
                status == StatusCode::OK
            } else {
                status.as_u16() == want
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {who:?}: {status} (want {want}) {text:.200}",
                    c.method, c.uri
                ));
            }
            if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(
                    body.get("error").is_some() && body.as_object().unwrap().len() == 1,
                    "a refusal carries no data: {text}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A user whose hash `storepulse users hash` printed logs in, with its scope.
    let r = client
        .post(format!("{base}/v1/login"))
        .json(&json!({"name": "probe", "password": PROBE_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        me["scope"],
        json!({"all": false, "regions": [{"region": "east", "stores": [{"store_id": "QJ-001", "name": "曲靖1号店", "city": "曲靖"}]}]})
    );

    // The sessions are over.
    for header in auth.iter().flatten().filter(|(name, _)| *name == "cookie") {
        let r = client
            .get(format!("{base}/v1/me"))
            .header(header.0, &header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    drop(server);
}
