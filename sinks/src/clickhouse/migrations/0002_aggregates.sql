-- Aggregate tables for the dashboard's heavy queries, fed by materialised
-- views at insert time. SummingMergeTree adds rows of one key at merge
-- time; queries still sum() (parts may not be merged yet), so answers are
-- those of the raw tables at any moment. Correct because every sale line
-- is inserted exactly once. Member-free: erasure does not touch them.
-- lines is never 0, so SummingMergeTree never drops a row as all-zero.
-- Top SKUs of some stores read sale_lines (its key starts with day,
-- store_id); a per-(day, store, SKU) table barely shrinks the lines and
-- its view cost more than the insert itself.

CREATE TABLE IF NOT EXISTS sales_hourly (
    day Date,
    hour UInt8,
    store_id String,
    region String,
    channel String,
    net_cents Int64,
    units Int64,
    lines UInt64,
    orders UInt64
) ENGINE = SummingMergeTree((net_cents, units, lines, orders)) ORDER BY (day, store_id, hour, region, channel);

-- orders: a sale's first line (line_no 0) stands for the sale, so
-- sum(orders) is count(DISTINCT event_id) of the sale lines.
CREATE MATERIALIZED VIEW IF NOT EXISTS sales_hourly_mv TO sales_hourly AS
SELECT day, hour, store_id, region, channel,
       sum(net_cents) AS net_cents, sum(qty) AS units, count() AS lines,
       sum(CASE WHEN line_no = 0 THEN 1 ELSE 0 END) AS orders
FROM sale_lines
GROUP BY day, hour, store_id, region, channel;

-- Top SKUs over every store (HQ without a store filter): one row per
-- (day, SKU) instead of per (day, store, SKU).
CREATE TABLE IF NOT EXISTS sku_day_totals (
    day Date,
    sku String,
    units Int64,
    net_cents Int64,
    lines UInt64
) ENGINE = SummingMergeTree((units, net_cents, lines)) ORDER BY (day, sku);

CREATE MATERIALIZED VIEW IF NOT EXISTS sku_day_totals_mv TO sku_day_totals AS
SELECT day, sku,
       sum(qty) AS units, sum(net_cents) AS net_cents, count() AS lines
FROM sale_lines
GROUP BY day, sku;
