"""The check again, for the columns of one source table whose type changed while the daemon ran.

`check` gave its verdict on every field's cast when the daemon started. A DBA's ALTER TABLE on a mapped
source table can make it wrong (numeric(12,2) widened to numeric(14,4) while the other side keeps
decimal(12,2): MariaDB would round the new digits away). The stream (`stream/shapes.py`) sees the new shape
in the change stream and asks `refused_casts` about the changed columns: the check's own rules
(`_Checker.flow_types`, `plan_cast`), on fresh catalogs, restricted by a `CastScope` (`_Changed`, handed to the
checker: no subclass overrides its methods) to the fields that read those columns
(flows from the table) or write them (flows into it: narrowed to decimal(12,1), the table rounds what the
other direction writes; in a two-way mapping the table's next change, an echo of that direction's write
included, shows the new shape). Only refusals count here: a warning (a cast strict mode turns into a row
error, a pair not checked) was one at the start too, and the stream goes on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from replicator.changes import TableRef
from replicator.mapping.check.checker import Finding, _Checker
from replicator.mapping.check.columns import Catalog

if TYPE_CHECKING:
    from replicator.mapping.model import FieldPlan, Flow, MappingSet


class _Changed:
    """The `CastScope` of a recheck: the casts of the fields that read or write `columns` of `table` on `side`;
    values the mapping spells out do not depend on a column's type and are not judged. The failures are
    collected (warnings were warnings at the start too)."""

    values = False

    def __init__(self, side: str, table: TableRef, columns: frozenset[str]):
        self.side, self.table, self.columns = side, table, columns
        self.refused: list[tuple[str, Finding]] = []  # (source column, finding)

    def _column(self, flow: Flow, plan: FieldPlan) -> str | None:
        reads = (flow.source.side, flow.source.table) == (self.side, self.table)
        return plan.source if reads else plan.target

    def judges(self, flow: Flow, plan: FieldPlan) -> bool:
        return not plan.references and self._column(flow, plan) in self.columns

    def judged(self, flow: Flow, plan: FieldPlan, findings: Sequence[Finding]) -> None:
        column = self._column(flow, plan)
        assert column is not None
        self.refused += [(column, x) for x in findings if not x.ok and not x.warning]


def refused_casts(mset: MappingSet, catalogs: dict[str, Catalog], kinds: dict[str, str], side: str,
                  table: TableRef, columns: Iterable[str]) -> list[tuple[str, Finding]]:
    """(column, failing finding) for each field reading or writing one of `columns` of `table` on `side` whose
    cast `check` refuses against `catalogs` (`{side: {TableRef: {column: ColumnInfo}}}`: the table and the
    tables of the flows from and into it, read after the change)."""
    scope = _Changed(side, table, frozenset(columns))
    checker = _Checker(mset, catalogs, kinds, None, Finding, scope=scope)
    for m in mset.mappings:
        if any(f.fold is not None for f in m.flows):
            continue  # a fold's child column is checked by check_fold: `replicator check` runs it
        fields = {f.name: f for f in m.fields}
        for flow in m.flows:
            if (flow.source.side, flow.source.table) != (side, table) and \
                    (flow.target.side, flow.target.table) != (side, table):
                continue
            if checker.table(flow.target.side, flow.target.table) is not None:
                checker.flow_types(m, flow, fields)
    return scope.refused
