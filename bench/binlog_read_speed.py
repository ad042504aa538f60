#!/usr/bin/env python3
"""Micro-benchmark: BinlogSource reading single-row transactions, mysql-replication's BinLogStreamReader vs
replicator.sources.binlogfast.FastBinLogStreamReader.

Starts a throwaway MariaDB (replicator.testing.devservers, in a temporary directory) unless --port is given (then
--host/--user/--password: root-like, CREATE DATABASE/ROUTINE, REPLICATION SLAVE, BINLOG MONITOR), runs
--txns single-row UPDATE transactions through a stored procedure that commits per row (4 binlog events each:
GTID, table map, update rows, Xid), then reads them with BinlogSource, once per reader class, and prints
transactions/s (wall) for each, checking that both gave the same transactions. With --raw it also times the
bare reader loop (fetchone() + RowDecoder.decode of the rows), without BinlogSource.

    python bench/binlog_read_speed.py                 # 100k transactions, own server
    python bench/binlog_read_speed.py --txns 20000 --repeat 3
    python bench/binlog_read_speed.py --host 127.0.0.1 --port 3306 --user root --password secret

Timings are single runs on a shared machine: use --repeat and look at the best.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import pymysql  # noqa: E402
from pymysqlreplication import BinLogStreamReader  # noqa: E402
from pymysqlreplication.event import XidEvent  # noqa: E402

from replicator.changes import BinlogPosition, TableRef  # noqa: E402
from replicator.config import Account, Connection, Secret  # noqa: E402
from replicator.loopguard import LoopGuard  # noqa: E402
from replicator.sources import binlog as binlog_mod  # noqa: E402
from replicator.sources.binlogfast import FastBinLogStreamReader  # noqa: E402
from replicator.sources.rowdecode import RowDecoder  # noqa: E402

DB = "binlog_read_bench"
READERS = (("mysql-replication", BinLogStreamReader), ("binlogfast", FastBinLogStreamReader))


def populate(conn: Any, txns: int) -> tuple[tuple[str, int], tuple[str, int]]:
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"USE {DB}")
        cur.execute("CREATE TABLE item (id INT PRIMARY KEY, v BIGINT NOT NULL, name VARCHAR(40) NOT NULL, "
                    "touched DATETIME(6) NOT NULL) ENGINE=InnoDB")
        cur.execute("INSERT INTO item VALUES (1, 0, 'one', '2024-01-01'), (2, 0, 'two', '2024-01-01')")
        cur.execute("""CREATE PROCEDURE bump(n INT) BEGIN
                         DECLARE i INT DEFAULT 0;
                         WHILE i < n DO
                           START TRANSACTION;
                           UPDATE item SET v = v + 1, touched = NOW(6) WHERE id = 1 + i % 2;
                           COMMIT;
                           SET i = i + 1;
                         END WHILE;
                       END""")
        cur.execute("SHOW MASTER STATUS")
        start = cur.fetchone()[:2]
        cur.execute("CALL bump(%s)", (txns,))
        cur.execute("SHOW MASTER STATUS")
        end = cur.fetchone()[:2]
    return (start[0], int(start[1])), (end[0], int(end[1]))


def read_source(conn: Connection, cls: type, start: tuple, end: tuple, txns: int) -> tuple[float, list]:
    """Wall seconds for BinlogSource to hand over `txns` transactions, and the transactions."""
    names = ("BinLogStreamReader", "FastBinLogStreamReader")  # _open builds one of them, by this name
    orig = {n: getattr(binlog_mod, n) for n in names if hasattr(binlog_mod, n)}
    for n in names:
        setattr(binlog_mod, n, cls)
    try:
        source = binlog_mod.BinlogSource(conn, "bench", [TableRef(DB, "item")], LoopGuard("replicator", "none"),
                                         BinlogPosition(*start), chunk_rows=1000, heartbeat_seconds=5.0)
        timer = threading.Timer(max(120.0, txns / 1000), source.stop)
        timer.start()
        out = []
        t0 = time.perf_counter()
        try:
            gen = source.transactions()
            for txn in gen:
                out.append(txn)
                if len(out) >= txns:
                    break
            elapsed = time.perf_counter() - t0
            source.stop()
            gen.close()
        finally:
            timer.cancel()
        if not isinstance(source._stream, cls):
            raise SystemExit(f"BinlogSource did not use {cls.__name__}")
    finally:
        for n in names:
            if n in orig:
                setattr(binlog_mod, n, orig[n])
            else:
                delattr(binlog_mod, n)
    if len(out) != txns or (out[-1].position.file, out[-1].position.pos) != end:
        raise SystemExit(f"{cls.__name__}: read {len(out)} transactions ending at {out[-1].position if out else None}, "
                         f"expected {txns} ending at {end}")
    return elapsed, out


def read_raw(settings: dict, cls: type, start: tuple, txns: int) -> float:
    """Wall seconds for the bare reader loop (binlog.py's reader arguments, non-blocking) over the binlog."""
    binlog_mod._install_table_map_cache()  # as BinlogSource does
    stream = cls(connection_settings=dict(settings), server_id=random.randrange(10 ** 6, 10 ** 9),
                 resume_stream=True, log_file=start[0], log_pos=start[1], blocking=False,
                 only_events=[binlog_mod.MariadbGtidEvent, XidEvent, binlog_mod.QueryEvent, binlog_mod.RotateEvent,
                              binlog_mod.HeartbeatLogEvent, *binlog_mod._ROW_EVENTS],
                 only_schemas=[DB, "replicator"], only_tables=["item", "replicator_checkpoint"], enable_logging=False)
    decoder = RowDecoder(utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True)
    n = 0
    t0 = time.perf_counter()
    try:
        while True:
            event = stream.fetchone()
            if event is None:
                break
            if isinstance(event, XidEvent):
                n += 1
            elif isinstance(event, binlog_mod._ROW_EVENTS) and decoder.decode(event) is None:
                _ = event.rows
    finally:
        stream.close()
    if n != txns:
        raise SystemExit(f"{cls.__name__}: {n} Xid events, expected {txns}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--txns", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="read the binlog this many times each way")
    ap.add_argument("--raw", action="store_true", help="also time the bare reader loop")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="root")
    args = ap.parse_args(argv)

    server = tmp = None
    if args.port:
        host, port, user, password = args.host, args.port, args.user, args.password
    else:
        from replicator.testing.devservers import MariaDBServer, missing_binaries

        if missing_binaries("mariadb"):
            print(f"need {', '.join(missing_binaries('mariadb'))} (or --port)", file=sys.stderr)
            return 2
        tmp = Path(tempfile.mkdtemp(prefix="binlog-read-bench-"))
        server = MariaDBServer(tmp / "mariadb").start()
        host, port, user, password = server.host, server.port, server.user, server.password
    try:
        db = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
        t = time.perf_counter()
        start, end = populate(db, args.txns)
        db.close()
        print(f"wrote {args.txns} single-row transactions in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        account = Account(user, Secret(password))
        conn = Connection(name="bench", kind="mariadb", host=host, port=port, database=DB, apply=account,
                          capture=account, server_id=random.randrange(10 ** 6, 10 ** 9))
        settings = {"host": host, "port": port, "user": user, "password": password}
        best: dict[str, float] = {}
        best_raw: dict[str, float] = {}
        results: dict[str, list] = {}
        for _ in range(args.repeat):
            for name, cls in READERS:
                elapsed, out = read_source(conn, cls, start, end, args.txns)
                best[name] = min(best.get(name, float("inf")), elapsed)
                results[name] = out
                if args.raw:
                    best_raw[name] = min(best_raw.get(name, float("inf")), read_raw(settings, cls, start, args.txns))
            if results["mysql-replication"] != results["binlogfast"]:
                raise SystemExit("the two readers gave different transactions")
        print(f"{args.txns} single-row UPDATE transactions (4 binlog events each), best of {args.repeat}, wall time")
        print(f"{'':18} {'BinlogSource txn/s':>19}" + (f" {'raw reader txn/s':>17}" if args.raw else ""))
        for name, _ in READERS:
            line = f"{name:18} {args.txns / best[name]:19.0f}"
            if args.raw:
                line += f" {args.txns / best_raw[name]:17.0f}"
            print(line)
        speed = best["mysql-replication"] / best["binlogfast"]
        extra = (f", raw reader x{best_raw['mysql-replication'] / best_raw['binlogfast']:.2f}" if args.raw else "")
        print(f"speedup: BinlogSource x{speed:.2f}{extra}")
        return 0
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
