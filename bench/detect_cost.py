"""The CPU cost of a two-way mapping's conflict machinery, in process, without servers.

The same 8-column table and update workload as `bench/run.py` (qty, amount, changed_at and seq change;
name and note do not), routed and checked the way the daemon does it: `CommitClock.saw` per source
transaction (the reader's share), `route` with `expect`, `group_runs` and `Detector.resolve` against a
fake target that returns the rows in the target driver's shapes (naive DATETIME from MariaDB, aware
timestamptz from PostgreSQL). The one-way mapping does the same minus the clock and the check.

Prints CPU microseconds per row (this thread's CPU time, min of --repeat; still noisy on a loaded
machine, less than wall time) and Python function calls per row counted by cProfile (deterministic:
compare these between commits; C built-ins count as calls too), and with --profile the top of a
cProfile of the two-way path.

    python bench/detect_cost.py --direction crm_to_erp --rows 20000 [--profile tottime]
    python bench/detect_cost.py --direction crm_to_erp --server   # the target is a real server (below)

--server starts the target database (MariaDB for crm_to_erp, PostgreSQL for erp_to_crm) with
replicator.testing.devservers and checks against the real applier: its locked read (`read_rows`, the
driver's parsing) is then part of the check's CPU time; the decided rows are written back with the
applier's upsert outside the timed part, one transaction per batch. Since the optimistic conditional write
(branch `optim`) a qualifying run is written inside `resolve` (`Applier.update_unchanged`), so on a real
target "group_runs + resolve" holds the write too: compare the two-way total between commits, not that part.
Without --server the fake target compares nothing in SQL (`compares_exactly` False): the full check's cost.
    git archive BASE replicator | tar -x -C /tmp/base && python bench/detect_cost.py --code /tmp/base
"""
from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

MAPPING = """\
mappings:
  bench_item:
    direction: {direction}
    crm: {{table: bench_item, key: [id]}}
    erp: {{table: bench_item, key: [id]}}
    fields:
      id: ~
      qty: ~
      name: ~
      amount: ~
      changed_at: ~
      note: ~
      seq: ~
"""
PG_TYPES = {"id": "bigint", "qty": "integer", "name": "character varying", "amount": "numeric",
            "changed_at": "timestamp with time zone", "note": "text", "seq": "bigint"}
MY_TYPES = {"id": "bigint", "qty": "int", "name": "varchar", "amount": "decimal", "changed_at": "datetime",
            "note": "text", "seq": "bigint"}
TABLE_ROWS = 10_000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--direction", choices=["crm_to_erp", "erp_to_crm"], default="crm_to_erp")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=100, help="rows per target transaction (one run each)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes of each path (the minimum is shown)")
    p.add_argument("--profile", metavar="SORT", help="print the top of a cProfile of the two-way path")
    p.add_argument("--code", type=Path, help="import replicator from this checkout (e.g. an older commit)")
    p.add_argument("--server", action="store_true", help="check against a real target server and applier")
    args = p.parse_args()
    sys.path.insert(0, str(args.code or ROOT))
    bench = Bench(args)
    try:
        bench.report()
    finally:
        bench.close()


class Bench:
    def __init__(self, args: argparse.Namespace):
        from replicator.changes import Op, RowChange, TableRef

        self.args = args
        self.src, self.tgt = ("crm", "erp") if args.direction == "crm_to_erp" else ("erp", "crm")
        pg, my = TableRef("public", "bench_item"), TableRef("erpdb", "bench_item")
        self.src_table, self.tgt_table = (pg, my) if self.src == "crm" else (my, pg)
        self.server: Any = None
        self.applier: Any = None
        self.changes = [RowChange(self.src_table, Op.UPDATE, self.row(j % TABLE_ROWS + 1, j // TABLE_ROWS, self.src),
                                  self.row(j % TABLE_ROWS + 1, j // TABLE_ROWS + 1, self.src))
                        for j in range(args.rows)]

    @staticmethod
    def row(i: int, k: int, side: str) -> dict[str, Any]:
        t = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=k)
        return {"id": i, "qty": k, "name": f"item {i}", "amount": Decimal(k) / 100 + Decimal("0.00"),
                "changed_at": t if side == "crm" else t.replace(tzinfo=None), "note": f"note {i} ".ljust(100, "x"),
                "seq": k}

    def mappings(self, direction: str) -> Any:
        from replicator.config import Account, Batching, Config, Connection, Secret
        from replicator.mapping.model import load_mappings

        tmp = Path(tempfile.mkdtemp())
        (tmp / "maps").mkdir()
        acc = Account("u", Secret(""))
        config = Config(tmp / "replicator.yaml", (Connection("crm", "postgresql", "h", 5432, "crmdb", acc, acc),
                                                 Connection("erp", "mariadb", "h", 3306, "erpdb", acc, acc)),
                        tmp / "maps", Batching())
        (tmp / "maps" / "m.yaml").write_text(MAPPING.format(direction=direction))
        return load_mappings(config)

    def shape(self, values: Any) -> dict[str, Any]:
        """Values as the target's driver returns them: naive DATETIME from MariaDB, aware from PostgreSQL."""
        out = dict(values)
        t = out.get("changed_at")
        if t is not None:
            out["changed_at"] = (t.astimezone(timezone.utc).replace(tzinfo=None) if self.tgt == "erp"
                                 else t if t.tzinfo else t.replace(tzinfo=timezone.utc))
        return out

    def close(self) -> None:
        if self.applier is not None:
            self.applier.close()
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.server_dir, ignore_errors=True)

    def real_target(self) -> Any:
        """The real applier of the target, its table reset to the rows a FakeTarget starts with."""
        from replicator.config import Account, Connection, Secret

        mariadb = self.tgt == "erp"
        if self.server is None:
            from replicator.testing.devservers import MariaDBServer, PostgresServer

            self.server_dir = Path(tempfile.mkdtemp(prefix="detect-cost-"))
            self.server = (MariaDBServer if mariadb else PostgresServer)(self.server_dir / "db").start()
            name = self.tgt_table.schema if mariadb else "crmdb"  # the database the mapping's config names
            db = self.server.create_database(name)
            acc = Account(db.user, Secret(db.password))
            conn = Connection(self.tgt, "mariadb", db.host, db.port, name, acc, acc, server_id=4244) if mariadb \
                else Connection(self.tgt, "postgresql", db.host, db.port, name, acc, acc)
            if mariadb:
                from replicator.appliers.mariadb import MariaDBApplier as A
                ddl = ("CREATE TABLE bench_item (id BIGINT PRIMARY KEY, qty INT NOT NULL, name VARCHAR(100) NOT NULL, "
                       "amount DECIMAL(12,2) NOT NULL, changed_at DATETIME(6) NOT NULL, note TEXT NOT NULL, "
                       "seq BIGINT NOT NULL)")  # bench/run.py's table
            else:
                from replicator.appliers.postgres import PostgresApplier as A  # type: ignore[assignment]
                ddl = ("CREATE TABLE bench_item (id bigint PRIMARY KEY, qty integer NOT NULL, "
                       "name varchar(100) NOT NULL, amount numeric(12,2) NOT NULL, changed_at timestamptz NOT NULL, "
                       "note text NOT NULL, seq bigint NOT NULL)")  # bench/run.py's table
            self.applier = A(conn, self.args.direction)
            self.applier.connect()
            self.applier.execute(ddl, [])
            self.applier.db.commit()
            self.applier.load_types([self.tgt_table])
        a = self.applier
        a.execute(f"DELETE FROM {a.quote_table(self.tgt_table)}", [])
        cols = list(self.row(1, 0, self.tgt))
        for i in range(1, TABLE_ROWS + 1, 1000):
            rows = [self.shape(self.row(j, 0, self.tgt)) for j in range(i, min(i + 1000, TABLE_ROWS + 1))]
            marks = ", ".join(["(" + ", ".join(["%s"] * len(cols)) + ")"] * len(rows))
            a.execute(f"INSERT INTO {a.quote_table(self.tgt_table)} ({', '.join(cols)}) VALUES {marks}",
                      [v for r in rows for v in a.convert_row(self.tgt_table, r)])
        a.db.commit()
        return a

    def run(self, two_way: bool, check: cProfile.Profile | None = None) -> float:
        """Seconds of CPU for the whole path; `self.check_seconds`: of them, grouping and checking the runs
        (`check`, when given, profiles that part alone)."""
        from replicator.appliers.base import group_runs
        try:
            from replicator.appliers.base import written_runs
        except ImportError:  # (--code of a commit before it)
            written_runs = None  # type: ignore[assignment]
        from replicator.changes import LSN, Transaction
        from replicator.conflicts.clock import CommitClock
        from replicator.conflicts.detect import Detector
        from replicator.mapping.router import route

        mset = self.mappings("both" if two_way else self.args.direction)
        clock = CommitClock({(self.src, self.src_table): ("id",), (self.tgt, self.tgt_table): ("id",)}) \
            if two_way else None
        detector = Detector(mset, self.src, clock) if two_way else None
        # (--code of a commit before `optim`: resolve has no `write`)
        writes = detector is not None and "write" in inspect.signature(detector.resolve).parameters
        real = self.real_target() if self.args.server else None
        target = FakeTarget(self.tgt, self.args.direction,
                            {i: self.shape(self.row(i, 0, self.tgt)) for i in range(1, TABLE_ROWS + 1)})
        when = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.check_seconds = 0.0
        started = time.thread_time()
        for b in range(0, len(self.changes), self.args.batch):
            routed = []
            for n, ch in enumerate(self.changes[b:b + self.args.batch]):
                if clock is not None:
                    clock.saw(self.src, Transaction(str(b + n), LSN(b + n), when, (ch,)))
                routed.extend(route(mset, self.src, ch, when))
            t0 = time.thread_time()
            if check is not None:
                check.enable()
            written = []
            for run in group_runs(routed):  # type: ignore[arg-type]  # no linked mappings here
                rows = list(run.rows.values())
                if detector is not None and run.checked:
                    # as Applier.apply asks (write=True: the optimistic conditional write may write here)
                    rows = (detector.resolve(real or target, run, rows, True) if writes  # type: ignore[arg-type]
                            else detector.resolve(real or target, run, rows))  # type: ignore[arg-type]
                written.append((run, rows))
            if check is not None:
                check.disable()
            self.check_seconds += time.thread_time() - t0
            for run, rows in written:  # written, so that the next pass finds the new values
                if real is not None:
                    if rows:
                        # as Applier.apply writes a checked update run: in parts (narrowed rows) since detect3
                        for part, part_rows in (written_runs(run, rows) if written_runs and run.uniform
                                                else [(run, rows)]):
                            real._upsert(part, part_rows)
                    continue
                for tc in rows:
                    target.rows[tc.key[0]].update(self.shape(tc.values))
            if real is not None:
                real.db.commit()
        return time.thread_time() - started

    def calls(self, two_way: bool) -> int:
        prof = cProfile.Profile()
        prof.enable()
        self.run(two_way)
        prof.disable()
        return int(pstats.Stats(prof).total_calls)  # type: ignore[attr-defined]

    def report(self) -> None:
        n = self.args.rows
        one = min(self.run(False) for _ in range(self.args.repeat))
        both, check = min((self.run(True), self.check_seconds) for _ in range(self.args.repeat))
        checks = []
        for _ in range(self.args.repeat):
            self.run(True)
            checks.append(self.check_seconds)
        c1, c2 = self.calls(False), self.calls(True)
        prof = cProfile.Profile()
        self.run(True, prof)
        c3 = int(pstats.Stats(prof).total_calls)  # type: ignore[attr-defined]
        print(f"{self.args.direction}: one-way {one * 1e6 / n:.1f} CPU us/row, two-way {both * 1e6 / n:.1f} CPU us/row "
              f"(ratio {one / both:.2f}); Python calls per row: one-way {c1 / n:.1f}, two-way {c2 / n:.1f} "
              f"({(c2 - c1) / n:.1f} more); of two-way, group_runs + resolve: {min(checks) * 1e6 / n:.2f} CPU us/row, "
              f"{c3 / n:.1f} calls/row")
        if self.args.profile:
            prof = cProfile.Profile()
            prof.enable()
            self.run(True)
            prof.disable()
            pstats.Stats(prof).sort_stats(self.args.profile).print_stats(30)


class FakeTarget:
    """The part of an applier the detector uses, over a dict of rows (no server)."""

    def __init__(self, side: str, stream: str, rows: dict[int, dict[str, Any]]):
        from replicator.compare import ColumnInfo

        types, dialect = (PG_TYPES, "postgresql") if side == "crm" else (MY_TYPES, "mariadb")
        self.info = {c: ColumnInfo(c, t, dialect, 2 if c == "amount" else None) for c, t in types.items()}
        self.stream = self.direction = stream
        self.rows = rows

    def column_info(self, table: Any) -> Any:
        return self.info

    # as the real appliers answer for bench/run.py's table (every column NOT NULL, a bigint key): both update
    # a run of existing rows in one statement
    def updates_at_once(self, table: Any, key_columns: Any, columns: Any, rows: int) -> bool:
        return True

    def compares_exactly(self, table: Any, column: str) -> bool:
        return False  # no SQL here: the optimistic conditional write is never taken (see test_optimistic_write)

    def leaves_out_required(self, table: Any, columns: Any) -> bool:
        return set(columns) != set(self.info)

    def read_rows(self, table: Any, key_columns: Any, columns: Any, keys: Any) -> list[tuple[Any, ...]]:
        return [(k[0], *(self.rows[k[0]][c] for c in columns)) for k in keys if k[0] in self.rows]


if __name__ == "__main__":
    main()
