"""The commit-time target shape check alone: client CPU and wall per target transaction, both databases.

A checkpoint commit as the appliers write it, without and with the check (PostgreSQL: the `pg_attribute`
digest in the same round trip; MariaDB: `SELECT t0.* ... LIMIT 0` and its result metadata compared), on a
10-column table, alternated twice. docs/performance.md, "Target shape check", has the figures.

    python bench/shape_check.py [--commits 3000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replicator.appliers.mariadb import _field_shape  # noqa: E402
from replicator.appliers.postgres import _SHAPES_SQL  # noqa: E402
from replicator.testing.devservers import MariaDBServer, PostgresServer  # noqa: E402

COLUMNS = "(id int primary key, a {dec}(14,4), b {ts}(6), c text, d int, e varchar(50), f {dec}(12,2), g text, " \
          "h date, i int)"


def measure(fn: Callable[[], None], n: int) -> tuple[float, float]:
    for _ in range(200):
        fn()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return (time.process_time() - c0) / n * 1e6, (time.perf_counter() - w0) / n * 1e6


def report(cases: list[tuple[str, Callable[[], None]]], n: int) -> None:
    for name, fn in cases * 2:
        cpu, wall = measure(fn, n)
        print(f"{name:<22} CPU {cpu:6.1f} us  wall {wall:6.1f} us a commit")


def postgres(root: Path, n: int) -> None:
    server = PostgresServer(root / "pg")
    server.start()
    try:
        c: Any = server.create_database("shapes").connect()
        c.autocommit = False
        cur = c.cursor()
        cur.execute("CREATE TABLE ck (stream text primary key, position text, n int); CREATE TABLE t "
                    + COLUMNS.format(dec="numeric", ts="timestamp"))
        cur.execute("SELECT 't'::regclass::oid")
        oid = cur.fetchone()[0]
        cur.execute(_SHAPES_SQL, ([oid],))
        digest = cur.fetchone()
        c.commit()
        ck = ("INSERT INTO ck VALUES (%s, %s, 1) ON CONFLICT (stream) DO UPDATE SET position = EXCLUDED.position, "
              "n = ck.n + 1")

        def plain() -> None:
            cur.execute(ck, ("s", "p"))
            c.commit()

        def checked() -> None:
            cur.execute(ck + "; " + _SHAPES_SQL, ("s", "p", [oid]))
            assert dict(cur.fetchall()).get(digest[0]) == digest[1]
            c.commit()
        report([("postgresql commit", plain), ("postgresql checked", checked)], n)
    finally:
        server.stop()


def mariadb(root: Path, n: int) -> None:
    server = MariaDBServer(root / "my")
    server.start()
    try:
        db = server.create_database("shapes")
        m: Any = db.connect()
        cur = m.cursor()
        cur.execute("CREATE TABLE ck (stream varchar(20) primary key, position text, n int)")
        cur.execute("CREATE TABLE t " + COLUMNS.format(dec="decimal", ts="datetime"))
        cur.execute("INSERT INTO ck VALUES ('s', 'p', 1)")
        m.commit()
        cur.execute("SELECT * FROM t LIMIT 0")
        base = tuple(_field_shape(f) for f in m._result.fields)

        def plain() -> None:
            cur.execute("UPDATE ck SET position = 'p', n = n + 1 WHERE stream = 's'")
            m.commit()

        def checked() -> None:
            cur.execute(f"SELECT t0.* FROM `{db.dbname}`.`t` t0 LIMIT 0")
            now: dict[str, list[tuple[Any, ...]]] = {}
            for f in m._result.fields:
                now.setdefault(f.table_name, []).append(_field_shape(f))
            assert tuple(now["t0"]) == base
            plain()
        report([("mariadb commit", plain), ("mariadb checked", checked)], n)
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--commits", type=int, default=3000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="replicator-shape-check-") as root:
        postgres(Path(root), args.commits)
        mariadb(Path(root), args.commits)


if __name__ == "__main__":
    main()
