-- DEMO users of deploy/docker-compose.yml (run once, on the first start of
-- the ClickHouse container, after row-policies.sql). Change the password
-- (GRAFANA_CH_PASSWORD) before anyone else can reach the server.
-- grafana_hq: read-only, role storepulse_hq (every row). A region's Grafana
-- would use a user with a region role instead, e.g.
--   CREATE USER grafana_east IDENTIFIED BY '...' DEFAULT ROLE storepulse_region_east;
--   GRANT storepulse_region_east TO grafana_east;
CREATE USER IF NOT EXISTS grafana_hq IDENTIFIED WITH sha256_password BY 'storepulse-demo'
    SETTINGS readonly = 1;
GRANT storepulse_hq TO grafana_hq;
SET DEFAULT ROLE storepulse_hq TO grafana_hq;
