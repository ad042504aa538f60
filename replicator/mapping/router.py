"""Routing: a source RowChange becomes target operations through every Flow that reads its table.

Plain flows (shared keys, no links, gates or references) produce `TargetChange`s that the applier
batches. Flows that need to look at the target first (links, gates, references, soft deletes)
produce `LinkedChange`s, which `replicator.mapping.links.Linker` applies row by row inside the same target
transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence, Union

from replicator import metrics
from replicator.changes import UNCHANGED, Op, RowChange, TargetChange, ZeroDatedRow, impossible_date
from replicator.errors import FatalError, RowError
from replicator.mapping.model import FieldPlan, Flow, MappingSet
from replicator.mapping.transforms import TransformError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ref:
    """A foreign-key value still to be translated through the link of `mapping`."""

    mapping: str
    value: Any


@dataclass(frozen=True)
class LinkedChange:
    flow: Flow
    op: Op  # INSERT/UPDATE (create or update the counterpart) or DELETE
    change: RowChange  # the source change, kept for parking
    source_key: tuple[Any, ...]  # the source row's own key (its primary key)
    values: Mapping[str, Any]  # target column -> value (Ref for foreign keys); no UNCHANGED
    gate_open: bool = True  # the row has the gate value (a counterpart may be created)
    insert_only: frozenset[str] = frozenset()  # written when creating the counterpart, not when updating it
    # of those, the ones an existing counterpart still gets where its value is NULL: the second side of a first
    # copy (sync/driver.py), for a counterpart the first side's copy held no value in (made since, by another
    # mapping's copy); a value it holds is never overwritten (links.Linker, appliers' update_by_key `fill`)
    fill: frozenset[str] = frozenset()
    must_exist: bool = False  # update an existing counterpart only, never create one
    # an INSERT made of an UPDATE whose row entered the filter or slice: a crosswalk pair whose counterpart is
    # gone (deleted when the row left) has it brought back (links.Linker)
    entered: bool = False
    # a crosswalk pair whose counterpart is gone has it created again, whole, under the pair's key: set with
    # `entered`, and by `verify --repair` for a row it reports missing. Any other change that finds its pair's
    # counterpart gone (a `sync --mapping` re-copy after the target deleted it) leaves it deleted, logged and
    # counted missing (links.Linker)
    revive: bool = False
    # -- set only by two-way mappings read from the stream, so the linker checks for conflicts as
    # TargetChange.expect does: the old row in target terms (Ref for foreign keys; {} for an INSERT)
    expect: Mapping[str, Any] | None = None
    commit_time: datetime | None = None  # the source transaction's commit time
    # a row whose gate is closed and whose values cannot be made (Dolibarr's draft order: its `fk_statut` 0 is in no
    # `map:`, since a draft never opens the gate): nothing is written unless the record has a counterpart already,
    # which the linker finds out; then this is the row error (links.Linker.apply). `values` is empty.
    refused: RowError | None = None
    # -- a first copy's change of a fold into child rows (sync/driver.py): the child rows of the type the target
    # deleted (not we) while the copy ran, as (parent key, slice values...) texts (`folds.deleted_child`); the delete
    # is on its way to the copy's source, so no child row is made for them again
    deleted_children: frozenset[tuple[str, ...]] = frozenset()


# what routing makes of a source change: a plain target operation the applier batches, or one the
# Linker applies row by row after looking at the target
Routed = Union[TargetChange, LinkedChange]


def route(mset: MappingSet, side: str, change: RowChange, commit_time: datetime | None = None,
          only: str | None = None) -> list[Routed]:
    """A change read from the stream: two-way flows write only what changed and carry what the
    source saw before, so the applier can detect conflicts (`route_flow(..., stream=True)`).
    `only`: the flows of that mapping alone (a parked change replayed)."""
    # by the table object's identity first: a source hands over the same TableRef for every row of a table
    # (cached per table map / relation), and the key's TableRef hash and == are two Python calls per row
    table = change.table
    by_id: dict[int, tuple[Any, str, tuple[Flow, ...]]] | None = mset.__dict__.get(_BY_TABLE)
    if by_id is None:
        by_id = mset.__dict__[_BY_TABLE] = {}
    seen = by_id.get(id(table))
    if seen is not None and seen[0] is table and seen[1] == side:
        flows = seen[2]
    else:
        flows = mset.routes.get((side, table), ())
        if len(by_id) > 1000:
            by_id.clear()
        # (the entry holds the table itself: its id is not reused by another object while it is here)
        by_id[id(table)] = (table, side, flows)
    if change.after.__class__ is ZeroDatedRow:  # a MariaDB zero date: refused unless its field says NULL
        for flow in flows:
            if only is None or flow.mapping == only:
                refuse_zero_dates(flow, change)
    if len(flows) == 1 and only is None:  # the usual table, read by one flow: its list as it is
        flow = flows[0]
        if flow.conflicts is not None:  # two-way: route_flow would go to the general path itself
            if change.op is Op.UPDATE:
                # _route_general's own way to _two_way_update, its tests answered once per flow (`direct`)
                compiled: _Compiled = flow.__dict__.get(_COMPILED) or _compiled(flow)
                row = change.after
                if compiled.direct and row is not None:
                    update_one, before = compiled.update_one, change.before
                    if update_one is not None and before is not None:  # _two_way_update's own way, one call
                        got = update_one(row, before, commit_time)
                        if got is not None:
                            return [] if got is NOTHING else [got]
                    else:
                        fast = _two_way_update(flow, compiled, change, row, commit_time)
                        if fast is not None:
                            return fast
            return _route_general(flow, change, True, commit_time)
        op = change.op
        if op is not Op.DELETE and op is not Op.TRUNCATE:  # route_flow's own shortcut, one call fewer a row
            plain = flow.__dict__.get(_PLAIN) or _plain(flow)
            if plain.usable:
                fast = plain.route(change)
                if fast is not None:
                    return fast
        return _route_general(flow, change, True, commit_time)
    out: list[Routed] = []
    for flow in flows:
        if only is not None and flow.mapping != only:
            continue
        out.extend(route_flow(flow, change, stream=True, commit_time=commit_time))
    return out


# a MappingSet's flows by id(table) for route(), kept in its __dict__ (MappingSet.routes never changes
# after __init__; a reload is a new MappingSet)
_BY_TABLE = "_router_by_table"


def route_all(mset: MappingSet, side: str, changes: Sequence[RowChange],
              commit_time: datetime | None = None) -> list[Routed]:
    """`[tc for ch in changes for tc in route(mset, side, ch, commit_time)]`: a multi-row source transaction's
    changes, with the flows looked up once per run of one table object instead of per row, an INSERT or
    UPDATE of a one-way table of one flow handed straight to its `_Plain` and an UPDATE of a two-way one to
    `_two_way_update` (what `route` does for them, without the call). Anything else goes through `route`
    itself. tests/unit/test_router_plain.py compares the two."""
    out: list[Routed] = []
    table: Any = None
    plain: _Plain | None = None
    # a two-way table of one flow whose UPDATEs `route` hands to `_two_way_update` (`_Compiled.direct`)
    direct: tuple[Flow, _Compiled] | None = None
    update_one: Callable[[Mapping[str, Any], Mapping[str, Any], datetime | None], Any] | None = None
    for ch in changes:
        if ch.after.__class__ is ZeroDatedRow:  # route() refuses its zero dates, or carries them as NULL
            out += route(mset, side, ch, commit_time)
            continue
        if ch.table is not table:
            table = ch.table
            flows = mset.routes.get((side, table), ())
            plain = direct = update_one = None
            if len(flows) == 1:
                flow = flows[0]
                if flow.conflicts is None:
                    p = flow.__dict__.get(_PLAIN) or _plain(flow)
                    if p.usable:
                        plain = p
                else:
                    compiled: _Compiled = flow.__dict__.get(_COMPILED) or _compiled(flow)
                    if compiled.direct:
                        direct = (flow, compiled)
                        update_one = compiled.update_one
        if direct is not None:
            row = ch.after
            if ch.op is Op.UPDATE and row is not None:  # what `route` does for it, without its look-ups
                before = ch.before
                if update_one is not None and before is not None:  # _two_way_update's own way, one call
                    got = update_one(row, before, commit_time)
                    if got is not None:
                        if got is not NOTHING:
                            out.append(got)
                        continue
                else:
                    fast = _two_way_update(direct[0], direct[1], ch, row, commit_time)
                    if fast is not None:
                        out += fast
                        continue
        elif plain is not None:
            op = ch.op
            if op is not Op.DELETE and op is not Op.TRUNCATE:
                fast = plain.route(ch)
                if fast is not None:
                    out += fast
                    continue
        out += route(mset, side, ch, commit_time)
    return out


def route_flow(flow: Flow, change: RowChange, stream: bool = False, commit_time: datetime | None = None) -> list[Routed]:
    """Target operations for one source change. `stream`: the change was read from the source's
    stream (not a table scan by sync, verify or explain, which always write every field)."""
    op = change.op
    if change.after.__class__ is ZeroDatedRow:
        refuse_zero_dates(flow, change)
    # (`flow.conflicts is not None` is flow.two_way without a call: this runs for every row)
    if op is not Op.DELETE and op is not Op.TRUNCATE and not (stream and flow.conflicts is not None):
        plain = flow.__dict__.get(_PLAIN) or _plain(flow)
        if plain.usable:
            fast = plain.route(change)
            if fast is not None:
                return fast
    return _route_general(flow, change, stream, commit_time)


def _route_general(flow: Flow, change: RowChange, stream: bool, commit_time: datetime | None) -> list[Routed]:
    """`route_flow` without its shortcut for plain flows (`_Plain`): the definition of routing. (An
    `optional: true` target's flow never takes the shortcut, nor `route`'s: its changes come here.)"""
    if flow.target.optional and change.op is not Op.DELETE and change.op is not Op.TRUNCATE:
        return [existing_only(flow, c) for c in _route_rows(flow, change, stream, commit_time)]
    return _route_rows(flow, change, stream, commit_time)


def _route_rows(flow: Flow, change: RowChange, stream: bool, commit_time: datetime | None) -> list[Routed]:
    if change.op is Op.TRUNCATE:
        return _truncate(flow, change)
    if flow.fold is not None:
        # folds builds on this module's LinkedChange and Ref, so it is imported here, not at the top
        from replicator.mapping.folds import route_fold
        return route_fold(flow, change, stream, commit_time)
    row = change.before if change.op is Op.DELETE else change.after
    if row is None:
        raise RowError(f"{change.op.value} without a row image", table=str(change.table))
    if flow.filter is not None and change.op is Op.DELETE:
        missing = [c for c in flow.filter_columns if c not in row]
        if missing and not _outside(flow, row):
            # the old row holds only the key (PostgreSQL's default replica identity): the filter cannot be
            # decided, and dropping the delete would lose it silently (`check` refuses this set-up)
            raise RowError(f"mapping {flow.mapping}: the deleted row lacks column {missing[0]} that the filter "
                           f"reads; set REPLICA IDENTITY FULL on {change.table} (`replicator setup` does)",
                           table=str(change.table), key=_safe_key(flow, row), column=missing[0])
    if flow.filter is not None and not flow.filter(_complete(row, change.before)):
        if change.op is Op.UPDATE:
            old = _left_from(flow, change, row)
            if old is not None:
                return _leave(flow, change, old, stream, commit_time)
        metrics.rows_filtered.labels(flow.stream, str(flow.target.table)).inc()
        return []
    compiled: _Compiled = flow.__dict__.get(_COMPILED) or _compiled(flow)
    entered = False
    if change.op is Op.UPDATE and flow.filter is not None and ((stream and flow.conflicts is not None)
                                                                or compiled.linked) and _entered(flow, change):
        # the row entered the mapping (an iDempiere vendor became a customer: `iscustomer` moved into the
        # slice): its counterpart is written whole, as an insert. Before, a two-way flow wrote only the
        # fields this update changed -- none -- so a shared-key mapping (accounts_cstm) never made the row,
        # and a row back in the slice missed the edits made while it was out; nothing said so. A linked
        # flow's insert also brings back a counterpart its leave deleted (the crosswalk pair outlives it)
        row = _complete(row, change.before)
        change = replace(change, op=Op.INSERT, before=None, after=row)
        entered = True
    if compiled.linked:
        return _linked(flow, change, row, stream and flow.two_way, commit_time, entered)
    tgt = flow.target
    if stream and flow.conflicts is not None:  # flow.two_way without its call (every row)
        if change.op is Op.UPDATE and compiled.fields is not None:
            fast = _two_way_update(flow, compiled, change, row, commit_time)
            if fast is not None:
                return fast
        return _two_way(flow, change, row, commit_time)
    if change.op is Op.DELETE:
        if flow.delete == "ignore":
            metrics.rows_filtered.labels(flow.stream, str(tgt.table)).inc()
            return []
        return [TargetChange(tgt.table, Op.DELETE, tgt.key, key_of(flow, row, change), {})]
    values = target_values(flow, change, row)
    key = key_of(flow, row, change)
    out: list[Routed] = []
    if change.op is Op.UPDATE and change.before:
        old_key = key_of(flow, change.before, change, partial=True)
        if old_key is not None and old_key != key:
            # a key change is a delete of the old row and an upsert of the new one
            out.append(TargetChange(tgt.table, Op.DELETE, tgt.key, old_key, {}))
    out.append(TargetChange(tgt.table, change.op, tgt.key, key, values, insert_only=flow.insert_only))
    return out


_warned_key_only: set[tuple[str, str]] = set()


def existing_only(flow: Flow, change: Routed) -> Routed:
    """A change for an `optional: true` target (its application creates rows lazily, only once a field is
    set): when it writes every field and all of them are NULL, the missing row already says so -- it writes
    into an existing row only, never creates one. The stream, the initial sync, `verify --repair` and `dlq
    retry` route through here alike (verify calls such a missing row all NULL). A two-way update read from
    the stream writes only its changed fields (`expect` holds the rest): the conflict check decides there
    (`detect._Check._update` creates a missing row whole unless all of it is NULL)."""
    if change.must_exist or change.op is Op.DELETE or (change.op is Op.UPDATE and change.expect is not None):
        return change
    key = flow.target.key
    if any(v is not None for c, v in change.values.items() if c not in key):
        return change
    return replace(change, must_exist=True)


def _entered(flow: Flow, change: RowChange) -> bool:
    """The old row is outside the flow's filter or slice (the new one passed it). An old row without the
    filter's columns (a key-only replica identity) tells nothing: not entered."""
    before = change.before
    if before is None or flow.filter is None:
        return False
    for column in flow.filter_columns:
        if column not in before or before[column] is UNCHANGED:
            return False
    return not flow.filter(before)


def _outside(flow: Flow, part: Mapping[str, Any]) -> bool:
    """Part of an old row (a key-only replica identity: the key, or the new row's key columns when the key did not
    change) already fails the flow's filter or slice on the columns it holds: the row was never this mapping's,
    whatever the columns it lacks held -- a row of another mapping's slice of a table keyed by its slice column."""
    refutes = getattr(flow.filter, "refutes", None)
    return refutes is not None and bool(refutes({c: v for c, v in part.items() if v is not UNCHANGED}))


def _left_from(flow: Flow, change: RowChange, row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """An UPDATE whose new row fails the flow's filter or slice: the old row when it passed them (the row
    left the mapping: PostgreSQL's row filters make such an update a DELETE), else None (it stays outside:
    decided from the old image alone, no look at the target). An old row without a filter column cannot
    be judged: a row error naming it unless the flow keeps counterparts of leaving rows (`leave: ignore`) or the
    columns it does hold already fail the filter or slice (`_outside`: a row of another mapping's slice);
    a column of the source key is its new value when PostgreSQL sent no old row (the key did not change).
    The old row returned holds at least the source key (what a key-only delete carries)."""
    before = change.before
    if before is not None:  # the usual case (a whole old row): the filter on it, nothing copied
        for column in flow.filter_columns:
            if column not in before or before[column] is UNCHANGED:
                break
        else:
            return before if flow.filter(before) else None  # type: ignore[misc]
    image: dict[str, Any] = {}
    unknown: list[str] = []
    for column in flow.filter_columns:
        if before is not None and column in before and before[column] is not UNCHANGED:
            image[column] = before[column]
        elif before is None and column in flow.source.key and column in row:
            image[column] = row[column]
        else:
            unknown.append(column)
    if unknown:
        if flow.leave == "ignore" or _outside(flow, image):
            # nothing to do either way, or the old row's known columns (its key's, when the key did not change)
            # already put it outside: another entity's row, never this mapping's (counted as filtered)
            return None
        raise RowError(f"mapping {flow.mapping}: the old row of this update lacks column {unknown[0]}, which the "
                       f"filter or slice reads, so it cannot tell whether the row left the mapping (and its "
                       f"counterpart must go); set REPLICA IDENTITY FULL on {change.table} (`replicator "
                       f"setup` does)", table=str(change.table), key=_safe_key(flow, row), column=unknown[0])
    if not flow.filter(image if before is None else {**before, **image}):  # type: ignore[misc]
        return None
    if before is None:
        return {c: row[c] for c in dict.fromkeys((*flow.source.key, *flow.key_sources, *image)) if c in row}
    return before


def _leave(flow: Flow, change: RowChange, old: Mapping[str, Any], stream: bool,
           commit_time: datetime | None) -> list[Routed]:
    """A row that left the flow's filter or slice: the flow's delete of its counterpart, by the mapping's
    `leave:` for this direction (its `delete:` by default) -- propagate, a soft delete, or nothing. Routed as a
    delete of the old row through `_leaving(flow)` (the flow with `delete` = `leave`), so links, the crosswalk,
    target slices, parked children and conflict checks treat it as they treat a delete. A linked change
    keeps the UPDATE as its source change (with the old row): a quarantined one replayed is decided again."""
    action = flow.leave
    metrics.rows_left.labels(flow.stream, flow.mapping, action if isinstance(action, str) else "set").inc()
    lflow: Flow = flow.__dict__.get(_LEAVING) or _leaving(flow)
    linked = (lflow.__dict__.get(_COMPILED) or _compiled(lflow)).linked
    if action == "ignore" and not (linked and flow.referenced):
        return []
    # (a referenced record's leave reaches the linker even when it keeps the counterpart: the rows keyed by the
    # record leave by their own mappings' leave, mapping/scope.py)
    update = change if change.before is old else replace(change, before=old)
    gone = RowChange(change.table, Op.DELETE, old, None)
    if linked:
        skey = source_key(lflow, old, gone)
        checked = stream and lflow.two_way and action != "ignore"
        return [_linked_delete(lflow, update, old, skey, checked, commit_time)]
    if stream and lflow.conflicts is not None:
        return _two_way(lflow, gone, old, commit_time)
    tgt = lflow.target
    return [TargetChange(tgt.table, Op.DELETE, tgt.key, key_of(lflow, old, gone), {})]


def leave_row(flow: Flow, row: Mapping[str, Any]) -> list[Routed]:
    """A row of `flow` whose record left the mapping it is keyed by (mapping/scope.py): routed as if it had left
    `flow`'s own filter -- the mapping's `leave:`, else its `delete:`. A row outside `flow`'s own filter was
    never carried: nothing."""
    if flow.filter is not None and not flow.filter(row):
        return []
    return _leave(flow, RowChange(flow.source.table, Op.UPDATE, row, row), row, False, None)


_LEAVING = "_router_leaving"  # a Flow's own _leaving(flow), kept in its __dict__ as _PLAIN is


def _leaving(flow: Flow) -> Flow:
    """The flow whose delete is `flow`'s leave action: what a row leaving the filter does."""
    made = replace(flow, delete=flow.leave)
    flow.__dict__[_LEAVING] = made
    return made


def full_before(flow: Flow, change: RowChange) -> bool:
    """The old row holds every column the flow reads (MariaDB binlog_row_image=FULL, PostgreSQL REPLICA
    IDENTITY FULL), not only the key (PostgreSQL's default identity) or nothing at all."""
    before = change.before
    return before is not None and all(p.source is None or p.source in before for p in flow.plans)


def _two_way(flow: Flow, change: RowChange, row: Mapping[str, Any], commit_time: datetime | None) -> list[Routed]:
    """A change of a two-way flow: an UPDATE writes only the fields whose mapped value changed (compared
    in target terms, after value maps and transforms), so a concurrent edit of another field on the
    target survives; every operation carries `expect`, the row as the source saw it before, for the
    applier's conflict check. Without a full old row (PostgreSQL without REPLICA IDENTITY FULL) nothing
    can be compared: every field is written, unchecked, and the fallback is counted and logged."""
    tgt = flow.target
    key = key_of(flow, row, change)
    skey = tuple(row.get(c) for c in flow.source.key)

    def make(op: Op, key: tuple[Any, ...], values: Mapping[str, Any], expect: Mapping[str, Any] | None) -> TargetChange:
        return TargetChange(tgt.table, op, tgt.key, key, values, expect=expect, mapping=flow.mapping,
                            source_key=skey, commit_time=commit_time, insert_only=flow.insert_only)
    full = change.op is Op.INSERT or full_before(flow, change)
    if not full:
        _count_unchecked(flow)
        if (flow.stream, str(change.table)) not in _warned_key_only:
            _warned_key_only.add((flow.stream, str(change.table)))
            log.warning("mapping %s: %s has no full old row (set REPLICA IDENTITY FULL; `replicator check` "
                        "says so): its updates write every field and are not checked for conflicts",
                        flow.mapping, change.table)
    if change.op is Op.DELETE:
        if flow.delete == "ignore":
            metrics.rows_filtered.labels(flow.stream, str(tgt.table)).inc()
            return []
        expect = _unstamped(flow, target_values(flow, change, row)) if full else None
        return [make(Op.DELETE, key, {}, expect)]
    values = target_values(flow, change, row)
    if change.op is Op.INSERT:
        return [make(Op.INSERT, key, values, {})]
    assert change.before is not None or not full
    old_key = key_of(flow, change.before, change, partial=True) if change.before else None
    if old_key is not None and old_key != key:
        # a key change: the old row goes, the new one is written whole (it has no old self to compare with)
        old = _unstamped(flow, target_values(flow, change, change.before)) if full else None  # type: ignore[arg-type]
        return [make(Op.DELETE, old_key, {}, old), make(Op.UPDATE, key, values, None)]
    if not full:
        return [make(Op.UPDATE, key, values, None)]
    expect = _known(target_values(flow, change, change.before))  # type: ignore[arg-type]
    changed = {c: v for c, v in values.items()
               if c in tgt.key or c not in expect or not _same(expect[c], v)}
    if len(changed) == len(tgt.key) and all(c in tgt.key for c in changed):
        return []  # no mapped field changed (only columns this mapping does not carry)
    changed, expect = with_owned(flow, values, changed, expect)
    return [make(Op.UPDATE, key, changed, expect)]


@dataclass(frozen=True)
class _Compiled:
    """What routing asks of a flow for every change, worked out once per Flow object."""

    linked: bool
    # a two-way flow's fields for `_two_way_update`: (target column, source column, the plan when its value
    # is more than the source value itself -- a conversion, null_if --, is a target key column); None:
    # a flow that path does not handle (linked, constant fields)
    fields: tuple[tuple[str, str, FieldPlan | None, bool], ...] | None
    insert_only: frozenset[str]
    # with `fields`: the instance dict of the flow's two-way UPDATE TargetChange, the per-row fields (key,
    # values, expect, source_key, commit_time) as placeholders `_two_way_update` overwrites
    update: dict[str, Any] | None = None
    # `_route_general` goes straight to `_two_way_update` for an UPDATE read from the stream: `fields`, and
    # no fold, filter or links (which it tests first)
    direct: bool = False
    # `_two_way_update`'s pass over `fields` as one function made for this flow (`_field_pass`): where no
    # field has a plan and the flow owns no fields; else None (the loop)
    field_pass: Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[dict[str, Any], dict[str, Any]] | None] \
        | None = None
    # with `field_pass`, the whole of `_two_way_update` as one function made for this flow (`_update_one`):
    # (new row, old row, commit time) -> the TargetChange, NOTHING (no mapped field changed) or None (the
    # general path)
    update_one: Callable[[Mapping[str, Any], Mapping[str, Any], "datetime | None"], Any] | None = None


# a Flow's own _Compiled, kept in its __dict__ as _PLAIN is (and functools.cached_property does): not a
# dataclass field, so equality, hash and replace() never see it; it lives and dies with its flow, and
# `flow.__dict__.get(_COMPILED)` finds it without a call per row
_COMPILED = "_router_compiled"


def _compiled(flow: Flow) -> _Compiled:
    got: _Compiled | None = flow.__dict__.get(_COMPILED)
    if got is not None:
        return got
    linked = flow.linked
    fields: tuple[tuple[str, str, FieldPlan | None, bool], ...] | None = None
    if flow.two_way and not linked and all(p.source is not None for p in flow.plans):
        keys = set(flow.target.key)
        fields = tuple((p.target, p.source, None if p.convert is None and not p.null_in and not p.null_out else p,
                        p.target in keys) for p in flow.plans if p.source is not None)
    update = None if fields is None else dict(
        TargetChange(flow.target.table, Op.UPDATE, flow.target.key, (), {}, expect={}, mapping=flow.mapping,
                     insert_only=flow.insert_only).__dict__)
    direct = fields is not None and flow.fold is None and flow.filter is None and not linked
    field_pass = update_one = None
    if fields is not None and not flow.owned_targets and all(plan is None for _, _, plan, _ in fields):
        field_pass = _field_pass(fields)
        assert update is not None
        update_one = _update_one(flow, fields, update)
    compiled = _Compiled(linked, fields, flow.insert_only, update, direct, field_pass, update_one)
    flow.__dict__[_COMPILED] = compiled
    return compiled


def _field_pass_lines(fields: tuple[tuple[str, str, FieldPlan | None, bool], ...], indent: str) -> list[str]:
    """The generated lines `_field_pass` and `_update_one` share, at `indent`: each field's new and old value
    read into n<i> / o<i>, None returned for an unchanged TOAST value, and `changed` built (the key's fields
    always, the others where the value differs: `_same` inline, as in the loop)."""
    lines = [f"{indent}n{i} = row[{source!r}]; o{i} = before[{source!r}]" for i, (_, source, _, _) in enumerate(fields)]
    if fields:
        lines.append(f"{indent}if " + " or ".join(f"n{i} is _U or o{i} is _U" for i in range(len(fields))) + ":")
        lines.append(f"{indent}    return None")
    lines.append(f"{indent}changed = {{}}")
    for i, (target, _, _, is_key) in enumerate(fields):
        if is_key:
            lines.append(f"{indent}changed[{target!r}] = n{i}")
        else:
            lines += [f"{indent}if not (n{i} is o{i} or (n{i}.__class__ is o{i}.__class__"
                      f" and (n{i} == o{i} or (n{i} != n{i} and o{i} != o{i})))):",
                      f"{indent}    changed[{target!r}] = n{i}"]
    return lines


def _field_pass(fields: tuple[tuple[str, str, FieldPlan | None, bool], ...]
                ) -> Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[dict[str, Any], dict[str, Any]] | None]:
    """`_two_way_update`'s loop over `fields` (none with a plan, no owned fields) unrolled for one flow:
    (expect, changed) from the new and the old row, or None for an unchanged TOAST value; a missing column
    raises KeyError and a value whose == raises, its error (the caller's `except` returns None for both, as
    the loop does). Straight-line code: each field's values read by a constant name, `expect` built as one
    dict display, no tuple unpacking, no tests of `plan` and `values` per field. The same dicts, in the same
    order, as the loop (tests/unit/test_conflicts_fast.py). Column names enter the source only as repr()
    string literals."""
    lines = ["def field_pass(row, before, _U=_U):", *_field_pass_lines(fields, "    ")]
    lines.append("    return {" + ", ".join(f"{target!r}: o{i}" for i, (target, _, _, _) in enumerate(fields))
                 + "}, changed")
    namespace: dict[str, Any] = {"_U": UNCHANGED}
    exec(compile("\n".join(lines), "<router field pass>", "exec"), namespace)
    made: Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[dict[str, Any], dict[str, Any]] | None] = \
        namespace["field_pass"]
    return made


# `_update_one`'s answer for an update that changes no mapped field (`_two_way_update`'s [])
NOTHING = object()


def _update_one(flow: Flow, fields: tuple[tuple[str, str, FieldPlan | None, bool], ...], proto: dict[str, Any]
                ) -> Callable[[Mapping[str, Any], Mapping[str, Any], "datetime | None"], Any]:
    """`_two_way_update` with `_field_pass` for one flow (no plans, no owned fields), the whole of it unrolled:
    the fields' pass, the key's reads and tests and the TargetChange in one function, one Python call a row
    instead of two plus the loops and tuples around them. (new row, old row, commit time) -> the same
    TargetChange as `_two_way_update` (the same instance dict, in order), NOTHING where that gives [] and
    None where it gives None; an exception it would raise (the key's comparison, outside its `try`) is
    raised here too. tests/unit/test_conflicts_fast.py compares the two. Column names enter the source
    only as repr() string literals."""
    sources = [source for _, source, _, _ in fields]
    ks, sk, tkey = flow.key_sources, flow.source.key, flow.target.key

    def new(c: str) -> str:  # a source column's new value: the field's variable when a field reads it
        return f"n{sources.index(c)}" if c in sources else f"row[{c!r}]"

    def old(c: str) -> str:
        return f"o{sources.index(c)}" if c in sources else f"before[{c!r}]"
    lines = ["def update_one(row, before, commit_time, _U=_U, _new=_new, _TC=_TC, _proto=_proto, _NOTHING=_NOTHING,"
             " _tkey=_tkey):",
             "    try:", *_field_pass_lines(fields, "        ")]
    lines.append("        expect = {" + ", ".join(f"{target!r}: o{i}" for i, (target, _, _, _) in enumerate(fields))
                 + "}")
    lines.append("        key = (" + "".join(f"{new(c)}, " for c in ks) + ")")
    lines.append("        old_key = (" + "".join(f"{old(c)}, " for c in ks) + ")")
    lines += ["    except Exception:",
              "        return None",
              "    if key != old_key:",  # outside the `try`, as in _two_way_update
              "        return None",
              "    for v in key:",
              "        if v is None or v is _U:",
              "            return None",
              "    if len(changed) == len(_tkey) and all(c in _tkey for c in changed):",
              "        return _NOTHING",
              "    tc = _new(_TC)",
              "    d = tc.__dict__",
              "    d.update(_proto)",
              "    d['key'], d['values'], d['expect'], d['commit_time'] = key, changed, expect, commit_time",
              "    d['source_key'] = (" + "".join(f"row.get({c!r}), " for c in sk) + ")",
              "    return tc"]
    namespace: dict[str, Any] = {"_U": UNCHANGED, "_new": _new_object, "_TC": TargetChange, "_proto": proto,
                                 "_NOTHING": NOTHING, "_tkey": tkey}
    exec(compile("\n".join(lines), "<router update>", "exec"), namespace)
    made: Callable[[Mapping[str, Any], Mapping[str, Any], datetime | None], Any] = namespace["update_one"]
    return made


def _two_way_update(flow: Flow, compiled: _Compiled, change: RowChange, row: Mapping[str, Any],
                    commit_time: datetime | None) -> list[Routed] | None:
    """`_two_way` for the usual UPDATE, in one pass over the fields: the old and new target values, what
    changed and `expect` together (the general path converts both rows whole, then compares). Anything
    unusual -- an old row without every column, an unchanged TOAST value, a NULL or changed key, a value
    that does not convert -- returns None: the general path handles it (and raises its errors). The same
    result as `_two_way`: tests/unit/test_conflicts_fast.py compares the two."""
    before = change.before
    if before is None or compiled.fields is None:
        return None
    update_one = compiled.update_one
    if update_one is not None:
        got = update_one(row, before, commit_time)
        return None if got is None else [] if got is NOTHING else [got]
    # the new values of every field only for with_owned (a flow with owned fields): else `changed` is enough
    values: dict[str, Any] | None = {} if flow.owned_targets else None
    expect: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    field_pass = compiled.field_pass
    try:
        if field_pass is not None:
            got = field_pass(row, before)
            if got is None:
                return None
            expect, changed = got
        else:
            for target, source, plan, is_key in compiled.fields:
                try:
                    new, old = row[source], before[source]
                except KeyError:
                    return None
                if new is UNCHANGED or old is UNCHANGED:
                    return None
                if plan is not None:
                    try:
                        new, old = _plan_value(flow, plan, change, row), _plan_value(flow, plan, change, before)
                    except RowError:  # the general path raises it, or not (an old row without every column)
                        return None
                    if new is UNCHANGED or old is UNCHANGED:
                        return None
                if values is not None:
                    values[target] = new
                expect[target] = old
                # _same inline: the same class and ==, or both NaN (a value whose == raises: the general path)
                if is_key or not (new is old or (new.__class__ is old.__class__
                                                 and (new == old or (new != new and old != old)))):
                    changed[target] = new
        ks = flow.key_sources
        if len(ks) == 1:
            key: tuple[Any, ...] = (row[ks[0]],)
            old_key: tuple[Any, ...] = (before[ks[0]],)
        else:
            key = tuple([row[c] for c in ks])
            old_key = tuple([before[c] for c in ks])
    except Exception:  # a key column missing, a value whose == raises: the general path decides
        return None
    if key != old_key:
        return None
    for v in key:  # a loop, not any(<generator>): this runs for every update
        if v is None or v is UNCHANGED:
            return None
    tkey = flow.target.key
    if len(changed) == len(tkey) and all(c in tkey for c in changed):
        return []  # no mapped field changed (only columns this mapping does not carry)
    if values is not None:
        changed, expect = with_owned(flow, values, changed, expect)
    sk = flow.source.key
    # the TargetChange's fields stored straight into the instance dict, the flow's constant ones from
    # `compiled.update` (made by TargetChange's own __init__): the frozen dataclass's __init__ makes an
    # object.__setattr__ call per field (11), a third of this function (as _Plain.route does;
    # test_conflicts_fast compares the instance with the general path's, field by field)
    tc: TargetChange = _new_object(TargetChange)
    d = tc.__dict__
    d.update(compiled.update)  # type: ignore[arg-type]  # (not None: made with `fields`)
    d["key"], d["values"], d["expect"], d["commit_time"] = key, changed, expect, commit_time
    d["source_key"] = (row.get(sk[0]),) if len(sk) == 1 else tuple([row.get(c) for c in sk])
    return [tc]


def with_owned(flow: Flow, values: Mapping[str, Any], changed: dict[str, Any],
               expect: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An update that writes something also carries the fields its source side owns, changed or not, and
    unchecked (nobody else writes them, so they cannot conflict): what the target missed of them -- the
    values the source generated when this flow created the row, whose insert came back as our own echo --
    arrives with the source's next change instead of never. Likewise the columns replicator stamps with
    the apply time (`now: true`): written by every update that writes something, never checked (the
    stamp is not the other side's edit; their old value is the previous apply time, not what the target
    should hold)."""
    stamps = flow.stamps
    owned = {c: values[c] for c in flow.owned_targets if c in values and c not in changed}
    # an owned field that changed is unchecked too (conflicts.md: "owned: ... never a conflict"): its old value
    # is no `expect`, or a race on a column it shares a source column with recorded it as a conflict
    unchecked = flow.owned_targets | stamps
    if stamps:
        owned.update((c, values[c]) for c in flow.restamped if c in values)
    if not owned:
        return changed, {c: v for c, v in expect.items() if c not in unchecked}
    return {**changed, **owned}, {c: v for c, v in expect.items() if c not in owned and c not in unchecked}


def _unstamped(flow: Flow, values: dict[str, Any]) -> dict[str, Any]:
    """`_known(values)` without the stamped columns: a delete's `expect` (the row the source deleted, for the
    check that the target did not change it since) never compares the apply time replicator wrote."""
    stamps = flow.stamps
    return {c: v for c, v in values.items() if v is not UNCHANGED and c not in stamps}


def _count_unchecked(flow: Flow) -> None:
    metrics.conflict_checks_skipped.labels(flow.stream, str(flow.target.table)).inc()


def _known(values: dict[str, Any]) -> dict[str, Any]:
    return {c: v for c, v in values.items() if v is not UNCHANGED}


def _same(a: Any, b: Any) -> bool:
    """Old and new value of one source column through one conversion: the same Python types, so plain
    equality, except that it must not call a float NaN changed, nor 1 and True the same."""
    if a.__class__ is not b.__class__:
        return False
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:  # a value that cannot be compared: treat it as changed (writing it is safe)
        return False


def _complete(row: Mapping[str, Any], before: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Unchanged TOAST values are taken from the old row when it has them (REPLICA IDENTITY FULL)."""
    if before is None or not any(v is UNCHANGED for v in row.values()):
        return row
    return {k: (before.get(k, v) if v is UNCHANGED else v) for k, v in row.items()}


def refuse_zero_dates(flow: Flow, change: RowChange, row: Mapping[str, Any] | None = None) -> None:
    """A RowError for the first MariaDB zero date (`changes.ZeroDatedRow`) of the row an INSERT or UPDATE carries
    in a column `flow` maps without `zero_date: null`, or impossible date (2024-02-30) in any column it carries
    (docs/types.md, "Zero dates"); nothing for a row the flow's
    filter leaves out, for a zero date in a column it does not carry, or for a DELETE (only its key is read)."""
    if row is None:
        row = change.after
    zero = getattr(row, "zero_dates", None)
    if not zero or row is None or change.op is Op.DELETE:
        return
    texts = getattr(row, "zero_texts", None) or {}
    refused = [c for c in zero if c in flow.zero_refused
               or c in flow.zero_nulled and impossible_date(texts.get(c))]  # zero_date: null is for zero dates
    if not refused:
        return
    if flow.filter is not None:
        try:
            if not flow.filter(_complete(row, change.before)):
                return
        except Exception:  # noqa: BLE001 - a filter that cannot read the row: routing raises its own error
            return
    column = refused[0]
    plan = next((p for p in flow.plans if p.source == column), None)
    what = f"field {plan.name}" if plan is not None else "its fold value"
    text = texts.get(column)  # as MariaDB shows it, where the reader knows it
    value = f" '{text}'" if text else ""
    if impossible_date(text):
        raise RowError(f"mapping {flow.mapping}, {what}: the value{value} is an impossible date (a day past its "
                       f"month's end, which MariaDB stores under sql_mode ALLOW_INVALID_DATES), which PostgreSQL "
                       f"has no value for; zero_date: null does not carry it: correct the row (a real date or NULL) "
                       f"(docs/types.md, \"Zero dates\")",
                       table=str(change.table), key=_safe_key(flow, row), column=column)
    raise RowError(f"mapping {flow.mapping}, {what}: the value{value} is a MariaDB zero date (0000-00-00, or a "
                   f"date with a zero month or day, or the zero TIMESTAMP), which PostgreSQL has no value for; give "
                   f"the field zero_date: null to carry it as NULL, or correct the row (docs/types.md, \"Zero dates\")",
                   table=str(change.table), key=_safe_key(flow, row), column=column)


def target_values(flow: Flow, change: RowChange, row: Mapping[str, Any], refs: bool = False) -> dict[str, Any]:
    if row.__class__ is ZeroDatedRow:  # verify and explain value a scanned row here, not through route_flow
        refuse_zero_dates(flow, change, row)
    values: dict[str, Any] = {}
    for plan in flow.plans:
        value = _plan_value(flow, plan, change, row, refs)
        if value is not UNCHANGED:
            values[plan.target] = value
    return values


def _plan_value(flow: Flow, plan: FieldPlan, change: RowChange, row: Mapping[str, Any], refs: bool = False) -> Any:
    """One field's target value from a source row; UNCHANGED: an unchanged TOAST value, left out."""
    if plan.source is None:
        value = None
    else:
        try:
            value = row[plan.source]
        except KeyError:
            raise RowError("column is mapped but missing from the source row (dropped or renamed?)",
                           table=str(change.table), column=plan.source) from None
        if value is UNCHANGED:
            return UNCHANGED
        if plan.null_in and _is_null_value(value, plan.null_in[0]):
            value = None
    if plan.convert is not None:
        try:
            value = plan.convert(value, row)
        except TransformError as exc:
            raise RowError(f"field {plan.name}: {exc}", table=str(change.table),
                           key=_safe_key(flow, row), column=plan.source) from None
    if refs and plan.references and value is not None:
        value = Ref(plan.references, value)
    if value is None and plan.null_out:
        value = plan.null_out[0]  # the target's "none" (null_if), never a reference to look up
    return value


def plan_value(flow: Flow, plan: FieldPlan, change: RowChange, row: Mapping[str, Any]) -> Any:
    """One field's target value from a source row, as a write of `flow` would carry it (RowError when it
    cannot be made): for the conflict check's look at what the other direction makes of a target value."""
    return _plan_value(flow, plan, change, row)


def _is_null_value(value: Any, marker: Any) -> bool:
    """The source's "none" value (`null_if`): 0 matches 0, 0.0 and Decimal 0 but not False; text equals text."""
    if isinstance(value, bool) or isinstance(marker, bool):
        return value is marker
    if isinstance(marker, str) or isinstance(value, str):
        return isinstance(value, str) and isinstance(marker, str) and value == marker
    try:
        return bool(value == marker)
    except Exception:
        return False


def key_of(flow: Flow, row: Any, change: RowChange, partial: bool = False) -> Any:
    try:
        key = tuple(row[c] for c in flow.key_sources)
    except KeyError as exc:
        if partial:
            return None
        raise RowError("key column missing from the source row", table=str(change.table),
                       column=str(exc.args[0])) from None
    if any(v is None or v is UNCHANGED for v in key):
        if partial:
            return None
        raise RowError("key column is NULL", table=str(change.table), key=key)
    return key


def source_key(flow: Flow, row: Mapping[str, Any], change: RowChange) -> tuple[Any, ...]:
    try:
        key = tuple(row[c] for c in flow.source.key)
    except KeyError as exc:
        raise RowError("primary key column missing from the source row", table=str(change.table),
                       column=str(exc.args[0])) from None
    if any(v is None or v is UNCHANGED for v in key):
        raise RowError("primary key column is NULL", table=str(change.table), key=key)
    return key


def _safe_key(flow: Flow, row: Mapping[str, Any]) -> Any:
    return tuple(row.get(c) for c in flow.source.key)


class _Plain:
    """`route_flow` for an INSERT or UPDATE of a plain flow (`usable`: no links, fold or filter; not used for
    a two-way flow read from the stream), worked out once per Flow: the field plans as (target column, source
    column, the plan when the value is more than the source value), and the TargetChange's fixed fields. The
    general path stays the definition: anything unusual -- no new row, a missing column, a NULL or unchanged
    key, a transform that raises -- returns None and the general path does it again (and raises its own
    error); transforms are pure. tests/unit/test_router_plain.py compares the two on random rows and flows."""

    def __init__(self, flow: Flow):
        self.flow = flow
        # an `optional: true` target: `_route_general` decides whether a change may create its row
        self.usable = flow.fold is None and flow.filter is None and not flow.linked and not flow.target.optional
        self.fields: tuple[tuple[str, str, FieldPlan | None], ...] = tuple(
            (p.target, p.source, None) if p.source is not None and p.convert is None and not p.null_in
            and not p.null_out and not p.references else (p.target, p.source or "", p) for p in flow.plans)
        self.key_sources = flow.key_sources
        tgt = flow.target
        self.table, self.key_columns = tgt.table, tgt.key
        # what TargetChange(table, op, key_columns, key, values, insert_only=...) holds, in its field order
        self.proto = TargetChange(tgt.table, Op.INSERT, tgt.key, (), {}, insert_only=flow.insert_only).__dict__

    def route(self, change: RowChange) -> list[Routed] | None:
        row = change.after
        if row is None:
            return None
        values: dict[str, Any] = {}
        try:
            for target, source, plan in self.fields:
                value = row[source] if plan is None else _plan_value(self.flow, plan, change, row)
                if value is not UNCHANGED:
                    values[target] = value
            ks = self.key_sources
            key: tuple[Any, ...] = (row[ks[0]],) if len(ks) == 1 else tuple([row[c] for c in ks])
        except Exception:
            return None
        for v in key:  # a loop, not any(<generator>): this runs for every row
            if v is None or v is UNCHANGED:
                return None
        out: list[Routed] = []
        before = change.before
        if change.op is Op.UPDATE and before:
            # key_of(flow, before, change, partial=True) inline (a binlog update always has the old row: its
            # generator and any() were a third of this method): a missing or NULL/unchanged old key is None
            old_key: tuple[Any, ...] | None
            try:
                old_key = (before[ks[0]],) if len(ks) == 1 else tuple([before[c] for c in ks])
            except KeyError:
                old_key = None
            else:
                for v in old_key:
                    if v is None or v is UNCHANGED:
                        old_key = None
                        break
            if old_key is not None and old_key != key:
                # a key change is a delete of the old row and an upsert of the new one
                out.append(TargetChange(self.table, Op.DELETE, self.key_columns, old_key, {}))
        # TargetChange(table, change.op, key_columns, key, values, insert_only=flow.insert_only) without
        # its frozen __init__ (a setattr per field, a third of this function's time): the same fields
        tc = _new_object(TargetChange)
        d = tc.__dict__
        d.update(self.proto)
        d["op"], d["key"], d["values"] = change.op, key, values
        out.append(tc)
        return out


_new_object = object.__new__
# TargetChange is a plain frozen dataclass (no slots, no __post_init__): its fields live in __dict__
assert not hasattr(TargetChange, "__slots__") and not hasattr(TargetChange, "__post_init__")

_PLAIN = "_router_plain"  # a Flow's own _Plain, kept in its __dict__ as functools.cached_property does


def _plain(flow: Flow) -> _Plain:
    plain = _Plain(flow)
    flow.__dict__[_PLAIN] = plain  # not a dataclass field: equality, hash and replace() never see it
    return plain


def _linked(flow: Flow, change: RowChange, row: Mapping[str, Any], checked: bool = False,
            commit_time: datetime | None = None, entered: bool = False) -> list[Routed]:
    """`checked`: a two-way flow read from the stream. Its LinkedChange keeps every field (the linker may
    have to create the counterpart whole) and carries `expect`: the linker writes only the fields that
    changed and checks them for conflicts like an unlinked run (replicator.conflicts.detect)."""
    skey = source_key(flow, row, change)
    if change.op is Op.DELETE:
        if flow.delete == "ignore":
            metrics.rows_filtered.labels(flow.stream, str(flow.target.table)).inc()
            return []
        return [_linked_delete(flow, change, row, skey, checked, commit_time)]
    gate_open = True
    if flow.gate is not None:
        column, wanted = flow.gate
        full = _complete(row, change.before)
        gate_open = _matches(full.get(column), wanted)
    try:
        values = target_values(flow, change, row, refs=True)
    except RowError as exc:
        if gate_open or not flow.link.crosswalk or flow.link.natural:
            raise
        # the gate is closed: an error only if a counterpart exists already (the gate opened before)
        return [LinkedChange(flow, change.op, change, skey, {}, False, commit_time=commit_time, refused=exc)]
    expect: Mapping[str, Any] | None = None
    if checked and change.op is Op.INSERT:
        expect = {}
    elif checked and change.op is Op.UPDATE and full_before(flow, change):
        expect = _known(target_values(flow, change, change.before, refs=True))  # type: ignore[arg-type]
    elif checked:
        _count_unchecked(flow)
    return [LinkedChange(flow, change.op, change, skey, values, gate_open, expect=expect, commit_time=commit_time,
                         insert_only=flow.insert_only, entered=entered, revive=entered)]


def _linked_delete(flow: Flow, change: RowChange, row: Mapping[str, Any], skey: tuple[Any, ...], checked: bool,
                   commit_time: datetime | None) -> LinkedChange:
    """A delete of a linked two-way flow read from the stream carries the deleted row in target terms
    (`expect`, Ref for foreign keys), so the linker can find a counterpart changed since (delete_differs)."""
    expect: Mapping[str, Any] | None = None
    if checked and full_before(flow, change):
        expect = _unstamped(flow, target_values(flow, change, row, refs=True))
    elif checked:
        _count_unchecked(flow)
    return LinkedChange(flow, Op.DELETE, change, skey, {}, expect=expect, commit_time=commit_time)


def _matches(value: Any, wanted: tuple[Any, ...]) -> bool:
    # (a wanted NULL -- a slice's `thru_date: null` -- is matched by NULL only, never by the text 'None')
    return any(value == w or (isinstance(value, str) and w is not None and value == str(w)) for w in wanted)


def _truncate(flow: Flow, change: RowChange) -> list[Routed]:
    tgt = flow.target
    if flow.truncate == "propagate":
        return [TargetChange(tgt.table, Op.TRUNCATE, tgt.key, (), {})]
    if flow.truncate == "ignore":
        log.warning("mapping %s: TRUNCATE of %s not propagated (truncate: ignore)", flow.mapping, change.table)
        metrics.truncates_ignored.labels(flow.stream, str(change.table)).inc()
        return []
    raise FatalError(
        f"mapping {flow.mapping}: {change.table} was truncated on {flow.source.side}. Truncates stop the "
        f"stream by default; set `truncate: propagate` (empty {tgt.table} too) or `truncate: ignore` "
        f"in the mapping, then start again")
