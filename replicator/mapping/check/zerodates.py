"""Rule: a MariaDB DATE / DATETIME / TIMESTAMP column a mapping carries to PostgreSQL without `zero_date: null`,
on a server whose global sql_mode lets applications write zero dates, warns once per field.

PostgreSQL has no value for `0000-00-00`, a date with a zero month or day, or the zero TIMESTAMP: such a row is a
row error naming the column (stop, or the dead-letter queue; docs/types.md, "Zero dates"). MariaDB refuses to
store one only in strict mode (STRICT_TRANS_TABLES or STRICT_ALL_TABLES) with both NO_ZERO_DATE and
NO_ZERO_IN_DATE; otherwise an import or an application session writes them (EspoCRM's `close_date`). `check`
says so before the first such row stops a mapping, and names the two ways out. Rows already stored, and sessions
that set their own sql_mode, are not seen here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Mapping

_STRICT = ("STRICT_TRANS_TABLES", "STRICT_ALL_TABLES")


def zero_dates_allowed(sql_mode: str) -> bool:
    """Whether a server's sql_mode lets a session store a zero date or a date with a zero part."""
    modes = {m.strip().upper() for m in sql_mode.split(",")}
    # TRADITIONAL is a combination MariaDB expands when it is set; read back it is already expanded
    return not (any(m in modes for m in _STRICT) and "NO_ZERO_DATE" in modes and "NO_ZERO_IN_DATE" in modes)


def check_zero_dates(ck: _Checker, m: Mapping) -> None:
    from replicator.mapping.check.checker import _at, _col

    for flow in m.flows:
        src, dst = flow.source, flow.target
        if ck.kinds.get(src.side) != "mariadb" or ck.kinds.get(dst.side) != "postgresql":
            continue
        sql_mode = ck.sql_modes.get(src.side)
        if sql_mode is None or not zero_dates_allowed(sql_mode):
            continue
        for plan in flow.plans:
            if plan.source is None or plan.zero_null:
                continue
            info = ck.column(src.side, src.table, plan.source)
            if info is None or info.kind not in ("date", "datetime"):
                continue
            field = next((f for f in m.fields if f.name == plan.name), None)
            where = field.where if field is not None else m.where
            ck.warn(src.side,
                    f"{_at(where)}: field {plan.name} carries {_col(src.side, src.table, plan.source)} "
                    f"({info.base_type()}) to PostgreSQL, and {src.side}'s global sql_mode ({sql_mode or 'empty'}) "
                    f"allows zero dates (0000-00-00, a zero month or day): such a row is a row error naming the "
                    f"column ({flow.on_error}), PostgreSQL has no value for it",
                    f"give the field zero_date: null to carry a zero date as NULL (counted in "
                    f"replicator_zero_dates_total), or add STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE to "
                    f"{src.side}'s sql_mode so that applications cannot write one")
