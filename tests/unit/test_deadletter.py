"""The dead-letter queue without servers: on_error in the configuration and mappings, the stored change's
round trip, and the row-by-row path of a failed batch (savepoints, per-row order)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import pytest

from replicator.appliers.base import Applier, Run
from replicator.changes import LSN, UNCHANGED, Op, Position, RowChange, TableRef, TargetChange
from replicator.config import Account, Connection, Secret, load, replace
from replicator.errors import ConfigError, RowError
from replicator.mapping.model import MappingSet, load_mappings
from replicator.stream import deadletter, deadretry
from replicator.stream.deadletter import HELD, Origin, Quarantine
from tests.unit.test_config import MINIMAL, msg
from tests.unit.test_mapping import CUSTOMERS_YAML
from tests.unit.mapsets import error, make_config, write

T = TableRef("app", "items")


# ---------------------------------------------------------------- configuration


def test_on_error_defaults_to_stop_and_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "replicator.yaml"
    path.write_text(MINIMAL)
    assert load(path).on_error == "stop"
    path.write_text(MINIMAL + "on_error: quarantine\n")
    assert load(path).on_error == "quarantine"
    assert msg(tmp_path, MINIMAL + "on_error: skip\n") == "F:10: on_error: 'skip' is not one of stop, quarantine"


def test_a_mapping_takes_the_default_or_its_own_on_error(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    config = replace(make_config(tmp_path), on_error="quarantine")
    write(config, "m.yaml", CUSTOMERS_YAML)
    assert {f.on_error for f in load_mappings(config).mappings[0].flows} == {"quarantine"}
    write(config, "m.yaml", CUSTOMERS_YAML.replace("    direction: both\n", "    direction: both\n    on_error: stop\n"))
    assert {f.on_error for f in load_mappings(config).mappings[0].flows} == {"stop"}
    bad = CUSTOMERS_YAML.replace("    direction: both\n", "    direction: both\n    on_error: ignore\n")
    assert error(config, bad) == "m.yaml:4: mappings.customers.on_error: 'ignore' is not one of stop, quarantine"


# ---------------------------------------------------------------- the stored change


def test_a_target_change_round_trips_with_its_types() -> None:
    tc = TargetChange(T, Op.UPDATE, ("id",), (7,), {"id": 7, "price": Decimal("1.10"),
                      "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc), "raw": b"\x00\x01", "n": None},
                      frozenset({"n"}), True, {"price": Decimal("1")}, "items", (7,))
    back = deadletter.loads_target(deadletter.dumps_target(tc))
    assert back == TargetChange(T, Op.UPDATE, ("id",), (7,), tc.values, frozenset({"n"}), True, None, "items", (7,))
    assert type(back.values["price"]) is Decimal and back.values["raw"] == b"\x00\x01"
    # a first copy's fill columns (sync/driver.py `_fill`) are kept; a change stored before them has none
    filled = TargetChange(T, Op.UPDATE, ("id",), (7,), tc.values, frozenset({"n"}), False, None, "items", (7,),
                          fill=frozenset({"n"}))
    assert deadletter.loads_target(deadletter.dumps_target(filled)) == filled
    assert "fill" not in deadletter.dumps_target(tc)


# ---------------------------------------------------------------- the row-by-row path


class TxApplier(Applier):
    """An applier over a dict, with a transaction's savepoints: a row with val >= 1000 is rejected."""

    kind = "fake"

    def __init__(self) -> None:
        acc = Account("u", Secret("pw"))
        super().__init__(Connection("erp", "mariadb", "h", 3306, "erp", acc, acc), "crm_to_erp")
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.saved: dict[tuple[Any, ...], dict[str, Any]] | None = None
        self.queued: list[dict[str, Any]] = []
        self.statements = 0

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def lock(self, fail_fast: bool) -> None: ...
    def is_row_error(self, exc: Exception) -> bool: return False
    def read_checkpoint(self) -> Position | None: return None
    def begin(self) -> None: ...
    def commit(self, position: Position, commit_time: Any) -> None: ...
    def commit_untracked(self) -> None: ...
    def rollback(self) -> None: ...
    def load_types(self, tables: Sequence[TableRef]) -> None: ...
    def _truncate(self, table: TableRef) -> None: ...
    def quote_table(self, table: TableRef) -> str: return f"{table.schema}.{table.name}"
    def quote_col(self, column: str) -> str: return column
    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: return []

    def _upsert(self, run: Run, rows: list[TargetChange]) -> int:
        for r in rows:
            self.statements += 1
            if r.values.get("val", 0) >= 1000:
                raise RowError("CONSTRAINT small failed", table=str(run.table), key=r.key, column="val")
            self.rows[r.key] = {**self.rows.get(r.key, {}), **r.values}
        return 0

    def _delete(self, run: Run, rows: list[TargetChange]) -> int:
        for r in rows:
            self.rows.pop(r.key, None)
        return len(rows)

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        if sql.startswith("SAVEPOINT"):
            self.saved = {k: dict(v) for k, v in self.rows.items()}
        elif sql.startswith("ROLLBACK TO"):
            assert self.saved is not None
            self.rows = self.saved
        elif sql.startswith("INSERT INTO") and ".dead_letter " in sql:
            self.queued.append(dict(zip(deadletter.COLUMNS, params)))
        return 1


def ins(key: int, val: int, note: str = "x") -> TargetChange:
    return TargetChange(T, Op.INSERT, ("id",), (key,), {"id": key, "val": val, "note": note})


def noted(q: Quarantine, tc: TargetChange, mapping: str = "items") -> TargetChange:
    source = RowChange(TableRef("public", "item"), tc.op, None, dict(tc.values))
    q.origins[id(tc)] = (tc, Origin(mapping, source, LSN(42), tc.key))
    return tc


def test_a_failed_batch_goes_row_by_row_and_queues_only_the_rejected_rows() -> None:
    db = TxApplier()
    q = Quarantine("crm_to_erp", MappingSet([]), "crm")
    changes = [noted(q, ins(i, 5000 if i in (4, 5, 6) else i)) for i in range(1, 10)]
    q.apply(db, changes)
    assert sorted(db.rows) == [(1,), (2,), (3,), (7,), (8,), (9,)]
    assert [(d["target_key"], d["op"], d["mapping"]) for d in db.queued] == [("[4]", "insert", "items"),
                                                                              ("[5]", "insert", "items"),
                                                                              ("[6]", "insert", "items")]
    first = db.queued[0]
    assert "CONSTRAINT small failed" in first["error"] and first["error_class"] == "CONSTRAINT small failed"
    assert json.loads(first["source_position"]) == {"lsn": "0/2A"}
    assert deadletter.loads_target(first["change"]) == changes[3]
    assert q.held == {(str(T), "[4]"), (str(T), "[5]"), (str(T), "[6]")}


def test_later_changes_of_a_queued_row_wait_behind_it_in_the_batch_and_after() -> None:
    db = TxApplier()
    q = Quarantine("crm_to_erp", MappingSet([]), "crm")
    # in one batch that fails (row 3): 2 is rejected, then fixed by a later change that must not be
    # applied past it (in a batch that goes in whole, the later change of a key supersedes the earlier)
    q.apply(db, [noted(q, ins(1, 1)), noted(q, ins(2, 5000)), noted(q, TargetChange(T, Op.UPDATE, ("id",), (2,), {"id": 2, "val": 2})),
                 noted(q, ins(3, 3000))])
    assert sorted(db.rows) == [(1,)]
    assert [(d["target_key"], d["op"], d["error_class"]) for d in db.queued] == [
        ("[2]", "insert", "CONSTRAINT small failed"), ("[2]", "update", HELD), ("[3]", "insert", "CONSTRAINT small failed")]
    # a later batch: the held row joins the queue at once, other rows flow
    statements = db.statements
    q.apply(db, [noted(q, ins(2, 3, "even later")), noted(q, ins(4, 4))])
    assert [d["error_class"] for d in db.queued][3:] == [HELD]
    assert sorted(db.rows) == [(1,), (4,)] and db.statements == statements + 1


def test_a_rejected_row_of_a_mapping_that_stops_raises() -> None:
    db = TxApplier()
    q = Quarantine("crm_to_erp", MappingSet([]), "crm")
    with pytest.raises(RowError, match="key \\(2,\\), column val"):
        q.apply(db, [noted(q, ins(1, 1)), ins(2, 5000)])  # 2 has no origin: its mapping stops
    assert db.queued == []


def test_retry_applies_in_order_and_stops_a_row_at_its_first_failure() -> None:
    db = TxApplier()
    now = datetime.now(timezone.utc)

    def entry(i: int, tc: TargetChange) -> deadletter.Entry:
        return deadletter.Entry("erp", i, now, "crm_to_erp", "gone", str(T), tc.key, tc.key, tc.op.value, "",
                                None, tc, "e", "c")
    entries = [entry(1, ins(2, 5000)), entry(2, ins(3, 3)), entry(3, ins(2, 2, "later")), entry(4, ins(5, 5))]
    out = deadretry.retry(db, entries, None)
    assert [e.id for e in out.applied] == [2, 4]
    assert [e.id for e, _ in out.failed] == [1] and [e.id for e in out.waiting] == [3]
    assert sorted(db.rows) == [(3,), (5,)]


def test_a_failed_change_finds_its_rows_later_changes_without_scanning_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 rows whose first change fails again, each with a later change behind it: the later changes are
    found among each row's own two changes (600 looked at), not by a scan of the rest of the queue per
    failure (134,850 for this queue before: quadratic in its length)."""
    indexes: list[deadretry.ByRow] = []

    class Counted(deadretry.ByRow):
        def __init__(self, ordered: Sequence[deadletter.Entry], mset: MappingSet | None = None):
            super().__init__(ordered, mset)
            indexes.append(self)
    monkeypatch.setattr(deadretry, "ByRow", Counted)
    db = TxApplier()
    now = datetime.now(timezone.utc)

    def entry(i: int, tc: TargetChange) -> deadletter.Entry:
        return deadletter.Entry("erp", i, now, "crm_to_erp", "gone", str(T), tc.key, tc.key, tc.op.value, "",
                                None, tc, "e", "c")
    rows = 300
    entries = [entry(2 * k + 1, ins(k, 5000)) for k in range(rows)] + \
        [entry(2 * rows + k + 1, ins(k, 1, "later")) for k in range(rows)]  # queued behind all the failures
    out = deadretry.retry(db, entries, None)
    assert len(out.failed) == rows and len(out.waiting) == rows and out.applied == ()
    [index] = indexes
    assert index.scanned == 2 * rows
    assert sorted(e.id for e in out.waiting) == [2 * rows + k + 1 for k in range(rows)]


def test_the_net_change_of_a_row_is_its_latest_image_written_whole() -> None:
    S = TableRef("public", "items")
    ins_ = RowChange(S, Op.INSERT, None, {"id": 1, "val": 5000})
    upd = RowChange(S, Op.UPDATE, {"id": 1, "val": 5000}, {"id": 1, "val": 5})
    dele = RowChange(S, Op.DELETE, {"id": 1, "val": 5}, None)
    # an insert that failed: the row is not there, the latest image is inserted
    assert deadretry.net_change(ins_, upd) == RowChange(S, Op.INSERT, None, {"id": 1, "val": 5})
    # an update that failed: the target row is as the first change found it
    assert deadretry.net_change(upd, RowChange(S, Op.UPDATE, {"id": 1, "val": 5}, {"id": 1, "val": 6})) == \
        RowChange(S, Op.UPDATE, {"id": 1, "val": 5000}, {"id": 1, "val": 6})
    assert deadretry.net_change(ins_, dele) is dele
    # a partial new row (PostgreSQL's unchanged TOAST value) is never written in place of an insert
    toast = RowChange(S, Op.UPDATE, None, {"id": 1, "val": 5, "doc": UNCHANGED})
    assert deadretry.net_change(ins_, toast) is None


ITEMS_YAML = """\
mappings:
  items:
    direction: crm_to_erp
    on_error: quarantine
    crm: {table: item, key: [id]}
    erp: {table: items, key: [id]}
    fields: {id: ~, val: ~, note: ~}
"""


def test_the_net_change_of_a_chain_that_changes_its_key_deletes_the_old_row(tmp_path: Path) -> None:
    """PostgreSQL without REPLICA IDENTITY FULL: a failed update carries no old row, and the key change
    queued behind it only the old key. The net change must still delete the old key's row and write the
    new one -- before, it wrote the new row only, and the old one stayed beside it."""
    (tmp_path / "maps").mkdir()
    config = make_config(tmp_path)
    write(config, "m.yaml", ITEMS_YAML)
    mset = load_mappings(config)
    flow = mset.by_name["items"].flow("crm")
    assert flow is not None
    S = flow.source.table
    failed = RowChange(S, Op.UPDATE, None, {"id": 1, "val": 5000, "note": "a"})  # no old row: not FULL
    moved = RowChange(S, Op.UPDATE, {"id": 1}, {"id": 2, "val": 5, "note": "a"})  # the old key only
    net = deadretry.net_change(failed, moved)
    assert net == RowChange(S, Op.UPDATE, {"id": 1}, {"id": 2, "val": 5, "note": "a"})
    now = datetime.now(timezone.utc)
    table = str(flow.target.table)

    def entry(i: int, source: RowChange, tc: TargetChange) -> deadletter.Entry:
        return deadletter.Entry("erp", i, now, "crm_to_erp", "items", table, tc.key, (1,), tc.op.value, "", source,
                                tc, "e", "c")
    db = TxApplier()
    db.rows = {(1,): {"id": 1, "val": 1, "note": "a"}, (2,): {"id": 2, "val": 5, "note": "a"}}  # (2: the stream's)
    first = entry(1, failed, TargetChange(flow.target.table, Op.UPDATE, ("id",), (1,), dict(failed.after or {})))
    held = entry(2, moved, TargetChange(flow.target.table, Op.DELETE, ("id",), (1,), {}))  # the key change's delete
    out = deadretry.retry(db, [first, held], mset)
    assert [e.id for e in out.applied] == [1, 2] and out.superseded == ((first, held),)
    assert db.rows == {(2,): {"id": 2, "val": 5, "note": "a"}}  # the old key's row is gone, the new one is there
    # an insert that failed: the old key was never written, the new row is inserted (nothing to delete)
    assert deadretry.net_change(RowChange(S, Op.INSERT, None, {"id": 1, "val": 5000, "note": "a"}), moved) == \
        RowChange(S, Op.INSERT, None, {"id": 2, "val": 5, "note": "a"})


def test_superseding_needs_a_later_change_with_a_source_row() -> None:
    now = datetime.now(timezone.utc)
    S = TableRef("public", "items")

    def entry(i: int, row: RowChange | None) -> deadletter.Entry:
        tc = ins(1, 1)
        return deadletter.Entry("erp", i, now, "crm_to_erp", "m", str(T), (1,), (1,), "insert", "", row, tc, "e", "c")
    first = entry(1, RowChange(S, Op.INSERT, None, {"id": 1, "val": 5000}))
    later = entry(2, RowChange(S, Op.UPDATE, {"id": 1, "val": 5000}, {"id": 1, "val": 5}))
    merged = deadretry.superseding(first, [later])
    assert merged is not None and merged.id == 1 and merged.source_row == RowChange(S, Op.INSERT, None, {"id": 1, "val": 5})
    assert deadretry.superseding(first, []) is None
    assert deadretry.superseding(first, [entry(2, None)]) is None


class ClassRecorder(TxApplier):
    """Records the error class a retry leaves on a queued change that failed again."""

    def __init__(self) -> None:
        super().__init__()
        self.updated_classes: list[str] = []

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        if sql.startswith("UPDATE") and ".dead_letter " in sql:
            self.updated_classes.append(params[1])
        return super().execute(sql, params)


def test_an_undecodable_entry_is_never_written_and_keeps_its_class() -> None:
    db = ClassRecorder()
    now = datetime.now(timezone.utc)
    tc = ins(2, 2, "b\ufffd")  # the stored image holds U+FFFD where the source's byte was
    e = deadletter.Entry("erp", 1, now, "crm_to_erp", "gone", str(T), (2,), (2,), "insert", "", None, tc,
                         "table app.items, key (2,), column note: a value is not text of its character set",
                         deadletter.UNDECODABLE)
    for force in (False, True):
        out = deadretry.retry(db, [e], None, force=force)
        assert out.applied == () and "could not be read exactly" in out.failed[0][1]
        assert db.rows == {}
    assert db.updated_classes == [deadletter.UNDECODABLE] * 2


FOLDS = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  customer_street:
    direction: both
    crm: {table: address, key: [id], generate: {id: default}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: party, value: street, into: street}
  customer_city:
    direction: both
    crm: {table: address, key: [id], generate: {id: default}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: party, value: city, into: city}
  customer_website:
    direction: both
    crm: {table: mechanism, key: [id], slice: {type: website}, generate: {id: default}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: party, value: value, into: website}
"""


def test_a_queued_fold_change_holds_its_own_source_row_not_another_tables_with_the_same_key(tmp_path: Path,
                                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/walkthrough-espocrm-tryton.md: Tryton's address 5 (a second address of a party, refused by the
    fold) was queued; then the delete of contact mechanism 5 -- another table, folded into the same EspoCRM
    account table -- was queued behind it, "an earlier change of this row is queued", and the web site stayed.
    Linked changes are queued by their source row's key, so the source table is part of the row."""
    from replicator.mapping.router import route

    config = make_config(tmp_path)
    config.mappings_dir.mkdir()
    write(config, "m.yaml", FOLDS)
    mset = load_mappings(config)
    db = TxApplier()
    q = Quarantine("crm_to_erp", mset, "crm")
    address = {"id": 5, "party": 2, "street": "Warehouse Rd", "city": "Scranton"}
    street, city = q.route(mset, "crm", RowChange(TableRef("public", "address"), Op.INSERT, None, address), LSN(1), None)
    site = {"id": 5, "party": 7, "type": "website", "value": "https://initech.example"}
    (gone,) = route(mset, "crm", RowChange(TableRef("public", "mechanism"), Op.DELETE, site, None))
    q.queue_linked(db, street, "parent 2 has 2 rows", "mapping")
    assert q.held_linked(city)  # the same source row, another mapping: it waits behind (one target row)
    assert not q.held_linked(gone), q.held  # another table's row 5
    # so after a restart, read back from the queue
    monkeypatch.setattr(deadletter, "held_rows", lambda _db, _stream: {
        (d["target_table"], d["target_key"], d["mapping"]) for d in db.queued})
    q.refresh(db)
    assert q.held_linked(city) and not q.held_linked(gone), q.held
    # and `dlq retry`: a failure of address 5 blocks its own later changes, not the mechanism's
    now = datetime.now(timezone.utc)
    entries = [deadletter.Entry("erp", i, now, "crm_to_erp", m, "erpdb.customers", (5,), (5,), "update", "", None,
                                TargetChange(TableRef("erpdb", "customers"), Op.UPDATE, ("id",), (5,), {}), "e", "c")
               for i, m in ((1, "customer_street"), (2, "customer_city"), (3, "customer_website"))]
    rows = deadretry.ByRow(entries, mset)
    assert rows.keys[0] == rows.keys[1] != rows.keys[2]
