#!/usr/bin/env bash
# Fraud alert latency (BENCHMARKS.md "Fraud (issue 5)"): from ingest of the
# sale that completes a pattern to the alert at a webhook, embedded mode.
#
#   ./deploy/bench-fraud.sh [SECONDS] [RATE] [EPISODES]   # default 60 20000 120
#
# Starts a release `storepulse run` (fsync on) on 127.0.0.1:18190 with one
# webhook: a Python receiver on 127.0.0.1:18191 that stamps each delivery's
# arrival. `storepulse simulate` sends RATE events/s for SECONDS with
# EPISODES planted fraud episodes, event time running SPEEDUP (60) times
# faster than the wall clock from a start in the past (a 25-minute episode
# takes 25 s). Beside that load, a probe completes one pattern a second
# (three sales of a fresh member in three stores, 5,000 CNY, dated at the
# simulated clock): the wall time just before it POSTs the completing sale
# is the start, the webhook's arrival stamp the end. Prints the probes'
# latency (p50, p99, max), how many planted episodes the webhook heard of,
# and the server's own histogram (ingest of a batch to its alerts durable
# in the outbox).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"; RATE="${2:-20000}"; EPISODES="${3:-120}"; SPEEDUP=60
cargo build --release --locked -p storepulse >/dev/null 2>&1
B=target/release/storepulse
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

python3 - "$DATA/hook.ndjson" <<'PY' &
import http.server, json, sys, time
out = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(json.dumps({"arrival": time.time(), "id": self.headers.get("X-StorePulse-Delivery"),
                              "body": json.loads(body)}) + "\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18191), H).serve_forever()
PY
PIDS+=($!)

cp storepulse.toml "$DATA/storepulse.toml"
cat >>"$DATA/storepulse.toml" <<'TOML'

[[fraud.webhooks]]
name = "bench"
url = "http://127.0.0.1:18191/hook"
secret = "bench-secret"
TOML
STOREPULSE__STORAGE__DATA_DIR="$DATA/data" STOREPULSE__HTTP__LISTEN=127.0.0.1:18190 \
  STOREPULSE__FRAUD__RULES_FILE="$DATA/fraud-rules.toml" \
  STOREPULSE__TELEMETRY__LEVEL=warn "$B" --config "$DATA/storepulse.toml" run 2>"$DATA/run.log" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18190/healthz >/dev/null 2>&1 && break; sleep 0.1; done

START_EPOCH=$(( $(date +%s) - SECS * SPEEDUP - 600 ))
START=$(date -u -d "@$START_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
WALL0=$(python3 -c 'import time; print(time.time())')
python3 - "$DATA/probes.ndjson" "$START_EPOCH" "$WALL0" "$SPEEDUP" "$SECS" <<'PY' &
# One completed pattern a second, for SECS seconds.
import json, sys, time, urllib.request
from datetime import datetime, timezone
out, start, wall0, speedup, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
log = open(out, "a", buffering=1)
def post(events):
    body = "".join(json.dumps(e) + "\n" for e in events).encode()
    req = urllib.request.Request("http://127.0.0.1:18190/v1/events", data=body, headers={
        "Authorization": "Bearer storepulse-demo-key", "Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=10) as r:
        answer = json.load(r)
        assert not answer["rejected"], answer
def sale(n, i, store, total, at):
    return {"v": 1, "event_id": "probe-%d-%d" % (n, i), "event_type": "sale",
            "occurred_at": datetime.fromtimestamp(at, timezone.utc).isoformat(),
            "store_id": store, "channel": "pos", "member_id": "probe-%d" % n,
            "order_id": "probe-o-%d-%d" % (n, i),
            "lines": [{"sku": "SKU-PROBE", "qty": 1, "unit_price_cents": total}],
            "total_cents": total, "payment": {"method": "card"}}
n = 0
while time.time() < wall0 + secs - 1:
    at = start + (time.time() - wall0) * speedup
    post([sale(n, 0, "KM-001", 200000, at), sale(n, 1, "DL-001", 200000, at + 1)])
    sent = time.time()
    post([sale(n, 2, "YX-001", 100000, at + 2)])
    log.write(json.dumps({"key": "probe-%d" % n, "sent": sent}) + "\n")
    n += 1
    time.sleep(max(0.0, 1.0 - (time.time() - sent)))
PY
PIDS+=($!)
"$B" simulate --url http://127.0.0.1:18190 --rate "$RATE" --events $(( RATE * SECS )) \
  --batch 100 --concurrency 8 --start "$START" --speedup "$SPEEDUP" \
  --plant-fraud "$EPISODES" --quiet 2>/dev/null >"$DATA/report.json"
sleep 3
curl -fsS http://127.0.0.1:18190/metrics >"$DATA/metrics.txt"
python3 - "$DATA/report.json" "$DATA/hook.ndjson" "$DATA/metrics.txt" "$DATA/probes.ndjson" <<'PY'
import json, re, sys
report, hook, metrics, probes = sys.argv[1:5]
r = json.load(open(report))
print("sent", r["sent"], "acknowledged", r["acknowledged"], "events/s %.0f" % (r["acknowledged"] / r["elapsed"]))
planted = r.get("planted_fraud", [])
arrived, raised = {}, set()
for line in open(hook):
    d = json.loads(line)
    if d["body"].get("type") != "alert.raised":
        continue
    a = d["body"]["alert"]
    raised.add((a["rule"], a["key"]))
    arrived.setdefault(a["key"], d["arrival"])
caught = sum(1 for p in planted if (p["rule"], p["key"]) in raised)
print("planted episodes (listed)", len(planted), "caught", caught, "alerts at the webhook", len(raised))
lat, missing = [], 0
for line in open(probes):
    p = json.loads(line)
    if p["key"] in arrived:
        lat.append(arrived[p["key"]] - p["sent"])
    else:
        missing += 1
lat.sort()
def q(x): return lat[min(len(lat) - 1, int(x * len(lat)))] if lat else float("nan")
print("probe: completing sale POSTed -> alert at the webhook, s: p50 %.3f p99 %.3f max %.3f (n=%d, missing %d)" % (
    q(0.5), q(0.99), lat[-1] if lat else float("nan"), len(lat), missing))
for name in ("storepulse_fraud_alert_seconds", "storepulse_event_visible_seconds"):
    b = [(float(m.group(1)), int(m.group(2))) for m in
         (re.match(name + r'_bucket\{le="([^"]+)"\} (\d+)', l) for l in open(metrics)) if m]
    if b and b[-1][1]:
        tot = b[-1][1]
        print(name, "p50 <= %.4f s, p99 <= %.4f s (n=%d)" % tuple(
            [next(le for le, c in b if c >= x * tot) for x in (0.5, 0.99)] + [tot]))
PY
