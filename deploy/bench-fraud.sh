#!/usr/bin/env bash
# Fraud alert latency (BENCHMARKS.md "Fraud (issue 5)"): from ingest of the
# sale that completes a pattern to the alert at a webhook (and, on Kafka,
# to the alert record on `<p>.alerts`).
#
#   ./deploy/bench-fraud.sh [SECONDS] [RATE] [EPISODES]         # embedded; default 60 20000 120
#   ./deploy/bench-fraud.sh kafka [SECONDS] [RATE] [EPISODES]   # Kafka mode, same defaults
#
# Embedded: starts a release `storepulse run` (fsync on) on 127.0.0.1:18190
# with one webhook: a Python receiver on 127.0.0.1:18191 that stamps each
# delivery's arrival. `storepulse simulate` sends RATE events/s for SECONDS
# with EPISODES planted fraud episodes, event time running SPEEDUP (60)
# times faster than the wall clock from a start in the past (a 25-minute
# episode takes 25 s). Beside that load, a probe completes one pattern a
# second (three sales of a fresh member in three stores, 5,000 CNY, dated
# at the simulated clock): the wall time just before it POSTs the
# completing sale is the start, the webhook's arrival stamp the end.
#
# Kafka (`kafka`): a fresh broker of deploy/kafka.sh (Tansu, memory
# storage) on 127.0.0.1:${BENCH_KAFKA_PORT:-19092}, started for this run and
# stopped after it (Tansu's memory storage answers fetches more slowly the
# more it holds, so a broker left over from earlier runs would skew the
# comparison), a fresh topic prefix, and the roles as
# separate processes: `process` (:18101), `serve` with the webhook (:18102,
# the designated webhook serve), `ingest` (:18103). The background load is
# `simulate --kafka` producing RATE events/s straight to `<p>.events` (a
# POS producing directly; one HTTP simulator does not reach 20,000/s
# through ingest's acks=all round trips on 2 cores); the probes are POSTed
# to ingest. A Python consumer of `<p>.alerts` (confluent-kafka,
# fetch.wait.max.ms 10 like StorePulse's own consumers) stamps each raise
# it reads: the probe's alert on the topic. Per probe it also reports the
# hops: completing sale acknowledged by ingest, alert record produced
# (its CreateTime, stamped by the members stage's producer on this
# machine), read by the consumer, at the webhook.
#
# Prints the probes' latency (p50, p99, max; over all probes, and in the
# steady state: probes sent 5 s or more after the load started, past the
# load generator's start-up burst and the stages' cold start; and p50/max
# per 10 s of the run), how many planted episodes the webhook heard of, and
# the servers' own histograms.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=embedded
if [ "${1:-}" = kafka ]; then MODE=kafka; shift; fi
SECS="${1:-60}"; RATE="${2:-20000}"; EPISODES="${3:-120}"; SPEEDUP=60
# BENCH_MEMBERS: the load generator's member population (its default,
# 20,000, unless set). At 20,000 events/s and 60x event time, 20,000
# members make a sale every ~2 event-minutes each, hundreds of times what
# a real member does, and each member's record (`<p>.members`: the whole
# person, with the ledger entries of the last `ledger_exact_days`) grows
# all run long.
MEMBERS="${BENCH_MEMBERS:-20000}"
# BENCH_BIN: a storepulse binary to measure instead of building this
# checkout (two builds compared on the same machine, one after the other).
if [ -n "${BENCH_BIN:-}" ]; then
  B="$BENCH_BIN"
else
  cargo build --release --locked -p storepulse >/dev/null 2>&1
  B="${CARGO_TARGET_DIR:-target}/release/storepulse"
fi
DATA=$(mktemp -d)
PIDS=()
# BENCH_KEEP=DIR keeps the run's files (logs, probes, arrivals, metrics) there.
stop_broker() { :; }
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  stop_broker
  if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp "$DATA"/*.log "$DATA"/*.ndjson "$DATA"/*.txt "$DATA"/*.json "$DATA"/kafka/tansu.log "$BENCH_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT
wait_up() { for _ in $(seq 1 300); do curl -fsS "$1/healthz" >/dev/null 2>&1 && return; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

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
cp storepulse.toml "$DATA/storepulse-hook.toml"
cat >>"$DATA/storepulse-hook.toml" <<'TOML'

[[fraud.webhooks]]
name = "bench"
url = "http://127.0.0.1:18191/hook"
secret = "bench-secret"
TOML
# BENCH_EXTRA_TOML: appended to every role's configuration (a knob tried
# for one run, e.g. $'[kafka.client]\n"linger.ms" = "25"').
if [ -n "${BENCH_EXTRA_TOML:-}" ]; then
  printf '\n%s\n' "$BENCH_EXTRA_TOML" | tee -a "$DATA/storepulse.toml" >>"$DATA/storepulse-hook.toml"
fi
# Adds lines ($1) under [kafka.client] of each config file that follows.
add_kafka_client() {
  local add="$1" f; shift
  for f in "$@"; do
    awk -v add="$add" '{ print } /^\[kafka\.client\]/ { print add }' "$f" >"$f.new" && mv "$f.new" "$f"
  done
}
# BENCH_KAFKA_CLIENT: lines added under [kafka.client] (librdkafka
# properties of every role's clients), e.g. '"linger.ms" = "25"'.
if [ -n "${BENCH_KAFKA_CLIENT:-}" ]; then
  add_kafka_client "$BENCH_KAFKA_CLIENT" "$DATA/storepulse.toml" "$DATA/storepulse-hook.toml"
fi
# BENCH_SIM_KAFKA_CLIENT: the same, for the load generator's producer only
# (how many record batches the events topic gets).
cp "$DATA/storepulse.toml" "$DATA/storepulse-sim.toml"
if [ -n "${BENCH_SIM_KAFKA_CLIENT:-}" ]; then
  add_kafka_client "$BENCH_SIM_KAFKA_CLIENT" "$DATA/storepulse-sim.toml"
fi
# BENCH_SERVE_KAFKA_CLIENT: the same, for serve's clients only.
if [ -n "${BENCH_SERVE_KAFKA_CLIENT:-}" ]; then
  add_kafka_client "$BENCH_SERVE_KAFKA_CLIENT" "$DATA/storepulse-hook.toml"
fi
export STOREPULSE__FRAUD__RULES_FILE="$DATA/fraud-rules.toml" STOREPULSE__TELEMETRY__LEVEL=warn

if [ "$MODE" = embedded ]; then
  INGEST=http://127.0.0.1:18190
  STOREPULSE__STORAGE__DATA_DIR="$DATA/data" STOREPULSE__HTTP__LISTEN=127.0.0.1:18190 \
    "$B" --config "$DATA/storepulse-hook.toml" run 2>"$DATA/run.log" &
  PIDS+=($!)
  wait_up "$INGEST"
else
  KPORT="${BENCH_KAFKA_PORT:-19092}"
  if (exec 3<>/dev/tcp/127.0.0.1/"$KPORT") 2>/dev/null; then
    echo "something already listens on 127.0.0.1:$KPORT; set BENCH_KAFKA_PORT" >&2; exit 1
  fi
  export KAFKA_PORT="$KPORT" STOREPULSE_KAFKA_DIR="$DATA/kafka"
  ./deploy/kafka.sh start
  stop_broker() { KAFKA_PORT="$KPORT" STOREPULSE_KAFKA_DIR="$DATA/kafka" ./deploy/kafka.sh stop >/dev/null 2>&1 || true; }
  PREFIX="benchfraud$(date +%s)"
  export STOREPULSE__KAFKA__BROKERS=127.0.0.1:$KPORT STOREPULSE__KAFKA__TOPIC_PREFIX="$PREFIX"
  INGEST=http://127.0.0.1:18103
  STOREPULSE__STORAGE__DATA_DIR="$DATA/process" STOREPULSE__HTTP__LISTEN=127.0.0.1:18101 \
    "$B" --config "$DATA/storepulse.toml" process 2>"$DATA/process.log" &
  PIDS+=($!)
  STOREPULSE__STORAGE__DATA_DIR="$DATA/serve" STOREPULSE__HTTP__LISTEN=127.0.0.1:18102 \
    "$B" --config "$DATA/storepulse-hook.toml" serve 2>"$DATA/serve.log" &
  PIDS+=($!)
  STOREPULSE__STORAGE__DATA_DIR="$DATA/ingest" STOREPULSE__HTTP__LISTEN=127.0.0.1:18103 \
    "$B" --config "$DATA/storepulse.toml" ingest 2>"$DATA/ingest.log" &
  PIDS+=($!)
  wait_up http://127.0.0.1:18101; wait_up http://127.0.0.1:18102; wait_up "$INGEST"
  python3 - "$DATA/topic.ndjson" "$PREFIX.alerts" "$KPORT" <<'PY' &
# Stamps every fraud raise read from <p>.alerts.
import json, sys, time
from confluent_kafka import Consumer, TopicPartition
out, topic = open(sys.argv[1], "a", buffering=1), sys.argv[2]
c = Consumer({"bootstrap.servers": "127.0.0.1:" + sys.argv[3], "group.id": "bench-" + topic,
              "enable.auto.commit": False, "fetch.wait.max.ms": 10})
parts = c.list_topics(topic, timeout=30).topics[topic].partitions
c.assign([TopicPartition(topic, p, 0) for p in parts])
while True:
    m = c.poll(1.0)
    if m is None or m.error():
        continue
    arrival = time.time()
    v = json.loads(m.value())
    if v.get("type") == "alert.raised":
        out.write(json.dumps({"arrival": arrival, "created": m.timestamp()[1] / 1000.0,
                              "rule": v["alert"]["rule"], "key": v["alert"]["key"]}) + "\n")
PY
  PIDS+=($!)
  sleep 3 # group join
fi

START_EPOCH=$(( $(date +%s) - SECS * SPEEDUP - 600 ))
START=$(date -u -d "@$START_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
WALL0=$(python3 -c 'import time; print(time.time())')
python3 - "$DATA/probes.ndjson" "$START_EPOCH" "$WALL0" "$SPEEDUP" "$SECS" "$INGEST" <<'PY' &
# One completed pattern a second, for SECS seconds.
import json, sys, time, urllib.request
from datetime import datetime, timezone
out, start, wall0, speedup, secs, ingest = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
log = open(out, "a", buffering=1)
def post(events):
    body = "".join(json.dumps(e) + "\n" for e in events).encode()
    req = urllib.request.Request(ingest + "/v1/events", data=body, headers={
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
    log.write(json.dumps({"key": "probe-%d" % n, "sent": sent, "acked": time.time()}) + "\n")
    n += 1
    time.sleep(max(0.0, 1.0 - (time.time() - sent)))
PY
PIDS+=($!)
if [ "$MODE" = embedded ]; then
  "$B" simulate --url "$INGEST" --rate "$RATE" --events $(( RATE * SECS )) --members "$MEMBERS" \
    --batch 100 --concurrency 8 --start "$START" --speedup "$SPEEDUP" \
    --plant-fraud "$EPISODES" --quiet 2>/dev/null >"$DATA/report.json"
  sleep 3
  curl -fsS "$INGEST/metrics" >"$DATA/metrics.txt"
else
  "$B" --config "$DATA/storepulse-sim.toml" simulate --kafka 127.0.0.1:$KPORT --topic-prefix "$PREFIX" --rate "$RATE" --events $(( RATE * SECS )) --members "$MEMBERS" \
    --start "$START" --speedup "$SPEEDUP" \
    --plant-fraud "$EPISODES" --quiet 2>/dev/null >"$DATA/report.json" &
  SIM=$!
  # Where each stage's input waits, every 2 s while the load runs: its
  # fetches' round trip to the broker (p99 over librdkafka's last 1 s
  # window) and the records fetched but not yet taken (stages.tsv:
  # seconds since the load started, metric, value).
  ( while kill -0 "$SIM" 2>/dev/null; do
      t=$(python3 -c "import time; print('%.1f' % (time.time() - $WALL0))")
      curl -fsS http://127.0.0.1:18101/metrics 2>/dev/null | awk -v t="$t" \
        '/^[a-z_]*kafka_(broker_rtt_seconds\{quantile="0.99"\}|fetch_queue_records|input_age_seconds_sum|input_age_seconds_count) / { print t "\t" $1 "\t" $2 }'
      sleep 2
    done >"$DATA/stages.tsv" ) &
  # Who takes the CPU, half way through (the broker, the roles, the load
  # generator, and whatever else runs on the machine).
  sleep $(( SECS / 2 ))
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  # Two frames 2 s apart; the second has the CPU of those 2 s.
  top -b -c -n 2 -d 2 -w 400 | awk '/^top -/ { f++ } f == 2 && $1 ~ /^[0-9]+$/ && $9 > 2 {
      n = split($12, path, "/"); cmd = path[n]; for (i = 13; i <= NF; i++) if ($i ~ /^(run|process|serve|ingest|simulate|broker)$/ || $i ~ /--crate-name/) { cmd = cmd " " $i " " $(i + 1); break }
      printf "cpu%% %5s %s\n", $9, substr(cmd, 1, 80) }' | head -12
  wait "$SIM"
  sleep 5
  { curl -fsS http://127.0.0.1:18101/metrics; curl -fsS http://127.0.0.1:18102/metrics; } >"$DATA/metrics.txt"
  curl -fsS http://127.0.0.1:18102/healthz; echo
fi
python3 - "$DATA/report.json" "$DATA/hook.ndjson" "$DATA/metrics.txt" "$DATA/probes.ndjson" "$DATA/topic.ndjson" "$WALL0" "$DATA/stages.tsv" <<'PY'
import json, os, re, sys
report, hook, metrics, probes, topic = sys.argv[1:6]
wall0 = float(sys.argv[6])
stages = sys.argv[7]
WARM_UP = 5.0  # seconds of load before a probe counts as steady state
r = json.load(open(report))
print("sent", r["sent"], "acknowledged", r["acknowledged"], "events/s %.0f" % (r["acknowledged"] / r["elapsed"]))
planted = r.get("planted_fraud", [])
def raises(path, get):
    arrived, seen = {}, set()
    if not os.path.exists(path):
        return arrived, seen
    for line in open(path):
        d = json.loads(line)
        a = get(d)
        if a is None:
            continue
        seen.add((a["rule"], a["key"]))
        arrived.setdefault(a["key"], d)
    return arrived, seen
hook_arrived, hook_raised = raises(hook, lambda d: d["body"]["alert"] if d["body"].get("type") == "alert.raised" else None)
topic_arrived, topic_raised = raises(topic, lambda d: d)
caught = sum(1 for p in planted if (p["rule"], p["key"]) in hook_raised)
print("planted episodes (listed)", len(planted), "caught at the webhook", caught, "alerts at the webhook", len(hook_raised))
if topic_raised:
    print("planted episodes on the topic", sum(1 for p in planted if (p["rule"], p["key"]) in topic_raised),
          "alerts on the topic", len(topic_raised))
ps = [json.loads(l) for l in open(probes)]
def show(name, f, since=None):
    lat, missing = [], 0
    for p in ps:
        if since is not None and p["sent"] < since:
            continue
        v = f(p)
        if v is None:
            missing += 1
        else:
            lat.append(v)
    lat.sort()
    def q(x): return lat[min(len(lat) - 1, int(x * len(lat)))] if lat else float("nan")
    print("probe: %s, s: p50 %.3f p99 %.3f max %.3f (n=%d, missing %d)" % (
        name, q(0.5), q(0.99), lat[-1] if lat else float("nan"), len(lat), missing))
def timeline(name, f):
    # Per 10 s of the run (by when the probe was sent): p50 / max, to show
    # whether the latency stays flat or climbs as the broker fills.
    windows = {}
    for p in ps:
        v = f(p)
        if v is not None:
            windows.setdefault(int((p["sent"] - wall0) // 10), []).append(v)
    cells = []
    for w in sorted(windows):
        v = sorted(windows[w])
        cells.append("%d-%ds %.2f/%.2f" % (w * 10, w * 10 + 10, v[len(v) // 2], v[-1]))
    print("probe: %s, p50/max per 10 s: %s" % (name, ", ".join(cells)))
at_hook = lambda p: hook_arrived[p["key"]]["arrival"] - p["sent"] if p["key"] in hook_arrived else None
if topic_raised:
    on_topic = lambda p: topic_arrived[p["key"]]["arrival"] - p["sent"] if p["key"] in topic_arrived else None
    show("completing sale POSTed -> alert read from <p>.alerts", on_topic)
    show("completing sale POSTed -> alert at the webhook", at_hook)
    show("completing sale POSTed -> alert read from <p>.alerts, steady state (probes sent %.0f s or more after the load started)" % WARM_UP, on_topic, wall0 + WARM_UP)
    timeline("to <p>.alerts", on_topic)
    print("hops:")
    show("  POSTed -> acknowledged by ingest (acks=all)", lambda p: p["acked"] - p["sent"])
    show("  acknowledged -> alert record produced (CreateTime)",
         lambda p: topic_arrived[p["key"]]["created"] - p["acked"] if p["key"] in topic_arrived else None)
    show("  alert produced -> read by the consumer",
         lambda p: topic_arrived[p["key"]]["arrival"] - topic_arrived[p["key"]]["created"] if p["key"] in topic_arrived else None)
    show("  alert produced -> at the webhook (serve reads, outbox, POST)",
         lambda p: hook_arrived[p["key"]]["arrival"] - topic_arrived[p["key"]]["created"]
         if p["key"] in hook_arrived and p["key"] in topic_arrived else None)
else:
    show("completing sale POSTed -> alert at the webhook", at_hook)
    show("completing sale POSTed -> alert at the webhook, steady state (probes sent %.0f s or more after the load started)" % WARM_UP, at_hook, wall0 + WARM_UP)
    timeline("to the webhook", at_hook)
names = sorted({m.group(1) for m in (re.match(r'(\w+)_bucket\{', l) for l in open(metrics)) if m})
for name in names:
    if not any(k in name for k in ("fraud_alert_seconds", "event_visible_seconds", "input_age_seconds")):
        continue
    b = [(float(m.group(1)), int(m.group(2))) for m in
         (re.match(name + r'_bucket\{le="([^"]+)"\} (\d+)', l) for l in open(metrics)) if m and m.group(1) != "+Inf"]
    inf = [int(m.group(1)) for m in (re.match(name + r'_bucket\{le="\+Inf"\} (\d+)', l) for l in open(metrics)) if m]
    tot = inf[0] if inf else (b[-1][1] if b else 0)
    if tot:
        def le(x):
            return next((("%.4f" % l) for l, c in b if c >= x * tot), "+Inf")
        print(name, "p50 <= %s s, p99 <= %s s (n=%d)" % (le(0.5), le(0.99), tot))
if os.path.exists(stages):
    # Per 20 s of the load, per stage: the broker round trip of its fetches
    # (max of the 1 s p99s sampled), the fetched records waiting for it
    # (max), and its mean input age (broker timestamp -> applied) over
    # the window, from the histogram's sum and count.
    rows = {}
    for line in open(stages):
        t, name, value = line.rstrip("\n").split("\t")
        stage = name.split("storepulse_kafka")[0].rstrip("_") or "stock"
        metric = name.split("storepulse_kafka_")[1].split("{")[0]
        rows.setdefault(stage, []).append((float(t), metric, float(value)))
    for stage, samples in sorted(rows.items()):
        cells, last_sum = [], {}
        for w in range(0, int(max(t for t, _, _ in samples)) // 20 + 1):
            inside = [(m, v) for t, m, v in samples if w * 20 <= t < w * 20 + 20]
            rtt = max((v for m, v in inside if m == "broker_rtt_seconds"), default=float("nan"))
            queue = max((v for m, v in inside if m == "fetch_queue_records"), default=float("nan"))
            sums = [v for m, v in inside if m == "input_age_seconds_sum"]
            counts = [v for m, v in inside if m == "input_age_seconds_count"]
            age = (sums[-1] - sums[0]) / (counts[-1] - counts[0]) if len(counts) > 1 and counts[-1] > counts[0] else float("nan")
            cells.append("%d-%ds rtt %.3f queue %.0f age %.3f" % (w * 20, w * 20 + 20, rtt, queue, age))
        print("stage %s: %s" % (stage, "; ".join(cells)))
PY
