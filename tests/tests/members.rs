//! Members end to end: a late alias link merges two members, points move
//! between franchisees, roles guard member data, every read is audited, an
//! erasure is durable, and `replay` writes the same members.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use reqwest::StatusCode;
use serde_json::{json, Value};
use storepulse_tests::{
    free_port, read_members, storepulse, wait_caught_up, Server, HQ_KEY, INGEST_KEY, STORE_KEY,
};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");
const SKEW: (&str, &str) = ("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "3153600000");
const PHONE: &str = "4f1c2d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

fn event(id: &str, kind: &str, at: &str, store: &str, member: &str, extra: Value) -> Value {
    let mut e = json!({
        "v": 1, "event_id": id, "event_type": kind, "occurred_at": at,
        "store_id": store, "channel": "pos", "member_id": member,
    });
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(extra.clone());
    }
    e
}

fn sale(id: &str, at: &str, store: &str, member: &str, total: u64) -> Value {
    event(
        id,
        "sale",
        at,
        store,
        member,
        json!({
            "order_id": format!("o-{id}"),
            "lines": [{"sku": "SKU-1", "qty": 1, "unit_price_cents": total}],
            "total_cents": total,
            "payment": {"method": "wechat"},
        }),
    )
}

fn events() -> Vec<Value> {
    vec![
        event(
            "r1",
            "member_register",
            "2026-11-20T09:00:00+08:00",
            "KM-001",
            "M1",
            json!({"phone_hash": PHONE}),
        ),
        sale("s1", "2026-11-20T10:00:00+08:00", "KM-001", "M1", 300_000),
        sale(
            "s2",
            "2026-11-20T11:00:00+08:00",
            "DL-001",
            "APP-7",
            250_000,
        ),
        event(
            "p1",
            "points_redeem",
            "2026-11-21T10:00:00+08:00",
            "MZ-001",
            "M1",
            json!({"points": 4000, "reference": "coupon-1"}),
        ),
        // Arrives last, dated first: APP-7 is M1's app account.
        event(
            "r2",
            "member_register",
            "2026-11-20T09:30:00+08:00",
            "KM-001",
            "APP-7",
            json!({"phone_hash": PHONE}),
        ),
    ]
}

async fn get(client: &reqwest::Client, base: &str, path: &str, key: &str) -> (StatusCode, Value) {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn members_unify_roles_guard_reads_audit_and_erasure_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let server = Server::start(EXE, &data, port, &[SKEW]);
    let client = reqwest::Client::new();
    let body: String = events().iter().map(|e| format!("{e}\n")).collect();
    let r = client
        .post(format!("{}/v1/events", server.base))
        .header("content-type", "application/x-ndjson")
        .bearer_auth(INGEST_KEY)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    wait_caught_up(&client, &server.base).await;
    let base = server.base.clone();

    // Without a key, and with a store manager's key without member_data.
    let r = client
        .get(format!("{base}/v1/members/M1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for path in [
        "/v1/members/M1",
        "/v1/members/M1/ledger",
        "/v1/members?store_id=KM-001",
    ] {
        let (status, _) = get(&client, &base, path, STORE_KEY).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    // Marketing counts are not personal data: the store manager sees its own.
    let (status, m) = get(&client, &base, "/v1/stores/KM-001/marketing", STORE_KEY).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let (status, _) = get(&client, &base, "/v1/stores/DL-001/marketing", STORE_KEY).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The alias gives the canonical member, with the merged history.
    let (status, m) = get(&client, &base, "/v1/members/APP-7", HQ_KEY).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["member_id"], "M1");
    assert_eq!(m["aliases"], json!(["APP-7"]));
    assert_eq!(m["points_balance"], 3000 + 2500 - 4000);
    assert_eq!(m["spend_90d_cents"], 550_000);
    let tags: Vec<&str> = m["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"high_value") && tags.contains(&"new_member"),
        "{tags:?}"
    );
    // 4000 points redeemed at MZ-001 (diannan-trading): 3000 earned at a
    // direct store, 1000 at DL-001 (dianxi-retail), first in first out.
    let (status, s) = get(
        &client,
        &base,
        "/v1/reports/settlement?date=2026-11-21",
        HQ_KEY,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let rows: Vec<(String, i64)> = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["from_franchisee"].as_str().unwrap().to_owned(),
                r["points"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("dianxi-retail".to_owned(), 1000),
            ("direct".to_owned(), 3000)
        ]
    );

    // Every read, and the refusals, are in the audit log.
    let (status, audit) = get(&client, &base, "/v1/audit?limit=100", HQ_KEY).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let records = audit["records"]
        .as_array()
        .or(audit.as_array())
        .unwrap()
        .clone();
    let has = |actor: &str, action: &str| {
        records
            .iter()
            .any(|r| r["actor"] == actor && r["action"] == action)
    };
    assert!(has("demo-hq", "member.read"), "{records:?}");
    assert!(has("demo-store-km001", "member.denied"), "{records:?}");
    assert!(has("system", "config.change"), "{records:?}");

    // Erasure: refused to a store manager, done for the privacy role.
    let r = client
        .delete(format!("{base}/v1/members/APP-7"))
        .bearer_auth(STORE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (status, export) = get(&client, &base, "/v1/members/M1/export", HQ_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        export.to_string().contains(PHONE),
        "the export holds the phone hash"
    );
    let r = client
        .delete(format!("{base}/v1/members/APP-7"))
        .bearer_auth(HQ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    for path in [
        "/v1/members/M1",
        "/v1/members/APP-7",
        "/v1/members/M1/export",
    ] {
        let (status, _) = get(&client, &base, path, HQ_KEY).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // A restart does not bring it back (the erasure is an event in the log).
    assert!(server.stop(), "clean stop");
    let server = Server::start(EXE, &data, port, &[SKEW]);
    wait_caught_up(&client, &server.base).await;
    let (status, _) = get(&client, &server.base, "/v1/members/M1", HQ_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = get(&client, &server.base, "/v1/audit?limit=100", HQ_KEY).await;
    let text = audit.to_string();
    assert!(text.contains("member.erase"), "{text}");
    drop(server);

    // Replay of the same events writes the same member (before erasure).
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, body).unwrap();
    let out = dir.path().join("replay");
    let status = storepulse(EXE, &out)
        .args(["replay", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let members = read_members(&out.join("members.ndjson"));
    let m1 = &members["M1"];
    assert_eq!(m1.0, vec!["APP-7".to_owned()]);
    assert_eq!(m1.1, 1500);
    let settlement = std::fs::read_to_string(out.join("settlement.csv")).unwrap();
    assert_eq!(
        settlement,
        "date,from_franchisee,to_franchisee,points,amount_cents\n2026-11-21,dianxi-retail,diannan-trading,1000,1000\n2026-11-21,direct,diannan-trading,3000,3000\n"
    );
    let tags = std::fs::read_to_string(out.join("member_tags.ndjson")).unwrap();
    assert!(
        tags.contains(r#""tag":"high_value","change":"added""#),
        "{tags}"
    );
}
