"""`verify --repair` never overwrites a write made while it runs, into either database as the target.

Between verify's read and the repair's write an application edits a differing target row, inserts the missing one,
and a source row is inserted with an extra target row's key (the stream has carried it into the target already):
the repair, which locks the target rows it will write and reads both sides again under the lock, leaves those three
rows alone and names them. An application's edit of a row while the repair holds it waits for the repair's commit
and then stands. The rows nobody touched are repaired as before. (No daemon: the test plays the stream's write.)
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from replicator.appliers.mariadb import MariaDBApplier
from replicator.appliers.postgres import PostgresApplier
from replicator.sources.tablescan import TableScanner
from replicator.verify.flow import FlowCheck
from tests.integration.harness import Pair
from tests.integration.test_verify import verify

LOCK_PG = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)
"""
LOCK_MY = """
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL);
CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(50) NOT NULL)
"""
LOCK_MAPPINGS = """
mappings:
  items:
    direction: crm_to_erp
    crm: {table: items, key: [id]}
    erp: {table: items, key: [id]}
    fields: {id: ~, name: ~}
  notes:
    direction: erp_to_crm
    crm: {table: notes, key: [id]}
    erp: {table: notes, key: [id]}
    fields: {id: ~, body: ~}
"""
QUICK = "sync: {on_first_run: false}\nverify: {recheck_seconds: 1, chunk_rows: 100}\n"


class Side:
    """One direction of the test: where its rows live and how to write them there."""

    def __init__(self, pair: Pair, stream: str, table: str, column: str, source_pg: bool):
        self.stream, self.table, self.column = stream, table, column
        self.source: Callable[..., list[Any]] = pair.pg_query if source_pg else pair.my_query
        self.target: Callable[..., list[Any]] = pair.my_query if source_pg else pair.pg_query
        self.target_pg = not source_pg
        self.blocked = False
        self.late: threading.Thread | None = None

    def rows(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.target(f"SELECT id, {self.column} FROM {self.table} ORDER BY id")]

    def meanwhile(self) -> None:
        """Between verify's read and the repair's locks: an application's edit and insert in the target."""
        t, c = self.table, self.column
        self.target(f"UPDATE {t} SET {c} = 'app edit' WHERE id = 1")
        self.target(f"INSERT INTO {t} VALUES (5, 'app row')")

    def inserted(self) -> None:
        """A source row inserted with an extra row's key, which the stream has carried into the target."""
        self.source(f"INSERT INTO {self.table} VALUES (9, 'new 9')")
        self.target(f"UPDATE {self.table} SET {self.column} = 'new 9' WHERE id = 9")

    def edit_while_locked(self) -> None:
        """An application's edit of row 2 while the repair holds it: it must wait for the repair's commit."""
        t, c = self.table, self.column
        timeout = "SET lock_timeout = '30s'; " if self.target_pg else ""
        self.late = threading.Thread(target=self.target, args=(f"{timeout}UPDATE {t} SET {c} = 'late edit' WHERE id = 2",))
        self.late.start()
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%late edit%'"
                   if self.target_pg else
                   "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.late.is_alive():
            if self.target(waiting)[0][0]:
                self.blocked = True
                return
            time.sleep(0.05)


def test_repair_leaves_rows_written_meanwhile_to_the_stream_into_either_target(make_pair, monkeypatch):
    pair = make_pair(LOCK_PG, LOCK_MY, LOCK_MAPPINGS, extra_config=QUICK)
    db = pair.maria.dbname
    sides = {"crm_to_erp": Side(pair, "crm_to_erp", "items", "name", source_pg=True),
             "erp_to_crm": Side(pair, "erp_to_crm", "notes", "body", source_pg=False)}
    for s in sides.values():
        s.source(f"INSERT INTO {s.table} VALUES (1, 'v1'), (2, 'v2'), (3, 'v3'), (4, 'v4'), (5, 'v5'), (6, 'v6')")
        # behind replicator's back: 1 and 2 differ, 5 and 6 are missing, 8 and 9 are extra
        s.target(f"INSERT INTO {s.table} VALUES (1, 'drift'), (2, 'drift'), (3, 'v3'), (4, 'v4'), "
                 f"(8, 'extra'), (9, 'extra')")
    began: set[str] = set()
    checked: set[str] = set()

    def hook_begin(original: Callable[..., None]) -> Callable[..., None]:
        def begin(self: Any) -> None:
            if self.stream in sides and self.stream not in began:
                began.add(self.stream)
                sides[self.stream].meanwhile()
                if sides[self.stream].target_pg is False:
                    sides[self.stream].inserted()  # (the source rows are locked, but not a new key in PostgreSQL)
            original(self)
        return begin
    monkeypatch.setattr(MariaDBApplier, "begin", hook_begin(MariaDBApplier.begin))
    monkeypatch.setattr(PostgresApplier, "begin", hook_begin(PostgresApplier.begin))
    lock_keys = TableScanner.lock_keys

    def lock(self: TableScanner, keys: Any, update: bool = False) -> Any:
        # a MariaDB source's shared locks hold the gaps of the keys they read (here: the small table's every gap),
        # so a source insert would wait for the repair; it comes before them
        if not update and self.db.kind == "mariadb" and self.table.name == "notes" and "notes" not in began:
            began.add("notes")
            sides["erp_to_crm"].inserted()
        return lock_keys(self, keys, update)
    monkeypatch.setattr(TableScanner, "lock_keys", lock)
    check_rows = FlowCheck.check_rows

    def check(self: FlowCheck, rows: Any) -> Any:
        stream = self.flow.stream
        if stream in began and stream not in checked:  # the repair's read under its locks
            checked.add(stream)
            sides[stream].edit_while_locked()
        return check_rows(self, rows)
    monkeypatch.setattr(FlowCheck, "check_rows", check)

    try:
        code, out = verify(pair, "--repair")
    finally:
        for s in sides.values():
            if s.late is not None:
                s.late.join(60)
    assert began == {"notes", *sides} and checked == set(sides), out
    moved = "changed during the repair; the stream carries the change"
    for stream, table in (("crm_to_erp", f"{db}.items"), ("erp_to_crm", "public.notes")):
        name = sides[stream].table
        column = sides[stream].column
        lines = [line for line in out.splitlines()
                 if f" {name} {stream} " in line and not line.startswith(("still differs", f"{name} "))]
        assert sorted(lines) == sorted([
            f"deleted {name} {stream} {table} key=(8,)",
            f"inserted {name} {stream} {table} key=(6,)",
            f"not repaired {name} {stream} {table} key=(1,): {moved}",
            f"not repaired {name} {stream} {table} key=(5,): {moved}",
            f"not repaired {name} {stream} {table} key=(9,): {moved}",
            f"repaired {name} {stream} {table} key=(2,): {column} 'drift' -> 'v2'",
        ]), out
        assert sides[stream].blocked, f"{stream}: an edit of a row the repair holds did not wait for it"
        # the application's writes stand, the stream's too; the rest is repaired
        assert sides[stream].rows() == [(1, "app edit"), (2, "late edit"), (3, "v3"), (4, "v4"), (5, "app row"),
                                        (6, "v6"), (9, "new 9")], out
    # the application's edits differ from the source (these mappings carry nothing back): verify says so
    assert code == 1 and "verify: repaired 6 row(s); " in out, out
