-- Row policies for the StorePulse mart on current ClickHouse (22.x and later).
-- ClickHouse 18.16 has no equivalent: no access-control SQL, and it ignores
-- users.xml <databases><db><table><filter> (tried: a filtered user still
-- read every row), and a view in a database of its own cannot be read by a
-- user without access to the underlying database. On 18.16 give Grafana
-- only to HQ; managers use StorePulse's dashboard, which scopes every
-- query on the server (MartFilter).
-- Generated from data/stores.csv (its regions and stores); regenerate when
-- stores change. Apply as an admin:  clickhouse-client --multiquery < row-policies.sql
--
-- Roles mirror the dashboard's (issue 6): storepulse_hq sees everything;
-- storepulse_region_<name> the rows of its region; storepulse_store_<id>
-- the rows of its store; storepulse_risk the alerts and decisions. Once a
-- table has a row policy, ClickHouse shows a user only the rows some policy
-- of theirs allows, so HQ gets an explicit USING 1. Decisions, rejected
-- events and migrations are not granted to managers at all.
-- Grant a user its role:  GRANT storepulse_region_east TO alice;

CREATE ROLE IF NOT EXISTS storepulse_hq;
CREATE ROLE IF NOT EXISTS storepulse_risk;
GRANT SELECT ON storepulse.* TO storepulse_hq;
GRANT SELECT ON storepulse.alerts TO storepulse_risk;
GRANT SELECT ON storepulse.alert_decisions TO storepulse_risk;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.sale_lines FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.return_lines FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.stock_changes FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.stock_levels FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.points_ledger FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.member_registrations FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.tag_changes FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.alerts FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.sales_hourly FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS hq_all ON storepulse.sku_day_totals FOR SELECT USING 1 TO storepulse_hq;
CREATE ROW POLICY IF NOT EXISTS risk_all ON storepulse.alerts FOR SELECT USING 1 TO storepulse_risk;

-- region central
CREATE ROLE IF NOT EXISTS storepulse_region_central;
GRANT SELECT ON storepulse.sale_lines TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.sale_lines FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.return_lines TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.return_lines FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.stock_changes TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.stock_changes FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.stock_levels TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.stock_levels FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.points_ledger TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.points_ledger FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.member_registrations TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.member_registrations FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.tag_changes TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.tag_changes FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.alerts TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.alerts FOR SELECT USING region = 'central' TO storepulse_region_central;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_region_central;
CREATE ROW POLICY IF NOT EXISTS region_central ON storepulse.sales_hourly FOR SELECT USING region = 'central' TO storepulse_region_central;

-- region east
CREATE ROLE IF NOT EXISTS storepulse_region_east;
GRANT SELECT ON storepulse.sale_lines TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.sale_lines FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.return_lines TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.return_lines FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.stock_changes TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.stock_changes FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.stock_levels TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.stock_levels FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.points_ledger TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.points_ledger FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.member_registrations TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.member_registrations FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.tag_changes TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.tag_changes FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.alerts TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.alerts FOR SELECT USING region = 'east' TO storepulse_region_east;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_region_east;
CREATE ROW POLICY IF NOT EXISTS region_east ON storepulse.sales_hourly FOR SELECT USING region = 'east' TO storepulse_region_east;

-- region south
CREATE ROLE IF NOT EXISTS storepulse_region_south;
GRANT SELECT ON storepulse.sale_lines TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.sale_lines FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.return_lines TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.return_lines FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.stock_changes TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.stock_changes FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.stock_levels TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.stock_levels FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.points_ledger TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.points_ledger FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.member_registrations TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.member_registrations FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.tag_changes TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.tag_changes FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.alerts TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.alerts FOR SELECT USING region = 'south' TO storepulse_region_south;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_region_south;
CREATE ROW POLICY IF NOT EXISTS region_south ON storepulse.sales_hourly FOR SELECT USING region = 'south' TO storepulse_region_south;

-- region west
CREATE ROLE IF NOT EXISTS storepulse_region_west;
GRANT SELECT ON storepulse.sale_lines TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.sale_lines FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.return_lines TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.return_lines FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.stock_changes TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.stock_changes FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.stock_levels TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.stock_levels FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.points_ledger TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.points_ledger FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.member_registrations TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.member_registrations FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.tag_changes TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.tag_changes FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.alerts TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.alerts FOR SELECT USING region = 'west' TO storepulse_region_west;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_region_west;
CREATE ROW POLICY IF NOT EXISTS region_west ON storepulse.sales_hourly FOR SELECT USING region = 'west' TO storepulse_region_west;

-- store KM-001
CREATE ROLE IF NOT EXISTS storepulse_store_km_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.alerts FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_001;
CREATE ROW POLICY IF NOT EXISTS store_km_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-001' TO storepulse_store_km_001;

-- store KM-002
CREATE ROLE IF NOT EXISTS storepulse_store_km_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.alerts FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_002;
CREATE ROW POLICY IF NOT EXISTS store_km_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-002' TO storepulse_store_km_002;

-- store KM-003
CREATE ROLE IF NOT EXISTS storepulse_store_km_003;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.alerts FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_003;
CREATE ROW POLICY IF NOT EXISTS store_km_003 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-003' TO storepulse_store_km_003;

-- store KM-004
CREATE ROLE IF NOT EXISTS storepulse_store_km_004;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.alerts FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_004;
CREATE ROW POLICY IF NOT EXISTS store_km_004 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-004' TO storepulse_store_km_004;

-- store KM-005
CREATE ROLE IF NOT EXISTS storepulse_store_km_005;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.alerts FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_005;
CREATE ROW POLICY IF NOT EXISTS store_km_005 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-005' TO storepulse_store_km_005;

-- store KM-006
CREATE ROLE IF NOT EXISTS storepulse_store_km_006;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.alerts FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_006;
CREATE ROW POLICY IF NOT EXISTS store_km_006 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-006' TO storepulse_store_km_006;

-- store KM-007
CREATE ROLE IF NOT EXISTS storepulse_store_km_007;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.alerts FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_007;
CREATE ROW POLICY IF NOT EXISTS store_km_007 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-007' TO storepulse_store_km_007;

-- store KM-008
CREATE ROLE IF NOT EXISTS storepulse_store_km_008;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.alerts FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_008;
CREATE ROW POLICY IF NOT EXISTS store_km_008 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-008' TO storepulse_store_km_008;

-- store KM-009
CREATE ROLE IF NOT EXISTS storepulse_store_km_009;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.alerts FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_009;
CREATE ROW POLICY IF NOT EXISTS store_km_009 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-009' TO storepulse_store_km_009;

-- store KM-010
CREATE ROLE IF NOT EXISTS storepulse_store_km_010;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.alerts FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_010;
CREATE ROW POLICY IF NOT EXISTS store_km_010 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-010' TO storepulse_store_km_010;

-- store KM-011
CREATE ROLE IF NOT EXISTS storepulse_store_km_011;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.alerts FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_011;
CREATE ROW POLICY IF NOT EXISTS store_km_011 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-011' TO storepulse_store_km_011;

-- store KM-012
CREATE ROLE IF NOT EXISTS storepulse_store_km_012;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.alerts FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_012;
CREATE ROW POLICY IF NOT EXISTS store_km_012 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-012' TO storepulse_store_km_012;

-- store KM-013
CREATE ROLE IF NOT EXISTS storepulse_store_km_013;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.alerts FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_013;
CREATE ROW POLICY IF NOT EXISTS store_km_013 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-013' TO storepulse_store_km_013;

-- store KM-014
CREATE ROLE IF NOT EXISTS storepulse_store_km_014;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.alerts FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_014;
CREATE ROW POLICY IF NOT EXISTS store_km_014 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-014' TO storepulse_store_km_014;

-- store KM-015
CREATE ROLE IF NOT EXISTS storepulse_store_km_015;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.alerts FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_015;
CREATE ROW POLICY IF NOT EXISTS store_km_015 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-015' TO storepulse_store_km_015;

-- store KM-016
CREATE ROLE IF NOT EXISTS storepulse_store_km_016;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.alerts FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_016;
CREATE ROW POLICY IF NOT EXISTS store_km_016 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-016' TO storepulse_store_km_016;

-- store KM-017
CREATE ROLE IF NOT EXISTS storepulse_store_km_017;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.alerts FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_017;
CREATE ROW POLICY IF NOT EXISTS store_km_017 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-017' TO storepulse_store_km_017;

-- store KM-018
CREATE ROLE IF NOT EXISTS storepulse_store_km_018;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.return_lines FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.alerts FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_018;
CREATE ROW POLICY IF NOT EXISTS store_km_018 ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-018' TO storepulse_store_km_018;

-- store DL-001
CREATE ROLE IF NOT EXISTS storepulse_store_dl_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.return_lines FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.alerts FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_dl_001;
CREATE ROW POLICY IF NOT EXISTS store_dl_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'DL-001' TO storepulse_store_dl_001;

-- store DL-002
CREATE ROLE IF NOT EXISTS storepulse_store_dl_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.return_lines FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.alerts FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_dl_002;
CREATE ROW POLICY IF NOT EXISTS store_dl_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'DL-002' TO storepulse_store_dl_002;

-- store DL-003
CREATE ROLE IF NOT EXISTS storepulse_store_dl_003;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.sale_lines FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.return_lines FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.stock_changes FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.stock_levels FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.points_ledger FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.member_registrations FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.tag_changes FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.alerts TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.alerts FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_dl_003;
CREATE ROW POLICY IF NOT EXISTS store_dl_003 ON storepulse.sales_hourly FOR SELECT USING store_id = 'DL-003' TO storepulse_store_dl_003;

-- store DL-004
CREATE ROLE IF NOT EXISTS storepulse_store_dl_004;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.sale_lines FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.return_lines FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.stock_changes FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.stock_levels FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.points_ledger FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.member_registrations FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.tag_changes FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.alerts TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.alerts FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_dl_004;
CREATE ROW POLICY IF NOT EXISTS store_dl_004 ON storepulse.sales_hourly FOR SELECT USING store_id = 'DL-004' TO storepulse_store_dl_004;

-- store LJ-001
CREATE ROLE IF NOT EXISTS storepulse_store_lj_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.return_lines FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.alerts FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_lj_001;
CREATE ROW POLICY IF NOT EXISTS store_lj_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'LJ-001' TO storepulse_store_lj_001;

-- store LJ-002
CREATE ROLE IF NOT EXISTS storepulse_store_lj_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.return_lines FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.alerts FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_lj_002;
CREATE ROW POLICY IF NOT EXISTS store_lj_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'LJ-002' TO storepulse_store_lj_002;

-- store LJ-003
CREATE ROLE IF NOT EXISTS storepulse_store_lj_003;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.sale_lines FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.return_lines FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.stock_changes FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.stock_levels FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.points_ledger FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.member_registrations FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.tag_changes FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.alerts TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.alerts FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_lj_003;
CREATE ROW POLICY IF NOT EXISTS store_lj_003 ON storepulse.sales_hourly FOR SELECT USING store_id = 'LJ-003' TO storepulse_store_lj_003;

-- store BS-001
CREATE ROLE IF NOT EXISTS storepulse_store_bs_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.return_lines FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.alerts FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_bs_001;
CREATE ROW POLICY IF NOT EXISTS store_bs_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'BS-001' TO storepulse_store_bs_001;

-- store YX-001
CREATE ROLE IF NOT EXISTS storepulse_store_yx_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.return_lines FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.alerts FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_yx_001;
CREATE ROW POLICY IF NOT EXISTS store_yx_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'YX-001' TO storepulse_store_yx_001;

-- store YX-002
CREATE ROLE IF NOT EXISTS storepulse_store_yx_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.return_lines FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.alerts FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_yx_002;
CREATE ROW POLICY IF NOT EXISTS store_yx_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'YX-002' TO storepulse_store_yx_002;

-- store YX-003
CREATE ROLE IF NOT EXISTS storepulse_store_yx_003;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.sale_lines FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.return_lines FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.stock_changes FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.stock_levels FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.points_ledger FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.member_registrations FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.tag_changes FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.alerts TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.alerts FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_yx_003;
CREATE ROW POLICY IF NOT EXISTS store_yx_003 ON storepulse.sales_hourly FOR SELECT USING store_id = 'YX-003' TO storepulse_store_yx_003;

-- store MZ-001
CREATE ROLE IF NOT EXISTS storepulse_store_mz_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.return_lines FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.alerts FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_mz_001;
CREATE ROW POLICY IF NOT EXISTS store_mz_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'MZ-001' TO storepulse_store_mz_001;

-- store MZ-002
CREATE ROLE IF NOT EXISTS storepulse_store_mz_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.return_lines FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.alerts FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_mz_002;
CREATE ROW POLICY IF NOT EXISTS store_mz_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'MZ-002' TO storepulse_store_mz_002;

-- store JH-001
CREATE ROLE IF NOT EXISTS storepulse_store_jh_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.return_lines FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.alerts FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_jh_001;
CREATE ROW POLICY IF NOT EXISTS store_jh_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'JH-001' TO storepulse_store_jh_001;

-- store JH-002
CREATE ROLE IF NOT EXISTS storepulse_store_jh_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.return_lines FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.alerts FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_jh_002;
CREATE ROW POLICY IF NOT EXISTS store_jh_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'JH-002' TO storepulse_store_jh_002;

-- store QJ-001
CREATE ROLE IF NOT EXISTS storepulse_store_qj_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.return_lines FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.alerts FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_qj_001;
CREATE ROW POLICY IF NOT EXISTS store_qj_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'QJ-001' TO storepulse_store_qj_001;

-- store QJ-002
CREATE ROLE IF NOT EXISTS storepulse_store_qj_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.return_lines FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.alerts FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_qj_002;
CREATE ROW POLICY IF NOT EXISTS store_qj_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'QJ-002' TO storepulse_store_qj_002;

-- store QJ-003
CREATE ROLE IF NOT EXISTS storepulse_store_qj_003;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.sale_lines FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.return_lines FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.stock_changes FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.stock_levels FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.points_ledger FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.member_registrations FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.tag_changes FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.alerts TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.alerts FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_qj_003;
CREATE ROW POLICY IF NOT EXISTS store_qj_003 ON storepulse.sales_hourly FOR SELECT USING store_id = 'QJ-003' TO storepulse_store_qj_003;

-- store ZT-001
CREATE ROLE IF NOT EXISTS storepulse_store_zt_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.return_lines FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.alerts FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_zt_001;
CREATE ROW POLICY IF NOT EXISTS store_zt_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'ZT-001' TO storepulse_store_zt_001;

-- store CX-001
CREATE ROLE IF NOT EXISTS storepulse_store_cx_001;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.sale_lines FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.return_lines FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.stock_changes FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.stock_levels FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.points_ledger FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.member_registrations FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.tag_changes FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.alerts TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.alerts FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_cx_001;
CREATE ROW POLICY IF NOT EXISTS store_cx_001 ON storepulse.sales_hourly FOR SELECT USING store_id = 'CX-001' TO storepulse_store_cx_001;

-- store CX-002
CREATE ROLE IF NOT EXISTS storepulse_store_cx_002;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.sale_lines FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.return_lines FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.stock_changes FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.stock_levels FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.points_ledger FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.member_registrations FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.tag_changes FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.alerts TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.alerts FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_cx_002;
CREATE ROW POLICY IF NOT EXISTS store_cx_002 ON storepulse.sales_hourly FOR SELECT USING store_id = 'CX-002' TO storepulse_store_cx_002;

-- store KM-DC
CREATE ROLE IF NOT EXISTS storepulse_store_km_dc;
GRANT SELECT ON storepulse.sale_lines TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.sale_lines FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.return_lines TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.return_lines FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.stock_changes TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.stock_changes FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.stock_levels TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.stock_levels FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.points_ledger TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.points_ledger FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.member_registrations TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.member_registrations FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.tag_changes TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.tag_changes FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.alerts TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.alerts FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
GRANT SELECT ON storepulse.sales_hourly TO storepulse_store_km_dc;
CREATE ROW POLICY IF NOT EXISTS store_km_dc ON storepulse.sales_hourly FOR SELECT USING store_id = 'KM-DC' TO storepulse_store_km_dc;
