"""The PostgreSQL applier's two ways of writing a run, side by side: execute_values vs COPY + merge.

Starts its own PostgreSQL 15 (replicator.testing.devservers, synchronous_commit on as in bench/run.py),
creates an 8-column table like bench/run.py's `bench_item`, and applies runs of 1, 10, 100, 1,000 and
10,000 rows with the real PostgresApplier, one target transaction per run (tag, rows, checkpoint,
commit, as the daemon does), through each path in turn: `copy_min_rows = None` (execute_values) and
`copy_min_rows = 1` (COPY into the staging table + one INSERT ... SELECT ... ON CONFLICT). The two paths alternate run by run, so that the machine's load falls on both alike; what to
compare is the ratio on one line, not the absolute figures. It is how appliers/pgcopy.py's
COPY_MIN_ROWS was chosen (docs/performance.md).

    python bench/pg_apply_paths.py                 # sizes 1 10 100 1000 10000, ~20,000 rows per cell
    python bench/pg_apply_paths.py --sizes 50 100 200 --rows 5000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from replicator.appliers.postgres import PostgresApplier  # noqa: E402
from replicator.changes import BinlogPosition, Op, TableRef, TargetChange  # noqa: E402
from replicator.checkpoint import postgres_ddl  # noqa: E402
from replicator.config import Account, Connection, Secret  # noqa: E402
from replicator.testing.devservers import PostgresServer  # noqa: E402

TABLE = TableRef("public", "bench_item")
DDL = ("CREATE TABLE bench_item (id bigint PRIMARY KEY, qty int, name varchar(100), amount numeric(12,2), "
       "changed_at timestamptz(6), note text, flag boolean, seq bigint)")


def change(op: Op, i: int, seq: int) -> TargetChange:
    if op is Op.DELETE:
        return TargetChange(TABLE, op, ("id",), (i,), {})
    return TargetChange(TABLE, op, ("id",), (i,), {
        "id": i, "qty": seq % 1000, "name": f"item {i}\twith a tab", "amount": Decimal(seq % 100000) / 100,
        "changed_at": datetime(2026, 12, 6, 12, 0, seq % 60, seq % 1000000, tzinfo=timezone.utc),
        "note": f"note {seq} " + "x" * 90, "flag": seq % 2, "seq": seq})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    p.add_argument("--rows", type=int, default=20000, help="rows per (size, path, operation), at least 2 runs")
    # delete: the applier writes deletes with execute_values whatever copy_min_rows says (a staged
    # DELETE ... USING measured 0.3-0.8x); both columns then measure that one path
    p.add_argument("--ops", nargs="+", default=["update", "insert"])
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pg-apply-paths-"))
    server = PostgresServer(work / "pg", settings={"synchronous_commit": "on"})
    server.start()
    try:
        db = server.create_database("bench")
        conn = db.connect()
        with conn.cursor() as cur:
            cur.execute(DDL)
            for stmt in postgres_ddl('"replicator"'):
                cur.execute(stmt)
        acc = Account(db.user, Secret(db.password))
        target = Connection("crm", "postgresql", db.host, db.port, db.dbname, acc, acc, sslmode="disable",
                            slot="bench", publication="p")
        applier = PostgresApplier(target, "erp_to_crm")
        applier.connect()
        applier.load_types([TABLE])
        print(f"load average {os.getloadavg()[0]:.1f}; PostgreSQL {server.port}; rows/s per path, one transaction "
              f"per run", flush=True)
        print(f"{'op':>7} {'run':>6} {'values rows/s':>14} {'copy rows/s':>12} {'copy/values':>12}")
        seq = 0
        base = 0
        for op_name in args.ops:
            op = Op(op_name)
            for size in args.sizes:
                runs = max(2, args.rows // size)
                spent = {"values": 0.0, "copy": 0.0}
                for r in range(runs):
                    for path in ("values", "copy") if r % 2 == 0 else ("copy", "values"):
                        if op is Op.INSERT:
                            keys = range(base, base + size)  # new keys each time
                            base += size
                        else:
                            keys = range(size)
                        if op is Op.DELETE:  # rows to delete, put there outside the timing
                            applier.copy_min_rows = None
                            applier.begin()
                            applier.apply([change(Op.INSERT, i, seq) for i in keys])
                            applier.commit_untracked()
                        seq += 1
                        changes = [change(op, i, seq) for i in keys]
                        applier.copy_min_rows = None if path == "values" else 1
                        t0 = time.perf_counter()
                        applier.begin()
                        applier.apply(changes)
                        applier.commit(BinlogPosition("bin.000001", seq), None)
                        spent[path] += time.perf_counter() - t0
                n = runs * size
                v, c = n / spent["values"], n / spent["copy"]
                print(f"{op_name:>7} {size:>6} {v:>14,.0f} {c:>12,.0f} {c / v:>12.2f}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}")
        applier.close()
        conn.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
