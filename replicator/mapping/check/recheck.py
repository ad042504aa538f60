"""The check again, for the columns of one source table whose type changed while the daemon ran.

`check` gave its verdict on every field's cast when the daemon started. A DBA's ALTER TABLE on a mapped
source table can make it wrong (numeric(12,2) widened to numeric(14,4) while the other side keeps
decimal(12,2): MariaDB would round the new digits away). The stream (`stream/shapes.py`) sees the new shape
in the change stream and asks `refused_casts` about the changed columns: the check's own rules
(`_Checker.flow_types`, `plan_cast`), on fresh catalogs, restricted to the fields that read those columns
(flows from the table) or write them (flows into it: narrowed to decimal(12,1), the table rounds what the
other direction writes; in a two-way mapping the table's next change, an echo of that direction's write
included, shows the new shape). Only refusals count here: a warning (a cast strict mode turns into a row
error, a pair not checked) was one at the start too, and the stream goes on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from replicator.changes import TableRef
from replicator.mapping.check.checker import Finding, _Checker
from replicator.mapping.check.columns import Catalog, ColumnInfo

if TYPE_CHECKING:
    from replicator.mapping.model import Field, FieldPlan, Flow, Mapping, MappingSet


class _Recheck(_Checker):
    """The cast verdicts of the fields that read or write `columns` of `table` on `side`; the failures are
    collected."""

    def __init__(self, mset: MappingSet, catalogs: dict[str, Catalog], kinds: dict[str, str], side: str,
                 table: TableRef, columns: frozenset[str]):
        super().__init__(mset, catalogs, kinds, None, Finding)
        self.side, self.source_table, self.columns = side, table, columns
        self.refused: list[tuple[str, Finding]] = []  # (source column, finding)

    def run(self) -> list[Any]:
        for m in self.mset.mappings:
            if any(f.fold is not None for f in m.flows):
                continue  # a fold's child column is checked by check_fold: `replicator check` runs it
            fields = {f.name: f for f in m.fields}
            for flow in m.flows:
                if (flow.source.side, flow.source.table) != (self.side, self.source_table) and \
                        (flow.target.side, flow.target.table) != (self.side, self.source_table):
                    continue
                if self.table(flow.target.side, flow.target.table) is not None:
                    self.flow_types(m, flow, fields)
        return self.out

    def plan_values(self, m: Mapping, flow: Flow, f: Field, plan: FieldPlan, spec: Any, tcol: ColumnInfo,
                    tname: str) -> None:
        """Values the mapping spells out do not depend on the source column's type."""

    def plan_cast(self, m: Mapping, flow: Flow, f: Field, plan: FieldPlan, tcol: ColumnInfo, tname: str,
                  source: ColumnInfo | None = None) -> None:
        if plan.references:
            return
        reads = (flow.source.side, flow.source.table) == (self.side, self.source_table)
        column = plan.source if reads else plan.target
        if column not in self.columns:
            return
        before = len(self.out)
        super().plan_cast(m, flow, f, plan, tcol, tname, source)
        self.refused += [(column, x) for x in self.out[before:] if not x.ok and not x.warning]


def refused_casts(mset: MappingSet, catalogs: dict[str, Catalog], kinds: dict[str, str], side: str,
                  table: TableRef, columns: Iterable[str]) -> list[tuple[str, Finding]]:
    """(column, failing finding) for each field reading or writing one of `columns` of `table` on `side` whose
    cast `check` refuses against `catalogs` (`{side: {TableRef: {column: ColumnInfo}}}`: the table and the
    tables of the flows from and into it, read after the change)."""
    checker = _Recheck(mset, catalogs, kinds, side, table, frozenset(columns))
    checker.run()
    return checker.refused
