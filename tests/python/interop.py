#!/usr/bin/env python3
"""Interoperability check of StorePulse's Kafka mode with a client it did not write.

Uses confluent-kafka (the Python binding of librdkafka, from PyPI) as a POS
vendor or an HQ analyst would:

1. produces every event of an NDJSON file, byte for byte, to
   ``<prefix>.events``, keyed by ``store_id``, with the client's *default*
   partitioner (librdkafka ``consistent_random``: CRC32 of the key), not the
   murmur2 one StorePulse expects, so that some events land in a partition
   other than their store's and the processors must forward them;
2. flushes, and checks every message was acknowledged;
3. reads ``<prefix>.alerts`` from the beginning (all partitions, no consumer
   group offsets) until it has seen every ``--expect-alert`` id, or until
   ``--timeout``;
4. prints a JSON summary on stdout: produced count, where each event landed
   (partition, offset, and the murmur2 partition of its key), how many landed
   in a foreign partition, and the alerts seen.

Exit status: 0 all produced and every expected alert seen; 1 an expected
alert missing at the timeout; 2 a produce or consume error; 3 confluent-kafka
is not installed.

Used by tests/tests/python_interop.rs; runnable by hand against any broker:

    python3 tests/python/interop.py --brokers 127.0.0.1:9092 \
        --prefix storepulse --events events.ndjson \
        --expect-alert oversold:KM-001:SKU-100234:pos-KM-001-t3-000918
"""

import argparse
import json
import os
import sys
import time

try:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka import OFFSET_BEGINNING
    import confluent_kafka
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(
        f"interop.py: cannot import confluent_kafka ({exc}); "
        "install it with: python3 -m pip install confluent-kafka",
        file=sys.stderr,
    )
    sys.exit(3)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java client ``Utils.murmur2``), as an unsigned 32-bit int."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) // 4
    for i in range(whole):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = data[4 * whole :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def _signed(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


# The Java client's test vectors: this copy must agree with Kafka's.
for _key, _want in [(b"21", -973932308), (b"foobar", -790332482), (b"abc", 479470107)]:
    assert _signed(murmur2(_key)) == _want, _key


def home_partition(key: bytes, partitions: int) -> int:
    """The partition StorePulse expects a store's events in."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def client_versions():
    """(confluent-kafka, librdkafka) versions; ``version()`` is a bare string in some releases."""
    v = confluent_kafka.version()
    return (v[0] if isinstance(v, tuple) else v), confluent_kafka.libversion()[0]


def log(msg: str) -> None:
    print(f"interop.py: {msg}", file=sys.stderr, flush=True)


def partition_count(client, topic: str, timeout: float) -> int:
    """Partitions of ``topic`` from the broker's metadata (waits for it to exist)."""
    deadline = time.monotonic() + timeout
    while True:
        md = client.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            return len(t.partitions)
        if time.monotonic() >= deadline:
            raise RuntimeError(f"topic {topic} has no partitions (error: {t.error if t else 'absent'})")
        time.sleep(0.2)


def produce(brokers: str, topic: str, lines, timeout: float):
    """Produces each line keyed by its store_id; returns one placement per line."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "client.id": "storepulse-interop-py",
            "acks": "all",
            # No "partitioner": the default (consistent_random, CRC32) on purpose.
        }
    )
    partitions = partition_count(producer, topic, timeout)
    placements = [None] * len(lines)
    errors = []

    def on_delivery(index):
        def report(err, msg):
            if err is not None:
                errors.append(f"event {index}: {err}")
            else:
                placements[index]["partition"] = msg.partition()
                placements[index]["offset"] = msg.offset()

        return report

    for i, raw in enumerate(lines):
        event = json.loads(raw)
        store = event["store_id"]
        key = store.encode()
        placements[i] = {
            "event_id": event.get("event_id"),
            "store_id": store,
            "murmur2_partition": home_partition(key, partitions),
            "partition": None,
            "offset": None,
        }
        while True:
            try:
                producer.produce(topic, value=raw, key=key, on_delivery=on_delivery(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(timeout)
    if left:
        errors.append(f"{left} message(s) not delivered within {timeout}s")
    missing = [p["event_id"] for p in placements if p["partition"] is None]
    if missing and not errors:
        errors.append(f"no delivery report for {missing}")
    return partitions, placements, errors


def consume_alerts(brokers: str, topic: str, expected, timeout: float, settle: float):
    """Reads ``topic`` from the beginning until every expected id is seen."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"storepulse-interop-py-{os.getpid()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "client.id": "storepulse-interop-py",
        }
    )
    partitions = partition_count(consumer, topic, timeout)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = []
    errors = []
    want = set(expected)
    deadline = time.monotonic() + timeout
    settle_until = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            ids = {a["alert_id"] for a in seen}
            if want <= ids and (want or seen):
                # Everything expected is here; keep reading a little so that
                # unexpected extra alerts show up in the summary too.
                if settle_until is None:
                    settle_until = now + settle
                elif now >= settle_until:
                    break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                errors.append(str(msg.error()))
                if not msg.error().retriable():
                    break
                continue
            record = json.loads(msg.value())
            alert = record.get("alert", {})
            key = msg.key().decode() if msg.key() is not None else None
            seen.append(
                {
                    "alert_id": alert.get("alert_id"),
                    "kind": alert.get("kind"),
                    "family": record.get("family"),
                    "store_id": alert.get("store_id"),
                    "sku": alert.get("sku"),
                    "on_hand": alert.get("on_hand"),
                    "event_id": alert.get("event_id"),
                    "occurred_at": alert.get("occurred_at"),
                    "key": key,
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                }
            )
    finally:
        consumer.close()
    return seen, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,host:port]")
    ap.add_argument("--prefix", required=True, help="StorePulse's kafka.topic_prefix")
    ap.add_argument("--events", required=True, help="NDJSON file of contract events")
    ap.add_argument(
        "--expect-alert",
        action="append",
        default=[],
        metavar="ALERT_ID",
        help="an alert_id to wait for on <prefix>.alerts (repeatable); none: wait for any alert",
    )
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the alerts")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to keep reading after the last expected alert")
    args = ap.parse_args()

    with open(args.events, "rb") as f:
        lines = [line.strip() for line in f if line.strip()]
    events_topic = f"{args.prefix}.events"
    alerts_topic = f"{args.prefix}.alerts"
    started = time.monotonic()
    py_version, lib_version = client_versions()
    log(f"confluent-kafka {py_version}, librdkafka {lib_version}")

    partitions, placements, errors = produce(args.brokers, events_topic, lines, args.timeout)
    foreign = sum(1 for p in placements if p["partition"] is not None and p["partition"] != p["murmur2_partition"])
    log(f"produced {len(lines) - len(errors)} of {len(lines)} to {events_topic} ({partitions} partitions, {foreign} in a foreign partition)")
    summary = {
        "client": {"confluent_kafka": py_version, "librdkafka": lib_version},
        "events_topic": events_topic,
        "partitions": partitions,
        "produced": sum(1 for p in placements if p["partition"] is not None),
        "foreign": foreign,
        "placements": placements,
        "alerts_topic": alerts_topic,
        "alerts": [],
        "missing_alerts": [],
        "errors": errors,
    }
    if errors:
        print(json.dumps(summary, indent=2))
        return 2

    expected = args.expect_alert
    seen, cerrors = consume_alerts(args.brokers, alerts_topic, expected, args.timeout, args.settle)
    ids = {a["alert_id"] for a in seen}
    summary["alerts"] = seen
    summary["missing_alerts"] = sorted(set(expected) - ids)
    summary["errors"] = cerrors
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    print(json.dumps(summary, indent=2))
    if cerrors:
        log(f"consume errors: {cerrors}")
        return 2
    if summary["missing_alerts"] or (not expected and not seen):
        log(f"missing alerts after {args.timeout}s: {summary['missing_alerts'] or 'any'}")
        return 1
    log(f"saw {len(seen)} alert record(s) on {alerts_topic}, all {len(expected)} expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
