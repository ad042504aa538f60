"""What every applier does: group changes into runs, convert values, count, and fail clearly.

A dialect subclass supplies the SQL; this class keeps the order of changes. Consecutive changes
of the same table, operation and column set form one run and go to the server as one batched
statement; a run never crosses another table's change, so parents stay before children.

Changes of two-way mappings carry `expect` (what the source saw before). Their runs are "checked":
the current target rows of the whole run are read with one keyed SELECT ... FOR UPDATE
(`read_rows`), and the `resolver` the stream installed (replicator.conflicts.detect) compares, decides
and records conflicts before the run is written. A checked update run writes the fields some row of
it changed (every field the flow carries where leaving the others out would cost statements): the
changed ones as decided, the others with the value the locked target row holds, so updates of
different fields still share one statement. Its rows are locked and exist, so when that leaves out a
required column it is one UPDATE (`Run.exists`, `_update_rows`) instead of an upsert. A qualifying checked
update run is first written by one conditional UPDATE (`update_unchanged`: the new values only where the
target still holds the old ones), and only the rows it did not write are read and compared.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, Callable, ClassVar, Iterable, Mapping, Protocol, Sequence

from replicator import metrics
from replicator.appliers.slices import slice_conditions
from replicator.compare import ColumnInfo
from replicator.changes import Op, Position, TableRef, TargetChange
from replicator.config import Connection
from replicator.errors import LockBusy, RetriableError, RowError, TargetShapeChanged

Converter = Callable[[Any], Any]


@dataclass
class Run:
    table: TableRef
    op: Op
    key_columns: tuple[str, ...]
    columns: tuple[str, ...]
    rows: dict[tuple[Any, ...], TargetChange]  # by key; a later change of the same key replaces the earlier
    insert_only: frozenset[str] = frozenset()  # columns not overwritten on an existing row
    must_exist: bool = False  # update existing rows only, never insert
    checked: bool = False  # two-way changes: the resolver checks them against the target first
    # made by group_runs for checked updates: every row's `expect` and `values` together name exactly
    # `columns`, in that order (the resolver then need not gather them row by row)
    uniform: bool = False
    # every row is known to exist and is locked by this transaction (the check's `SELECT ... FOR UPDATE`
    # found it): a partial run of such rows is one set-based UPDATE (`_update_rows`), nothing to insert
    exists: bool = False

    @property
    def updates(self) -> list[str]:
        """The columns an existing row gets: everything but the key and insert-only columns."""
        return [c for c in self.columns if c not in self.key_columns and c not in self.insert_only]


def group_runs(changes: Iterable[TargetChange]) -> list[Run]:
    runs: list[Run] = []
    current: Run | None = None
    for ch in changes:
        checked = ch.expect is not None
        # a checked update is checked over every field it carries (see the module doc): group by those -- the checked
        # ones (`expect`) and the unchecked owned fields the router adds to `values` only (router.with_owned)
        if checked and ch.op is Op.UPDATE:
            expect = ch.expect
            assert expect is not None
            values = ch.values
            cols = tuple(expect) if values.keys() <= expect.keys() else (
                *expect, *(c for c in values if c not in expect))
        else:
            cols = tuple(ch.values)
        # `is not` first: a flow's changes share their table and insert_only objects, and TableRef's
        # dataclass __eq__ is a Python call per row (equal objects stay equal either way)
        if current is None or (current.table is not ch.table and current.table != ch.table) \
                or current.op is not ch.op or current.columns != cols \
                or (current.insert_only is not ch.insert_only and current.insert_only != ch.insert_only) \
                or current.must_exist != ch.must_exist or current.checked != checked:
            current = Run(ch.table, ch.op, ch.key_columns, cols, {}, ch.insert_only, ch.must_exist, checked,
                          checked and ch.op is Op.UPDATE)
            runs.append(current)
        earlier = current.rows.get(ch.key)
        if checked and ch.op is Op.UPDATE and earlier is not None:
            # two updates of one row: both changed fields go, checked against the row before the first
            ch = replace(ch, values={**earlier.values, **ch.values}, expect=earlier.expect)
        current.rows[ch.key] = ch
    return runs


def written_runs(run: Run, rows: list[TargetChange]) -> list[tuple[Run, list[TargetChange]]]:
    """A checked update run as the check left it, in the parts to write. The check writes a row that
    exists with the key and the fields the run changes only (`Detector` leaves out the fields no row of
    the run changed: nothing to compare, and they already hold what the row would be written with), and a
    row it brings back (missing on the target) with every field; consecutive rows of one column set are one
    part, in the run's order. A part of fewer columns than the run holds existing, locked rows only
    (`Run.exists`)."""
    n = len(run.columns)
    if all(len(r.values) == n for r in rows):  # every field (the usual run without narrowing): as it is
        return [(run, rows)]
    parts: list[tuple[Run, list[TargetChange]]] = []
    seen: Any = None
    for r in rows:
        names = r.values.keys()
        if seen is None or names != seen:
            seen = names
            whole = len(names) == n
            columns = run.columns if whole else tuple(c for c in run.columns if c in names)
            part = Run(run.table, run.op, run.key_columns, columns, {}, run.insert_only, run.must_exist, True,
                       False, not whole)
            parts.append((part, []))
        part.rows[r.key] = r
        parts[-1][1].append(r)
    return parts


_GETTERS: dict[tuple[str, ...], Callable[[Mapping[str, Any]], Any]] = {}


def _getter(cols: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """`lambda values: tuple(values[c] for c in cols)`, made once per column tuple: for two columns or more
    `itemgetter` looks them all up in one C call (a run of single-row transactions converts one row per
    run, and the per-row list comprehension was half of convert_rows). A missing column raises the same
    KeyError."""
    get = _GETTERS.get(cols)
    if get is None:
        if len(cols) >= 2:
            get = itemgetter(*cols)
        else:  # itemgetter of one name returns the value itself, of none is an error
            def get(values: Mapping[str, Any]) -> Any:
                return tuple([values[c] for c in cols])
        if len(_GETTERS) > 1000:  # runs of many column sets: keep the cache small
            _GETTERS.clear()
        _GETTERS[cols] = get
    return get


_NONE = type(None)
# runs of at least this many rows take `Applier._expected_by_column` (measured: the row loop is cheaper below)
COLUMNWISE_ROWS = 32


def _naive(v: Any) -> bool:  # (a datetime or a time)
    return v.tzinfo is None


def _aware(v: Any) -> bool:
    return v.tzinfo is not None


def _finite(v: Any) -> bool:
    return v.__class__ is not Decimal or v.is_finite()


# The value classes (after the target column's converter) whose SQL comparison with the stored value is
# exact, per `Applier.exact_kind`, and a further test of a value of them (None: none): an int, a finite
# Decimal, a bool, a date, a naive or an aware datetime, a time of day without a zone (never PostgreSQL's
# 24:00:00 text), a timedelta, a str. Exact classes (`__class__ in`, no subclasses: a datetime is a date, a
# bool an int), so the usual value costs no call; never a float (MariaDB compares a FLOAT column with a double
# literal; Python's check allows float noise).
EXACT_CLASSES: dict[str, tuple[frozenset[type], Callable[[Any], bool] | None]] = {
    "int": (frozenset({int}), None),
    "int_or_bool": (frozenset({int, bool}), None),
    "decimal": (frozenset({int, Decimal}), _finite),
    "bool": (frozenset({bool}), None),
    "date": (frozenset({date}), None),
    "naive": (frozenset({datetime}), _naive),
    "aware": (frozenset({datetime}), _aware),
    "time": (frozenset({time}), _naive),
    "timedelta": (frozenset({timedelta}), None),
    "str": (frozenset({str}), None),
}


class RowsSkipped(Exception):
    """Rows a statement was to write but the server did not, without an error: a BEFORE ROW trigger returned
    NULL for them (PostgreSQL). A data error of the run like a constraint's: the stream names the row by
    applying the batch change by change (`locate_row_error`), and stops or queues it."""

    def __init__(self, table: TableRef, sent: int, written: int):
        self.table = table
        what = "the row" if sent == 1 else f"{sent - written} of {sent} rows"
        super().__init__(f"a BEFORE trigger on {table} skipped {what} (it returned NULL): the row is not written, "
                         f"so the two sides would differ; make the trigger return NEW on replicator's writes, or "
                         f"leave the row out of the mapping (filter)")


class Resolver(Protocol):
    """Decides the conflicts of a checked run (replicator.conflicts.detect.Detector)."""

    def resolve(self, applier: "Applier", run: Run, rows: list[TargetChange],
                write: bool = False) -> list[TargetChange]:
        """The rows to write, as decided; records the conflicts in the open transaction. `write`: the caller
        writes what comes back with `_write` (Applier.apply), so rows may be written here instead (the
        optimistic conditional write, `update_unchanged`) and not come back."""

    def departed(self, applier: "Applier", change: TargetChange, by: str, parent: Any,
                 slice_: Sequence[tuple[str, Any]]) -> tuple[bool, tuple[Any, ...] | None]:
        """A two-way fold's edit of a child row's value (`change`, its `expect` not NULL) whose row is gone from
        the target (no row of the slice `slice_` whose `by` is `parent`): decided and recorded as a conflict;
        True when the edit wins and the child row is to be made again, with the deleted row's key (None: a new
        one)."""


class IoGate(Protocol):
    """Told when the applier thread waits on its server (stream/channel.py: the reader decodes meanwhile)."""

    def lend(self) -> None: ...

    def reclaim(self) -> None: ...


class Applier(abc.ABC):
    """One target connection. Not thread-safe: one applier thread owns it."""

    kind = "?"
    reports_waits = False  # calls io_gate.lend()/reclaim() around its waits on the server
    # a converter -> its form for a whole column of a run (`convert_rows`, `_expected_by_column` from
    # COLUMNWISE_ROWS rows): the values the converter gives each, in C calls, or None where it cannot tell
    # (then value by value). A dialect's own, for its usual converters; none here.
    whole_converters: ClassVar[Mapping[Callable[[Any], Any], Callable[[Sequence[Any]], list[Any] | None]]] = {}

    def __init__(self, conn: Connection, stream: str):
        self.conn = conn
        self.stream = stream
        self.direction = stream
        # (table, column) -> converter for values the driver would not adapt correctly
        self._converters: dict[TableRef, dict[str, Converter]] = {}
        self._types: dict[TableRef, dict[str, str]] = {}
        # NOT NULL columns without a default (nor identity/auto-increment/generated): an insert must name them
        self._required: dict[TableRef, frozenset[str]] = {}
        self.current_table: TableRef | None = None  # the table of the run being applied, for error messages
        self._columns: dict[TableRef, dict[str, ColumnInfo]] = {}  # for comparing values (conflicts)
        self._read_sql: dict[tuple[Any, ...], str] = {}  # read_rows_sql by (table, keys, columns, count)
        self.resolver: Resolver | None = None  # set by the stream when a mapping is two-way
        # begin() wrote the loop tag and the transaction is open: reading column types (which ends the
        # transaction) would drop the tag, and what is written after it would be sent back as an edit
        self.tagged = False
        # set by the stream when `reports_waits`: lend() before each wait on the server, reclaim() after
        self.io_gate: IoGate | None = None
        # only the stream's own session reports replicator_connection_up{role="apply"}: the short sessions
        # of look-ups, retention, sync and status would otherwise set it to 0 when they close
        self.reports_up = False
        # the mapped tables written in the open transaction: `commit` confirms, after the writes and before it
        # commits, that they still have the shape `load_types` planned with (see `shape_changed`)
        self.written: set[TableRef] = set()
        # that shape, as the catalog spells each column's type (for messages): {table: {column: type}}
        self.planned: dict[TableRef, dict[str, str]] = {}
        # (table, column) written by a `lossy: allow` field: the target rounding its values is what the mapping
        # says (set by the stream; a MariaDB rounding note on another column stops the direction)
        self.lossy: set[tuple[TableRef, str]] = set()

    def report_up(self, up: int) -> None:
        if self.reports_up:
            metrics.connection_up.labels(self.conn.name, "apply").set(up)

    # -- lifecycle
    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def lock(self, fail_fast: bool) -> None:
        """Take the stream's session lock in the target so that a second instance cannot apply.

        Busy: FatalError when `fail_fast` (at start), else RetriableError (our own old session
        may still be closing after a reconnect)."""

    @abc.abstractmethod
    def is_row_error(self, exc: Exception) -> bool:
        """True when the driver error is about the data of a row, not the connection."""

    def interrupt(self) -> None:
        """From another thread: stop the statement the owning thread waits for (a stop must not wait
        for a query stuck on a lock or a dead network). The owning thread then gets an error."""

    @abc.abstractmethod
    def read_checkpoint(self) -> Position | None: ...

    @abc.abstractmethod
    def begin(self) -> None:
        """Start a target transaction and write the loop-prevention tag first."""

    @abc.abstractmethod
    def commit(self, position: Position, commit_time: Any) -> None:
        """Write the checkpoint and commit, atomically with the rows."""

    @abc.abstractmethod
    def commit_untracked(self) -> None:
        """Commit the open transaction without writing the checkpoint: state rows (sync requests,
        watermarks) and repairs. A transaction opened with begin() still carries the loop tag."""

    @abc.abstractmethod
    def rollback(self) -> None: ...

    def shape_moved(self, changed: list[TableRef]) -> None:
        """`commit` found `changed` (written in the open transaction) in another shape than planned: an ALTER
        TABLE committed before our write, so the write may have been rounded or cut. Nothing is committed: the
        transaction is rolled back and the stream decides (TargetShapeChanged)."""
        self.rollback()
        names = ", ".join(str(t) for t in changed)
        raise TargetShapeChanged(f"{self.conn.describe()}: {names} changed while replicator wrote into it "
                                 f"(ALTER TABLE); the transaction was rolled back", list(changed))

    @abc.abstractmethod
    def load_types(self, tables: Sequence[TableRef]) -> None:
        """Read column types of the target tables and prepare value converters (outside a transaction
        begun by begin(): the read ends it)."""

    def not_tagged(self) -> None:
        """load_types' guard: a programming error, never a silent loss of the loop tag."""
        if self.tagged:
            raise RuntimeError(f"{self.stream}: column types read inside a tagged transaction would end it and "
                               f"drop the loop tag: read them before begin()")

    # -- data
    def apply(self, changes: Sequence[TargetChange]) -> None:
        for run in group_runs(changes):
            self.current_table = run.table
            self.written.add(run.table)  # the resolver may write a checked run itself (update_unchanged)
            rows = list(run.rows.values())
            if run.checked and self.resolver is not None:
                rows = self.resolver.resolve(self, run, rows, True)
                if not rows:
                    continue
                if run.uniform:
                    for part, part_rows in written_runs(run, rows):
                        self._write(part, part_rows)
                    continue
            self._write(run, rows)

    def _write(self, run: Run, rows: list[TargetChange]) -> None:
        self.written.add(run.table)
        if run.op is Op.DELETE:
            done = self._delete(run, rows)
            self._count(run, "delete", len(rows), len(rows) - done)
        elif run.must_exist:
            self._update_existing(run, rows)  # a missing row stays missing, on purpose
            self._fill(run, rows)
            metrics.rows_applied.labels(self.direction, str(run.table), "update").inc(len(rows))
        elif run.op in (Op.INSERT, Op.UPDATE):
            missing = self._upsert(run, rows)
            self._fill(run, rows)
            self._count(run, run.op.value, len(rows), missing)
        else:
            self._truncate(run.table)
            metrics.rows_applied.labels(self.direction, str(run.table), "truncate").inc()

    FILL_PART = 500  # rows whose fill columns one statement looks for NULLs in

    def _fill(self, run: Run, rows: list[TargetChange]) -> None:
        """The rows' `fill` columns (insert-only, so the run did not write them over an existing row): set where
        the row's value is NULL (TargetChange.fill: a first copy's second side, for a row the first side's copy
        never saw). After the run's write a row it inserted holds its values, so one read per FILL_PART rows
        says whether any of them still holds a NULL there; only then are they written, one `COALESCE` update
        each (a copy of new rows costs a read per part, not a statement per row)."""
        wanted: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for r in rows:
            if r.fill:
                fill = {c: r.values[c] for c in r.fill if r.values.get(c) is not None and c not in run.key_columns}
                if fill:
                    wanted.append((r.key, fill))
        for at in range(0, len(wanted), self.FILL_PART):
            part = wanted[at:at + self.FILL_PART]
            if self._holds_null(run.table, run.key_columns, [k for k, _ in part],
                                sorted({c for _, fill in part for c in fill})):
                for key, fill in part:
                    self.update_by_key(run.table, run.key_columns, key, {}, fill)

    def _holds_null(self, table: TableRef, key_cols: Sequence[str], keys: list[tuple[Any, ...]],
                    columns: list[str]) -> bool:
        """Whether a row of `keys` holds NULL in one of `columns`."""
        one = "(" + ", ".join(["%s"] * len(key_cols)) + ")"
        cols = "(" + ", ".join(self.quote_col(c) for c in key_cols) + ")"
        nulls = " OR ".join(f"{self.quote_col(c)} IS NULL" for c in columns)
        params: list[Any] = []
        for key in keys:
            params += self.convert_row(table, dict(zip(key_cols, key)), key)
        return bool(self.query(f"SELECT 1 FROM {self.quote_table(table)} WHERE {cols} IN "
                               f"({', '.join([one] * len(keys))}) AND ({nulls}) LIMIT 1", params))

    def _count(self, run: Run, op: str, n: int, missing: int) -> None:
        table = str(run.table)
        metrics.rows_applied.labels(self.direction, table, op).inc(n)
        if missing:
            metrics.rows_missing.labels(self.direction, table, op).inc(missing)

    def is_partial(self, run: Run) -> bool:
        """An update that leaves out a required column (a field owned by the other side, an unchanged
        TOAST value). It cannot go through INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE: both
        servers check NOT NULL on the row to insert before they find the conflict. Such runs are
        applied with UPDATE; only rows that turn out not to exist go on to the upsert."""
        return run.op is Op.UPDATE and self.leaves_out_required(run.table, run.columns)

    def leaves_out_required(self, table: TableRef, columns: Iterable[str]) -> bool:
        """Whether a row of these columns leaves out a required column (see is_partial)."""
        return not self._required.get(table, frozenset()) <= set(columns)

    def updates_at_once(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str],
                        rows: int) -> bool:
        """Whether `_update_rows` updates this many existing rows of these columns in one statement: the
        conflict check leaves the fields a run did not change out of its write only where that keeps the
        run one statement."""
        return rows == 1

    # -- the optimistic conditional write of a checked update run (conflicts/detect.py `_Check._optimistic`)

    def compares_exactly(self, table: TableRef, column: str) -> bool:
        """Whether `update_unchanged` may compare this column in SQL: the dialect's equality of the stored
        value and a bound old value is exact (`exact_kind`), so SQL's "equal" implies the check's
        (`Detector.equal`, which is more lenient: Decimal against int, CHAR padding, ...)."""
        return self.exact_kind(table, column) is not None

    def exact_kind(self, table: TableRef, column: str) -> str | None:
        """The class of values (`EXACT_CLASSES`) this column is compared for in SQL by `update_unchanged`,
        None: never (the whole run takes the full check). A dialect without the conditional write: None."""
        return None

    def update_unchanged(self, run: Run, rows: list[TargetChange],
                         compared: tuple[str, ...]) -> list[TargetChange] | None:
        """Write `run.updates` of each row (existing rows of a checked update run, every row changing the
        same fields: `run.columns`, key first) only where the target still holds, in every column of
        `compared`, the row's old value (`expect`), in one statement; return the rows that still need the
        full check (not written, or not known to be written), or None where this run cannot go this way
        (a value of a class `EXACT_CLASSES` does not list for its column, a dialect without it): then the
        full check takes the whole run, as if this had not been asked."""
        return None

    def unchanged_inputs(self, run: Run, rows: Sequence[TargetChange],
                         compared: tuple[str, ...]) -> tuple[list[list[Any]], list[list[Any]]] | None:
        """What a dialect's `update_unchanged` writes and compares: the rows' new values (`new_rows`) and old
        ones (`expected_rows`), for a run that sets something; None: the run cannot go that way."""
        if not run.updates:
            return None
        olds = self.expected_rows(run, rows, compared)
        if olds is None:
            return None
        values = self.new_rows(run, rows)
        if values is None:
            return None
        return values, olds

    def new_rows(self, run: Run, rows: Sequence[TargetChange]) -> list[list[Any]] | None:
        """`convert_rows` for `update_unchanged`; None where a new value cannot be converted: the full check
        decides then, as before (a field the target wins is never written, so its value stops nothing)."""
        try:
            return self.convert_rows(run, rows)
        except RowError:
            return None

    def expected_rows(self, run: Run, rows: Sequence[TargetChange], compared: tuple[str, ...]) -> list[list[Any]] | None:
        """The old values (`expect`) of `compared`, per row, through the target columns' converters, as
        `convert_rows` converts the new ones; None where one cannot be converted or its class is not one
        `EXACT_CLASSES` lists for the column's `exact_kind` (the full check then decides, as always).
        Row by row for a few rows, column by column from COLUMNWISE_ROWS (`_expected_by_column`: its
        per-column set-up costs ~1 us a column, more than the loop below for fewer rows)."""
        if len(rows) >= COLUMNWISE_ROWS:
            return self._expected_by_column(run, rows, compared)
        return self._expected_by_row(run, rows, compared)

    def _expected_by_row(self, run: Run, rows: Sequence[TargetChange],
                         compared: tuple[str, ...]) -> list[list[Any]] | None:
        """`expected_rows` row by row: a value at a time, through its converter, its class tested."""
        convs = self._converters.get(run.table, {})
        plan = []
        for i, c in enumerate(compared):
            exact = EXACT_CLASSES.get(self.exact_kind(run.table, c) or "")
            if exact is None:
                return None
            plan.append((i, convs.get(c), exact[0], exact[1]))
        get = _getter(compared)
        out: list[list[Any]] = []
        for r in rows:
            expect = r.expect
            if expect is None:
                return None
            try:
                row = list(get(expect))
            except KeyError:
                return None
            for i, conv, classes, test in plan:
                v = row[i]
                if v is None:
                    continue
                if conv is not None:
                    try:
                        v = row[i] = conv(v)
                    except (ValueError, TypeError, UnicodeError, OverflowError):
                        return None
                if v.__class__ not in classes or (test is not None and not test(v)):
                    return None
            out.append(row)
        return out

    def _expected_by_column(self, run: Run, rows: Sequence[TargetChange],
                            compared: tuple[str, ...]) -> list[list[Any]] | None:
        """`expected_rows` column by column: the values' classes are one `set(map(type, ...))` in C per
        column instead of a test per value, the values of a column without a converter are not touched one
        by one (any failure gives None, so the order in which values are looked at does not change the
        answer; tests/unit/test_expected_rows.py holds the two equal)."""
        convs = self._converters.get(run.table, {})
        expects = [r.expect for r in rows]
        if None in expects:
            return None
        cols: list[list[Any]] = []
        for c in compared:
            exact = EXACT_CLASSES.get(self.exact_kind(run.table, c) or "")
            if exact is None:
                return None
            allowed, test = exact
            try:
                col = list(map(itemgetter(c), expects))  # type: ignore[arg-type]
            except KeyError:
                return None
            classes = set(map(type, col))
            nulls = _NONE in classes
            values = [v for v in col if v is not None] if nulls else col
            conv = convs.get(c)
            if conv is not None and values:
                whole = self.whole_converters.get(conv)
                try:
                    converted = whole(values) if whole is not None else None
                    # (never None: a None is not converted, as convert_rows)
                    values = list(map(conv, values)) if converted is None else converted
                except (ValueError, TypeError, UnicodeError, OverflowError):
                    return None
                classes = set(map(type, values))
            else:
                classes.discard(_NONE)
            if not classes <= allowed or (test is not None and not all(map(test, values))):
                return None
            if nulls and conv is not None:
                it = iter(values)
                col = [None if v is None else next(it) for v in col]
            elif conv is not None:
                col = values
            cols.append(col)
        return list(map(list, zip(*cols)))

    def _converted(self, table: TableRef, items: Iterable[tuple[str, Any]], key: Any,
                   what: str = "value") -> list[Any]:
        """Values through the target column's converter; a failure is a row error naming table, key, column."""
        convs = self._converters.get(table, {})
        out = []
        for col, value in items:
            conv = convs.get(col)
            if conv is not None and value is not None:
                try:
                    value = conv(value)
                except (ValueError, TypeError, UnicodeError, OverflowError) as exc:
                    raise RowError(f"cannot convert {type(value).__name__} {what}: {exc}",
                                   table=str(table), key=key, column=col) from None
            out.append(value)
        return out

    def convert(self, run: Run, row: TargetChange) -> list[Any]:
        values = row.values
        return self._converted(run.table, ((c, values[c]) for c in run.columns), row.key)

    def convert_rows(self, run: Run, rows: Sequence[TargetChange]) -> list[list[Any]]:
        """`convert` of every row of a run, with the run's converters looked up once instead of per value
        (it was a third of a 1,000-row PostgreSQL run's client time): the same values, and a failing
        value raises the same RowError, since that row is converted again by `convert` to name it."""
        convs = self._converters.get(run.table, {})
        cols = run.columns
        plan = [(i, convs[c]) for i, c in enumerate(cols) if c in convs]
        get = _getter(cols)
        if len(rows) >= COLUMNWISE_ROWS and plan and self.whole_converters:
            by_column = self._convert_by_column(rows, get, plan)
            if by_column is not None:
                return by_column
        out = []
        for r in rows:
            row = list(get(r.values))
            try:
                for i, conv in plan:
                    v = row[i]
                    if v is not None:
                        row[i] = conv(v)
            except (ValueError, TypeError, UnicodeError, OverflowError):
                self.convert(run, r)  # raises the RowError naming table, key and column
                raise
            out.append(row)
        return out

    def _convert_by_column(self, rows: Sequence[TargetChange], get: Callable[[Mapping[str, Any]], Any],
                           plan: list[tuple[int, Callable[[Any], Any]]]) -> list[list[Any]] | None:
        """`convert_rows` column by column, each converted column by its `whole_converters` form where it
        has one (C calls instead of a Python call per value); None on any failure at all (a missing column, a
        value a converter refuses): the row loop then converts the run again and raises what it always
        raised, for the row it always named. tests/unit/test_convert_columns.py holds the two equal."""
        try:
            columns = list(zip(*map(get, [r.values for r in rows])))
            whole_converters = self.whole_converters
            for i, conv in plan:
                col = columns[i]
                whole = whole_converters.get(conv)
                converted = whole(col) if whole is not None else None
                if converted is None:
                    converted = [None if v is None else conv(v) for v in col]
                columns[i] = converted  # type: ignore[call-overload]
            return list(map(list, zip(*columns)))
        except Exception:  # noqa: BLE001 - the row loop decides, as before
            return None

    def convert_key(self, run: Run, key: tuple[Any, ...]) -> list[Any]:
        return self._converted(run.table, zip(run.key_columns, key), key, "key value")

    @abc.abstractmethod
    def _upsert(self, run: Run, rows: list[TargetChange]) -> int:
        """Insert or update `rows`; return how many were updates of a missing row."""

    @abc.abstractmethod
    def _truncate(self, table: TableRef) -> None:
        """Empty a table inside the open transaction (never a DDL that commits implicitly)."""

    @abc.abstractmethod
    def _delete(self, run: Run, rows: list[TargetChange]) -> int:
        """Delete by key; return how many rows were deleted."""

    def locate_row_error(self, changes: Sequence[TargetChange], exc: Exception) -> RowError:
        """After a batch failed and was rolled back: apply change by change to name the bad row.

        Only a data error of one row becomes a RowError: a connection lost (or a lock timeout) on the
        way raises RetriableError, and anything else propagates as it is, so that the stream
        reconnects and replays from the checkpoint instead of stopping on a row that is fine."""
        self.rollback()
        try:
            self.begin()
            for ch in changes:
                try:
                    self.apply([ch])
                except RowError as row_error:
                    return row_error
                except Exception as single:
                    if not self.is_row_error(single):
                        raise
                    return RowError(self.describe_error(single), table=str(ch.table), key=ch.key,
                                    column=self.error_column(single, ch))
            return RowError(f"batch failed but no single row does: {self.describe_error(exc)}",
                            table=str(changes[0].table) if changes else "?")
        finally:
            self.rollback()

    # -- row-by-row primitives for linked changes (replicator.mapping.links), inside the open transaction
    @abc.abstractmethod
    def quote_table(self, table: TableRef) -> str: ...

    @abc.abstractmethod
    def quote_col(self, column: str) -> str: ...

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one statement in the open transaction; the rows it returns (empty if none)."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement in the open transaction; the number of rows it touched."""

    def column_info(self, table: TableRef) -> dict[str, ColumnInfo]:
        return self._columns.get(table, {})

    def read_rows(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str],
                  keys: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows with these keys, locked (FOR UPDATE) until the open transaction ends: one statement
        per 1000 keys, key columns first, then `columns`. A row another session changes meanwhile waits
        for our commit, so what the resolver decided on is what it overwrites."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), 1000):
            part = keys[i:i + 1000]
            out += self.locked_query(self.read_rows_sql(table, key_columns, columns, len(part)),
                                     self.key_params(table, key_columns, part))
        return out

    def locked_query(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement of `read_rows`: `query`, where a dialect's values write back as they were read
        (PostgreSQL reads some types as their text: appliers/postgres.py)."""
        return self.query(text, params)

    def read_rows_sql(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str], n: int) -> str:
        """`read_rows`'s statement for `n` keys, %s placeholders; made once per shape (a run of single-row
        transactions sends the same few shapes over and over)."""
        k = (table, tuple(key_columns), tuple(columns), n)
        text = self._read_sql.get(k)
        if text is None:
            cols = ", ".join([*(self.quote_col(c) for c in key_columns), *(self.read_expr(table, c) for c in columns)])
            if len(key_columns) == 1:
                cond = f"{self.quote_col(key_columns[0])} IN ({', '.join(['%s'] * n)})"
            else:
                one = "(" + ", ".join(["%s"] * len(key_columns)) + ")"
                cond = f"({', '.join(self.quote_col(c) for c in key_columns)}) IN ({', '.join([one] * n)})"
            text = f"SELECT {cols} FROM {self.quote_table(table)} WHERE {cond} FOR UPDATE"
            if len(self._read_sql) > 256:  # runs of many sizes: keep the cache small
                self._read_sql.clear()
            self._read_sql[k] = text
        return text

    def read_expr(self, table: TableRef, column: str) -> str:
        """What `read_rows` selects for a (non-key) column: the column, unless the dialect's plain text of it
        is not its value (a MariaDB FLOAT's 6 significant digits: appliers/mariadb.py)."""
        return self.quote_col(column)

    def key_params(self, table: TableRef, key_columns: Sequence[str], keys: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The keys' values, flat, through the key columns' converters: `convert_row` of each key, with the
        converters looked up once per call instead of per key. A value that fails goes through
        `convert_row` again, which raises the same RowError (table, key, column) it always did."""
        convs = self._converters.get(table, {})
        n = len(key_columns)
        plan = [(j, convs[c]) for j, c in enumerate(key_columns) if c in convs]
        out: list[Any] = []
        if n == 1 and plan:  # the usual key, one converted column: the loop below without a list per key
            conv = plan[0][1]
            for k in keys:
                if len(k) != 1:
                    out += self.convert_row(table, dict(zip(key_columns, k)), k)
                    continue
                v = k[0]
                if v is not None:
                    try:
                        v = conv(v)
                    except (ValueError, TypeError, UnicodeError, OverflowError):
                        self.convert_row(table, dict(zip(key_columns, k)), k)  # raises the RowError
                        raise
                out.append(v)
            return out
        for k in keys:
            if len(k) != n:  # (never from a run: its keys are its key columns' values) convert_row's zip
                out += self.convert_row(table, dict(zip(key_columns, k)), k)
                continue
            if not plan:
                out += k
                continue
            row = list(k)
            try:
                for j, conv in plan:
                    v = row[j]
                    if v is not None:
                        row[j] = conv(v)
            except (ValueError, TypeError, UnicodeError, OverflowError):
                self.convert_row(table, dict(zip(key_columns, k)), k)  # raises the RowError
                raise
            out += row
        return out

    def convert_row(self, table: TableRef, values: dict[str, Any], key: Any = None) -> list[Any]:
        return self._converted(table, values.items(), key)

    def find_keys(self, table: TableRef, key_cols: Sequence[str], where: dict[str, Any],
                  limit: int = 2, slice_: tuple[tuple[str, Any], ...] = ()) -> list[tuple[Any, ...]]:
        """The keys of the rows whose columns equal `where`'s values (`= %s`: a None finds nothing) and that
        belong to the mapping's slice `slice_` (a NULL slice value selects `IS NULL`: appliers/slices.py)."""
        conds = [f"{self.quote_col(c)} = %s" for c in where]
        params = self.convert_row(table, where)
        if slice_:
            more, values = slice_conditions(self.quote_col, slice_)
            conds += more
            params += self.convert_row(table, values)
        cols = ", ".join(self.quote_col(c) for c in key_cols)
        return self.query(f"SELECT {cols} FROM {self.quote_table(table)} WHERE {' AND '.join(conds)} "
                          f"LIMIT {int(limit)}", params)

    def insert_returning(self, table: TableRef, values: dict[str, Any], key_cols: Sequence[str]) -> tuple[Any, ...]:
        """Insert one row and return its key (generated by the database when not given)."""
        cols = ", ".join(self.quote_col(c) for c in values)
        marks = ", ".join(["%s"] * len(values))
        keys = ", ".join(self.quote_col(c) for c in key_cols)
        sql = (f"INSERT INTO {self.quote_table(table)} ({cols}) VALUES ({marks}) RETURNING {keys}" if values
               else f"INSERT INTO {self.quote_table(table)} DEFAULT VALUES RETURNING {keys}")
        self.written.add(table)
        rows = self.query(sql, self.convert_row(table, values))
        return tuple(rows[0])

    def update_by_key(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...],
                      values: dict[str, Any], fill: dict[str, Any] | None = None) -> int:
        """Set `values` in the row of `key`, and `fill`'s columns only where the row's value is NULL (one
        statement: a value the row holds is never overwritten). The rows found (0: no such row)."""
        if not values and not fill:
            return 1
        self.written.add(table)
        both = {**values, **(fill or {})}
        sets = ", ".join(f"{self.quote_col(c)} = %s" if c in values else
                         f"{self.quote_col(c)} = COALESCE({self.quote_col(c)}, %s)" for c in both)
        cond = " AND ".join(f"{self.quote_col(c)} = %s" for c in key_cols)
        params = self.convert_row(table, both, key) + self.convert_row(table, dict(zip(key_cols, key)), key)
        return self.execute(f"UPDATE {self.quote_table(table)} SET {sets} WHERE {cond}", params)

    def delete_by_key(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...]) -> int:
        cond = " AND ".join(f"{self.quote_col(c)} = %s" for c in key_cols)
        self.written.add(table)
        return self.execute(f"DELETE FROM {self.quote_table(table)} WHERE {cond}",
                            self.convert_row(table, dict(zip(key_cols, key)), key))

    def _update_existing(self, run: Run, rows: list[TargetChange]) -> list[TargetChange]:
        """UPDATE each row by key (a partial update, see is_partial); returns the rows that do not exist."""
        if run.exists:
            self._update_rows(run, rows)
            return []
        missing = []
        for r in rows:
            changed = {c: r.values[c] for c in run.updates}
            if not changed:  # nothing but the key: touching the key column finds out whether the row exists
                changed = {run.key_columns[0]: r.key[0]}
            if not self.update_by_key(run.table, run.key_columns, r.key, changed):
                missing.append(r)
        return missing

    def _update_rows(self, run: Run, rows: list[TargetChange]) -> None:
        """UPDATE rows known to exist and locked (`Run.exists`) by key, setting `run.updates`; a dialect
        sends them as one statement (see updates_at_once)."""
        for r in rows:
            changed = {c: r.values[c] for c in run.updates}
            if changed:
                self.update_by_key(run.table, run.key_columns, r.key, changed)

    def lock_busy(self, fail_fast: bool) -> None:
        text = (f"stream {self.stream} is being applied by another replicator instance "
                f"(session lock in {self.conn.describe()} is held)")
        if fail_fast:
            raise LockBusy(text + "; stop the other instance first")
        raise RetriableError(text)

    def describe_error(self, exc: Exception) -> str:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def error_column(self, exc: Exception, change: TargetChange | None = None) -> str | None:
        """The column a row error is about, when the server names it (or, given the one `change` whose
        statement failed, when its message quotes one value of it); None when nothing does."""
        return None
