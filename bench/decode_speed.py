#!/usr/bin/env python3
"""Micro-benchmark: binlog row decoding, mysql-replication's ``event.rows`` vs replicator.sources.rowdecode.

Starts a throwaway MariaDB (replicator.testing.devservers, in a temporary directory) unless --host/--port point at a
running one (root-like user: CREATE DATABASE, REPLICATION SLAVE, BINLOG MONITOR), creates a 10-column mixed
table (int, bigint, varchar, decimal, datetime(6), timestamp, date, tinyint(1), text of ~100 bytes, double),
inserts --rows rows in transactions of 1000, then reads those row events twice with BinLogStreamReader:
once decoding with the library's ``event.rows``, once with ``RowDecoder.decode(event)``. It prints, for each,
the microseconds per row of CPU time spent in the decoding call alone, and of CPU and wall time for the whole
read (network, event parsing, decoding), and checks that both gave the same rows.

    python bench/decode_speed.py                  # 100k rows, own server
    python bench/decode_speed.py --rows 20000 --repeat 3
    python bench/decode_speed.py --host 127.0.0.1 --port 3306 --user root --password secret

Timings are single runs on a shared machine: use --repeat and look at the best.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import pymysql  # noqa: E402
from pymysqlreplication import BinLogStreamReader  # noqa: E402
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent  # noqa: E402

from replicator.sources.rowdecode import RowDecoder  # noqa: E402

DB = "decode_bench"
TABLE = """CREATE TABLE item (
    id INT NOT NULL PRIMARY KEY,
    account BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL,
    amount DECIMAL(12,2) NOT NULL,
    created DATETIME(6) NOT NULL,
    touched TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    due DATE NULL,
    active TINYINT(1) NOT NULL,
    note TEXT NULL,
    score DOUBLE NULL
) ENGINE=InnoDB"""


def populate(conn: Any, rows: int, seed: int = 42) -> None:
    rnd = random.Random(seed)
    base = datetime(2024, 1, 1)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"USE {DB}")
        cur.execute(TABLE)
    sql = ("INSERT INTO item (id, account, name, amount, created, touched, due, active, note, score) "
           "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
    conn.autocommit(False)
    with conn.cursor() as cur:
        for start in range(0, rows, 1000):
            batch = []
            for i in range(start, min(rows, start + 1000)):
                created = base + timedelta(seconds=rnd.randrange(10 ** 8), microseconds=rnd.randrange(10 ** 6))
                batch.append((
                    i + 1, rnd.randrange(10 ** 12), " ".join(rnd.choices(words, k=3)),
                    Decimal(rnd.randrange(-10 ** 9, 10 ** 9)) / 100, created,
                    datetime(2020, 1, 1) + timedelta(seconds=rnd.randrange(10 ** 8)),
                    (base + timedelta(days=rnd.randrange(3000))).date() if rnd.random() < 0.9 else None,
                    rnd.randrange(2),
                    "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz ", k=rnd.randrange(80, 120))),
                    rnd.uniform(-1e6, 1e6) if rnd.random() < 0.9 else None,
                ))
            cur.executemany(sql, batch)
            conn.commit()
    conn.autocommit(True)


def read(settings: dict, log_file: str, log_pos: int, use_decoder: bool) -> tuple[int, float, float, float, list]:
    """(rows, CPU seconds in the decode calls, CPU and wall seconds for the whole read, the first rows)."""
    stream = BinLogStreamReader(
        connection_settings=settings, server_id=random.randrange(10 ** 6, 10 ** 9), resume_stream=True,
        log_file=log_file, log_pos=log_pos, blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=[DB])
    decoder = RowDecoder()
    clock = time.thread_time  # CPU time: the machine may be busy with other work
    rows, in_decode, sample = 0, 0.0, []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for event in stream:
            t1 = clock()
            if use_decoder:
                result = decoder.decode(event)
                if result is None:
                    raise SystemExit(f"decoder fell back to the library: {decoder.last_fallback}")
                values = [after for _, after in result[0]]
            else:
                values = [r["values"] for r in event.rows]
            in_decode += clock() - t1
            rows += len(values)
            if len(sample) < 2000:
                sample.extend(values[: 2000 - len(sample)])
    finally:
        stream.close()
    return rows, in_decode, time.process_time() - cpu0, time.perf_counter() - wall0, sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="read the binlog this many times each way")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int, default=3306)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="root")
    args = ap.parse_args(argv)

    server = tmp = None
    if args.host:
        host, port, user, password = args.host, args.port, args.user, args.password
    else:
        from replicator.testing.devservers import MariaDBServer, missing_binaries

        if missing_binaries("mariadb"):
            print(f"need {', '.join(missing_binaries('mariadb'))} (or --host/--port)", file=sys.stderr)
            return 2
        tmp = Path(tempfile.mkdtemp(prefix="decode-bench-"))
        server = MariaDBServer(tmp / "mariadb").start()
        host, port, user, password = server.host, server.port, server.user, server.password
    try:
        conn = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True,
                               charset="utf8mb4")
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            log_file, log_pos = cur.fetchone()[:2]
        t = time.perf_counter()
        populate(conn, args.rows)
        print(f"inserted {args.rows} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        conn.close()
        settings = {"host": host, "port": port, "user": user, "passwd": password}
        best: dict[str, tuple[float, float, float]] = {}
        samples = {}
        for _ in range(args.repeat):
            for name, use in (("mysql-replication", False), ("rowdecode", True)):
                n, dec, cpu, wall, sample = read(settings, log_file, log_pos, use)
                if n != args.rows:
                    raise SystemExit(f"{name}: read {n} rows, expected {args.rows}")
                samples[name] = sample
                prev = best.get(name, (float("inf"),) * 3)
                best[name] = (min(prev[0], dec / n * 1e6), min(prev[1], cpu / n * 1e6), min(prev[2], wall / n * 1e6))
        if samples["mysql-replication"] != samples["rowdecode"]:
            raise SystemExit("the two decoders disagree")
        lib, ours = best["mysql-replication"], best["rowdecode"]
        print(f"{args.rows} rows, 10 columns, best of {args.repeat} (us/row; decode = CPU time in event.rows or "
              f"RowDecoder.decode; read = the whole BinLogStreamReader loop)")
        print(f"{'':18} {'decode CPU':>11} {'read CPU':>9} {'read wall':>10} {'rows/s (read wall)':>19}")
        for name, (dec, cpu, wall) in best.items():
            print(f"{name:18} {dec:11.2f} {cpu:9.2f} {wall:10.2f} {1e6 / wall:19.0f}")
        print(f"speedup: decode x{lib[0] / ours[0]:.1f}, read CPU x{lib[1] / ours[1]:.1f}, "
              f"read wall x{lib[2] / ours[2]:.1f}")
        return 0
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
