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
# faster than the wall clock from a start in the past, so a 25-minute
# episode takes 25 s. A sale's send time is recovered from its event time:
# wall(start) + (occurred_at - start) / SPEEDUP; its alert's latency is the
# arrival at the webhook minus the send time of its last sale. Simulate
# sends a planted sale when its event time is reached or a few events later,
# so this over-estimates a little (the send time is taken as early as it can
# be). Also prints the server's own histogram (ingest of the batch to the
# alert durable in the outbox).
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
"$B" simulate --url http://127.0.0.1:18190 --rate "$RATE" --events $(( RATE * SECS )) \
  --batch 100 --concurrency 8 --start "$START" --speedup "$SPEEDUP" \
  --plant-fraud "$EPISODES" --quiet 2>/dev/null >"$DATA/report.json"
sleep 3
curl -fsS http://127.0.0.1:18190/metrics >"$DATA/metrics.txt"
python3 - "$DATA/report.json" "$DATA/hook.ndjson" "$DATA/metrics.txt" "$START_EPOCH" "$WALL0" "$SPEEDUP" <<'PY'
import json, re, sys
from datetime import datetime
report, hook, metrics = sys.argv[1:4]
start, wall0, speedup = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
r = json.load(open(report))
print("sent", r["sent"], "acknowledged", r["acknowledged"], "events/s %.0f" % (r["acknowledged"] / r["elapsed"]))
planted = r.get("planted_fraud", [])
lat, raised = [], set()
for line in open(hook):
    d = json.loads(line)
    if d["body"].get("type") != "alert.raised":
        continue
    a = d["body"]["alert"]
    raised.add((a["rule"], a["key"]))
    last = datetime.fromisoformat(a["last_at"]).timestamp()
    lat.append(d["arrival"] - (wall0 + (last - start) / speedup))
caught = sum(1 for p in planted if (p["rule"], p["key"]) in raised)
print("planted episodes (listed)", len(planted), "caught", caught, "alerts at the webhook", len(lat))
lat.sort()
def q(p): return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print("sale-to-webhook latency s: p50 %.3f p99 %.3f max %.3f (n=%d)" % (q(0.5), q(0.99), lat[-1] if lat else float("nan"), len(lat)))
for name in ("storepulse_fraud_alert_seconds", "storepulse_event_visible_seconds"):
    b = [(float(m.group(1)), int(m.group(2))) for m in
         (re.match(name + r'_bucket\{le="([^"]+)"\} (\d+)', l) for l in open(metrics)) if m]
    if b and b[-1][1]:
        tot = b[-1][1]
        print(name, "p50 <= %.4f s, p99 <= %.4f s (n=%d)" % tuple(
            [next(le for le, c in b if c >= q * tot) for q in (0.5, 0.99)] + [tot]))
PY
