-- StorePulse mart: one table per mart::rows table.
-- SQL that runs unchanged on ClickHouse 18.16 and on current releases
-- (24.x-26.x, tested through chDB): no DateTime64, Map, JSON, TTL, CODEC,
-- LowCardinality or server-side parameters. Instants are Int64 Unix
-- milliseconds; day is the China calendar day, hour its China hour.
-- No PARTITION BY: a block of one INSERT becomes one part, so each
-- insert is atomic (mart::write: "highest stored position" must be exact).
-- Every row is inserted once (the sink loop drops rows at or below the
-- stored positions), so facts are plain MergeTree.

CREATE TABLE IF NOT EXISTS sale_lines (
    event_id String,
    line_no UInt32,
    order_id String,
    store_id String,
    region String,
    channel String,
    fulfillment String,
    payment_method String,
    member_id String,
    sku String,
    qty Int64,
    unit_price_cents Int64,
    net_cents Int64,
    promo UInt8,
    occurred_ms Int64,
    day Date,
    hour UInt8,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (day, store_id, sku, event_id, line_no);

CREATE TABLE IF NOT EXISTS return_lines (
    event_id String,
    line_no UInt32,
    order_id String,
    store_id String,
    region String,
    channel String,
    member_id String,
    sku String,
    qty Int64,
    refund_cents Int64,
    restock UInt8,
    occurred_ms Int64,
    day Date,
    hour UInt8,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (day, store_id, sku, event_id, line_no);

CREATE TABLE IF NOT EXISTS stock_changes (
    event_id String,
    line_no UInt32,
    kind String,
    store_id String,
    region String,
    sku String,
    delta Int64,
    counted Int64,
    occurred_ms Int64,
    day Date,
    hour UInt8,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (day, store_id, sku, event_id, line_no);

-- Current stock: the row with the highest position per (store, SKU).
-- ReplacingMergeTree keeps that one at merge time; queries that need it
-- before merges take argMax by position.
CREATE TABLE IF NOT EXISTS stock_levels (
    store_id String,
    region String,
    sku String,
    on_hand Int64,
    event_id String,
    occurred_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = ReplacingMergeTree(src_offset) ORDER BY (store_id, sku);

CREATE TABLE IF NOT EXISTS points_ledger (
    member_id String,
    event_id String,
    kind String,
    store_id String,
    region String,
    points Int64,
    occurred_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (member_id, day, event_id);

CREATE TABLE IF NOT EXISTS member_registrations (
    member_id String,
    canonical_id String,
    event_id String,
    store_id String,
    region String,
    channel String,
    occurred_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (day, store_id, canonical_id);

CREATE TABLE IF NOT EXISTS tag_changes (
    member_id String,
    tag String,
    change Int8,
    event_id String,
    store_id String,
    region String,
    as_of_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (tag, store_id, member_id);

-- Current state of an alert: its row with the highest position.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id String,
    family String,
    rule String,
    status String,
    member_id String,
    store_ids String,
    store_id String,
    region String,
    sku String,
    total_cents Int64,
    first_ms Int64,
    last_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = ReplacingMergeTree(src_offset) ORDER BY (alert_id);

CREATE TABLE IF NOT EXISTS alert_decisions (
    alert_id String,
    decision String,
    decided_by String,
    comment String,
    decided_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (alert_id, decided_ms);

CREATE TABLE IF NOT EXISTS rejected_events (
    event_id String,
    stage String,
    reason String,
    store_id String,
    raw String,
    rejected_ms Int64,
    day Date,
    src_partition UInt32,
    src_offset UInt64,
    src_index UInt32
) ENGINE = MergeTree() ORDER BY (day, store_id, event_id);
