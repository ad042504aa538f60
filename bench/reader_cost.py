#!/usr/bin/env python3
"""Micro-benchmark: the reader thread's cost per single-row source transaction, as the daemon runs it.

Runs `Direction._read` (the source's transactions(), the commit clock's `saw` for a two-way table, the
hand-over into the channel) over N single-row transactions of an 8-column table, with no applier, and
prints CPU microseconds per transaction and -- deterministic, unlike any timing on a shared machine --
Python function calls per transaction (cProfile):

- binlog: BinlogSource over a MariaDB binlog of N single-row INSERT transactions (a throwaway server from
  replicator.testing.devservers, or --port);
- wal: WalSource over N prepared pgoutput messages (Begin, Insert, Commit), no server;
- --workload peers (binlog only): bench/peers.py's workload instead -- its 8-column table (DECIMAL, DATETIME,
  TEXT of 25-185 characters), --txns/2 transactions of 100-row INSERTs then as many of 100-row UPDATEs
  (binlog_row_image FULL) --, one-way as there (no commit clock), reported per row change as well.
- wal-server: WalSource over a real PostgreSQL 15 slot holding N single-row INSERT transactions (a
  throwaway server): the copy stream (libpq through ctypes) included, which the fake stream leaves out;
  its call count depends a little on how the messages arrive, so compare within one run;
- --txn-rows K (wal, wal-full): K row messages per transaction instead of one (one-way: no commit clock);
- wal-full: the same as wal with UPDATEs of a REPLICA IDENTITY FULL table (Begin, Update with the old row as an
  'O' tuple and the new one, Commit), what a two-way table's updates look like on the wire.

With --code DIR the daemon code is imported from DIR (e.g. `git archive <commit> | tar -x -C DIR`), so
two commits are compared on the same binlog in one run:

    python bench/reader_cost.py --txns 30000 --code /tmp/base      # base, then this checkout
    python bench/reader_cost.py --kind wal --profile tottime       # the 30 most expensive functions
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB = "reader_cost"

# the measurement itself, run in a child process per code tree (each imports its own replicator)
CHILD = r'''
import cProfile, itertools, json, pstats, random, struct, sys, threading, time
code, kind, n, sort = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
server = json.loads(sys.argv[5])
rows_per_txn = server.get("rows_per_txn", 1)
sys.path.insert(0, code)
from replicator.changes import LSN, BinlogPosition, TableRef, Transaction
from replicator.config import Account, Connection, Secret
from replicator.conflicts.clock import CommitClock
from replicator.loopguard import LoopGuard
from replicator.stream import pipeline
from replicator.stream.channel import Channel

if kind == "binlog":
    from replicator.sources.binlog import BinlogSource
    account = Account(server["user"], Secret(server["password"]))
    conn = Connection(name="erp", kind="mariadb", host=server["host"], port=server["port"], database=server["db"],
                      apply=account, capture=account, server_id=random.randrange(10**6, 10**9))
    table = TableRef(server["db"], server.get("table", "item"))
    source = BinlogSource(conn, "erp_to_crm", [table], LoopGuard("replicator", "crm_to_erp"),
                          BinlogPosition(server["file"], server["pos"]), chunk_rows=1000, heartbeat_seconds=5.0)
    transactions = source.transactions
elif kind == "wal-server":
    from replicator.sources.wal import WalSource
    account = Account(server["user"], Secret(server["password"]))
    conn = Connection("crm", "postgresql", server["host"], server["port"], server["db"], account, account,
                      slot=server["slot"], publication=server["publication"])
    table = TableRef("public", "item")
    source = WalSource(conn, "crm_to_erp", [table], LoopGuard("replicator", "erp_to_crm"), LSN.parse(server["lsn"]),
                       chunk_rows=1000)
    source._slot_stats = lambda: None
    transactions = source.transactions
else:
    from replicator.sources import wal as wal_module
    from replicator.sources.wal import WalSource
    def cstr(s): return s.encode() + b"\0"
    def tup(*vals): return struct.pack(">H", len(vals)) + b"".join(b"t" + struct.pack(">I", len(v.encode())) + v.encode() for v in vals)
    cols = [("id", 23, True), ("a", 20, False), ("b", 25, False), ("c", 1700, False), ("d", 1114, False),
            ("e", 23, False), ("f", 25, False), ("g", 701, False)]
    full = kind == "wal-full"
    rel = b"R" + struct.pack(">I", 1) + cstr("public") + cstr("item") + (b"f" if full else b"d") \
        + struct.pack(">H", len(cols))
    for name, oid, key in cols:
        rel += struct.pack(">B", int(key)) + cstr(name) + struct.pack(">Ii", oid, -1)
    payloads, lsn = [rel], 1000
    def values(i, name):
        return tup(str(i), str(i * 7), f"{name} {i}", f"{i / 3:.2f}", "2024-01-01 10:00:00.123456", str(i % 100),
                   "some text of a row", repr(i / 7.0))
    def row_message(i):
        return (b"U" + struct.pack(">I", 1) + b"O" + values(i, "old") + b"N" + values(i, "name")) if full \
            else (b"I" + struct.pack(">I", 1) + b"N" + values(i, "name"))
    for i in range(n):
        payloads += [b"B" + struct.pack(">QqI", lsn + 50, 7 * 10**14 + i, 1000 + i),
                     *(row_message(i * rows_per_txn + j) for j in range(rows_per_txn)),
                     b"C" + struct.pack(">BQQq", 0, lsn + 50, lsn + 60, 7 * 10**14 + i)]
        lsn += 100
    class Msg:
        __slots__ = ("payload",)
        def __init__(self, p): self.payload = p
    class Stream:
        wal_end = 0; io_time = 0.0; wait_asked_at = None; confirmed = 0
        def __init__(self): self.it = iter(payloads)
        def read(self):  # the base's reader: a message per call
            p = next(self.it, None)
            return Msg(p) if p is not None else None
        def read_batch(self):  # CopyStream.read_batch: what libpq holds, at most 256 messages
            return list(itertools.islice(self.it, 256))
        def confirm(self, lsn): pass
    wal_module.SLOT_STATS_EVERY = 1e9
    conn = Connection("crm", "postgresql", "h", 5432, "crm", Account("a", Secret("")), Account("c", Secret("")))
    table = TableRef("public", "item")
    source = WalSource(conn, "crm_to_erp", [table], LoopGuard("replicator", "erp_to_crm"), LSN(100), chunk_rows=1000)
    source._slot_stats = lambda: None
    transactions = lambda: source._read(Stream(), source.start)

profile = cProfile.Profile() if sort != "-" else None
started = [0.0]

class Limited:  # the first n transactions, then the end of the stream; measured from the first one on
    def transactions(self):
        k = 0
        for m in transactions():
            yield m
            k += isinstance(m, Transaction)
            if k == 1:  # connected, table map cached: from here on it is the steady per-transaction cost
                started[0] = time.process_time()
                if profile is not None:
                    profile.enable()
            if k >= n:
                if profile is not None:
                    profile.disable()
                started[0] = time.process_time() - started[0]
                source.stop()
                return
class Direction:
    source_conn = conn
    stop = threading.Event()
# a two-way table: the reader records commit times; the peers' mapping is one-way (no clock)
clock = CommitClock({(conn.name, table): ("id",)}) if rows_per_txn == 1 else None
chan = Channel(10**9)  # never full: no applier here
pipeline.Direction._read(Direction(), Limited(), chan, clock)
cpu = started[0]
taken = chan.take_all(0)
if len([t for t in taken if isinstance(t, Transaction)]) != n:
    raise SystemExit(f"read {len(taken)} items, expected {n} transactions: {taken[-1]!r}")
rows = sum(len(t.changes) for t in taken[1:] if isinstance(t, Transaction))
if rows != (n - 1) * rows_per_txn:
    raise SystemExit(f"read {rows} row changes after the first transaction, expected {(n - 1) * rows_per_txn}")
out = {"code": code, "cpu_us": cpu / (n - 1) * 1e6, "rows_per_txn": rows_per_txn}
if profile is not None:
    stats = pstats.Stats(profile)
    out["calls"] = sum(v[1] for v in stats.stats.values()) / (n - 1)
    if sort not in ("-", "calls"):
        stats.sort_stats(sort).print_stats(30)
print(json.dumps(out))
'''


def populate(host: str, port: int, user: str, password: str, n: int) -> tuple[str, int]:
    import pymysql

    db = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"USE {DB}")
        cur.execute("CREATE TABLE item (id INT PRIMARY KEY, a BIGINT NOT NULL, b VARCHAR(40) NOT NULL, "
                    "c DECIMAL(12,2), d DATETIME(6) NOT NULL, e INT, f VARCHAR(100), g DOUBLE) ENGINE=InnoDB")
        cur.execute("""CREATE PROCEDURE fill(n INT) BEGIN DECLARE i INT DEFAULT 0;
            WHILE i < n DO START TRANSACTION;
              INSERT INTO item VALUES (i, i * 7, CONCAT('name ', i), i / 3, NOW(6), i % 100, 'some text of a row',
                                       i / 7.0);
              COMMIT; SET i = i + 1; END WHILE; END""")
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        cur.execute("CALL fill(%s)", (n,))
    db.close()
    return str(row[0]), int(row[1])


def populate_peers(host: str, port: int, user: str, password: str, n: int) -> tuple[str, int]:
    """bench/peers.py's workload: n/2 transactions of 100-row INSERTs, then n/2 of 100-row UPDATEs."""
    import pymysql

    sys.path.insert(0, str(ROOT / "bench"))
    import peers

    db = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"USE {DB}")
        cur.execute(peers.MY_DDL)
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    db.close()

    class Server:  # what peers.run_workload needs of a MariaDBServer
        def connect(self, dbname: str, autocommit: bool) -> object:
            return pymysql.connect(host=host, port=port, user=user, password=password, database=dbname,
                                   autocommit=autocommit)
    peers.run_workload(Server(), DB, n // 2 * peers.TXN_ROWS)  # type: ignore[arg-type]
    return str(row[0]), int(row[1])


PG_FILL = """CREATE PROCEDURE fill(n int) LANGUAGE plpgsql AS $$ BEGIN
    FOR i IN 0 .. n - 1 LOOP
      INSERT INTO item VALUES (i, i * 7, 'name ' || i, i / 3.0, now(), i % 100, 'some text of a row', i / 7.0);
      COMMIT;
    END LOOP; END $$"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=("binlog", "wal", "wal-full", "wal-server", "both"), default="both",
                    help="both = binlog and wal")
    ap.add_argument("--txns", type=int, default=30_000)
    ap.add_argument("--workload", choices=("single", "peers"), default="single",
                    help="single-row INSERTs (default) or bench/peers.py's 100-row INSERT then UPDATE transactions")
    ap.add_argument("--txn-rows", type=int, default=1,
                    help="wal, wal-full: rows per transaction (more than 1: one-way, no commit clock, as peers)")
    ap.add_argument("--code", type=Path, action="append", default=[], metavar="DIR",
                    help="also measure the daemon code in DIR (repeatable); this checkout is always measured last")
    ap.add_argument("--repeat", type=int, default=2, help="alternate the code trees this many times (CPU time)")
    ap.add_argument("--profile", metavar="SORT", help="print the 30 most expensive functions (cProfile sort key)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="root")
    args = ap.parse_args(argv)
    trees = [str(p.resolve()) for p in args.code] + [str(ROOT)]
    kinds = ("binlog", "wal") if args.kind == "both" else (args.kind,)
    if args.workload == "peers":
        kinds = ("binlog",)
    server = tmp = pg = None
    info: dict[str, object] = {}
    info_of: dict[str, dict[str, object]] = {}
    try:
        if "binlog" in kinds:
            if args.port:
                host, port, user, password = args.host, args.port, args.user, args.password
            else:
                sys.path.insert(0, str(ROOT))
                from replicator.testing.devservers import MariaDBServer

                tmp = Path(tempfile.mkdtemp(prefix="reader-cost-"))
                server = MariaDBServer(tmp / "mariadb").start()
                host, port, user, password = server.host, server.port, server.user, server.password
            if args.workload == "peers":
                args.txns -= args.txns % 2
                file, pos = populate_peers(host, port, user, password, args.txns)
                info = {"table": "t", "rows_per_txn": 100}
            else:
                file, pos = populate(host, port, user, password, args.txns)
            info.update({"host": host, "port": port, "user": user, "password": password, "db": DB, "file": file,
                         "pos": pos})
            info_of["binlog"] = info
        if "wal-server" in kinds:
            sys.path.insert(0, str(ROOT))
            from replicator.testing.devservers import PostgresServer

            tmp = tmp or Path(tempfile.mkdtemp(prefix="reader-cost-"))
            pg = PostgresServer(tmp / "postgres").start()
            run = pg.execute
            run("CREATE TABLE item (id int PRIMARY KEY, a bigint NOT NULL, b text NOT NULL, c numeric(12,2), "
                "d timestamp(6) NOT NULL, e int, f text, g double precision)")
            run("CREATE PUBLICATION bench_pub FOR TABLE item")
            run(PG_FILL)
            # every run reads the same slot from its start: the reader is never acked here, so the slot
            # never moves
            run("SELECT pg_create_logical_replication_slot('bench', 'pgoutput')")
            lsn = str(run("SELECT confirmed_flush_lsn::text FROM pg_replication_slots")[0][0])
            run(f"CALL fill({int(args.txns)})")
            info_of["wal-server"] = {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password,
                                     "db": "postgres", "slot": "bench", "publication": "bench_pub", "lsn": lsn}

        for kind in ("wal", "wal-full"):
            info_of[kind] = {"rows_per_txn": args.txn_rows}

        def child(tree: str, kind: str, mode: str) -> subprocess.CompletedProcess[str]:
            if pg is not None:  # the previous run's walsender may take a moment to let go of the slot
                for _ in range(100):
                    if not pg.execute("SELECT 1 FROM pg_replication_slots WHERE active"):
                        break
                    time.sleep(0.1)
            return subprocess.run([sys.executable, "-c", CHILD, tree, kind, str(args.txns), mode,
                                   json.dumps(info_of.get(kind, {}))], capture_output=True, text=True, check=True)
        what = ("100-row INSERT then UPDATE transactions (bench/peers.py's table)" if args.workload == "peers"
                else f"{args.txn_rows}-row transactions, 8 columns" if args.txn_rows > 1 and kinds[0].startswith("wal")
                else "single-row transactions, 8 columns")
        print(f"{args.txns} {what}, through Direction._read; load {os.getloadavg()[0]:.1f}")
        for kind in kinds:
            results: dict[str, dict[str, float]] = {}
            for _ in range(args.repeat):
                for tree in trees:
                    for mode in ("-", "calls"):  # CPU time without the profiler, then the call count with it
                        proc = child(tree, kind, mode)
                        out = json.loads(proc.stdout.strip().splitlines()[-1])
                        r = results.setdefault(tree, {"cpu_us": float("inf")})
                        r["rows_per_txn"] = out["rows_per_txn"]
                        if "calls" in out:
                            r["calls"] = out["calls"]
                        else:
                            r["cpu_us"] = min(r["cpu_us"], out["cpu_us"])
            for tree in trees:
                r = results[tree]
                per_row = "" if r["rows_per_txn"] == 1 else (
                    f"; per row change: {r['cpu_us'] / r['rows_per_txn']:.2f} us, "
                    f"{r['calls'] / r['rows_per_txn']:.2f} calls")
                print(f"  {kind:10} {tree}: {r['cpu_us']:.1f} us CPU per transaction (best of {args.repeat}), "
                      f"{r['calls']:.1f} function calls per transaction{per_row}")
            if args.profile:
                proc = child(str(ROOT), kind, args.profile)
                print(proc.stdout)
        return 0
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
