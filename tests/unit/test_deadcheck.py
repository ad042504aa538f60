"""A dead-letter retry of a two-way change must not overwrite an edit the target got since it was queued
(stream/deadcheck.py), without servers: the decision fed target rows, `expect` and values; its error;
and `deadretry.retry` over a fake target, refusing, applying and forcing."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import pytest

from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.compare import ColumnInfo
from replicator.conflicts.detect import Detector
from replicator.mapping.model import MappingSet
from replicator.mapping.router import route_flow
from replicator.stream import deadcheck, deadletter, deadretry
from replicator.stream.deadcheck import Edited, judge
from tests.unit.test_deadletter import TxApplier
from tests.unit.mapsets import load, make_config

T = TableRef("public", "item")
INFO = {"id": ColumnInfo("id", "integer", "postgresql"), "qty": ColumnInfo("qty", "numeric", "postgresql", 2),
        "at": ColumnInfo("at", "timestamp with time zone", "postgresql", None, 6),
        "note": ColumnInfo("note", "text", "postgresql")}
DET = Detector(MappingSet([]), "erp")


def equal(column: str) -> Any:
    return DET.equal(INFO, column)


def upd(values: dict[str, Any], expect: dict[str, Any] | None) -> TargetChange:
    return TargetChange(T, Op.UPDATE, ("id",), (7,), {"id": 7, **values}, expect=expect, mapping="items")


# ---------------------------------------------------------------- the decision


def test_an_update_goes_when_the_target_still_holds_the_old_value_or_already_the_new_one() -> None:
    change = upd({"qty": Decimal("2.00")}, {"qty": Decimal("1.00"), "note": "a"})
    assert judge(change, {"qty": Decimal("1.00"), "note": "a"}, equal) is None
    assert judge(change, {"qty": 1, "note": "a"}, equal) is None  # Decimal against int: the same value
    assert judge(change, {"qty": Decimal("2"), "note": "a"}, equal) is None  # both sides made the edit
    # another field edited on the target: not written by this change, so no reason to refuse
    assert judge(change, {"qty": Decimal("1.00"), "note": "edited"}, equal) is None


def test_an_update_over_an_edit_of_its_field_is_refused_with_the_three_values() -> None:
    change = upd({"qty": Decimal("2.00")}, {"qty": Decimal("1.00")})
    assert judge(change, {"qty": Decimal("5.00")}, equal) == Edited("differs", "qty", Decimal("5.00"),
                                                                    Decimal("1.00"), Decimal("2.00"))
    assert judge(change, {"qty": None}, equal) == Edited("differs", "qty", None, Decimal("1.00"), Decimal("2.00"))


def test_times_compare_as_instants_as_the_detector_compares_them() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    change = upd({"at": datetime(2026, 2, 1)}, {"at": datetime(2026, 1, 2, 3, 4, 5)})  # naive: UTC
    assert judge(change, {"at": aware}, equal) is None
    assert judge(change, {"at": aware.replace(hour=4)}, equal) is not None


def test_an_update_of_a_row_deleted_on_the_target_is_refused() -> None:
    assert judge(upd({"qty": 2}, {"qty": 1}), None, equal) == Edited("gone")


def test_a_field_the_source_owns_is_written_unchecked_and_no_expect_means_unchecked() -> None:
    owned = upd({"qty": 2, "note": "source's"}, {"qty": 1})  # note: owned, in values only (router.with_owned)
    assert judge(owned, {"qty": 1, "note": "target's"}, equal) is None
    assert judge(upd({"qty": 2}, None), {"qty": 5}, equal) is None  # no full old row: as the stream writes it
    assert judge(upd({"qty": 2}, None), None, equal) is None


def test_an_insert_over_a_row_that_exists_with_other_values_is_refused() -> None:
    ins = TargetChange(T, Op.INSERT, ("id",), (7,), {"id": 7, "qty": 2, "note": "a"}, expect={}, mapping="items")
    assert judge(ins, None, equal) is None
    assert judge(ins, {"qty": Decimal("2.00"), "note": "a"}, equal) is None  # already there, the same
    assert judge(ins, {"qty": 2, "note": "b"}, equal) == Edited("exists", "note", "b", None, "a")
    # an insert-only column is not written over an existing row: its value there is no edit to protect
    kept = TargetChange(T, Op.INSERT, ("id",), (7,), {"id": 7, "qty": 2, "note": "a"}, frozenset({"note"}),
                        expect={}, mapping="items")
    assert judge(kept, {"qty": 2, "note": "b"}, equal) is None
    assert judge(kept, {"qty": 3, "note": "b"}, equal) == Edited("exists", "qty", 3, None, 2)


def test_a_delete_of_a_row_that_differs_is_refused_a_gone_row_is_nothing_to_do() -> None:
    dele = TargetChange(T, Op.DELETE, ("id",), (7,), {}, expect={"qty": 1, "note": "a"}, mapping="items")
    assert judge(dele, None, equal) is None
    assert judge(dele, {"qty": Decimal("1.00"), "note": "a"}, equal) is None
    assert judge(dele, {"qty": 1, "note": "b"}, equal) == Edited("differs", "note", "b", "a")


def test_an_agreement_in_the_other_directions_shape_is_no_edit() -> None:
    change = upd({"note": "NEW"}, {"note": "OLD"})
    seen: list[tuple[str, Any, Any]] = []

    def agrees(c: str, now: Any, expected: Any) -> bool:
        seen.append((c, now, expected))
        return now.upper() == expected
    assert judge(change, {"note": "old"}, equal, agrees) is None
    assert judge(change, {"note": "other"}, equal, agrees) == Edited("differs", "note", "other", "OLD", "NEW")
    assert ("note", "old", "OLD") in seen


def test_the_refusal_names_table_key_field_values_and_the_way_out() -> None:
    error = deadcheck.TargetEdited("crm", upd({"qty": 2}, {"qty": 1}), Edited("differs", "qty", 5, 1, 2))
    text = str(error)
    assert text.startswith("table public.item, key (7,), column qty: the row changed on crm since this change "
                           "was queued: qty is 5 there; the change expected 1 and carries 2"), text
    assert "`replicator dlq retry --force` writes it anyway" in text and "`replicator dlq skip` drops it" in text
    gone = str(deadcheck.TargetEdited("crm", upd({"qty": 2}, {"qty": 1}), Edited("gone")))
    assert "it was deleted there" in gone and "column" not in gone


# ---------------------------------------------------------------- retry over a fake target

TWO_WAY = """\
mappings:
  items:
    direction: both
    on_error: quarantine
    crm: {table: item, key: [id]}
    erp: {table: items, key: [id]}
    fields: {id: ~, val: ~, note: ~}
"""


class RowsApplier(TxApplier):
    """TxApplier with keyed locked reads of its rows and the queue's UPDATEs recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = self.direction = "erp_to_crm"
        self.reads = 0
        self.errors: dict[int, tuple[str, str]] = {}  # queue id -> (error, class)

    def read_rows(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str],
                  keys: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        self.reads += 1
        return [(*k, *(self.rows[k].get(c) for c in columns)) for k in keys if k in self.rows]

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        if sql.startswith("UPDATE") and ".dead_letter " in sql:
            self.errors[int(params[2])] = (str(params[0]), str(params[1]))
        return super().execute(sql, params)


@pytest.fixture
def mset(tmp_path: Path) -> MappingSet:
    (tmp_path / "maps").mkdir()
    return load(make_config(tmp_path), TWO_WAY)


def entry(mset: MappingSet, i: int, op: Op, before: dict[str, Any] | None,
          after: dict[str, Any] | None) -> deadletter.Entry:
    flow = mset.by_name["items"].flow("erp")
    assert flow is not None
    source = RowChange(flow.source.table, op, before, after)
    stored = route_flow(flow, source)[0]  # as the stream queued it (expect left out)
    assert isinstance(stored, TargetChange)
    return deadletter.Entry("crm", i, datetime.now(timezone.utc), "erp_to_crm", "items", str(flow.target.table),
                            stored.key, stored.key, op.value, "", source, stored, "rejected", "CHECK")


def test_retry_refuses_a_change_whose_row_was_edited_since_and_keeps_the_row_behind_it(mset: MappingSet) -> None:
    db = RowsApplier()
    db.rows[(7,)] = {"id": 7, "val": 5, "note": "a"}  # crm's users edited val 1 -> 5 meanwhile
    first = entry(mset, 1, Op.UPDATE, {"id": 7, "val": 1, "note": "a"}, {"id": 7, "val": 2, "note": "a"})
    later = entry(mset, 2, Op.UPDATE, {"id": 7, "val": 2, "note": "a"}, {"id": 7, "val": 2, "note": "b"})
    out = deadretry.retry(db, [first, later], mset)
    assert out.applied == () and [e.id for e, _ in out.failed] == [1] and [e.id for e in out.waiting] == [2]
    error, cls = db.errors[1]
    assert cls == "conflict" and "column val: the row changed on crm" in error, error
    assert "val is 5 there; the change expected 1 and carries 2" in error
    assert db.rows[(7,)] == {"id": 7, "val": 5, "note": "a"}  # nothing written


def test_retry_writes_the_changed_fields_when_the_row_is_unchanged_and_force_writes_over_an_edit(
        mset: MappingSet) -> None:
    db = RowsApplier()
    db.rows[(7,)] = {"id": 7, "val": 1, "note": "edited on crm"}  # another field's edit survives
    db.rows[(8,)] = {"id": 8, "val": 5, "note": "a"}
    unchanged = entry(mset, 1, Op.UPDATE, {"id": 7, "val": 1, "note": "a"}, {"id": 7, "val": 2, "note": "a"})
    edited = entry(mset, 2, Op.UPDATE, {"id": 8, "val": 1, "note": "a"}, {"id": 8, "val": 2, "note": "a"})
    out = deadretry.retry(db, [unchanged, edited], mset)
    assert [e.id for e in out.applied] == [1] and [e.id for e, _ in out.failed] == [2]
    assert db.rows[(7,)] == {"id": 7, "val": 2, "note": "edited on crm"}
    forced = deadretry.retry(db, [edited], mset, force=True)
    assert [e.id for e in forced.applied] == [2] and db.rows[(8,)] == {"id": 8, "val": 2, "note": "a"}
    assert db.reads == 2  # the forced retry read nothing


def test_retry_refuses_an_update_of_a_deleted_row_and_an_insert_over_another_row(mset: MappingSet) -> None:
    db = RowsApplier()
    gone = entry(mset, 1, Op.UPDATE, {"id": 7, "val": 1, "note": "a"}, {"id": 7, "val": 2, "note": "a"})
    db.rows[(9,)] = {"id": 9, "val": 3, "note": "made on crm"}
    taken = entry(mset, 2, Op.INSERT, None, {"id": 9, "val": 3, "note": "made on erp"})
    fresh = entry(mset, 3, Op.INSERT, None, {"id": 10, "val": 3, "note": "x"})
    out = deadretry.retry(db, [gone, taken, fresh], mset)
    assert [e.id for e in out.applied] == [3] and [e.id for e, _ in out.failed] == [1, 2]
    assert "it was deleted there" in db.errors[1][0] and db.errors[1][1] == "conflict"
    assert "it exists there with note = 'made on crm'" in db.errors[2][0]
    assert (7,) not in db.rows and db.rows[(9,)]["note"] == "made on crm" and (10,) in db.rows


def test_a_one_way_mapping_retries_unchecked_as_before(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), TWO_WAY.replace("direction: both", "direction: erp_to_crm"))
    db = RowsApplier()
    db.rows[(7,)] = {"id": 7, "val": 5, "note": "a"}
    e = entry(mset, 1, Op.UPDATE, {"id": 7, "val": 1, "note": "a"}, {"id": 7, "val": 2, "note": "a"})
    out = deadretry.retry(db, [e], mset)
    assert [x.id for x in out.applied] == [1] and db.rows[(7,)]["val"] == 2 and db.reads == 0


def test_a_field_transformed_one_way_only_agrees_with_its_image(tmp_path: Path) -> None:
    """crm holds 'abc', erp its image 'ABC' (upper from crm to erp only): erp's change ABC -> XYZ finds
    'abc' on crm, which the detector counts as the old value (detect._Check._agrees), so it is written."""
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), TWO_WAY.replace("fields: {id: ~, val: ~, note: ~}",
                                                       "fields: {id: ~, val: ~, note: {transform: {crm_to_erp: [upper]}}}"))
    db = RowsApplier()
    db.rows[(7,)] = {"id": 7, "val": 1, "note": "abc"}
    db.rows[(8,)] = {"id": 8, "val": 1, "note": "edited"}
    image = entry(mset, 1, Op.UPDATE, {"id": 7, "val": 1, "note": "ABC"}, {"id": 7, "val": 1, "note": "XYZ"})
    other = entry(mset, 2, Op.UPDATE, {"id": 8, "val": 1, "note": "ABC"}, {"id": 8, "val": 1, "note": "XYZ"})
    out = deadretry.retry(db, [image, other], mset)
    assert [e.id for e in out.applied] == [1] and [e.id for e, _ in out.failed] == [2]
    assert db.rows[(7,)]["note"] == "XYZ" and db.rows[(8,)]["note"] == "edited"
    assert "note is 'edited' there; the change expected 'ABC' and carries 'XYZ'" in db.errors[2][0]


def test_force_is_for_retry_only(tmp_path: Path, mset: MappingSet) -> None:
    import argparse
    import io

    from replicator.admin import dlq
    from replicator.errors import ConfigError

    parser = argparse.ArgumentParser()
    dlq.add_arguments(parser)
    args = parser.parse_args(["skip", "--key", "1", "--force"])
    with pytest.raises(ConfigError, match="--force is for `replicator dlq retry`, not `skip`"):
        dlq.command(args, make_config(tmp_path), mset, io.StringIO())
    assert parser.parse_args(["retry", "--all", "--force"]).force and not parser.parse_args(["retry", "--all"]).force
