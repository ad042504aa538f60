"""Folds: a child row on one side is one column of its parent row on the other (docs/mappings.md,
"Child rows folded into columns").

A `fold:` mapping (model.Fold) names the child table (within its slice, e.g. `kind: email`), the child
column holding the parent's key (`by`), the child column carried (`value`), and the parent's column on the
other side (`into`). The parents are linked by another mapping (`parent`), whose link -- crosswalk or
shared key -- translates the parent key; `references` translates the value the same way (an association
table folded into a foreign-key column).

Routing (`route_fold`) turns a source change into LinkedChanges whose `values` hold two entries, the
parent (a Ref to the parent mapping) and the value (a Ref when it is a reference); `FoldApplier` applies
them inside the Linker's target transaction, so they park and unpark like references, are tagged like
every write of the applier, and commit with the checkpoint.

- child row inserted / updated -> the parent's column is set; deleted (or moved to another parent, or out
  of the slice) -> the column takes the one row of the type the parent still has, else NULL;
- the parent's column set and no child row -> a child row is inserted (key made per `generate:`, slice
  columns set); changed -> that row is updated; NULL -> it is deleted. A parent's delete does nothing here.
- a parent with two rows of the type cannot be carried into one column: a row error naming the child
  table, key and column, never a silent pick.
- two-way, from the stream: every change of the column is checked against what the source saw before (the
  old value; NULL for a child row new to its parent), a child row's insert, delete and move included
  (`FoldApplier._wins`, through the applier's resolver); a column change whose child row is gone from the
  target is decided by the resolver as `update_missing` (`FoldApplier._departed`), the row made again (under
  its old key when it was deleted) only when the change wins (docs/conflicts.md).

A fold with `via` (model.Via, two hops: EspoCRM's entity_email_address -> email_address) has two flows from
the link table's side, one per table read: a link row's change routes the parents it linked or links
(`_from_link`), a far row's change its key (`_from_far`: the parents that link to it are read when applied);
`FoldApplier._through` reads the parent's one far value in the source then and writes the column. Only
that direction exists (model refuses the other). Consecutive such changes of a target transaction are applied
together (`FoldApplier.through_all`, from the stream's apply loop): each parent once, the far values of many
parents read in one query.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Sequence

from replicator import metrics
from replicator.appliers.base import Applier, group_runs
from replicator.appliers.slices import slice_sql, slice_text
from replicator.changes import UNCHANGED, Op, RowChange, TableRef, TargetChange
from replicator.errors import RowError
from replicator.identifiers import for_params, quote_ident
from replicator.mapping.model import Endpoint, Flow, Fold, MappingSet, folds_into
from replicator.mapping.router import LinkedChange, Ref, Routed, source_key
from replicator.mapping.transforms import TransformError

log = logging.getLogger(__name__)

PARENT = "parent"  # LinkedChange.values of a fold: the parent (a Ref to the parent mapping)
VALUE = "value"  # ... and the value carried (a Ref when the fold `references` a mapping)
FAR = "far"  # a two-hop fold's far row changed: its key (the parents that link to it are found when applied)
FAR_CHUNK = 500  # parents whose far values one query reads (FoldApplier._far_rows)

Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]


def coalesced(lc: Routed) -> bool:
    """A two-hop fold's change: consecutive ones are applied together (`FoldApplier.through_all`)."""
    return lc.__class__ is LinkedChange and lc.flow.fold is not None \
        and lc.flow.fold.via is not None


def folds_into_children(flow: Flow) -> bool:
    """A one-hop fold's flow from the parent's column into child rows (`FoldApplier._to_child`)."""
    fold = flow.fold
    return fold is not None and fold.via is None and flow.target.side == fold.child


def child_columns(flow: Flow) -> tuple[str, ...]:
    """What names a child row of the type whatever its key (made anew by `generate:`): its parent, its slice."""
    assert flow.fold is not None
    return (flow.fold.by, *(c for c, _ in flow.target.slice))


def deleted_child(values: Sequence[Any]) -> tuple[str, ...]:
    """`child_columns`' values as a first copy compares them (LinkedChange.deleted_children): as text, so that a
    parent key read from the target's change stream and one resolved through the parent's link compare alike."""
    return tuple(str(v) for v in values)


def optional_parent(mset: MappingSet | None, flow: Flow) -> bool:
    """A fold into a column (child rows -> the parent's column) whose parent's table on the target side is an
    `optional: true` endpoint of the parent mapping (a 1:1 custom-field table its application creates lazily):
    a missing parent row there is one whose fields are all NULL, created whole when the fold sets its column."""
    fold = flow.fold
    if mset is None or fold is None or flow.target.side == fold.child:
        return False
    parent = mset.by_name.get(fold.parent)
    return parent is not None and parent.endpoint(flow.target.side).optional


def parent_writer(mset: MappingSet, flow: Flow) -> Flow | None:
    """The parent mapping's flow that writes the fold's target table from the fold's source side (what creates a
    missing parent row whole); None when the parent mapping does not write that table from there."""
    assert flow.fold is not None
    pflow = mset.by_name[flow.fold.parent].flow(flow.source.side)
    return pflow if pflow is not None and pflow.target.table == flow.target.table else None


def no_parent_writer(flow: Flow, then: str) -> str:
    """Why a fold's parent row missing from an `optional: true` table cannot be created (`parent_writer` None)."""
    assert flow.fold is not None
    return (f"the parent row is missing from {flow.target.table} (optional: true) and mapping {flow.fold.parent} "
            f"does not create rows there from {flow.source.side}: create it, then {then}")


def route_fold(flow: Flow, change: RowChange, stream: bool = False, commit_time: datetime | None = None) -> list[Routed]:
    fold = flow.fold
    assert fold is not None
    if fold.via is not None:
        return _from_link(flow, fold, change) if flow.source.table == fold.via.endpoint.table \
            else _from_far(flow, fold, change)
    if flow.source.side == fold.child:
        return _from_child(flow, fold, change, stream, commit_time)
    return _from_parent(flow, fold, change, stream, commit_time)


def _filtered(flow: Flow) -> list[Routed]:
    metrics.rows_filtered.labels(flow.stream, str(flow.target.table)).inc()
    return []


def _complete(row: Mapping[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (before.get(k, v) if before is not None and v is UNCHANGED else v) for k, v in row.items()}


def carried(flow: Flow, value: Any, table: Any, key: Any, column: str) -> Any:
    """`value`, read from `column` of `table` (the row `key`) in the source, as the fold writes it
    (`Fold.carry`: null_if_empty, then the value map); a value the map does not list is a row error naming them."""
    fold = flow.fold
    assert fold is not None
    try:
        return fold.carry(flow.stream, value)
    except TransformError as exc:
        raise RowError(f"mapping {flow.mapping}, fold {fold.value} -> {fold.into}: {exc}; add it to the fold's map",
                       table=str(table), key=tuple(key) if isinstance(key, (list, tuple)) else (key,),
                       column=column) from None


def _was(flow: Flow, value: Any) -> Any:
    """The old value of an update in target terms, for the conflict check (`expect`); UNCHANGED when the fold's map
    does not list it: it never reached the other side (its own change was refused), so there is nothing there to
    compare with, and the change correcting it is written as any other."""
    fold = flow.fold
    assert fold is not None
    try:
        return fold.carry(flow.stream, value)
    except TransformError:
        return UNCHANGED


def _from_child(flow: Flow, fold: Fold, change: RowChange, stream: bool, commit_time: datetime | None = None
                ) -> list[Routed]:
    """A row of the child table: its parent's column on the other side follows it."""
    before = change.before
    if change.op is Op.DELETE and before is not None:
        missing = [c for c in flow.filter_columns if c not in before]
        if missing:  # the old row holds only the key (PostgreSQL's default replica identity): whose row was it?
            raise RowError(f"mapping {flow.mapping}: the deleted row lacks column {missing[0]} that tells whose "
                           f"row it is; set REPLICA IDENTITY FULL on {change.table} (`replicator setup` does)",
                           table=str(change.table), key=tuple(before.get(c) for c in flow.source.key),
                           column=missing[0])

    def member(row: Mapping[str, Any] | None) -> bool:
        return (row is not None and (flow.filter is None or bool(flow.filter(row)))
                and row.get(fold.by) not in (None, UNCHANGED))

    def known(row: Mapping[str, Any] | None) -> bool:
        return row is not None and all(c in row for c in flow.filter_columns)

    checked = stream and flow.two_way

    def expected(old: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """What the parent's column held before, as the source saw it (`expect`, the conflict check): the old
        row's value, or NULL where the parent had no row of the type (an insert, a row moved or come into the
        slice). None: not checked (one-way, a copy, a value that never reached the other side)."""
        if not checked:
            return None
        if old is None:
            return {VALUE: None}
        if fold.value not in old or old[fold.value] is UNCHANGED:
            return None
        was = _was(flow, old[fold.value])
        if was is UNCHANGED:
            return None
        return {VALUE: Ref(fold.references, was) if fold.references and was is not None else was}

    def clear(row: Mapping[str, Any]) -> LinkedChange:
        skey = source_key(flow, row, change)
        return LinkedChange(flow, Op.DELETE, change, skey, {PARENT: Ref(fold.parent, row[fold.by])},
                            expect=expected(row), commit_time=commit_time)

    def put(row: Mapping[str, Any], old: Mapping[str, Any] | None) -> LinkedChange:
        skey = source_key(flow, row, change)
        value = carried(flow, row.get(fold.value), change.table, skey, fold.value)
        if fold.references and value is not None:
            value = Ref(fold.references, value)
        return LinkedChange(flow, Op.UPDATE, change, skey, {PARENT: Ref(fold.parent, row[fold.by]), VALUE: value},
                            expect=expected(old), commit_time=commit_time)

    if change.op is Op.DELETE:
        return [clear(before)] if before is not None and member(before) else _filtered(flow)
    after = change.after
    assert after is not None
    if change.op is Op.INSERT:
        return [put(after, None)] if member(after) else _filtered(flow)
    row = _complete(after, before)
    if row.get(fold.value) is UNCHANGED:
        raise RowError(f"mapping {flow.mapping}: the value column {fold.value} was not logged (an unchanged TOAST "
                       f"value); set REPLICA IDENTITY FULL on {change.table}", table=str(change.table),
                       key=tuple(row.get(c) for c in flow.source.key), column=fold.value)
    out: list[Routed] = []
    was = known(before) and member(before)
    moved = was and (not member(row) or before[fold.by] != row[fold.by])  # type: ignore[index]
    if moved:  # the old parent loses its row (it moved to another parent, or left the slice)
        out.append(clear(before))  # type: ignore[arg-type]
    if member(row):
        same = (was and not moved and fold.value in before  # type: ignore[operator]
                and _same(fold.empty_null(flow.stream, before[fold.value]),  # type: ignore[index]
                          fold.empty_null(flow.stream, row[fold.value])))
        if not same:
            out.append(put(row, before if was and not moved else None))  # new to this parent: it had none
    return out or _filtered(flow)


def _from_link(flow: Flow, fold: Fold, change: RowChange) -> list[Routed]:
    """A row of a two-hop fold's link table (entity_email_address): each parent it linked before or links now
    takes its column again, read from the source when applied (`FoldApplier._through`)."""
    via = fold.via
    assert via is not None
    before, after = change.before, change.after
    if change.op is Op.DELETE and before is not None:
        missing = [c for c in flow.filter_columns if c not in before]
        if missing:
            raise RowError(f"mapping {flow.mapping}: the deleted link row lacks column {missing[0]} that tells whose "
                           f"row it was; set REPLICA IDENTITY FULL on {change.table} (`replicator setup` does)",
                           table=str(change.table), key=tuple(before.get(c) for c in flow.source.key),
                           column=missing[0])

    def member(row: Mapping[str, Any] | None) -> bool:
        return (row is not None and all(c in row for c in flow.filter_columns)
                and (flow.filter is None or bool(flow.filter(row)))
                and row.get(fold.by) not in (None, UNCHANGED) and row.get(via.to) not in (None, UNCHANGED))

    def again(row: Mapping[str, Any]) -> LinkedChange:
        return LinkedChange(flow, Op.UPDATE, change, source_key(flow, row, change),
                            {PARENT: Ref(fold.parent, row[fold.by])})

    if change.op is Op.DELETE:
        return [again(before)] if before is not None and member(before) else _filtered(flow)
    assert after is not None
    if change.op is Op.INSERT:
        return [again(after)] if member(after) else _filtered(flow)
    row = _complete(after, before)
    was, now = member(before), member(row)
    if was and now and all(_same(before[c], row[c]) for c in flow.filter_columns):  # type: ignore[index]
        return _filtered(flow)  # the same parent, the same far row: nothing the fold carries changed
    out: list[Routed] = [again(before)] if was else []  # type: ignore[arg-type]
    if now and not (was and _same(before[fold.by], row[fold.by])):  # type: ignore[index]
        out.append(again(row))
    return out or _filtered(flow)


def _from_far(flow: Flow, fold: Fold, change: RowChange) -> list[Routed]:
    """A row of a two-hop fold's far table (email_address): every parent linked to it takes its column again
    (an address several records share sets each of them), found and read in the source when applied."""
    before, after = change.before, change.after
    row = after if after is not None else before
    assert row is not None
    if change.op is Op.UPDATE and before is not None and after is not None:
        full = _complete(after, before)
        watched = (fold.value, *(c for c, _ in flow.source.slice))
        if all(c in before and c in full and _same(before[c], full[c]) for c in watched):
            return _filtered(flow)  # neither the value nor the far row's slice changed
        row = full
    skey = source_key(flow, row, change)
    return [LinkedChange(flow, Op.UPDATE, change, skey, {FAR: skey[0]})]


def _from_parent(flow: Flow, fold: Fold, change: RowChange, stream: bool, commit_time: datetime | None = None
                 ) -> list[Routed]:
    """A parent row on the column's side: its child row on the other side follows the column. A parent's
    delete is the parent mapping's business (and the child table's foreign key's, ON DELETE CASCADE)."""
    if change.op is Op.DELETE:
        return _filtered(flow)
    after = change.after
    assert after is not None
    before = change.before
    row = _complete(after, before)
    if fold.into not in row:
        raise RowError("column is folded but missing from the source row (dropped or renamed?)",
                       table=str(change.table), column=fold.into)
    value = row[fold.into]
    if value is UNCHANGED:
        return []  # not logged because not changed
    skey = source_key(flow, row, change)
    # `transform: [null_if_empty]`: '' is no child row; then the value map
    value = carried(flow, value, change.table, skey, fold.into)
    old: Any = UNCHANGED
    if change.op is Op.UPDATE and before is not None and before.get(fold.into, UNCHANGED) is not UNCHANGED:
        old = _was(flow, before[fold.into])
        if _same(old, value):
            return []  # the folded column did not change
    if change.op is Op.INSERT and value is None:
        return []  # no child row to make

    def ref(v: Any) -> Any:
        return Ref(fold.references, v) if fold.references and v is not None else v
    expect = {VALUE: ref(old)} if stream and flow.two_way and old is not UNCHANGED else None
    return [LinkedChange(flow, Op.UPDATE, change, skey, {PARENT: Ref(fold.parent, skey[0]), VALUE: ref(value)},
                         expect=expect, commit_time=commit_time)]


def _same(a: Any, b: Any) -> bool:
    try:
        return a.__class__ is b.__class__ and bool(a == b)
    except Exception:
        return False


def far_rows_sql(fold: Fold, kind: str, parents: Sequence[Any]) -> tuple[str, list[Any]]:
    """A two-hop fold's read of the source (`kind` its dialect): the link rows (of the link slice) of these
    parents joined with the far rows (of the far slice) they point at -- each the parent, the link row's key,
    the far row's key and its value, by parent and link key. The applier and `explain --key` both read it."""
    via = fold.via
    assert via is not None and via.far is not None
    link, far = via.endpoint, via.far

    def q(*parts: str) -> str:
        return for_params(quote_ident(kind, *parts))
    params: list[Any] = list(parents)
    conds = [f"l.{q(fold.by)} = %s" if len(parents) == 1
             else f"l.{q(fold.by)} IN ({', '.join(['%s'] * len(parents))})"]
    for alias, slice_ in (("l", link.slice), ("f", far.slice)):
        more, values = slice_sql(kind, slice_, alias)
        conds += more
        params += values
    order = ", ".join(f"l.{q(c)}" for c in (fold.by, *link.key))
    sql = (f"SELECT l.{q(fold.by)}, {', '.join('l.' + q(c) for c in link.key)}, f.{q(far.key[0])}, "
           f"f.{q(fold.value)} FROM {q(link.table.schema, link.table.name)} l "
           f"JOIN {q(far.table.schema, far.table.name)} f ON f.{q(far.key[0])} = l.{q(via.to)} "
           f"WHERE {' AND '.join(conds)} ORDER BY {order}")
    return sql, params


def child_rows_sql(kind: str, end: Endpoint, by: str, value: str, parents: Sequence[Any],
                   limit: int | None = None) -> tuple[str, list[Any]]:
    """A one-hop fold's child rows of many parents in one read (`kind` the dialect of `end`'s database): the rows of
    `end`'s table within its slice whose `by` is one of `parents` -- each the parent, the row's key, its `value`, by
    parent and key; at most `limit` rows. `verify` reads the child side with it, the applier's `_siblings_of` the
    source's (the first three rows of one parent: enough to tell none, one and several)."""
    def q(*parts: str) -> str:
        return for_params(quote_ident(kind, *parts))
    conds, params = slice_sql(kind, end.slice)
    where = f"{q(by)} = %s" if len(parents) == 1 else f"{q(by)} IN ({', '.join(['%s'] * len(parents))})"
    sql = (f"SELECT {', '.join(q(c) for c in (by, *end.key, value))} FROM {q(end.table.schema, end.table.name)} "
           f"WHERE {' AND '.join([where, *conds])} ORDER BY {', '.join(q(c) for c in (by, *end.key))}")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, [*parents, *params]


class FoldApplier:
    """Applies fold LinkedChanges for one direction, inside the Linker's open target transaction.

    `resolve` translates a Ref through its mapping's link (None: no counterpart yet), `park` parks a change
    until it has one; `source_query`/`source_kind` read the child table on the source (the rows of the type
    a parent has); without them (explain, repair) that check is skipped. `make_parent(flow, parent)` creates a
    parent row missing from an `optional: true` table whole from its source row (`Linker.make_parent`; False when
    there is none to create it from: the change parks as before)."""

    def __init__(self, applier: Applier, stream: str, resolve: Callable[[Ref], Any],
                 park: Callable[[LinkedChange, Ref], None], source_query: Query | None, source_kind: str | None,
                 mset: MappingSet | None = None, left: Callable[[LinkedChange, Ref], bool] | None = None,
                 make_parent: Callable[[Flow, Any], bool] | None = None):
        self.a = applier
        # whether the parent record has a counterpart but left its mapping (Linker._left_record: counted there)
        self.left = left
        self.mset = mset
        self.stream = stream
        self.resolve = resolve
        self.park = park
        self.make_parent = make_parent
        self.source_query = source_query if source_kind is not None else None
        self.source_kind = source_kind
        self._replaying: Ref | None = None  # the parent a parked change is replayed for (Linker._unpark)
        # the change whose parent is being written (through_all): a row error of the target names it
        self.writing: LinkedChange | None = None

    @contextlib.contextmanager
    def replaying(self, waited: Ref) -> Iterator[None]:
        """While a parked change is replayed because `waited` arrived: a far row's change of a two-hop fold
        writes that parent only."""
        self._replaying = waited
        try:
            yield
        finally:
            self._replaying = None

    def apply(self, lc: LinkedChange) -> None:
        flow, fold = lc.flow, lc.flow.fold
        assert fold is not None
        if fold.via is not None:
            self._through(lc, fold)
            return
        parent = lc.values[PARENT]
        assert isinstance(parent, Ref)
        parent_key = self._parent_key(lc.flow, parent)
        if parent_key is None:
            self.park(lc, parent)
            return
        if flow.target.side != fold.child and self._kept(flow, parent.mapping) and self.left is not None \
                and self.left(lc, parent):
            return  # a parent that left its mapping with its counterpart kept: its column is not written
        if flow.target.side == fold.child:
            value = self._value(lc, lc.values[VALUE])
            if value is not _PARKED:
                self._to_child(lc, fold, parent_key, value, fill=fold.value in lc.insert_only)
            return
        if lc.op is Op.DELETE:
            value = self._remaining(lc, fold, parent.value, exclude=lc.source_key)
        else:
            self._only_row(lc, fold, parent.value)
            value = lc.values[VALUE]
        value = self._value(lc, value)
        if value is not _PARKED:
            self._to_column(lc, fold, parent_key, value, fill=fold.into in lc.insert_only, parent_value=parent.value)

    def _parent_key(self, flow: Flow, parent: Ref) -> Any:
        """The parent's key on the target (None: no counterpart, the change parks). For a fold into an
        `optional: true` table whose parent row is missing there, the row is created whole first (`make_parent`):
        the application makes such a row only once a field is set, and this change sets one. Only when the
        parent's link finds nothing: the common case (the row is there) costs nothing more."""
        parent_key = self.resolve(parent)
        if parent_key is None and self.make_parent is not None and optional_parent(self.mset, flow) \
                and self.make_parent(flow, parent.value):
            parent_key = self.resolve(parent)
        return parent_key

    def _kept(self, flow: Flow, parent: str) -> bool:
        """The parent mapping keeps a leaving record's counterpart (`leave:`/`delete:` ignore or a soft delete), so
        a child row's change still finds it after the record left; one it deletes takes the column with it."""
        m = self.mset.by_name.get(parent) if self.mset is not None else None
        pflow = m.flow(flow.source.side) if m is not None else None
        return pflow is not None and pflow.leave != "propagate"

    def _value(self, lc: LinkedChange, value: Any) -> Any:
        if isinstance(value, Ref):
            resolved = self.resolve(value)
            if resolved is None:  # the referenced record has no counterpart yet
                self.park(lc, value)
                return _PARKED
            return resolved
        return value

    # ------------------------------------------------------------ a parent created with its folded columns
    def folded(self, parent: Flow, parent_value: Any) -> dict[str, Any]:
        """The columns folds write into a parent row `parent` is about to create, read from the source's child
        rows now: the parent's insert carries them (Krayin's organizations.name, NOT NULL, is OFBiz's
        party_group.group_name, a child row of the party the insert comes from). A parent without its child
        row, or with several, gets nothing here: the fold's own change writes or refuses it. A `references`
        value is translated; one without a counterpart yet is left to the fold's change (it parks)."""
        out: dict[str, Any] = {}
        for flow in folds_into(self.mset, parent.mapping, parent.source.side) if self.mset is not None else ():
            fold = flow.fold
            assert fold is not None
            rows = self._siblings_of(flow, fold, parent_value)
            if not rows or len(rows) > 1:
                continue
            n = len(flow.source.key)
            value = carried(flow, rows[0][n], flow.source.table, rows[0][:n], fold.value)
            if fold.references and value is not None:
                value = self.resolve(Ref(fold.references, value))
                if value is None:
                    continue
            out[fold.into] = value
        return out

    # ------------------------------------------------------------ child rows into a column
    def _siblings(self, lc: LinkedChange, fold: Fold, parent_value: Any) -> list[tuple[Any, ...]] | None:
        """The child rows of the type this parent has in the source now (key columns, then the value);
        None when the source cannot be read here."""
        return self._siblings_of(lc.flow, fold, parent_value)

    def _siblings_of(self, flow: Flow, fold: Fold, parent_value: Any) -> list[tuple[Any, ...]] | None:
        if self.source_query is None or self.source_kind is None:
            return None
        sql, params = child_rows_sql(self.source_kind, flow.source, fold.by, fold.value, [parent_value], limit=3)
        return [tuple(r[1:]) for r in self.source_query(sql, params)]

    def _ident(self, *parts: str) -> str:
        assert self.source_kind is not None
        return for_params(quote_ident(self.source_kind, *parts))

    def _only_row(self, lc: LinkedChange, fold: Fold, parent_value: Any) -> None:
        """The rule for several rows of the type: a column carries one, so a second is a row error. Judged on
        the source as it is now: a row that is already gone there (a later change replaces it) is let through."""
        rows = self._siblings(lc, fold, parent_value)
        if rows is None:
            return
        n = len(lc.flow.source.key)
        keys = [tuple(r[:n]) for r in rows]
        if len(rows) > 1 and tuple(lc.source_key) in keys:
            metrics.fold_refused.labels(self.stream, lc.flow.mapping).inc()
            raise RowError(f"mapping {lc.flow.mapping}: parent {parent_value!r} has {len(rows)} rows of "
                           f"{dict(lc.flow.source.slice) or 'this table'} (keys {keys[:2]}); column {fold.into} of "
                           f"{lc.flow.target.table} carries one: delete the extra row or change its "
                           f"{'/'.join(c for c, _ in lc.flow.source.slice) or fold.by}",
                           table=str(lc.flow.source.table), key=lc.source_key, column=fold.value)

    def _remaining(self, lc: LinkedChange, fold: Fold, parent_value: Any, exclude: tuple[Any, ...]) -> Any:
        """After a child row left its parent: the value of the one row of the type the parent still has in the
        source (NULL when none; several are a row error, as for an insert)."""
        rows = self._siblings(lc, fold, parent_value)
        if not rows:
            return None
        n = len(lc.flow.source.key)
        rest = [r for r in rows if tuple(r[:n]) != tuple(exclude)]
        if not rest:
            return None
        if len(rest) > 1:
            metrics.fold_refused.labels(self.stream, lc.flow.mapping).inc()
            raise RowError(f"mapping {lc.flow.mapping}: parent {parent_value!r} still has {len(rest)} rows of "
                           f"{dict(lc.flow.source.slice) or 'this table'}; column {fold.into} of "
                           f"{lc.flow.target.table} carries one", table=str(lc.flow.source.table),
                           key=lc.source_key, column=fold.value)
        value = carried(lc.flow, rest[0][n], lc.flow.source.table, rest[0][:n], fold.value)
        return Ref(fold.references, value) if fold.references and value is not None else value

    def _to_column(self, lc: LinkedChange, fold: Fold, parent_key: Any, value: Any, fill: bool = False,
                   parent_value: Any = None) -> None:
        """`fill` (the second side's copy of a two-way fold, sync/driver.py): only a NULL column is written. A
        parent row missing from an `optional: true` table although its link names it (a crosswalk pair: the
        target's application deleted the row of NULLs) is created whole (`make_parent`, from `parent_value`, the
        parent's source key) and written again; the update finds out, no read before it. A checked change (a
        two-way fold) reads first whether the row is there, for an optional parent only: the check of a missing
        row writes nothing, so the row is made whole before it (its column NULL, as the missing row's was)."""
        flow = lc.flow
        tgt = flow.target
        key = (parent_key,)
        if fill and (value is None or self.a.find_keys(tgt.table, (fold.into,), dict(zip(tgt.key, key)), limit=1)
                     != [(None,)]):
            return  # the first side's value stands (a missing parent is the parent mapping's business)
        checked = lc.expect is not None and self.a.resolver is not None and VALUE in lc.expect
        if checked and self.make_parent is not None and optional_parent(self.mset, flow) \
                and not self.a.find_keys(tgt.table, tuple(tgt.key), dict(zip(tgt.key, key)), limit=1) \
                and not self.make_parent(flow, parent_value):
            # the row of NULLs is gone and cannot be made now: the check would find no row and write nothing
            # without a word; the update below finds none either, and counts it
            checked = False
        if checked:
            assert lc.expect is not None
            old = self._old(lc.expect[VALUE])
            if old is not _PARKED and not self._wins(lc, tgt.table, tgt.key, key, fold.into, old, value, write=True):
                return  # the target's edit won, the column holds the value already, or the check wrote it
        done = self.a.update_by_key(tgt.table, tgt.key, key, {fold.into: value})
        if not done and self.make_parent is not None and optional_parent(self.mset, flow) \
                and self.make_parent(flow, parent_value):
            done = self.a.update_by_key(tgt.table, tgt.key, key, {fold.into: value})
        metrics.rows_applied.labels(self.stream, str(tgt.table), "update").inc()
        if not done:
            metrics.rows_missing.labels(self.stream, str(tgt.table), "update").inc()

    # ------------------------------------------------------------ two hops: link rows to a far row's value
    def _through(self, lc: LinkedChange, fold: Fold) -> None:
        """A two-hop fold: the parent's column takes the value of the one far row its link rows of the slice
        point at, read from the source now (NULL when none); a far row's change does it for every parent that
        links to it. A parent without a counterpart parks the change (replayed, it reads the source again)."""
        self.through_all([lc])

    def through_all(self, lcs: Sequence[LinkedChange]) -> None:
        """Two-hop fold changes applied together (consecutive ones of a target transaction, pipeline._apply): each
        parent they concern is read once and written once, however many of them name it (4,000 link rows
        flipped in one statement, a far row 2,000 parents share). The value is the source's as it is now in
        either case, so one read after the last change is what reading after each would end with. A parent
        is parked, refused or named in an error with the last change that concerns it."""
        self.writing = None
        concerned: dict[tuple[str, type, Any], tuple[LinkedChange, Any]] = {}
        for lc in lcs:
            fold = lc.flow.fold
            assert fold is not None and fold.via is not None
            if self.source_query is None or self.source_kind is None:
                raise RowError(f"mapping {lc.flow.mapping}: a fold through {fold.via.endpoint.table} reads the "
                               f"source, which cannot be read here", table=str(lc.change.table), key=lc.source_key)
            if FAR in lc.values:
                parents = [r[0] for r in self._linked(fold, lc.values[FAR])]
                waited = self._replaying
                if waited is not None and waited.mapping == fold.parent:
                    parents = [p for p in parents if _same(p, waited.value)]
            else:
                parent = lc.values[PARENT]
                assert isinstance(parent, Ref)
                parents = [parent.value]
            for p in parents:
                k = (lc.flow.mapping, p.__class__, p)
                concerned.pop(k, None)  # in the order of the last change that concerns it
                concerned[k] = (lc, p)
        by_mapping: dict[str, list[tuple[LinkedChange, Any, Any]]] = {}
        for lc, p in concerned.values():
            fold = lc.flow.fold
            assert fold is not None
            ref = Ref(fold.parent, p)
            parent_key = self._parent_key(lc.flow, ref)
            if parent_key is None:
                self.park(lc, ref)
                continue
            by_mapping.setdefault(lc.flow.mapping, []).append((lc, p, parent_key))
        for todo in by_mapping.values():
            fold = todo[0][0].flow.fold
            assert fold is not None
            rows = self._far_rows(fold, [p for _, p, _ in todo])
            for lc, p, parent_key in todo:
                found = rows.get((p.__class__, p)) if rows is not None else None
                if found is None:  # not read with the others (see _far_rows): on its own, as ever
                    found = [tuple(r[1:]) for r in self.source_query(*self._far_sql(fold, [p]))]  # type: ignore[misc]
                value = self._value(lc, self._far_value(lc, fold, p, found[:3]))
                if value is not _PARKED:
                    self.writing = lc
                    self._to_column(lc, fold, parent_key, value, parent_value=p)

    def _linked(self, fold: Fold, far_key: Any) -> list[tuple[Any, ...]]:
        """The parents whose link rows of the slice point at this far row, in the source now."""
        via = fold.via
        assert via is not None and self.source_query is not None
        q, link = self._ident, via.endpoint
        assert self.source_kind is not None
        conds, params = slice_sql(self.source_kind, link.slice)
        sql = (f"SELECT DISTINCT {q(fold.by)} FROM {q(link.table.schema, link.table.name)} "
               f"WHERE {' AND '.join([f'{q(via.to)} = %s', *conds])} AND {q(fold.by)} IS NOT NULL "
               f"ORDER BY {q(fold.by)}")
        return self.source_query(sql, [far_key, *params])

    def _far_sql(self, fold: Fold, parents: Sequence[Any]) -> tuple[str, list[Any]]:
        """`far_rows_sql` in the source's dialect."""
        assert self.source_kind is not None
        return far_rows_sql(fold, self.source_kind, parents)

    def _far_rows(self, fold: Fold, parents: list[Any]) -> dict[tuple[type, Any], list[tuple[Any, ...]]] | None:
        """The rows `_far_sql` reads for many parents, read FAR_CHUNK parents a query, by parent; None (read
        each on its own) for one parent, or when a row came back under a parent value not asked for exactly (a
        case-insensitive collation, a padded or converted key): which parent a row is then for is the
        server's comparison to decide, as the query for one parent lets it."""
        assert self.source_query is not None
        if len(parents) < 2:
            return None
        asked = {(p.__class__, p) for p in parents}
        out: dict[tuple[type, Any], list[tuple[Any, ...]]] = {k: [] for k in asked}
        unique = list(dict.fromkeys(parents))
        for i in range(0, len(unique), FAR_CHUNK):
            for r in self.source_query(*self._far_sql(fold, unique[i:i + FAR_CHUNK])):
                k = (r[0].__class__, r[0])
                if k not in asked:
                    return None
                out[k].append(tuple(r[1:]))
        return out

    def _far_value(self, lc: LinkedChange, fold: Fold, parent_value: Any, rows: Sequence[tuple[Any, ...]]) -> Any:
        """The value of the one far row (of the far slice) the parent's link rows (of the link slice) point at,
        in the source now (`rows`: its first three link rows, from `_far_sql` without the parent): NULL when
        none; two are a row error, as two child rows of a one-hop fold."""
        via = fold.via
        assert via is not None
        link, far = via.endpoint, via.far
        assert far is not None
        if not rows:
            return None
        n = len(link.key)
        if len({r[n] for r in rows}) > 1:  # two link rows to one far row carry the same value: not two
            metrics.fold_refused.labels(self.stream, lc.flow.mapping).inc()
            kind = slice_text(link.slice) or "any kind"
            raise RowError(f"mapping {lc.flow.mapping}: parent {parent_value!r} links to {len({r[n] for r in rows})} "
                           f"rows of {far.table} through {link.table} rows of {kind} (keys "
                           f"{[tuple(r[:n]) for r in rows[:2]]}); column {fold.into} of {lc.flow.target.table} "
                           f"carries one: delete the extra link row or change its "
                           f"{'/'.join(c for c, _ in link.slice) or fold.by}", table=str(lc.change.table),
                           key=lc.source_key, column=via.to if lc.change.table == link.table else fold.value)
        value = carried(lc.flow, rows[0][n + 1], far.table, (rows[0][n],), fold.value)
        return Ref(fold.references, value) if fold.references and value is not None else value

    # ------------------------------------------------------------ a column into a child row
    def _to_child(self, lc: LinkedChange, fold: Fold, parent_key: Any, value: Any, fill: bool = False) -> None:
        """`fill` (the second side's copy of a two-way fold, sync/driver.py): only a missing child row is made."""
        tgt = lc.flow.target
        n = len(tgt.key)
        rows = self.a.find_keys(tgt.table, (*tgt.key, fold.value), {fold.by: parent_key}, limit=2, slice_=tgt.slice)
        if fill and rows:
            return  # the first side's value stands
        if len(rows) > 1:
            metrics.fold_refused.labels(self.stream, lc.flow.mapping).inc()
            raise RowError(f"mapping {lc.flow.mapping}: parent {parent_key!r} has several rows of "
                           f"{dict(tgt.slice) or 'this table'} in {tgt.table} (keys {[tuple(r[:n]) for r in rows]}); "
                           f"column {fold.into} carries one: delete the extra row", table=str(lc.change.table),
                           key=lc.source_key, column=fold.into)
        checked = lc.expect is not None and self.a.resolver is not None and VALUE in lc.expect \
            and fold.value not in tgt.key
        if not rows:
            if value is None:
                return  # nothing to delete
            if lc.deleted_children and deleted_child((parent_key, *(v for _, v in tgt.slice))) in lc.deleted_children:
                # a first copy's change: the target deleted this parent's row of the type while the copy ran (not
                # we), and the delete is on its way to the source -- the copy does not bring the row back
                log.info("%s: %s of parent %r was deleted on %s during the copy; not made again", lc.flow.mapping,
                         tgt.table, parent_key, tgt.side)
                return
            again: tuple[Any, ...] | None = None
            if checked:  # the parent had a value: its child row was removed here meanwhile, a race
                old = self._old(lc.expect[VALUE])  # type: ignore[index]
                if old is not None and old is not _PARKED:
                    won, again = self._departed(lc, fold, parent_key, old, value)
                    if not won:
                        return
            row = {fold.by: parent_key, fold.value: value, **dict(tgt.slice)}
            made = {fold.by: parent_key, fold.value: value}
            if again is not None and len(again) == n and not any(g.by_database for g in tgt.generate
                                                                 if g.column in tgt.key):
                # the deleted row comes back under its key: the other direction's check of that delete then
                # finds no other row of the parent's, and both directions record the race
                row.update(zip(tgt.key, again))
            for gen in tgt.generate:
                if not gen.by_database and gen.column not in row:
                    row[gen.column] = gen.make(made)
            self.a.insert_returning(tgt.table, row, tgt.key)
            metrics.rows_applied.labels(self.stream, str(tgt.table), "insert").inc()
            return
        child_key, current = tuple(rows[0][:n]), rows[0][n]
        # a value that is part of the child's key (an association table's) moves the row: no field to check
        if checked:
            old = self._old(lc.expect[VALUE])  # type: ignore[index]
            if old is not _PARKED and not self._wins(lc, tgt.table, tgt.key, child_key, fold.value, old, value):
                return
        if value is None:
            self.a.delete_by_key(tgt.table, tgt.key, child_key)
            metrics.rows_applied.labels(self.stream, str(tgt.table), "delete").inc()
        elif not _same(current, value):
            self.a.update_by_key(tgt.table, tgt.key, child_key, {fold.value: value})
            metrics.rows_applied.labels(self.stream, str(tgt.table), "update").inc()

    # ------------------------------------------------------------ conflicts
    def _old(self, value: Any) -> Any:
        """The value before the change in target terms; _PARKED when an old reference has no counterpart
        (nothing to compare the target's value with)."""
        if isinstance(value, Ref):
            resolved = self.resolve(value)
            return _PARKED if resolved is None else resolved
        return value

    def _wins(self, lc: LinkedChange, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...], column: str,
              old: Any, new: Any, write: bool = False) -> bool:
        """A two-way fold checks the one column it writes as any field (update_differs, decided by the mapping's
        rule and recorded in <state>.conflicts): False when the target's concurrent edit wins. `write` (the
        parent's column, an UPDATE of that column alone): the check may write the new value itself where the
        target still holds the old one (the conditional write, docs/conflicts.md "How a two-way update is
        checked": one statement instead of a locked read and the write); False then too, nothing left to do."""
        assert self.a.resolver is not None
        keys = dict(zip(key_cols, key))
        # must_exist: a parent gone from the target is the parent mapping's business, never made again here
        tc = TargetChange(table, Op.UPDATE, tuple(key_cols), key, {column: new, **keys}, expect={column: old, **keys},
                          must_exist=True, mapping=lc.flow.mapping, source_key=lc.source_key,
                          commit_time=lc.commit_time)
        if write:
            self.a.written.add(table)  # (as Applier.apply: the check may write the run itself)
        out = self.a.resolver.resolve(self.a, group_runs([tc])[0], [tc], write)
        return bool(out) and _same(out[0].values.get(column), new)

    def _departed(self, lc: LinkedChange, fold: Fold, parent_key: Any, old: Any, new: Any
                  ) -> tuple[bool, tuple[Any, ...] | None]:
        """The parent's column changed from `old` (not NULL) on the source, and the target has no child row of
        the type for it: the other side removed it (deleted, moved, out of the slice) while this side edited
        the column. A conflict (`update_missing` of the fold's field), decided and recorded by the resolver as
        the other direction decides its side of the race; True when this edit wins (the row is made again, under
        the deleted row's key when the resolver knows it)."""
        assert self.a.resolver is not None
        tgt = lc.flow.target
        tc = TargetChange(tgt.table, Op.UPDATE, tuple(tgt.key), (), {fold.value: new}, expect={fold.value: old},
                          mapping=lc.flow.mapping, source_key=lc.source_key, commit_time=lc.commit_time)
        return self.a.resolver.departed(self.a, tc, fold.by, parent_key, tgt.slice)


_PARKED: Any = object()
