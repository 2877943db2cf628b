#!/usr/bin/env bash
# A ClickHouse server for development and tests: Debian's clickhouse-server
# (18.16, the oldest release StorePulse supports; current releases are tested
# through chDB, tests/python/chdb_mart.py).
#
#   ./deploy/clickhouse.sh start    # install if missing, start on 127.0.0.1, wait for GET /ping
#   ./deploy/clickhouse.sh stop
#   ./deploy/clickhouse.sh status
#
# Runs as root on a fresh Debian 12 machine and is idempotent. The packaged
# service is never started: a /usr/sbin/policy-rc.d that exits 101 keeps the
# postinst from starting it during the install (removed afterwards), and the
# server runs by hand with a config of ours that keeps data, logs, tmp and
# user files under STOREPULSE_CLICKHOUSE_DIR (default var/clickhouse-test),
# listening on 127.0.0.1 only:
#   HTTP   CLICKHOUSE_HTTP_PORT   (default 8123)
#   native CLICKHOUSE_TCP_PORT    (default 9000)
# deploy/test.sh starts it unless STOREPULSE_TEST_CLICKHOUSE names a server.
set -euo pipefail
cd "$(dirname "$0")/.."

HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-8123}"
TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
DIR="${STOREPULSE_CLICKHOUSE_DIR:-var/clickhouse-test}"
mkdir -p "$DIR"
DIR="$(realpath "$DIR")"
PIDFILE="$DIR/clickhouse.pid"
CONFIG="$DIR/config.xml"

install() {
  if command -v clickhouse-server >/dev/null 2>&1 && command -v clickhouse-client >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "clickhouse.sh: clickhouse-server is missing; run as root to install it with apt" >&2
    exit 1
  fi
  echo "clickhouse.sh: installing clickhouse-server and clickhouse-client (apt)..." >&2
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # 101: "action forbidden by policy": the postinst does not start the service.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >/dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    apt-get update -q >/dev/null
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >/dev/null || rc=$?
  fi
  if [ "$own_policy" -eq 1 ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  if [ "$rc" -ne 0 ]; then
    echo "clickhouse.sh: apt-get install clickhouse-server clickhouse-client failed ($rc)" >&2
    exit 1
  fi
}

write_config() {
  mkdir -p "$DIR/data" "$DIR/logs" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas"
  cat >"$CONFIG" <<EOF
<?xml version="1.0"?>
<!-- Written by deploy/clickhouse.sh; rewritten at every start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$DIR/logs/clickhouse-server.log</log>
        <errorlog>$DIR/logs/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$HTTP_PORT</http_port>
    <tcp_port>$TCP_PORT</tcp_port>
    <max_connections>512</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>1073741824</mark_cache_size>
    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
  # Tests create databases; the default user has no password and is
  # reachable from 127.0.0.1 only.
  cat >"$DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

ping() {
  # GET /ping answers "Ok.".
  local body
  body=$( (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT" &&
    printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
    timeout 2 cat <&3) 2>/dev/null) || return 1
  [[ "$body" == *"Ok."* ]]
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start() {
  install
  if running && ping; then
    echo "clickhouse.sh: already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$HTTP_PORT"
    return
  fi
  if ping; then
    echo "clickhouse.sh: something else answers /ping on 127.0.0.1:$HTTP_PORT; stop it or set CLICKHOUSE_HTTP_PORT" >&2
    exit 1
  fi
  rm -f "$PIDFILE"
  write_config
  clickhouse-server --config-file="$CONFIG" --pid-file="$PIDFILE" --daemon
  for _ in $(seq 1 300); do
    if ping; then
      echo "clickhouse.sh: clickhouse-server $(clickhouse-client --version 2>/dev/null | grep -o "[0-9][0-9.]*[0-9]" | head -1) up on 127.0.0.1:$HTTP_PORT (native $TCP_PORT), data in $DIR"
      return
    fi
    sleep 0.1
  done
  echo "clickhouse.sh: no answer on http://127.0.0.1:$HTTP_PORT/ping within 30 s; logs in $DIR/logs:" >&2
  tail -n 30 "$DIR/logs/clickhouse-server.err.log" >&2 2>/dev/null || true
  exit 1
}

stop() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "clickhouse.sh: stopped"
  else
    echo "clickhouse.sh: not running"
  fi
}

status() {
  if running && ping; then
    echo "clickhouse.sh: running (pid $(cat "$PIDFILE")) on 127.0.0.1:$HTTP_PORT"
  else
    echo "clickhouse.sh: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
