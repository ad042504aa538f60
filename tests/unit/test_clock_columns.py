"""CommitClock dates a column by the edit that set it, not by the row's latest edit (an edit of another
column of the same row later on must not move the raced column's commit time; that made the two
directions name different winners and the sides keep different values)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from replicator.changes import Op, RowChange, TableRef, Transaction
from replicator.conflicts.clock import CommitClock

T = TableRef("erp", "customers")


def at(second: int) -> datetime:
    return datetime(2026, 1, 1, 0, 0, second, tzinfo=timezone.utc)


def same(a: Any, b: Any) -> bool:
    return bool(a == b)


def saw(clock: CommitClock, second: int, before: dict[str, Any] | None, after: dict[str, Any] | None,
        op: Op = Op.UPDATE, echo: bool = False) -> None:
    clock.saw("erp", Transaction(str(second), None, at(second), (RowChange(T, op, before, after),),  # type: ignore[arg-type]
                                 echo=echo))


def row(phone: str, name: str = "n", note: str = "x") -> dict[str, Any]:
    return {"id": 1, "phone": phone, "name": name, "note": note}


def test_a_later_edit_of_another_column_keeps_the_columns_own_time() -> None:
    clock = CommitClock({("erp", T): ("id",)})
    saw(clock, 10, row("0"), row("erp"))  # the phone
    saw(clock, 13, row("erp"), row("erp", name="m"))  # then only the name
    saw(clock, 15, row("erp", name="m"), row("erp", name="m", note="y"))  # and the note
    assert clock.wait_for("erp", T, (1,), "phone", "erp", same, timeout=0) == at(10)
    assert clock.wait_for("erp", T, (1,), "name", "m", same, timeout=0) == at(13)
    assert clock.wait_for("erp", T, (1,), "note", "y", same, timeout=0) == at(15)


def test_long_values_are_dated_by_their_own_edit_too() -> None:
    clock = CommitClock({("erp", T): ("id",)})
    long = "z" * 1000
    saw(clock, 10, row("0"), row("0", note=long))
    saw(clock, 12, row("0", note=long), row("1", note=long))
    assert clock.wait_for("erp", T, (1,), "note", "z" * 1000, same, timeout=0) == at(10)
    assert clock.wait_for("erp", T, (1,), "phone", "1", same, timeout=0) == at(12)


def test_without_an_earlier_edit_or_after_a_write_of_our_own_the_latest_edit_dates_it() -> None:
    clock = CommitClock({("erp", T): ("id",)})
    saw(clock, 13, row("erp"), row("erp", name="m"))  # the phone's own edit was never read
    assert clock.wait_for("erp", T, (1,), "phone", "erp", same, timeout=0) == at(13)
    saw(clock, 20, row("erp", name="m"), row("crm", name="m"), echo=True)  # replicator wrote the phone
    saw(clock, 22, row("crm", name="m"), row("crm", name="k"))  # the remembered edit left another phone
    assert clock.wait_for("erp", T, (1,), "phone", "crm", same, timeout=0) == at(22)


def test_a_row_inserted_again_after_a_delete_is_dated_by_its_insert() -> None:
    clock = CommitClock({("erp", T): ("id",)})
    saw(clock, 10, None, row("a"), op=Op.INSERT)
    saw(clock, 11, row("a"), None, op=Op.DELETE)
    assert clock.wait_for("erp", T, (1,), "", None, same, timeout=0, deleted=True) == at(11)
    saw(clock, 12, None, row("a"), op=Op.INSERT)
    saw(clock, 14, row("a"), row("a", name="m"))
    assert clock.wait_for("erp", T, (1,), "phone", "a", same, timeout=0) == at(12)


def test_a_watched_child_table_remembers_the_rows_that_left_a_parent() -> None:
    """CommitClock.departed: a two-way fold's child row deleted, moved to another parent or out of the slice,
    by (side, table, parent column, parent, slice): its key, commit time, and whether it was deleted."""
    a = TableRef("public", "address")
    clock = CommitClock({("crm", a): ("id",)})
    clock.watch_departures({("crm", a): [("owner_id", ("kind",))]})
    email = (("kind", "email"),)

    def crm(second: int, op: Op, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        clock.saw("crm", Transaction(str(second), None, at(second), (RowChange(a, op, before, after),)))  # type: ignore[arg-type]
    r1 = {"id": "u1", "owner_id": "c-1", "kind": "email", "value": "x"}
    crm(1, Op.INSERT, None, r1)
    crm(2, Op.UPDATE, r1, {**r1, "value": "y"})  # an edit in place: still c-1's
    assert clock.departed("crm", a, "owner_id", "c-1", email, timeout=0) is None
    crm(3, Op.UPDATE, r1, {**r1, "owner_id": "c-2"})  # moved
    assert clock.departed("crm", a, "owner_id", "c-1", email, timeout=0) == (("u1",), at(3), False)
    r2 = {"id": "u2", "owner_id": "c-3", "kind": "email", "value": "z"}
    crm(4, Op.DELETE, r2, None)
    assert clock.departed("crm", a, "owner_id", "c-3", email, timeout=0) == (("u2",), at(4), True)
    assert clock.departed("crm", a, "owner_id", "c-3", (("kind", "phone"),), timeout=0) is None
    r3 = {"id": "u3", "owner_id": "c-4", "kind": "phone", "value": "1"}
    crm(5, Op.UPDATE, r3, {**r3, "kind": "email"})  # into the email slice: it left c-4's phones
    assert clock.departed("crm", a, "owner_id", "c-4", (("kind", "phone"),), timeout=0) == (("u3",), at(5), False)
    assert clock.departed("erp", a, "owner_id", "c-3", email, timeout=0) is None  # the other side's
