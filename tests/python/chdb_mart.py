#!/usr/bin/env python3
"""The ClickHouse mart's SQL on a current ClickHouse engine (chDB).

chDB (PyPI ``chdb``) embeds a current ClickHouse (26.x) in Python, with no
server. This script proves that the mart's SQL, written for ClickHouse
18.16, runs unchanged on it:

1. creates a database and applies every migration file of
   ``--migrations`` in name order, statement by statement (the same split
   as ``sinks/src/clickhouse/migrations.rs``: ``--`` comment lines dropped,
   split at ``;``);
2. loads every ``<table>.ndjson`` of ``--data`` (JSONEachRow, as the 18.16
   server printed its own rows) into the table of that name, so the
   materialised views fill the aggregate tables as on the server;
3. runs every query of ``--queries`` (a JSON list of ``[name, sql]``, the
   exact texts of ``sinks/src/clickhouse/query.rs``) and prints
   ``{"version": ..., "results": {name: rows}}`` on stdout, rows as
   JSONCompact ``data`` arrays;
4. with ``--parse FILE``: parses every statement of FILE (the row policies
   of ``deploy/clickhouse/row-policies.sql``) with ``EXPLAIN AST``, so a
   statement a current ClickHouse would refuse fails here (chDB has no
   access control to run them for real).

Exit status: 0 done; 2 a statement failed (its text and the error on
stderr); 3 chdb is not installed.

Used by the ClickHouse integration tests (``chdb_answers_equal_the_18_16_server``),
which compare its rows with the 18.16 server's for the same SQL. By hand:

    python3 tests/python/chdb_mart.py --migrations sinks/src/clickhouse/migrations \
        --data DIR --queries DIR/queries.json
"""

import argparse
import glob
import json
import os
import sys

try:
    import chdb
    from chdb import session as chdb_session
except ImportError:
    print("chdb is not installed: python3 -m pip install chdb (deploy/test.sh does)", file=sys.stderr)
    sys.exit(3)


def statements(sql):
    text = "\n".join(l for l in sql.splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def run(sess, sql, fmt="CSV"):
    try:
        return sess.query(sql, fmt)
    except Exception as e:  # chdb raises its own error types
        print(f"chdb_mart: statement failed: {e}\n{sql}", file=sys.stderr)
        sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--migrations", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--parse", help="a SQL file whose statements must parse")
    args = ap.parse_args()

    sess = chdb_session.Session()
    run(sess, "CREATE DATABASE IF NOT EXISTS storepulse_chdb")
    run(sess, "USE storepulse_chdb")
    for path in sorted(glob.glob(os.path.join(args.migrations, "*.sql"))):
        with open(path, encoding="utf-8") as f:
            for stmt in statements(f.read()):
                run(sess, stmt)
    for path in sorted(glob.glob(os.path.join(args.data, "*.ndjson"))):
        table = os.path.basename(path)[: -len(".ndjson")]
        with open(path, encoding="utf-8") as f:
            body = f.read()
        if body.strip():
            run(sess, f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")
    with open(args.queries, encoding="utf-8") as f:
        queries = json.load(f)
    results = {}
    for name, sql in queries:
        out = run(
            sess,
            sql + " SETTINGS output_format_json_quote_64bit_integers = 0",
            "JSONCompact",
        )
        results[name] = json.loads(out.bytes() if hasattr(out, "bytes") else str(out))["data"]
    parsed = 0
    if args.parse:
        with open(args.parse, encoding="utf-8") as f:
            for stmt in statements(f.read()):
                run(sess, "EXPLAIN AST " + stmt, "TabSeparated")
                parsed += 1
    version = str(run(sess, "SELECT version()", "TabSeparated")).strip()
    json.dump(
        {"version": version, "chdb": chdb.__version__, "results": results, "parsed": parsed},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
