"""Retrying queued dead letters (`replicator dlq retry`, and the stream after a mapping reload).

A row's queued changes are retried in queue order as one unit; a change that fails again is retried once
more as the net change up to the row's latest queued change (`superseding`), and a two-way change is
first checked against its target row (deadcheck.py). The queue itself -- its table, entries and the
stream's quarantine -- is stream/deadletter.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from replicator.appliers.base import Applier
from replicator.changes import UNCHANGED, Op, RowChange, TargetChange, zero_dated
from replicator.codec import dumps_key
from replicator.conflicts.detect import Detector
from replicator.errors import RowError
from replicator.mapping.model import Flow, MappingSet
from replicator.mapping.router import Routed, route_flow
from replicator.stream import deadcheck, deadletter
from replicator.stream.deadletter import UNDECODABLE, Entry, _table, delete, error_class, try_apply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    applied: tuple[Entry, ...]
    failed: tuple[tuple[Entry, str], ...]  # the first change of a row that still fails, and why
    waiting: tuple[Entry, ...]  # changes behind a failed one, still queued
    # (a change that failed, the later change of its row whose image was written in its place): both are
    # in `applied` too, and so is every change between them
    superseded: tuple[tuple[Entry, Entry], ...] = ()


def net_change(first: RowChange, last: RowChange) -> RowChange | None:
    """One source change with the effect of `first` followed by `last` (and whatever of the same row came
    between them) on a target where `first` was not applied: the row as `last` left it, written whole; if
    the chain moved the row to another key, an update from the old key's row (routed as a key change:
    the old key's row deleted, the new one written). None when that cannot be said exactly: `last`'s new row lacks a column (PostgreSQL's unchanged TOAST
    value) -- a partial image is never written over a row `first` should have created."""
    if last.op is Op.DELETE:
        # `first` created the row (it is not there) or changed it: either way it ends deleted
        return last if last.before is not None else None
    if last.op is Op.TRUNCATE or first.op is Op.TRUNCATE or last.after is None:
        return None
    if any(v is UNCHANGED for v in last.after.values()):
        return None
    if first.op is Op.INSERT:
        # the row was never written under its first key: only the row as `last` left it, whatever its key
        return RowChange(last.table, Op.INSERT, None, _image(last.after))
    # an update or a delete that failed: the target still holds the row as `first` found it, under its key.
    # Its old row says which row that is, so that a chain that changed the key deletes the old key's row and
    # writes the new one (routing a key change); an update read without one (PostgreSQL without REPLICA
    # IDENTITY FULL sends no old row unless the key changes) takes the old key from `last`, the key change
    # queued behind it (a chain's later changes are those of its first key: `last` leaves that key or keeps it)
    before = first.before if first.before is not None else last.before
    return RowChange(last.table, Op.UPDATE, before, _image(last.after))


def _image(row: Any) -> dict[str, Any]:
    """A copy of a row image that keeps the zero dates it names (changes.ZeroDatedRow): still refused on retry."""
    return zero_dated(dict(row), getattr(row, "zero_dates", ()), getattr(row, "zero_texts", None))


def superseding(e: Entry, later: Sequence[Entry]) -> Entry | None:
    """The entry to retry in place of `e`, which failed again, and the `later` queued changes of its row:
    `e` carrying the net change from its source row to the latest one's (net_change). None when there is
    no later change, or a source row is missing (not read from a source)."""
    if not later or e.source_row is None or later[-1].source_row is None or later[-1].error_class == UNDECODABLE:
        return None
    net = net_change(e.source_row, later[-1].source_row)
    if net is None:
        return None
    # (its class is the latest change's: `e`'s may say its own image is never to be written, UNDECODABLE)
    return replace(e, source_row=net, op=net.op.value, error_class=later[-1].error_class)


def _changes_for(e: Entry, mset: MappingSet | None, checked: bool = False) -> tuple[list[TargetChange], Flow | None]:
    """What retrying `e` writes: the source row through the mapping as it is now (the operator may have
    fixed it), or the stored change when the mapping is gone or the row was not read from a source.
    `checked` (a retry without --force): a two-way flow routes the source row as the stream does, the
    changed fields and `expect`, and its flow is returned with them for the check against the target row
    (stream/deadcheck.py); otherwise the flow is None and the changes are written unchecked."""
    source_side = e.stream.split("_to_", 1)[0]
    m = mset.by_name.get(e.mapping) if mset is not None else None
    flow = m.flow(source_side) if m is not None else None
    if flow is None or e.source_row is None or flow.linked or str(flow.target.table) != e.target_table:
        if e.change.op is not Op.DELETE and not e.change.values:
            raise RowError(f"mapping {e.mapping} could not produce this row and no longer applies to it: "
                           f"skip it", table=e.target_table, key=e.target_key)
        return [e.change], None
    source_row = e.source_row

    def mine(produced: list[Routed]) -> list[TargetChange]:
        return [tc for tc in produced if isinstance(tc, TargetChange) and str(tc.table) == e.target_table]
    if checked and flow.two_way:
        streamed = mine(route_flow(flow, source_row, stream=True))
        if streamed:
            return streamed, flow
    out = mine(route_flow(flow, source_row))
    if checked and flow.two_way and out:
        return [], flow  # no field the mapping carries changed: nothing to write
    # the mapping as it is now writes nothing for this row (a filter): the stored change
    return out or [e.change], None


# replays a queued change of a linked mapping through a Linker (stream/deadlinked.ReplayLinkers.replay)
ReplayLinked = Callable[[Applier, Entry, Flow], "RowError | None"]


def linked_flow(e: Entry, mset: MappingSet | None) -> Flow | None:
    """The flow of a linked mapping `e` was queued by (its key is then the source row's), else None."""
    m = mset.by_name.get(e.mapping) if mset is not None else None
    side = e.stream.split("_to_", 1)[0]
    # the stored row's own table: a two-hop fold's queued change may be of its link table or its far table
    flow = (m.flow_of(side, e.source_row.table) if e.source_row is not None else m.flow(side)) \
        if m is not None else None
    return flow if flow is not None and flow.linked and str(flow.target.table) == e.target_table else None


Row = deadletter.Row  # a target row: its table and its key as JSON text (deadletter.row_id)


class ByRow:
    """The queued changes of each target row, in queue order, indexed once: a change that failed again
    finds the later changes of its row among its row's own changes. Before, it scanned the rest of the
    queue -- quadratic when many rows of a large queue failed again. `scanned` counts the changes looked
    at to find them (tests/unit/test_deadletter.py holds it to the row's own)."""

    def __init__(self, ordered: Sequence[Entry], mset: MappingSet | None = None):
        self.keys: list[Row] = [entry_row(e, mset) for e in ordered]
        self._rows: dict[Row, list[tuple[int, Entry]]] = {}
        for i, (row, e) in enumerate(zip(self.keys, ordered)):
            self._rows.setdefault(row, []).append((i, e))
        self.scanned = 0

    def later(self, i: int, e: Entry) -> list[Entry]:
        """The changes of `e`'s row and mapping queued after it (`e` is the `i`th in queue order)."""
        changes = self._rows[self.keys[i]]
        self.scanned += len(changes)
        return [x for j, x in changes if j > i and x.mapping == e.mapping]


def entry_row(e: Entry, mset: MappingSet | None) -> Row:
    """The row `e` was queued for (deadletter.row_id): a linked mapping's key is its source row's."""
    linked = linked_flow(e, mset)
    return deadletter.row_id(e.target_table, dumps_key(tuple(e.target_key)),
                             str(linked.source.table) if linked is not None else None)


def retry(db: Applier, entries: Sequence[Entry], mset: MappingSet | None,
          replay_linked: ReplayLinked | None = None, force: bool = False) -> Outcome:
    """Re-apply queued changes in queue order inside the open (tagged) transaction, a row's changes as one
    unit: a change that fails again is retried once more as the net change up to the row's latest queued
    change (`superseding`: the source row as it is now, written whole; the DBA fixed the data at the
    source and the fix is queued behind the bad change). If that goes in, every change of the row from the
    failed one on is applied (`Outcome.superseded`); else the failed change stays queued with its new error,
    and so do the later changes of its row. Applied changes are deleted from the queue. The caller commits.
    A change of a linked mapping is replayed from its source row through the linker (`replay_linked`),
    never as a stored target statement. A change of a two-way mapping is first checked against its target
    row (stream/deadcheck.py): one edited on the target since it was queued stays queued (error class
    `conflict`) unless `force`."""
    applied: list[Entry] = []
    failed: list[tuple[Entry, str]] = []
    waiting: list[Entry] = []
    superseded: list[tuple[Entry, Entry]] = []
    blocked: set[Row] = set()
    done: set[int] = set()  # applied as part of a superseding change
    detectors: dict[str, Detector] = {}  # by source side: the conflict detector's equality and agreement
    q = db.quote_col

    def attempt(e: Entry) -> RowError | None:
        if e.error_class == UNDECODABLE:  # its image holds U+FFFD where the source's byte was: never written
            return RowError(f"the source row could not be read exactly ({e.error}); correct the value at the "
                            f"source: the correcting change, queued behind this one, is written in its place",
                            table=e.target_table, key=e.target_key)
        linked = linked_flow(e, mset)
        if linked is not None:
            return replay_linked(db, e, linked) if replay_linked is not None else RowError(
                f"mapping {e.mapping} is linked: its changes are replayed through the linker", table=e.target_table,
                key=e.target_key, key_side=linked.source.side)
        try:
            changes, flow = _changes_for(e, mset, checked=not force)
        except RowError as exc:
            return exc
        if flow is None or mset is None:
            return try_apply(db, changes)
        side = flow.source.side
        det = detectors.get(side)
        if det is None:
            det = detectors[side] = Detector(mset, side)
        # checked against their locked target rows first (deadcheck.check): a row edited on the target
        # since the change was queued is refused with a TargetEdited error
        return try_apply(db, changes, lambda: deadcheck.check(db, det, flow, changes)) if changes else None

    ordered = sorted(entries, key=lambda x: x.id)
    rows = ByRow(ordered, mset)
    for i, e in enumerate(ordered):
        if e.id in done:
            continue
        row = rows.keys[i]
        if row in blocked:
            waiting.append(e)
            continue
        error = attempt(e)
        if error is None:
            applied.append(e)
            continue
        later = rows.later(i, e)
        merged = superseding(e, later)
        if merged is not None:
            again = attempt(merged)
            if again is None:
                applied += [e, *later]
                done.update(x.id for x in later)
                superseded.append((e, later[-1]))
                log.info("%s: retry of %s failed again (%s); the row's latest queued change %s was written in "
                         "its place, and the %d change(s) between them", e.stream, e.ref, error, later[-1].ref,
                         len(later) - 1)
                continue
            if isinstance(again, deadcheck.TargetEdited):
                error = again  # a conflict found on the net change is what the operator decides on
                text = str(again)
            else:
                text = f"{error}; the row's latest queued change {later[-1].ref}, written in its place, fails too: {again}"
        else:
            text = str(error)
        blocked.add(row)
        failed.append((e, text))
        cls = deadcheck.CONFLICT if isinstance(error, deadcheck.TargetEdited) else \
            UNDECODABLE if e.error_class == UNDECODABLE else error_class(error)  # (never to be written: stays so)
        db.execute(f"UPDATE {_table(db)} SET {q('error')} = %s, {q('error_class')} = %s WHERE {q('id')} = %s",
                   [text[:4000], cls, e.id])
        if isinstance(error, deadcheck.TargetEdited):
            log.warning("%s: retry of %s refused: %s", e.stream, e.ref, error)
    delete(db, (e.id for e in applied))
    return Outcome(tuple(applied), tuple(failed), tuple(waiting), tuple(superseded))
