"""Rule: a nullable source column copied into a NOT NULL target column warns that a NULL is a row error.

Frappe makes every Int, Float, Currency and Check column `NOT NULL DEFAULT 0`; Odoo's numeric fields are
nullable. An Odoo line whose `price_subtotal` is NULL stopped (or queued) `crm_to_erp` with MariaDB's 1048
at run time, although `check` had passed. The target's DEFAULT does not help: replicator writes the NULL.
A field whose conversion gives a value for NULL (`default:`, `constant:`, `null_if:`) decides itself; a value
map does not (NULL always maps to NULL): SuiteCRM's nullable `deleted` mapped onto iDempiere's NOT NULL
`isactive` by `map: [{suitecrm: 0, idempiere: Y}, ...]` passed `check`, and a NULL was a row error at run time.
A filter that refuses NULL in the column (`filter: {twenty_to_akaunting: {companyId: {is_null: false}}}`) keeps
such rows out: no warning.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import FieldPlan, Flow, Mapping


def check_nulls(ck: _Checker, m: Mapping, flow: Flow) -> None:
    from replicator.mapping.check.checker import _at, _col

    fields = {f.name: f for f in m.fields}
    for plan in flow.plans:
        if plan.source is None or plan.null_out or plan.target in flow.target.key:
            continue
        if plan.source in getattr(flow.filter, "rejects_null", ()):
            continue  # the filter (`{is_null: false}`, `{eq: ...}`) never sends a row whose value is NULL
        if plan.convert is not None and not _null_stays_null(plan):
            continue
        s = ck.column(flow.source.side, flow.source.table, plan.source)
        t = ck.column(flow.target.side, flow.target.table, plan.target)
        if s is None or t is None or not s.nullable or t.nullable or t.generated or t.computed:
            continue
        where = fields[plan.name].where if plan.name in fields else m.where
        ck.warn(flow.target.side,
                f"{_at(where)}: {_col(flow.source.side, flow.source.table, plan.source)} may be NULL, "
                f"{_col(flow.target.side, flow.target.table, plan.target)} is NOT NULL ({flow.stream}): a NULL is a "
                f"row error (the column's DEFAULT is not used: replicator writes the NULL)",
                f"add `default: <value>` to the field (the value a NULL becomes{', after its value map' if plan.convert else ''}"
                f"; `default: {{{flow.stream}: <value>}}` for this direction only), or make "
                f"{flow.source.table}.{plan.source} NOT NULL")


def _null_stays_null(plan: FieldPlan) -> bool:
    """Whether the field's conversion (a value map, transforms) sends a NULL on as NULL."""
    assert plan.convert is not None
    try:
        return plan.convert(None, {}) is None
    except Exception:  # a transform that refuses NULL, or reads another column of the row: it decides itself
        return False
