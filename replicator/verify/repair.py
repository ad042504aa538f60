"""`replicator verify --repair`: the reported rows written through the normal tagged apply path.

Per flow, in one target transaction:

1. the source rows are read again with shared row locks (`TableScanner.lock_keys`, inside a source
   transaction), so a concurrent update of such a row on the source commits only after our target
   commit, and replication then applies it after us: no lost update;
2. the target transaction starts with `Applier.begin()`, which writes the loop-prevention tag: the
   other direction recognises the repair as replicator's own write and drops it (no echo);
3. the target rows the repair may write are locked FOR UPDATE by key in that transaction (`flow.lock_keys`,
   one statement per PROBE keys), and both sides are read again under the locks (an extra row's source key
   after its target row is locked): only a row that still differs as verify saw it is written (`_as_seen`);
   one an application or the stream changed meanwhile, on either side, is printed ("changed during the
   repair; the stream carries the change") and never overwritten, and an application's later write of a
   locked row waits for our commit;
4. a differing row gets its differing columns written (`Applier.apply` as a partial update, or
   `update_by_key` on a linked counterpart, as `links.Linker` does); a missing row is routed through
   the flow and applied like replication applies it (plain flows: `Applier.apply`; linked flows:
   `links.Linker`, which also records the crosswalk pair); extra rows are deleted only when the flow's
   delete policy is `propagate`;
5. `commit_untracked()`: the rows commit, the stream's checkpoint is not touched; then the source
   transaction is rolled back (the locks go). Like the stream's `commit`, it first confirms that the tables
   written still have the shape `load_types` planned with: a DBA's ALTER TABLE committed meanwhile rolls the
   repair back (TargetShapeChanged), and the new shape is judged as the stream judges it
   (`stream/shapes.TargetShapes`): a column `check` now refuses stops the repair (SchemaChangeError, exit 78,
   naming table, column, old and new type), one the mappings still carry exactly is planned with and the
   flow's repair run again.

A differing field of a two-way mapping is decided by the mapping's conflict rule (`_winners`, the same
`conflicts.rules.decide` the stream uses): `priority` and owned fields by their side, `latest` with a
column by the newer value of that column (equal: the first connection), `latest` by commit time by the
first connection (a table holds no commit times), `manual` not at all (a person resolves it with
`replicator conflicts resolve`). Each direction writes only the fields its source side wins; the other
direction then writes the rest, so the newest edit is never lost to a fixed direction. Missing and
extra rows are repaired from `sync.first_side` (default: the first connection), as before.
Ownership needs nothing special: a flow's plans only hold the fields its source side owns. Rows whose
source row disappeared meanwhile are left to replication (the delete is on its way). After all flows,
the repaired rows are verified again.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence, TextIO

from replicator import metrics
from replicator.appliers import make_applier
from replicator.changes import Op, RowChange, TargetChange
from replicator.codec import dumps_key
from replicator.compare import key_canonical, show, values_equal
from replicator.conflicts.rules import decide
from replicator.errors import FatalError, TargetShapeChanged
from replicator.mapping import applytime
from replicator.mapping.links import Linker
from replicator.loopguard import stream_name
from replicator.mapping.model import Flow
from replicator.mapping.folds import PARENT, VALUE, no_parent_writer, parent_writer
from replicator.mapping.router import LinkedChange, Ref, route_flow
from replicator.stream.shapes import TargetShapes
from replicator.verify.flow import FlowCheck, lock_keys
from replicator.verify.folds import FoldCheck
from replicator.verify.report import DIFFERS, EXTRA, FAILED, LEFT, MISSING, Difference, key_text
from replicator.verify.run import Check, Verifier


def format_repair(d: Difference) -> str:
    where = f"{d.mapping} {d.stream} {d.table} {key_text(d)}"
    if d.kind == DIFFERS:
        return f"repaired {where}: " + ", ".join(f"{c} {show(a)} -> {show(e)}" for c, e, a in d.columns)
    if d.kind == MISSING:
        return f"inserted {where}"
    if d.kind == EXTRA or (d.kind == LEFT and not d.columns):
        return f"deleted {where}"
    if d.kind == LEFT:
        return f"marked {where} (left the filter or slice): " + ", ".join(f"{c} {show(a)} -> {show(e)}"
                                                                       for c, e, a in d.columns)
    return f"not repaired {where}: {d.note or d.kind}"


def repair(verifier: Verifier, suspects: Sequence[tuple[Check, Difference]], out: TextIO,
           as_seen: bool = True) -> tuple[int, list[tuple[Check, Difference]]]:
    """Repair every difference and print each change; return how many rows were written and the
    differences that remain afterwards. `as_seen` False (`conflicts resolve --take`, a person's decision whose
    suspects name a row, not what verify saw of it): what differs under the locks is written, whatever it was
    before."""
    groups: dict[int, tuple[Check, list[Difference]]] = {}
    for fc, d in suspects:
        groups.setdefault(id(fc), (fc, []))[1].append(d)
    # a row of a two-way mapping may differ in both directions: the first side's values win (as in a sync),
    # and the other direction then finds it in agreement
    first = verifier.config.sync.first_side or verifier.config.connections[0].name
    written = 0
    shapes: dict[str, TargetShapes] = {}
    for fc, diffs in sorted(groups.values(), key=lambda g: g[0].flow.source.side != first):
        done, lines = _repair_shaped(verifier, fc, diffs, shapes, as_seen)
        written += done
        for line in lines:
            print(line, file=out)
    remaining = verifier.compare_again(list(suspects))
    if remaining:  # written, but something else moved in between: the usual re-check decides
        remaining = verifier.recheck(remaining)
    return written, remaining


def _winners(flow: Flow, d: Difference) -> set[str]:
    """The differing target columns whose source side wins under the mapping's conflict rules."""
    assert flow.conflicts is not None
    values = {c: (expected, actual) for c, expected, actual in d.columns}
    out = set()
    for c in values:
        rule = flow.conflicts.rule(c)
        stamps: dict[str, Any] = {}
        if rule.rule == "latest" and rule.column is not None:
            if rule.column in values:
                stamps = {"incoming_stamp": values[rule.column][0], "target_stamp": values[rule.column][1]}
            else:  # the column agrees: a tie
                stamps = {"incoming_stamp": 0, "target_stamp": 0}
        decision = decide(rule, flow.source.side, flow.target.side, flow.conflicts.first_side, **stamps)
        if decision.winner == flow.source.side:
            out.add(c)
    return out


def _repair_shaped(verifier: Verifier, fc: Check, diffs: list[Difference], shapes: dict[str, TargetShapes],
                   as_seen: bool = True) -> tuple[int, list[str]]:
    """`_repair_flow`, run again (at most twice more) when an ALTER TABLE the mappings still carry moved a table
    under it; `shapes` keeps each direction's planned shapes across the flows and the attempts."""
    flow = fc.flow
    guard = shapes.get(flow.stream)
    if guard is None:
        guard = shapes[flow.stream] = TargetShapes(verifier.config, verifier.config.side(flow.target.side),
                                                   flow.stream)
        guard.use(verifier.mset)
    for attempt in range(3):
        try:
            if isinstance(fc, FoldCheck):
                return _repair_fold(verifier, fc, diffs, guard)
            return _repair_flow(verifier, fc, diffs, guard, as_seen)
        except TargetShapeChanged:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _repair_flow(verifier: Verifier, fc: FlowCheck, diffs: list[Difference], shapes: TargetShapes,
                 as_seen: bool = True) -> tuple[int, list[str]]:
    from replicator.appliers.lookup import SourceLookup
    from replicator.sources.tablescan import TableScanner

    flow = fc.flow
    config, mset = verifier.config, verifier.mset
    source, target = config.side(flow.source.side), config.side(flow.target.side)
    applier = make_applier(target, flow.stream, stream_name(target.name, source.name))
    locker = make_applier(source, "verify-repair", "")
    lookup = SourceLookup(source) if flow.linked else None
    lines: list[str] = []
    try:
        applier.connect()
        locker.connect()
        tables = sorted({e.table for e in mset.target_endpoints(target.name)})
        applier.load_types(tables)
        shapes.planned(applier.planned)  # a shape moved since the last attempt: judged as the stream judges it
        if applier.read_checkpoint() is None:
            raise FatalError(f"{flow.stream}: no checkpoint in {target.describe()}; run `replicator setup` before "
                             f"verify --repair (the repair's loop-prevention tag lives there)")
        scanner = TableScanner(locker, flow.source.table, flow.source.key)
        tscan = TableScanner(applier, flow.target.table, flow.target.key)
        row_keys = [d.source_key for d in diffs if d.kind != EXTRA and d.source_key is not None]
        rows = scanner.lock_keys(row_keys) if row_keys else []
        # (with the source's dialect, it reads the source as the stream's does: a row of a record outside its
        # mapping is told from one that waits, a record written back brings its rows and folded columns)
        linker = (Linker(applier, mset, flow.stream, source.name, target.name, target.state_schema, lookup.query,
                         source.kind) if lookup is not None else None)
        applier.begin()  # the tag first: the other direction drops this transaction
        applytime.next_transaction()  # `now: true` stamps: this repair's own instant, not the scan's
        # the target rows the repair may write, locked in its own transaction (per chunk of keys): an application's
        # write of one now waits for our commit; one committed before is seen by the reads below
        target_keys = [tuple(d.target_key) for d in diffs if d.target_key is not None]
        if target_keys:
            lock_keys(tscan, target_keys, fc.key_rules)
        # both sides read again under the locks (the source rows cannot change, nor the target rows; a source key
        # of an extra row is looked up after its target row is locked: a source row inserted later reaches the
        # target through the stream after our commit): only what still differs as verify saw it is written
        fresh = fc.check_rows(rows) if rows else []
        extras = [d.target_key for d in diffs if d.kind == EXTRA and d.target_key is not None]
        if extras and flow.delete == "propagate":
            fresh += fc.recheck_extras(extras)
        fresh, moved = _as_seen(fc, diffs, fresh) if as_seen else (fresh, [])
        by_key = {key_canonical(fc.src_key_rules, scanner.key_of(r)): r for r in rows}
        done: list[Difference] = []
        for d in fresh:
            if d.kind == FAILED:
                lines.append(format_repair(d))
                continue
            key = tuple(d.target_key or ())
            if d.kind == EXTRA or (d.kind == LEFT and not d.columns):
                applier.apply([TargetChange(flow.target.table, Op.DELETE, flow.target.key, key, {})])
            elif d.kind == LEFT:  # the leave's soft delete, as links.Linker applies it
                applier.update_by_key(flow.target.table, flow.target.key, key, {c: v for c, v, _ in d.columns})
                metrics.rows_applied.labels(flow.stream, d.table, "update").inc()
            elif d.kind == DIFFERS:
                # only the differing columns: a column in agreement stays as it is (in a two-way mapping it
                # may hold the other direction's image of the value)
                values = {c: expected for c, expected, _actual in d.columns}
                if flow.two_way:
                    values = {c: v for c, v in values.items() if c in _winners(flow, d)}
                    if not values:
                        continue  # the target side wins every field: the other direction writes them
                if flow.linked:  # as links.Linker updates a counterpart
                    applier.update_by_key(flow.target.table, flow.target.key, key, values)
                    metrics.rows_applied.labels(flow.stream, d.table, "update").inc()
                else:
                    applier.apply([TargetChange(flow.target.table, Op.UPDATE, flow.target.key, key,
                                                {**dict(zip(flow.target.key, key)), **values})])
            else:  # missing: created as replication creates it (crosswalk pair, unparked children...)
                row = by_key[key_canonical(fc.src_key_rules, d.source_key or ())]
                for change in route_flow(flow, RowChange(flow.source.table, Op.INSERT, None, row)):
                    if isinstance(change, LinkedChange):
                        assert linker is not None
                        # a crosswalk pair whose counterpart is gone (a leave deleted it, or the target):
                        # created again under the pair's key -- the repair was asked for exactly this row
                        linker.apply(replace(change, revive=True))
                    else:
                        applier.apply([change])
            if linker is not None and flow.referenced and d.kind in (MISSING, DIFFERS) and d.source_key is not None \
                    and len(d.source_key) == 1:
                # the rows parked until this record had a counterpart (a missing one made above already released
                # them): applied now, as the stream applies them when the record arrives
                linker.release(flow.mapping, d.source_key[0])
            done.append(d)
        applier.commit_untracked()  # raises TargetShapeChanged (rolled back) when a written table moved
        released = linker.unparked if linker is not None else 0
        for d in done:
            metrics.rows_repaired.labels(d.table).inc()
            lines.append(format_repair(d))
        lines.extend(format_repair(d) for d in moved)
        if released:
            lines.append(f"released {released} parked change(s) of {flow.stream} that waited for {flow.mapping}")
        return len(done), lines
    except BaseException:
        applier.rollback()
        raise
    finally:
        locker.rollback()  # after the target commit: a waiting source update now commits after ours
        applier.close()
        locker.close()
        if lookup is not None:
            lookup.close()



def _repair_fold(verifier: Verifier, fc: FoldCheck, diffs: list[Difference], shapes: TargetShapes
                 ) -> tuple[int, list[str]]:
    """A fold's differing parents, written as the stream writes a fold's change: a LinkedChange of the parent
    through the Linker's `FoldApplier` (the parent's column set, or its child row inserted, updated or deleted;
    a two-hop fold reads the source again there), in one tagged target transaction. The parent rows, and for a
    one-hop fold from the child side their child rows, are read again with shared locks first (a concurrent change
    of one commits after the repair, and its change is applied after it), and compared again: only what still
    differs is written. A fold of `direction: both` is repaired from `sync.first_side` first, as a missing row:
    the other direction then finds it in agreement. Rows the stream refuses (FAILED) are printed, not written.

    A shared lock holds only the rows that exist: a child row inserted, or moved into the slice or to the parent,
    while the repair runs is not held by it. So after writing, still inside the target transaction (whose row
    locks make the stream's write of the same parent wait for our commit), the parents' source rows are read
    again: a parent whose value moved meanwhile was changed by a transaction the stream may already have
    applied, and a stale repair must not stand over it -- the transaction is rolled back and written again
    without it ("changed on the source during the repair": the stream carries the change). A change committed
    after that read is applied by the stream after our commit.

    A parent row missing from an `optional: true` table (its application creates it lazily) is created the way
    the stream creates such a row, whole: the parent's source row routed through the parent mapping (its
    fields, NULL or not), then the fold's column; a parent mapping that does not write that side is named."""
    from replicator.appliers.lookup import SourceLookup
    from replicator.sources.tablescan import TableScanner

    flow, fold = fc.flow, fc.fold
    config, mset = verifier.config, verifier.mset
    source, target = config.side(flow.source.side), config.side(flow.target.side)
    applier = make_applier(target, flow.stream, stream_name(target.name, source.name))
    locker = make_applier(source, "verify-repair", "")
    lookup = SourceLookup(source)
    lines: list[str] = []
    tail = " FOR SHARE" if source.kind == "postgresql" else " LOCK IN SHARE MODE"

    def locked(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return locker.query(sql + tail, params)
    moved: dict[str, Difference] = {}  # by parent key text: left to the stream (changed while we repaired)
    try:
        applier.connect()
        locker.connect()
        while True:
            lines = []
            applier.load_types(sorted({e.table for e in mset.target_endpoints(target.name)}))
            shapes.planned(applier.planned)
            if applier.read_checkpoint() is None:
                raise FatalError(f"{flow.stream}: no checkpoint in {target.describe()}; run `replicator setup` "
                                 f"before verify --repair (the repair's loop-prevention tag lives there)")
            scanner = TableScanner(locker, fc.psrc.table, fc.psrc.key)
            rows = scanner.lock_keys([d.source_key for d in diffs if d.source_key is not None
                                      and dumps_key(tuple(d.source_key)) not in moved])
            carry: dict[str, Any] = {}
            fresh = fc.check_rows(rows, query=locked, carry=carry) if rows else []
            by_key = {dumps_key((r[fc.psrc.key[0]],)): r for r in rows}
            linker = Linker(applier, mset, flow.stream, source.name, target.name, target.state_schema, lookup.query,
                            source.kind)
            applier.begin()  # the tag first: the other direction drops this transaction
            applytime.next_transaction()
            done: list[Difference] = []
            written: list[tuple[str, Difference]] = []
            for d in fresh:
                if d.kind != DIFFERS or d.source_key is None:
                    lines.append(format_repair(d))
                    continue
                parent = d.source_key[0]
                text = dumps_key((parent,))
                if fc.to_column and fc.ptgt.optional and d.target_key is not None and not applier.find_keys(
                        fc.ptgt.table, fc.ptgt.key, {fc.ptgt.key[0]: d.target_key[0]}, limit=1):
                    why = _create_parent(fc, linker, by_key[text])
                    if why is not None:
                        lines.append(format_repair(replace(d, kind=FAILED, note=why)))
                        continue
                change = RowChange(fc.psrc.table, Op.UPDATE, None, {fc.psrc.key[0]: parent})
                values = {PARENT: Ref(fold.parent, parent), VALUE: carry.get(text)}
                linker.apply(LinkedChange(flow, Op.UPDATE, change, (parent,), values))
                done.append(d)
                written.append((text, d))
            now: dict[str, Any] = {}
            again = [by_key[t] for t, _ in written]
            if again:  # the source as it is now, our target rows locked: see the docstring
                fc.check_rows(again, query=locked, carry=now)
            changed = [(t, d) for t, d in written if not _same_value(now.get(t, _GONE), carry.get(t, _GONE))]
            if changed:
                applier.rollback()
                locker.rollback()
                for t, d in changed:
                    moved[t] = replace(d, kind=FAILED, note="changed on the source during the repair; the stream "
                                                            "carries the change")
                continue
            applier.commit_untracked()
            for d in done:
                metrics.rows_repaired.labels(d.table).inc()
                lines.append(format_repair(d))
            lines.extend(format_repair(d) for d in moved.values())
            return len(done), lines
    except BaseException:
        applier.rollback()
        raise
    finally:
        locker.rollback()
        applier.close()
        locker.close()
        lookup.close()


_GONE: Any = object()
MOVED = "changed during the repair; the stream carries the change"


def _as_seen(fc: FlowCheck, seen: Sequence[Difference], fresh: list[Difference]
             ) -> tuple[list[Difference], list[Difference]]:
    """`fresh` (read under the repair's locks) split into what still differs as verify saw it (`seen`), to be
    written, and what changed meanwhile on either side (an application's edit of the target row, a source
    change the stream carries, a row inserted where one was missing or with an extra row's key): verify's
    differences of those, not repaired. A fresh difference keeps only columns verify saw, with the same
    expected and actual values (one that agrees now was written by the other direction, or changed to agree:
    nothing to write). A row that no longer differs at all (it agrees now, its source row is gone, an extra
    row's key is found in the source) changed meanwhile too, and is named -- but for a differing row of a
    two-way mapping, which the other direction's repair may just have written. What the stream refuses
    (FAILED) is printed as it is."""
    by_id = {fc.identity(d): d for d in seen}
    keep: list[Difference] = []
    moved: list[Difference] = []
    for f in fresh:
        d = by_id.pop(fc.identity(f), None)
        if f.kind == FAILED:
            keep.append(f)
        elif d is not None and _unchanged(fc, d, f):
            keep.append(f)
        else:
            moved.append(replace(d or f, kind=FAILED, note=MOVED))
    for d in by_id.values():
        if d.kind != FAILED and not (fc.flow.two_way and d.kind in (DIFFERS, LEFT)):
            moved.append(replace(d, kind=FAILED, note=MOVED))
    return keep, moved


def _unchanged(fc: FlowCheck, d: Difference, f: Difference) -> bool:
    if d.kind != f.kind:
        return False
    if (d.target_key is None) != (f.target_key is None) or (
            d.target_key is not None and fc.tkey(d.target_key) != fc.tkey(f.target_key or ())):
        return False
    if f.kind == MISSING:
        return d.stamp == f.stamp  # the values to insert, canonical
    was = {c: (e, a) for c, e, a in d.columns}
    for c, e, a in f.columns:
        if c not in was:
            return False
        rule = fc.rules.get(c)
        for x, y in zip(was[c], (e, a)):
            if not (values_equal(rule, x, y) if rule is not None else _same_value(x, y)):
                return False
    return True


def _same_value(a: Any, b: Any) -> bool:
    try:
        return a.__class__ is b.__class__ and bool(a == b)
    except Exception:
        return False


def _create_parent(fc: FoldCheck, linker: Linker, row: dict[str, Any]) -> str | None:
    """The parent row missing from an `optional: true` table created whole, as the stream creates it
    (`Linker.create_parent`: its source row routed through the parent mapping as an insert, written even when its
    fields are all NULL: the fold's column is not); the reason when it cannot be."""
    pflow = parent_writer(fc.v.mset, fc.flow)
    if pflow is None:
        return no_parent_writer(fc.flow, "repair again")
    linker.create_parent(pflow, row)
    return None
