//! Checks of `deploy/clickhouse/row-policies.sql`, the ClickHouse row
//! policies per dashboard role for Grafana users (current ClickHouse only:
//! 18.16 has no access-control SQL, and chDB has no access control to run
//! them for real).
//!
//! Here, without a server: every store and region of `data/stores.csv` has
//! its role with a policy on every table that has its column, and every
//! policy filters by exactly its own store or region. With the servers
//! (`chdb_answers_equal_the_18_16_server`): every statement parses on a
//! current ClickHouse (chDB), and every policy's filter runs on the real
//! schema with the same count on 18.16 and on chDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use storepulse_core::StoreMaster;

use super::migrations::statements;

/// One `CREATE ROW POLICY IF NOT EXISTS <name> ON storepulse.<table> FOR
/// SELECT USING <using> TO <role>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub table: String,
    pub using: String,
    pub role: String,
}

/// The text of `deploy/clickhouse/row-policies.sql`.
pub fn file_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/clickhouse/row-policies.sql");
    std::fs::read_to_string(&path).expect("deploy/clickhouse/row-policies.sql")
}

/// Every row policy of `sql`; panics on a policy statement of another shape.
pub fn parse(sql: &str) -> Vec<Policy> {
    statements(sql)
        .into_iter()
        .filter(|s| s.starts_with("CREATE ROW POLICY"))
        .map(|s| {
            let rest = s
                .strip_prefix("CREATE ROW POLICY IF NOT EXISTS ")
                .unwrap_or_else(|| panic!("not idempotent: {s}"));
            let (name, rest) = rest.split_once(" ON storepulse.").expect("ON storepulse.");
            let (table, rest) = rest
                .split_once(" FOR SELECT USING ")
                .expect("FOR SELECT USING");
            let (using, role) = rest.rsplit_once(" TO ").expect("TO role");
            Policy {
                name: name.into(),
                table: table.into(),
                using: using.into(),
                role: role.into(),
            }
        })
        .collect()
}

/// The role name of a store id: `storepulse_store_km_001` for `KM-001`.
fn store_role(store_id: &str) -> String {
    format!(
        "storepulse_store_{}",
        store_id.to_ascii_lowercase().replace('-', "_")
    )
}

/// Tables whose rows carry `store_id` and `region` (the scoped tables).
const SCOPED: [&str; 9] = [
    "sale_lines",
    "return_lines",
    "stock_changes",
    "stock_levels",
    "points_ledger",
    "member_registrations",
    "tag_changes",
    "alerts",
    "sales_hourly",
];

#[test]
fn every_store_and_region_has_its_policies_and_only_its_rows() {
    let stores =
        StoreMaster::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv"))
            .expect("stores.csv");
    let policies = parse(&file_text());
    let mut by_role: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for p in &policies {
        let prev = by_role
            .entry(&p.role)
            .or_default()
            .insert(&p.table, &p.using);
        assert!(prev.is_none(), "two policies of {} on {}", p.role, p.table);
    }
    let mut regions = BTreeSet::new();
    for (_, s) in stores.iter() {
        regions.insert(s.region.clone());
        let role = store_role(&s.store_id);
        let tables = by_role
            .get(role.as_str())
            .unwrap_or_else(|| panic!("no policies for store {} ({role})", s.store_id));
        for t in SCOPED {
            assert_eq!(
                tables.get(t).copied(),
                Some(format!("store_id = '{}'", s.store_id).as_str()),
                "{role} on {t}"
            );
        }
    }
    for r in &regions {
        let role = format!("storepulse_region_{r}");
        let tables = by_role
            .get(role.as_str())
            .unwrap_or_else(|| panic!("no policies for region {r}"));
        for t in SCOPED {
            assert_eq!(
                tables.get(t).copied(),
                Some(format!("region = '{r}'").as_str()),
                "{role} on {t}"
            );
        }
    }
    // HQ sees everything; nobody else has a policy that is not theirs.
    let hq = &by_role["storepulse_hq"];
    assert!(SCOPED.iter().all(|t| hq.get(t) == Some(&"1")));
    let known = stores.iter().count() + regions.len() + 2;
    assert_eq!(by_role.len(), known, "roles: {:?}", by_role.keys());
    // Managers are never granted the tables without a scope column.
    let sql = file_text();
    for stmt in statements(&sql) {
        if stmt.starts_with("GRANT ") && !stmt.contains("storepulse_hq") {
            assert!(
                !stmt.contains("rejected_events") && !stmt.contains("schema_migrations"),
                "{stmt}"
            );
        }
    }
}
