"""The dead-letter queue for linked mappings without servers (stream/deadlinked): a rejected linked change
is rolled back to its savepoint and queued under the source row's key with its source row, later changes
of that record wait behind it, a mapping that stops still stops, and retry replays linked entries
through the linker's replay instead of a stored statement."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from replicator.changes import LSN, Op, RowChange, TableRef
from replicator.errors import RowError
from replicator.mapping.model import Flow, MappingSet
from replicator.mapping.router import LinkedChange
from replicator.stream import deadletter, deadlinked, deadretry
from replicator.stream.deadletter import HELD, Quarantine
from tests.unit.test_deadletter import TxApplier
from tests.unit.mapsets import load, make_config

CUSTOMER = TableRef("public", "customer")
YAML = """\
mappings:
  customers:
    direction: crm_to_erp
    on_error: {on_error}
    crm: {{table: customer, key: [id]}}
    erp: {{table: customers, key: [cid]}}
    link: {{natural: [email], crosswalk: true}}
    fields: {{email: ~, val: ~}}
"""


class Linker:
    """Writes a counterpart per source key into the applier's rows; a val >= 1000 is rejected after the
    write (as a trigger or a later statement would be), so the savepoint must take it back."""

    def __init__(self, db: TxApplier):
        self.db = db
        self.forgotten = 0

    def write(self, lc: LinkedChange) -> None:
        self.db.rows[tuple(lc.source_key)] = dict(lc.values)
        if lc.values.get("val", 0) >= 1000:
            raise RowError("CONSTRAINT small failed", table="erp.customers", key=lc.source_key, column="val")

    def forget(self) -> None:
        self.forgotten += 1


def setup(tmp_path: Path, on_error: str = "quarantine") -> tuple[MappingSet, Quarantine, TxApplier, Linker]:
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), YAML.format(on_error=on_error))
    db = TxApplier()
    return mset, Quarantine("crm_to_erp", mset, "crm"), db, Linker(db)


def stream(q: Quarantine, mset: MappingSet, db: TxApplier, linker: Linker, change: RowChange) -> None:
    for lc in q.route(mset, "crm", change, LSN(42), None):
        assert isinstance(lc, LinkedChange)
        deadlinked.apply(q, db, lc, linker, linker.write)  # type: ignore[arg-type]


def row(i: int, val: int, op: Op = Op.INSERT) -> RowChange:
    r = {"id": i, "email": f"u{i}@x", "val": val}
    return RowChange(CUSTOMER, op, r if op is Op.UPDATE else None, r)


def test_a_rejected_linked_change_is_rolled_back_and_queued_by_the_source_key(tmp_path: Path) -> None:
    mset, q, db, linker = setup(tmp_path)
    for i in (1, 5, 7):
        stream(q, mset, db, linker, row(i, 5000 if i == 5 else i))
    assert sorted(db.rows) == [(1,), (7,)]  # 5's write was taken back with its savepoint
    assert linker.forgotten == 1
    [queued] = db.queued
    assert (queued["mapping"], queued["target_table"], queued["target_key"], queued["op"]) == (
        "customers", "erpdb.customers", "[5]", "insert")
    assert "CONSTRAINT small failed" in queued["error"] and queued["source_key"] == "[5]"
    assert queued["source_row"] is not None and '"u5@x"' in queued["source_row"]  # replayed from it
    # a later change of record 5 waits behind it, unwritten; another record's change goes on
    stream(q, mset, db, linker, row(5, 5, Op.UPDATE))
    stream(q, mset, db, linker, row(7, 70, Op.UPDATE))
    assert [(d["target_key"], d["op"], d["error_class"]) for d in db.queued][1:] == [("[5]", "update", HELD)]
    assert (5,) not in db.rows and db.rows[(7,)]["val"] == 70


def test_a_linked_mapping_that_stops_still_stops(tmp_path: Path) -> None:
    mset, q, db, linker = setup(tmp_path, on_error="stop")
    with pytest.raises(RowError, match="CONSTRAINT small failed"):
        stream(q, mset, db, linker, row(5, 5000))
    assert db.queued == []


def test_retry_replays_linked_entries_through_the_linker(tmp_path: Path) -> None:
    mset, q, db, linker = setup(tmp_path)
    stream(q, mset, db, linker, row(5, 5000))
    stream(q, mset, db, linker, row(5, 5, Op.UPDATE))
    now = datetime.now(timezone.utc)
    entries = [deadletter.from_row("erp", (i + 1, now, *(d[c] for c in deadletter.COLUMNS)))
               for i, d in enumerate(db.queued)]
    replayed: list[tuple[Any, ...]] = []

    def replay(db_: Any, e: deadletter.Entry, flow: Flow) -> RowError | None:
        assert flow.mapping == "customers" and flow.linked and e.source_row is not None
        replayed.append((e.op, e.source_row.after["val"] if e.source_row.after else None))
        return None
    out = deadretry.retry(db, entries, mset, replay)
    assert [e.id for e in out.applied] == [1, 2] and replayed == [("insert", 5000), ("update", 5)]
    # without the linker's replay a linked entry is never written as a stored statement
    out = deadretry.retry(db, entries, mset)
    assert [e.id for e, _ in out.failed] == [1] and "replayed through the linker" in out.failed[0][1]
