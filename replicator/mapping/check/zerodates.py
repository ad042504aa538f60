"""Rule: a MariaDB DATE / DATETIME / TIMESTAMP column a mapping carries to PostgreSQL without `zero_date: null`,
on a server whose global sql_mode lets applications write zero dates, warns once per field.

PostgreSQL has no value for `0000-00-00`, a date with a zero month or day, or the zero TIMESTAMP: such a row is a
row error naming the column (stop, or the dead-letter queue; docs/types.md, "Zero dates"). MariaDB refuses to
store one only in strict mode (STRICT_TRANS_TABLES or STRICT_ALL_TABLES) with both NO_ZERO_DATE and
NO_ZERO_IN_DATE; otherwise an import or an application session writes them (EspoCRM's `close_date`). `check`
says so before the first such row stops a mapping, and names the two ways out. Sessions that set their own
sql_mode are not seen here.

Rows already stored: `check` also reads, per MariaDB table whose DATE / DATETIME / TIMESTAMP columns such fields
carry, the first SAMPLE_ROWS rows (one statement per table, on the catalog's own connection: no login of its own)
and counts the zero dates in each column; a column holding some is warned of whatever the sql_mode (the copy and any update
of those rows meet them). The read is bounded so that `check` stays cheap (docs/performance.md, "edges13"): a
table larger than that is looked at only in part, and `verify` -- which reads every row -- reports each such
row as "cannot be mapped". Rows a filter leaves out are counted too (the read does not evaluate filters).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Tuple

from replicator.changes import TableRef
from replicator.identifiers import my_ident

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.check.columns import Catalog, ColumnInfo
    from replicator.mapping.model import Mapping, MappingSet

_STRICT = ("STRICT_TRANS_TABLES", "STRICT_ALL_TABLES")
# the rows of each table `check` reads for stored zero dates (module docstring)
SAMPLE_ROWS = 100_000
# {(side, table, column): (zero dates found, rows read)}
StoredZeroDates = Dict[Tuple[str, TableRef, str], Tuple[int, int]]


def _zero_capable(info: ColumnInfo | None) -> bool:
    """A DATE, DATETIME or TIMESTAMP (its zero value: MONTH() gives 0)."""
    return info is not None and info.kind in ("date", "datetime")


def zero_date_columns(mset: MappingSet, kinds: dict[str, str], side: str) -> dict[TableRef, set[str]]:
    """The columns of `side` (MariaDB) some field carries to PostgreSQL without `zero_date: null`."""
    out: dict[TableRef, set[str]] = {}
    for m in mset.mappings:
        for flow in m.flows:
            if flow.source.side != side or kinds.get(side) != "mariadb" \
                    or kinds.get(flow.target.side) != "postgresql":
                continue
            for plan in flow.plans:
                if plan.source is not None and not plan.zero_null:
                    out.setdefault(flow.source.table, set()).add(plan.source)
    return out


def stored_zero_dates(engine: Any, side: str, catalog: Catalog, columns: dict[TableRef, set[str]]
                      ) -> StoredZeroDates:
    """Zero dates (a zero month or day: 0000-00-00 too) among the first SAMPLE_ROWS rows of each table, per DATE /
    DATETIME column of `columns`: one statement per table on `engine`'s connection. A table that cannot be read
    is left out (its privileges are `check`'s finding elsewhere)."""
    import sqlalchemy

    out: StoredZeroDates = {}
    with engine.connect() as c:
        for table in sorted(columns, key=str):
            cols = sorted(col for col in columns[table] if _zero_capable(catalog.get(table, {}).get(col)))
            if not cols:
                continue
            sums = ", ".join(f"COALESCE(SUM(MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0), 0)"
                             for q in (my_ident(col) for col in cols))
            picked = ", ".join(my_ident(col) for col in cols)
            sql = (f"SELECT COUNT(*), {sums} FROM (SELECT {picked} FROM {my_ident(table.schema, table.name)} "
                   f"LIMIT {SAMPLE_ROWS}) s")
            try:
                row = c.execute(sqlalchemy.text(sql.replace(":", "\\:"))).one()
            except sqlalchemy.exc.SQLAlchemyError:
                continue
            for col, found in zip(cols, row[1:]):
                out[(side, table, col)] = (int(found), int(row[0]))
    return out


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
        allowed = sql_mode is not None and zero_dates_allowed(sql_mode)
        for plan in flow.plans:
            if plan.source is None or plan.zero_null:
                continue
            info = ck.column(src.side, src.table, plan.source)
            if info is None or info.kind not in ("date", "datetime"):
                continue
            field = next((f for f in m.fields if f.name == plan.name), None)
            where = field.where if field is not None else m.where
            found, read = ck.stored_zero.get((src.side, src.table, plan.source), (0, 0))
            if found:
                more = f"the first {read:,} rows read" if read >= SAMPLE_ROWS else f"its {read:,} rows"
                q = my_ident(plan.source)
                ck.warn(src.side,
                        f"{_at(where)}: field {plan.name} carries {_col(src.side, src.table, plan.source)} "
                        f"({info.base_type()}) to PostgreSQL, and the column already holds zero dates ({found:,} "
                        f"in {more}): each such row is a row error naming the column ({flow.on_error}) when the "
                        f"copy or an update carries it, PostgreSQL has no value for it (find them: SELECT ... "
                        f"WHERE MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0; `replicator verify` names every one)",
                        "give the field zero_date: null to carry a zero date as NULL (counted in "
                        "replicator_zero_dates_total), or correct the rows (a NULL or a real date)")
                continue
            if not allowed:
                continue
            ck.warn(src.side,
                    f"{_at(where)}: field {plan.name} carries {_col(src.side, src.table, plan.source)} "
                    f"({info.base_type()}) to PostgreSQL, and {src.side}'s global sql_mode ({sql_mode or 'empty'}) "
                    f"allows zero dates (0000-00-00, a zero month or day): such a row is a row error naming the "
                    f"column ({flow.on_error}), PostgreSQL has no value for it",
                    f"give the field zero_date: null to carry a zero date as NULL (counted in "
                    f"replicator_zero_dates_total), or add STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE to "
                    f"{src.side}'s sql_mode so that applications cannot write one")
