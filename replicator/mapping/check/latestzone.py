"""Rule: `{latest: {column: ...}}` over timestamps without a time zone warns that both applications must write
them in one zone.

The rule compares the two sides' values of one field: the later edit wins. A `timestamp` / `DATETIME` holds
no zone, so a SuiteCRM `date_modified` (written in UTC) against an iDempiere `updated` (the application
server's local time) is compared as if both were UTC, and the edit made later can lose by the offset -- on
both sides alike, recorded, but the wrong one (docs/walkthrough-suitecrm-idempiere.md). Neither the catalog
nor the data tells which zone an application writes, so `check` says so and names the alternative: `latest`
by commit time needs no column.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Mapping


def check_latest_zone(ck: _Checker, m: Mapping) -> None:
    from replicator.mapping.check.checker import _at, _col

    flow = next((f for f in m.flows if f.conflicts is not None and f.conflicts.default.column), None)
    if flow is None or flow.conflicts is None:
        return
    column = flow.conflicts.default.column
    field = next((f for f in m.fields if f.column(flow.target.side) == column), None)
    if field is None or field.column(flow.source.side) is None:
        return
    ends = [(e, field.column(e.side)) for e in (flow.source, flow.target)]
    infos = [ck.column(e.side, e.table, c) for e, c in ends]
    # a MariaDB TIMESTAMP (bits 32) is stored in UTC from the writer's session zone: it holds an instant
    if any(i is None or i.kind != "datetime" for i in infos) or all(
            i.timezone or i.bits == 32 for i in infos if i is not None):
        return
    names = " and ".join(_col(e.side, e.table, c or "") for e, c in ends)
    ck.warn(flow.target.side,
            f"{_at(m.where)}: {{latest: {{column: {field.name}}}}} compares {names}, timestamps without a time "
            f"zone: the later edit wins only if both applications write them in one zone (one writing UTC, the "
            f"other local time, picks the earlier edit by the offset, on both sides alike)",
            "make sure both applications write the same zone (UTC), or use `latest` by commit time (no column)")
