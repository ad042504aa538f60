"""A retry of a queued two-way change: was the target row edited since the change was queued?

A change of a `direction: both` mapping may wait in the dead-letter queue for hours. Meanwhile the
target's users may edit the same row, and the other direction carries that edit to the source side,
deciding its conflict there by the mapping's rule (replicator/conflicts/detect.py) -- against the
value the queued change left on the source. Written unchecked and tagged (no echo), the queued change
would then overwrite the target's edit on the target alone: the two databases disagree silently.

So a retry (`replicator dlq retry`, the daemon's retry after a reload) routes the source row as the
stream does (`route_flow(..., stream=True)`: the changed fields, and `expect`, the row as the source
saw it before, in target terms), reads the target row locked in the retry's transaction and compares
each field the change writes with the detector's own equality (`Detector.equal`: Decimal against int,
an aware against a naive time...) and its agreement test for a field transformed one way only:

- the target still holds what the change expected, or already the new value: the change is written;
- otherwise the row was edited on the target since: nothing is written, and the entry stays queued
  with a `TargetEdited` error (class `conflict`) naming table, key, field and the three values. The
  operator decides: `replicator dlq retry --force` writes it anyway, `replicator dlq skip` drops it.

An UPDATE of a row gone from the target (the other side deleted it), an INSERT of a row that exists
with other values and a DELETE of a row that differs from the deleted one count as edited too. A change
without `expect` (no full old row: PostgreSQL without REPLICA IDENTITY FULL, the new row of a key change)
is written unchecked, as the stream writes it. `judge` is the decision alone, without a database.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from replicator.appliers.base import Applier
from replicator.changes import UNCHANGED, Op, TargetChange
from replicator.compare import show
from replicator.conflicts.detect import Detector
from replicator.errors import RowError
from replicator.mapping.model import Flow

CONFLICT = "conflict"  # the error class of a retry refused because the target row was edited since

Equal = Callable[[str], Callable[[Any, Any], bool]]  # column -> the detector's equality of its values
# (column, the target's value, the value compared with): the same value in the other direction's shape
Agrees = Callable[[str, Any, Any], bool]


def _never(column: str, now: Any, expected: Any) -> bool:
    return False


@dataclass(frozen=True)
class Edited:
    """What a retry found edited on the target: `what` is "differs" (a field holds neither the value the
    change expected nor the one it carries), "gone" (an update's row was deleted) or "exists" (an
    insert's row is there with another value)."""

    what: str
    column: str | None = None
    target_value: Any = None
    expected: Any = None
    carries: Any = None

    def describe(self, side: str, op: Op) -> str:
        head = f"the row changed on {side} since this change was queued: "
        if self.what == "gone":
            body = f"it was deleted there, and this {op.value} would not bring it back"
        elif self.what == "exists":
            body = (f"it exists there with {self.column} = {show(self.target_value)}; "
                    f"the insert carries {show(self.carries)}")
        elif op is Op.DELETE:
            body = (f"{self.column} is {show(self.target_value)} there; the delete expected "
                    f"{show(self.expected)}")
        else:
            body = (f"{self.column} is {show(self.target_value)} there; the change expected "
                    f"{show(self.expected)} and carries {show(self.carries)}")
        return (head + body + "; `replicator dlq retry --force` writes it anyway, `replicator dlq skip` drops it "
                "(`replicator conflicts` shows what the other direction decided)")


class TargetEdited(RowError):
    """A queued change not retried: its target row was edited since (error class `conflict`)."""

    def __init__(self, side: str, change: TargetChange, edited: Edited):
        self.edited = edited
        super().__init__(edited.describe(side, change.op), table=str(change.table), key=tuple(change.key),
                         column=edited.column)


def judge(tc: TargetChange, current: Mapping[str, Any] | None, equal: Equal,
          agrees: Agrees = _never) -> Edited | None:
    """None when `tc` may be written over the target row `current` (None: no such row), else what was
    edited. Only `tc.expect` makes a change checkable: without it (no full old row) None."""
    expect = tc.expect
    if expect is None or tc.op is Op.TRUNCATE:
        return None
    keys = set(tc.key_columns)
    if tc.op is Op.DELETE:
        if current is None:
            return None  # gone on both sides: nothing to do
        for c, old in expect.items():
            if c in keys or c not in current:
                continue
            now = current[c]
            if not equal(c)(now, old) and not agrees(c, now, old):
                return Edited("differs", c, now, old)
        return None
    if current is None:
        # an insert creates the row; an update would write only its changed fields into nothing, or
        # bring back a row the target's side deleted: the operator decides
        return None if tc.op is Op.INSERT else Edited("gone")
    for c, new in tc.values.items():
        # (an insert-only column is never written over an existing row: whatever it holds stays)
        if c in keys or c not in current or new is UNCHANGED or c in tc.insert_only:
            continue
        now = current[c]
        eq = equal(c)
        if eq(now, new) or agrees(c, now, new):  # already the new value
            continue
        if tc.op is Op.INSERT:
            return Edited("exists", c, now, None, new)
        if c not in expect:  # a field the source side owns: never checked (router.with_owned)
            continue
        old = expect[c]
        if not eq(now, old) and not agrees(c, now, old):
            return Edited("differs", c, now, old, new)
    return None


def _agreement(det: Detector, flow: Flow, equal: Equal, tc: TargetChange, current: Mapping[str, Any]) -> Agrees:
    """The conflict check's agreement test (Detector.agrees) for one row: whether the target's value of a
    column, sent to the source by the reverse flow and brought back by this one, is the value compared with
    (a field transformed one way only holds different images on the two sides while replication is done)."""
    field_of = det.field_of.get(flow.mapping, {})

    def agrees(c: str, now: Any, expected: Any) -> bool:
        return det.agrees(flow, field_of, c, now, expected, tc.key_columns, tc.key, dict(current), equal(c))
    return agrees


def check(db: Applier, det: Detector, flow: Flow, changes: Sequence[TargetChange]) -> list[TargetChange]:
    """The changes to write, each read against its target row locked in the open transaction (FOR UPDATE:
    an edit committed meanwhile waits for ours); raises TargetEdited for the first whose row was edited.
    What is written carries no `expect`: it was checked here, and a stream's resolver must not decide
    it again as a conflict of its own."""
    out: list[TargetChange] = []
    for tc in changes:
        if tc.expect is not None:
            info = db.column_info(tc.table)
            keys = set(tc.key_columns)
            cols = [c for c in dict.fromkeys([*tc.values, *tc.expect]) if c not in keys and (not info or c in info)]
            found = db.read_rows(tc.table, tc.key_columns, cols, [tc.key])
            n = len(tc.key_columns)
            current = dict(zip(cols, found[0][n:])) if found else None

            def equal(c: str, info: Any = info) -> Callable[[Any, Any], bool]:
                return det.equal(info, c)
            agrees = _agreement(det, flow, equal, tc, current) if current is not None else _never
            edited = judge(tc, current, equal, agrees)
            if edited is not None:
                raise TargetEdited(flow.target.side, tc, edited)
        out.append(replace(tc, expect=None) if tc.expect is not None else tc)
    return out
