"""A DBA's ALTER TABLE on a mapped source table, as one direction's reader meets it.

The readers describe each mapped table's columns whenever the stream describes the table anew -- a pgoutput
Relation message, a new binlog table map (`sources/shape.py`) -- never per row. `ShapeGuard.seen` keeps the
first shape of each table and compares every later one with it:

- columns that are not mapped came, went or changed: the rows still carry every mapped column by name, the
  stream goes on (logged, counted in `replicator_source_schema_changes_total`);
- a mapped column is gone (dropped, or renamed): the direction stops before the first row of the new shape,
  naming table, column and mapping -- a row without the column could only be written with a NULL or not at
  all (SchemaChangeError, exit 78; `check` refuses it too until the mapping or the table is fixed);
- a mapped column's type changed: `check`'s verdict on its casts, given at start, may no longer hold. The
  casts of the fields reading it are checked again on fresh catalogs of both sides (`mapping/check/recheck`);
  a refusal stops the direction naming table, column, old and new type and the fix. A catalog that cannot be
  read is a RetriableError: the reader starts again and meets the same shape again.

Owned by the direction; `seen` runs on its reader thread only, `use` on the apply thread before the reader
starts. The first shape of a table in a run has no shape before it to compare with: the casts of its mapped
columns are checked again on fresh catalogs (the start-up check ran before the reader met the table: a quiet
table altered after the start shows only here), once per table and run -- except after `run --skip-check`,
which waived the start-up check's refusals.
"""
from __future__ import annotations

import logging
from typing import Callable

from replicator import metrics
from replicator.changes import TableRef
from replicator.config import Config, Connection
from replicator.errors import ReplicatorError, RetriableError, SchemaChangeError
from replicator.mapping.check.catalog import live_catalogs
from replicator.mapping.check.columns import Catalog
from replicator.mapping.check.recheck import refused_casts
from replicator.mapping.model import MappingSet
from replicator.sources.shape import Shape, ShapeWatch

log = logging.getLogger(__name__)

CatalogReader = Callable[[dict[str, list[TableRef]]], dict[str, Catalog]]


class ShapeGuard(ShapeWatch):
    def __init__(self, config: Config, source: Connection, direction: str,
                 read_catalogs: CatalogReader | None = None):
        self.config = config
        self.side = source.name
        self.direction = direction
        self._read_catalogs = read_catalogs or self._live_catalogs
        self._mset: MappingSet | None = None
        self._shapes: dict[TableRef, Shape] = {}
        # a table's first shape is checked again too (`cli` turns it off for `run --skip-check`: the start-up
        # check's refusals were waived, the stream must not make them stops)
        self.check_first = True
        self.target = False  # guards a table this direction writes (TargetShapes), not one it reads

    def use(self, mset: MappingSet) -> None:
        """The mappings of the session about to start (a reload changes which columns are mapped)."""
        self._mset = mset

    def mapped(self, table: TableRef) -> dict[str, list[str]]:
        """The columns of `table` on this side that mappings read: {column: [mapping names]}."""
        out: dict[str, list[str]] = {}
        for m in self._mset.mappings if self._mset is not None else ():
            for e in m.endpoints:
                if e.side != self.side or e.table != table:
                    continue
                columns = {f.column(self.side) for f in m.fields} | set(e.key) | {c for c, _v in e.slice}
                for c in sorted(c for c in columns if c is not None):
                    out.setdefault(c, []).append(m.name)
        return out

    def seen(self, table: TableRef, shape: Shape) -> None:
        """The reader met `table` described as `shape`; raises SchemaChangeError when its mapped columns can no
        longer be carried exactly, RetriableError when the catalogs to decide it cannot be read."""
        old = self._shapes.get(table)
        if old == shape:
            return
        if old is None:
            if self.check_first and any(c in self.mapped(table) for c, _t in shape):
                # the start-up check judged the catalog before this reader ran: a change since (a quiet table
                # altered after the start) shows only here; the casts of its mapped columns, on fresh catalogs
                mapped = self.mapped(table)
                self._recheck(table, {c: ("", t) for c, t in shape if c in mapped})
            self._shapes[table] = shape
            return
        before, after = dict(old), dict(shape)
        mapped = self.mapped(table)
        gone = [c for c in mapped if c in before and c not in after]
        if gone:
            raise SchemaChangeError(self._gone_message(table, gone[0], mapped[gone[0]], before, after))
        changed = {c: (before[c], after[c]) for c in mapped if c in before and c in after and before[c] != after[c]}
        if changed:
            self._recheck(table, changed)
        metrics.source_schema_changes.labels(self.direction, str(table)).inc()
        self._shapes[table] = shape
        log.warning("%s: %s %s changed while streaming: %s; the mapped columns still carry exactly", self.direction,
                    self.side, table, describe_change(before, after))

    def left(self, table: TableRef, how: str) -> None:
        """A DDL renamed `table` away (`how`: 'renamed to db.t'). Its rows under the new name are no mapping's: stop,
        unless a table of the mapped name exists again (renamed back, or the mapping already follows it: a replay
        after the fix), whose columns the next table map then shows (compared with the shape before)."""
        catalog = self._catalogs({self.side: [table]}, table).get(self.side, {})
        if table in catalog:
            log.warning("%s: %s %s was %s, and a table of that name exists now: streaming on with it",
                        self.direction, self.side, table, how)
            return
        raise SchemaChangeError(
            f"{self.direction}: mapped table {table} was {how} while replicator ran; its rows would no longer be "
            f"carried, nothing of them was applied",
            hint=f"rename it back, or change `table:` in its mappings to the new name and run `replicator check`; "
                 f"then start again (rows written under the new name before the mapping names it are copied by "
                 f"`replicator sync` of the mapping)")

    def _catalogs(self, tables: dict[str, list[TableRef]], table: TableRef) -> dict[str, Catalog]:
        try:
            return self._read_catalogs(tables)
        except RetriableError:
            raise
        except ReplicatorError as exc:
            raise RetriableError(f"{self.direction}: {table} changed; cannot read the catalogs to check it: "
                                 f"{exc}") from None

    def _gone_message(self, table: TableRef, column: str, mappings: list[str], before: dict[str, str],
                      after: dict[str, str]) -> str:
        added = [c for c in after if c not in before]
        renamed = (f" (renamed to {added[0]}? then map that column: `{self.side}: {added[0]}` in the field)"
                   if len(added) == 1 else "")
        return (f"{self.direction}: {self.side} table {table}, column {column}: the column that mapping "
                f"{', '.join(mappings)} reads is gone from the table (ALTER TABLE while replicator ran: dropped or "
                f"renamed){renamed}. Its rows would arrive without it; nothing of them was applied. Fix: restore the "
                f"column, or change the mapping so it no longer reads {column} and run `replicator check`, then "
                f"start again; the rows in between are then carried as the mapping says")

    def _recheck(self, table: TableRef, changed: dict[str, tuple[str, str]]) -> None:
        assert self._mset is not None
        tables: dict[str, set[TableRef]] = {self.side: {table}}
        for m in self._mset.mappings:
            for flow in m.flows:
                if (flow.source.side, flow.source.table) == (self.side, table):
                    tables.setdefault(flow.target.side, set()).add(flow.target.table)
                elif (flow.target.side, flow.target.table) == (self.side, table):
                    tables.setdefault(flow.source.side, set()).add(flow.source.table)
        catalogs = self._catalogs({side: sorted(t) for side, t in tables.items()}, table)
        kinds = {c.name: c.kind for c in self.config.connections}
        refused = refused_casts(self._mset, catalogs, kinds, self.side, table, changed)
        if not refused:
            return
        column, finding = refused[0]
        old, new = changed[column]
        reading = f"({self.direction})" in finding.what
        done = ("Nothing of the rows in the new type was applied" if reading else
                f"The other direction writes into it: values it wrote since the change may have been rounded or "
                f"cut by {self.side} itself")
        if self.target:  # found before the commit of our first write into the new type (TargetShapes)
            done = (f"{self.direction} writes into it: its transaction written into the new type was rolled back, "
                    f"nothing of it was committed and the checkpoint did not move")
        if not old and self.target:  # a write outside the stream judging the shape it first planned with (dlq retry)
            raise SchemaChangeError(
                f"{self.direction}: {self.side} table {table}, column {column}: `check` refuses the field in the "
                f"table's shape now: {finding.what}. Nothing was written",
                hint=f"{finding.fix}; then `replicator check` and retry")
        if not old:  # the table's first shape this run: the catalog's types are in the finding
            raise SchemaChangeError(
                f"{self.direction}: {self.side} table {table}, column {column}: the table changed after the start-up "
                f"check (ALTER TABLE while replicator ran), and `check` now refuses the field: {finding.what}. {done}",
                hint=f"{finding.fix}; then `replicator check` and start again")
        raise SchemaChangeError(
            f"{self.direction}: {self.side} table {table}, column {column}: its type changed from {old} to {new} "
            f"while replicator ran, and `check` now refuses the field: {finding.what}. {done}",
            hint=f"{finding.fix}; or change {column} back to {old}; then `replicator check` and start again")

    def _live_catalogs(self, tables: dict[str, list[TableRef]]) -> dict[str, Catalog]:
        return live_catalogs(self.config, tables, _retriable)


def _retriable(conn: Connection, exc: Exception) -> None:
    """A catalog the guard cannot read: the reader starts again and meets the same shape again."""
    if isinstance(exc, ReplicatorError):
        raise exc  # `_catalogs` words it
    raise RetriableError(f"reading the catalog of {conn.describe()}: {exc}") from None


class TargetShapes:
    """The shape of each table a direction writes, as its applier planned with it (`Applier.planned`), kept across
    the direction's sessions.

    The applier confirms before each commit that the tables written in the transaction still have that shape
    (`commit`); a DBA's ALTER TABLE committed before our write raises TargetShapeChanged with nothing committed.
    `planned` then compares the plan read anew with the one before: a mapped column whose type changed is checked
    again like a source's (`ShapeGuard._recheck`, on fresh catalogs, the flows into and from the table): a refusal
    stops the direction (SchemaChangeError, exit 78) naming table, column, old and new type and the fix; a type the
    mappings still carry exactly (a widened column) is logged, counted in
    `replicator_target_schema_changes_total`, and the transaction applied again with the new plan. A session's
    first plan is compared with the last one of the session before (a change while reconnecting). Owned by the
    direction's apply thread."""

    def __init__(self, config: Config, target: Connection, direction: str,
                 read_catalogs: CatalogReader | None = None):
        self.guard = ShapeGuard(config, target, direction, read_catalogs)
        self.guard.target = True
        self.direction = direction
        self.side = target.name
        self._plans: dict[TableRef, dict[str, str]] = {}

    def use(self, mset: MappingSet) -> None:
        self.guard.use(mset)

    def planned(self, plans: dict[TableRef, dict[str, str]], check_first: bool = False) -> bool:
        """The applier planned with `plans` ({table: {column: type}}): raises SchemaChangeError when a mapped
        column's new type is refused; True when a table's shape changed since the last plan. `check_first`: a
        table's first plan is judged too, its mapped columns' casts with `check`'s rules (`dlq retry`: no start-up
        check ran, and the table may have changed shape since the change was queued)."""
        moved = False
        for table, after in plans.items():
            before = self._plans.get(table)
            if before is None and check_first:
                mapped = self.guard.mapped(table)
                first = {c: ("", t) for c, t in after.items() if c in mapped}
                if first:
                    self.guard._recheck(table, first)
            if before is None or before == after:
                self._plans[table] = after
                continue
            moved = True
            mapped = self.guard.mapped(table)
            changed = {c: (before[c], after[c]) for c in mapped if c in before and c in after and before[c] != after[c]}
            if changed:
                self.guard._recheck(table, changed)
            metrics.target_schema_changes.labels(self.direction, str(table)).inc()
            self._plans[table] = after
            log.warning("%s: %s %s changed while streaming: %s; the mapped columns still carry exactly", self.direction,
                        self.side, table, describe_change(before, after))
        return moved


def describe_change(before: dict[str, str], after: dict[str, str]) -> str:
    """`added x int; dropped y; z int -> bigint` (column order changes are not news: columns go by name)."""
    parts = [f"added {c} {t}" for c, t in after.items() if c not in before]
    parts += [f"dropped {c}" for c in before if c not in after]
    parts += [f"{c} {t} -> {after[c]}" for c, t in before.items() if c in after and after[c] != t]
    return "; ".join(parts) or "columns reordered"
