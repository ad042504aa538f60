"""The MariaDB applier's locked read (`MariaDBApplier.read_rows`, SELECT ... FOR UPDATE of a checked run) on
a real server: CPU microseconds and cProfile calls per row, its row packets read by PyMySQL's
`MySQLResult._read_rowdata_packet` (the code at 6e7ba19) and by `_LockedRows._read_rowdata_packet`
(mypackets.PacketReader), alternated in ONE process so that load on the machine hits both alike.

    PYTHONPATH=$PWD python bench/locked_read_cost.py [--rows 1000] [--repeat 20]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1000, help="rows per locked read (one statement up to 1000)")
    p.add_argument("--repeat", type=int, default=20, help="timed reads of each path (the minimum is shown)")
    args = p.parse_args()

    from pymysql.connections import MySQLResult

    from replicator.appliers import mariadb
    from replicator.changes import TableRef
    from replicator.config import Account, Connection, Secret
    from replicator.testing.devservers import MariaDBServer

    tmp = Path(tempfile.mkdtemp(prefix="locked-read-"))
    server = MariaDBServer(tmp / "db").start()
    try:
        db = server.create_database("erpdb")
        acc = Account(db.user, Secret(db.password))
        a = mariadb.MariaDBApplier(Connection("erp", "mariadb", db.host, db.port, "erpdb", acc, acc,
                                              server_id=4245), "crm_to_erp")
        a.connect()
        a.execute("CREATE TABLE bench_item (id BIGINT PRIMARY KEY, qty INT, name VARCHAR(100), "
                  "amount DECIMAL(12,2), changed_at DATETIME(6), note TEXT, seq BIGINT)", [])
        table = TableRef("erpdb", "bench_item")
        a.load_types([table])
        a.execute("INSERT INTO bench_item SELECT seq, seq %% 100, CONCAT('item ', seq), seq / 7, "
                  "'2026-01-01 10:00:00.123456' + INTERVAL seq SECOND, REPEAT('n', 40), seq FROM seq_1_to_%s",
                  [args.rows])
        a.db.commit()
        cols = ["qty", "name", "amount", "changed_at", "note", "seq"]
        keys = [(k,) for k in range(1, args.rows + 1)]
        fast = mariadb._LockedRows.__dict__["_read_rowdata_packet"]
        paths = {"pymysql": MySQLResult._read_rowdata_packet, "packets": fast}

        def read(path: str) -> list[Any]:
            mariadb._LockedRows._read_rowdata_packet = paths[path]  # type: ignore[method-assign]
            try:
                return a.read_rows(table, ("id",), cols, keys)
            finally:
                a.db.rollback()

        expected = read("pymysql")
        assert read("packets") == expected and len(expected) == args.rows
        assert isinstance(expected[0][4], datetime) and isinstance(expected[0][3], Decimal)
        best = {name: float("inf") for name in paths}
        for _ in range(args.repeat):
            for name in paths:
                started = time.thread_time()
                read(name)
                best[name] = min(best[name], time.thread_time() - started)
        calls = {}
        for name in paths:
            prof = cProfile.Profile()
            prof.enable()
            read(name)
            prof.disable()
            calls[name] = sum(s[1] for s in pstats.Stats(prof).stats.values())  # type: ignore[attr-defined]
        for name in paths:
            print(f"{name:8} {best[name] / args.rows * 1e6:7.2f} us/row CPU (min of {args.repeat})  "
                  f"{calls[name] / args.rows:6.2f} calls/row")
        print(f"packets/pymysql: CPU {best['packets'] / best['pymysql']:.2f}x, calls "
              f"{calls['packets'] / calls['pymysql']:.2f}x")
        mariadb._LockedRows._read_rowdata_packet = fast  # type: ignore[method-assign]
        a.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
