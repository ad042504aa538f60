"""Rule: a MariaDB DATE / DATETIME / TIMESTAMP column a mapping carries to PostgreSQL without `zero_date: null`,
on a server whose global sql_mode lets applications write zero dates, warns once per field.

PostgreSQL has no value for `0000-00-00`, a date with a zero month or day, or the zero TIMESTAMP: such a row is a
row error naming the column (stop, or the dead-letter queue; docs/types.md, "Zero dates"). MariaDB refuses to
store one only in strict mode (STRICT_TRANS_TABLES or STRICT_ALL_TABLES) with both NO_ZERO_DATE and
NO_ZERO_IN_DATE; otherwise an import or an application session writes them (EspoCRM's `close_date`). `check`
says so before the first such row stops a mapping, and names the two ways out. Sessions that set their own
sql_mode are not seen here.

Rows already stored: `check` also reads, per MariaDB table whose DATE / DATETIME / TIMESTAMP columns such fields
carry, the first SAMPLE_ROWS rows (one statement per table, on the catalog's own connection: no login of its own).
The server flags in each row the carried columns holding a zero date and those holding an impossible date (a day
past its month's end, 2024-02-30, which MariaDB stores under ALLOW_INVALID_DATES: no calendar has it, PostgreSQL
neither); only the flagged rows come back, with the columns the mappings' filters and slices read, and each flow's
filter (its slice included) is evaluated on them as the stream evaluates it, so a row the mapping leaves out is not
counted for it. A column holding some is warned of whatever the sql_mode (the copy and any update of those rows
meet them), zero and impossible dates counted apart. The read is bounded so that `check` stays cheap
(docs/performance.md, "edges13"): a table larger than that is looked at only in part, and `verify` -- which reads
every row -- reports each such row as "cannot be mapped". The filter sees the values as the server returns them to
the catalog's connection (the common filter columns -- text, numbers, enums -- read as the stream reads them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Tuple

from replicator.changes import TableRef
from replicator.identifiers import my_ident

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.check.columns import Catalog, ColumnInfo
    from replicator.mapping.model import Flow, Mapping, MappingSet

_STRICT = ("STRICT_TRANS_TABLES", "STRICT_ALL_TABLES")
# the rows of each table `check` reads for stored zero dates (module docstring)
SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class FlaggedRow:
    """A row of the sample holding a zero or an impossible date in some carried column."""
    values: Dict[str, Any]  # the columns the filters and slices of the flows reading the table read
    zero: FrozenSet[str]
    impossible: FrozenSet[str]


@dataclass(frozen=True)
class StoredDates:
    """What `check` read of one table: how many rows, and the flagged ones among them."""
    read: int
    rows: Tuple[FlaggedRow, ...]

    def count(self, column: str, keeps: Callable[[Dict[str, Any]], bool] | None) -> tuple[int, int]:
        """(zero dates, impossible dates) in `column` among the rows a flow's filter `keeps` (None: every row)."""
        kept = [r for r in self.rows if keeps is None or keeps(r.values)]
        return sum(column in r.zero for r in kept), sum(column in r.impossible for r in kept)


# {(side, table): what was read}
StoredZeroDates = Dict[Tuple[str, TableRef], StoredDates]


def _zero_capable(info: ColumnInfo | None) -> bool:
    """A DATE, DATETIME or TIMESTAMP (its zero value: MONTH() gives 0)."""
    return info is not None and info.kind in ("date", "datetime")


def zero_date_columns(mset: MappingSet, kinds: dict[str, str], side: str
                      ) -> dict[TableRef, tuple[set[str], set[str]]]:
    """The date columns of `side` (MariaDB) some field may carry to PostgreSQL, per table (with `zero_date: null`
    too: an impossible date is a row error all the same), and the columns the filters and slices of those flows
    read."""
    out: dict[TableRef, tuple[set[str], set[str]]] = {}
    for m in mset.mappings:
        for flow in m.flows:
            if flow.source.side != side or kinds.get(side) != "mariadb" \
                    or kinds.get(flow.target.side) != "postgresql":
                continue
            carried = {plan.source for plan in flow.plans if plan.source is not None}
            if not carried:
                continue
            dates, filters = out.setdefault(flow.source.table, (set(), set()))
            dates |= carried
            filters.update(flow.filter_columns)
    return out


def zero_sql(q: str) -> str:
    """MariaDB: whether the value of column `q` (quoted) is a zero date or has a zero month or day."""
    return f"(MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0)"


def impossible_sql(q: str) -> str:
    """MariaDB: whether the value of column `q` (quoted) has a day past its month's end (2024-02-30, stored under
    ALLOW_INVALID_DATES): its month's last day, from the first of the month (a real date), asked only past the 28th."""
    return (f"(DAYOFMONTH({q}) > 28 AND MONTH({q}) > 0 AND DAYOFMONTH({q}) > DAYOFMONTH(LAST_DAY("
            f"MAKEDATE(GREATEST(YEAR({q}), 1), 1) + INTERVAL (MONTH({q}) - 1) MONTH)))")


def stored_zero_dates(engine: Any, side: str, catalog: Catalog,
                      columns: dict[TableRef, tuple[set[str], set[str]]]) -> StoredZeroDates:
    """Zero dates (a zero month or day: 0000-00-00 too) and impossible dates among the first SAMPLE_ROWS rows of
    each table, per DATE / DATETIME column of `columns`: one statement per table on `engine`'s connection, which
    returns only the rows holding some, with the filter columns, and the number of rows read. A table that cannot
    be read is left out (its privileges are `check`'s finding elsewhere)."""
    import sqlalchemy

    out: StoredZeroDates = {}
    with engine.connect() as c:
        for table in sorted(columns, key=str):
            dates, filters = columns[table]
            known = catalog.get(table, {})
            cols = sorted(col for col in dates if _zero_capable(known.get(col)))
            if not cols:
                continue
            shown = sorted(col for col in filters if col in known)
            quoted = [my_ident(col) for col in cols]
            flags = ", ".join(f"{zero_sql(q)} AS z{i}, {impossible_sql(q)} AS i{i}" for i, q in enumerate(quoted))
            values = "".join(f", {my_ident(col)}" for col in shown)
            marks = ", ".join(f"z{i}, i{i}" for i in range(len(cols)))
            empty = ", NULL" * (2 * len(cols) + len(shown))
            # the flags are computed on the table's own rows: a derived table's copy of a date would be converted
            # under the session's strict sql_mode (2024-02-30 into 0000-00-00); the sample's size comes as one more
            # row (NULL flags), counted on its own (a window over the sample
            # cost twice as much: docs/performance.md "ops14")
            sample = f"FROM {my_ident(table.schema, table.name)} LIMIT {SAMPLE_ROWS}"
            sql = (f"SELECT NULL, {marks}{values} FROM (SELECT {flags}{values} {sample}) s WHERE "
                   + " OR ".join(f"z{i} OR i{i}" for i in range(len(cols)))
                   + f" UNION ALL SELECT COUNT(*){empty} FROM (SELECT 1 {sample}) n")
            try:
                found = c.execute(sqlalchemy.text(sql.replace(":", "\\:"))).fetchall()
            except sqlalchemy.exc.SQLAlchemyError:
                continue
            rows, read = [], 0
            for row in found:
                if row[0] is not None:
                    read = int(row[0])
                    continue
                bits, vals = row[1:1 + 2 * len(cols)], row[1 + 2 * len(cols):]
                rows.append(FlaggedRow(dict(zip(shown, vals)),
                                       frozenset(col for i, col in enumerate(cols) if bits[2 * i]),
                                       frozenset(col for i, col in enumerate(cols) if bits[2 * i + 1])))
            out[(side, table)] = StoredDates(read, tuple(rows))
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
            if plan.source is None:
                continue
            info = ck.column(src.side, src.table, plan.source)
            if info is None or info.kind not in ("date", "datetime"):
                continue
            field = next((f for f in m.fields if f.name == plan.name), None)
            where = field.where if field is not None else m.where
            stored = ck.stored_zero.get((src.side, src.table))
            zero, impossible = stored.count(plan.source, flow.filter) if stored is not None else (0, 0)
            # a date past its month's end is a row error whatever the field says (zero_date: null carries zero dates
            # only: router.refuse_zero_dates)
            halting = impossible
            if plan.zero_null:
                zero = 0
            if stored is not None and (zero or impossible):
                _warn_stored(ck, flow, plan.name, plan.source, info, _at(where), stored.read, zero, impossible,
                             halting)
                continue
            if plan.zero_null or not allowed:
                continue
            ck.warn(src.side,
                    f"{_at(where)}: field {plan.name} carries {_col(src.side, src.table, plan.source)} "
                    f"({info.base_type()}) to PostgreSQL, and {src.side}'s global sql_mode ({sql_mode or 'empty'}) "
                    f"allows zero dates (0000-00-00, a zero month or day): such a row is a row error naming the "
                    f"column ({flow.on_error}), PostgreSQL has no value for it",
                    f"give the field zero_date: null to carry a zero date as NULL (counted in "
                    f"replicator_zero_dates_total), or add STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE to "
                    f"{src.side}'s sql_mode so that applications cannot write one")


def _warn_stored(ck: _Checker, flow: Flow, name: str, column: str, info: ColumnInfo, at: str, read: int, zero: int,
                 impossible: int, halting: int) -> None:
    """The warning of a carried column that already holds zero dates or impossible ones among the rows read."""
    from replicator.mapping.check.checker import _col

    src = flow.source
    more = f"the first {read:,} rows read" if read >= SAMPLE_ROWS else f"its {read:,} rows"
    if flow.filter is not None:
        more += ", of the rows the mapping's filter or slice keeps"
    q = my_ident(column)
    held = [f"zero dates ({zero:,} in {more})"] if zero else []
    if impossible:
        held.append(f"impossible dates, a day past the month's end such as 2024-02-30 (stored under "
                    f"ALLOW_INVALID_DATES; {impossible:,} in {more})")
    finds = ([zero_sql(q)] if zero else []) + ([impossible_sql(q)] if impossible else [])
    fates = []
    if zero:
        fates.append(f"each such row is a row error naming the column ({flow.on_error}) when the copy or an "
                     f"update carries it")
    if halting:
        fates.append(f"a row with an impossible date is a row error naming the column ({flow.on_error}) when the "
                     f"copy or an update carries it, whatever zero_date says")
    fix = "give the field zero_date: null to carry a zero date as NULL (counted in replicator_zero_dates_total), " \
          "or correct the rows (a NULL or a real date)"
    if halting:
        fix = "correct the rows holding an impossible date (a NULL or a real date) before a copy or an update " \
              "carries them" + ("; give the field zero_date: null to carry the zero dates as NULL" if zero else "")
    ck.warn(src.side,
            f"{at}: field {name} carries {_col(src.side, src.table, column)} ({info.base_type()}) to PostgreSQL, "
            f"and the column already holds {' and '.join(held)}: {'; '.join(fates)}; PostgreSQL has no value for "
            f"them (find them: SELECT ... WHERE {' OR '.join(finds)}; `replicator verify` names every one)", fix)
