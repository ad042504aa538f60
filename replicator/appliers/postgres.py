"""Apply changes to PostgreSQL with psycopg2: batched upserts, tagged, checkpointed."""
from __future__ import annotations

import io
import ipaddress
import json
import re
import socket
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, is_
from typing import Any, Callable, Sequence, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extras
from psycopg2 import sql

from replicator import metrics
from replicator.appliers.base import Applier, Converter, Run, RowsSkipped
from replicator.appliers.pgcopy import COPY_MIN_ROWS, RowEncoder, Unsupported
from replicator.checkpoint import session_lock_name
from replicator.compare import ColumnInfo
from replicator.changes import Op, Position, TableRef, TargetChange, position_from_json
from replicator.config import Account, Connection
from replicator.connect import ACCESS, CONNECTION, MISSING, RETRIABLE, ROW, TIMEOUT, pg_connect, pg_error_class
from replicator.errors import ConfigError, RetriableError
from replicator.identifiers import for_params, pg_ident
from replicator.loopguard import MESSAGE_PREFIX

_T = TypeVar("_T")

# the uuid converter hands uuid.UUID values to psycopg2, which adapts them only once this adapter is
# registered (process-wide; SQLAlchemy's psycopg2 dialect happens to do it on its first connection,
# so without this line whether a BINARY(16) -> uuid row could be written depended on what ran before)
psycopg2.extras.register_uuid()  # type: ignore[no-untyped-call]

PAGE = 1000


def _time_text_at_24(value: str | bytes | None, cur: Any) -> Any:
    """A time (or timetz) as psycopg2 reads it, but PostgreSQL's end of a day, 24:00:00, as its text: no
    Python time holds it (psycopg2 gives 00:00, a write-back of which changes the row)."""
    if isinstance(value, str) and value.startswith("24:"):
        return value
    return psycopg2.extensions.PYTIME(value, cur)


def _as_text(value: str | bytes | None, cur: Any) -> Any:
    return value


# What the conflict check's locked read (`read_rows`) gets for the types whose Python value would not write
# back the value it read: the check writes a field the run carries with the locked row's own value (and
# compares it, replicator.compare, which reads these texts). json/jsonb as their text (psycopg2 parses a
# string scalar to a str the write path then takes for JSON text: "abc" came back as abc, invalid JSON; a
# number to a float), an interval as its text (psycopg2 cannot read the session's IntervalStyle iso_8601:
# NotSupportedError), a time of 24:00:00 as its text. Registered on the read's cursor only.
_READ_CASTERS = (
    psycopg2.extensions.new_type((114, 3802), "JSON_TEXT", _as_text),
    psycopg2.extensions.new_type((1186,), "INTERVAL_TEXT", _as_text),
    psycopg2.extensions.new_type((1083, 1266), "TIME_24", _time_text_at_24),
)


class _Identifier(sql.Identifier):
    """A quoted name in a statement that runs with parameters: a % in it is doubled (psycopg2, and
    execute_values's split on the one %s, read a single % as a placeholder: a column "50%s" broke it)."""

    def as_string(self, context: Any) -> str:
        return super().as_string(context).replace("%", "%%")


def _json(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    if len({k for k, _ in pairs}) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"JSON object has the key {k!r} twice: jsonb keeps the last, MariaDB reads the first")
            seen.add(k)


def _ignore(text: str) -> None:
    return None


def _json_number(text: str) -> None:
    """A JSON number jsonb can hold: numeric's 131072 digits before the point and 16383 after. (PostgreSQL's
    own 'value overflows numeric format' names no column.)"""
    if len(text) > 20 or "e" in text or "E" in text:
        n = Decimal(text)
        if n and (n.adjusted() >= 131072 or n.as_tuple().exponent < -16383):  # type: ignore[operator]
            raise ValueError(f"the JSON number {text[:30]} is beyond the range of jsonb's numeric")


def _jsonb_text(tree: Any) -> None:
    """Text jsonb refuses (its errors name no column): NUL, and a surrogate without its pair."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("a JSON string holds \\u0000, which jsonb refuses")
            if any("\ud800" <= c <= "\udfff" for c in item):
                raise ValueError("a JSON string holds a surrogate escape without its pair, which jsonb refuses")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())


def _jsonb(value: Any) -> Any:
    """JSON text into a jsonb column, which keeps one of duplicate keys where MariaDB's functions read the
    first: a document with a duplicate key is a row error, not a silently different document (a json column
    keeps the text as it is). So are a number beyond numeric's range, \\u0000 and a lone surrogate escape,
    which PostgreSQL refuses without naming the column."""
    value = _json(value)
    if isinstance(value, str):
        try:
            tree = json.loads(value, object_pairs_hook=_keys_once, parse_float=_json_number, parse_int=_json_number,
                              parse_constant=_ignore)
        except RecursionError:  # nested deeper than Python parses: PostgreSQL decides
            return value
        if "\\u" in value:
            _jsonb_text(tree)
    return value


def _keys_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    _unique_keys(pairs)
    return dict(pairs)


def _uuid(value: Any) -> Any:
    if isinstance(value, bytes):  # BINARY(16)/UUID from the binlog (16 bytes; older rows may have fewer)
        return uuid.UUID(bytes=value.ljust(16, b"\0"))
    return value


def _inet(value: Any) -> Any:
    """MariaDB INET6 (16 bytes) or INET4 (4 bytes) from the binlog: the address as text. An IPv4-mapped
    INET6 stays an IPv6 address (::ffff:1.2.3.4), as MariaDB shows it."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) not in (4, 16):
            raise ValueError(f"{len(value)} bytes are not an IPv4 (4) or IPv6 (16) address")
        return str(ipaddress.ip_address(bytes(value)))
    return value


_DAY = timedelta(days=1)


def _time_of_day(value: Any) -> Any:
    """A MariaDB TIME (a timedelta, -838:59:59..838:59:59) into a PostgreSQL time: only 00:00:00..24:00:00
    is a time of day. (Sent as an interval, PostgreSQL's cast would wrap 25:00:00 to 01:00:00.)"""
    if isinstance(value, timedelta):
        if not timedelta(0) <= value <= _DAY:
            raise ValueError(f"{value} is not a time of day (00:00:00..24:00:00); map it to an interval")
        if value == _DAY:
            return "24:00:00"
        return (datetime.min + value).time()
    return value


def _bool(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in (0, 1):
            raise ValueError(f"{value} is not a boolean (0 or 1)")
        return bool(value)
    return value


def _text(value: Any) -> Any:
    # the usual value first (a converter runs for every text value of every row): a str, of which only the
    # NUL test below applies. The same result for every value (tests/unit/test_converters_fast.py)
    if value.__class__ is str:
        if "\x00" in value:
            raise ValueError("text contains a NUL character, which PostgreSQL cannot store")
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8")  # strict: invalid UTF-8 is a row error, never mangled
    if isinstance(value, (set, frozenset)):  # MariaDB SET
        return ",".join(sorted(value))
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text contains a NUL character, which PostgreSQL cannot store")
    return value


_combine = datetime.combine
_UTC = timezone.utc


def _timestamptz(value: Any) -> Any:
    if value.__class__ is datetime:  # the usual value, without isinstance's call
        # combine, not replace(tzinfo=): the same datetime (fold kept), at 0.14 against 0.64 us (replace
        # parses keyword arguments); a binlog DATETIME reaches every timestamptz column this way
        return value if value.tzinfo is not None else _combine(value, value.time(), _UTC)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _numeric(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


# a converter -> its whole-column form (PostgresApplier.whole_converters, Applier.convert_rows): the same values
# in C calls for the usual columns, None for any other column (then value by value);
# tests/unit/test_convert_columns.py compares them with the converters
_WHOLE: dict[Converter, Callable[[Sequence[Any]], list[Any] | None]] = {}
_INT_CLASSES = ({int}, {int, type(None)})


def _int_range(name: str, bits: int) -> Converter:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def whole(col: Sequence[Any]) -> list[Any] | None:
        """ints (and NULLs) all within range: the values as they are (`conv` returns each)."""
        if set(map(type, col)) not in _INT_CLASSES:
            return None
        values = list(filter(None, col))  # no NULL and no 0 (in range anyway)
        if values and not (lo <= min(values) and max(values) <= hi):
            return None
        return list(col)

    def conv(value: Any) -> Any:
        if value.__class__ is int:  # the usual value, without the two isinstance calls
            if lo <= value <= hi:
                return value
            raise ValueError(f"{value} is out of range for PostgreSQL {name} ({lo}..{hi})")
        if isinstance(value, int) and not isinstance(value, bool) and not lo <= value <= hi:
            raise ValueError(f"{value} is out of range for PostgreSQL {name} ({lo}..{hi})")
        return value
    _WHOLE[conv] = whole
    return conv


_TZINFO = attrgetter("tzinfo")  # (operator's)
_TIME = datetime.time
_NUMERIC_KEPT = frozenset({Decimal, int, type(None)})


def _timestamptz_column(col: Sequence[Any]) -> list[Any] | None:
    """`_timestamptz` of each, for a column of datetimes only: all naive, made UTC (combine, as the
    converter); all aware, as they are."""
    if set(map(type, col)) != {datetime}:
        return None
    naive = sum(map(is_, map(_TZINFO, col), repeat(None)))
    if naive == len(col):
        return list(map(_combine, col, map(_TIME, col), repeat(_UTC)))
    return list(col) if naive == 0 else None


def _numeric_column(col: Sequence[Any]) -> list[Any] | None:
    """`_numeric` of each: Decimals, ints and NULLs as they are (only a float is converted)."""
    return list(col) if set(map(type, col)) <= _NUMERIC_KEPT else None


def _text_column(col: Sequence[Any]) -> list[Any] | None:
    """`_text` of each: strs without a NUL (and NULLs) as they are."""
    classes = set(map(type, col))
    if classes == {str}:
        return None if "\x00" in "".join(col) else list(col)
    if classes == {str, type(None)}:
        return None if "\x00" in "".join(filter(None, col)) else list(col)
    return None


_CONVERTERS: dict[str, Converter] = {
    "smallint": _int_range("smallint", 16),
    "integer": _int_range("integer", 32),
    "bigint": _int_range("bigint", 64),
    "boolean": _bool,
    "json": _json,
    "jsonb": _jsonb,
    "uuid": _uuid,
    "inet": _inet,
    "time without time zone": _time_of_day,
    "cidr": _inet,
    "text": _text,
    "character varying": _text,
    "character": _text,
    "timestamp with time zone": _timestamptz,
    "numeric": _numeric,
}


_WHOLE.update({_timestamptz: _timestamptz_column, _numeric: _numeric_column, _text: _text_column})


# the shape of tables by OID: one row (OID, digest of each column's name, type OID and modifier) per table; the
# applier's plan (converters, staging tables, the cast check's verdict) holds while it is unchanged
_DIGEST = "md5(string_agg(attname || ' ' || atttypid || ' ' || atttypmod, ',' ORDER BY attnum))"
_SHAPES_SQL = (f"SELECT attrelid, {_DIGEST} "
               "FROM pg_attribute WHERE attrelid = ANY(%s::oid[]) AND attnum > 0 AND NOT attisdropped "
               "GROUP BY attrelid")
# one table read at load_types: a row per column (OID, whether the apply account may SELECT from it -- the
# staging table is made AS SELECT ... FROM the target --, the digest `commit` confirms, the column's name and
# type); a table without columns gives one row of NULL name
_PLAN_SQL = ("SELECT c.oid, has_table_privilege(c.oid, 'SELECT'), s.digest, a.attname, "
             "format_type(a.atttypid, a.atttypmod) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             f"CROSS JOIN LATERAL (SELECT {_DIGEST} AS digest FROM pg_attribute "
             "WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) s "
             "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
             "WHERE n.nspname = %s AND c.relname = %s ORDER BY a.attnum")

# the columns of the unique indexes, foreign keys, check and exclusion constraints of the tables load_types reads
# (by OID), and of the foreign keys that reference them: a row error names its constraint in
# `diag.constraint_name` (with the table's schema and name) whatever the server's lc_messages, while the DETAIL
# line that spells the columns out is translated. One row per constraint: (schema, table, name, its columns,
# the referenced table's schema and name and its columns -- NULL but for a foreign key); an index column that
# is an expression is its text
_CONSTRAINTS_SQL = """
SELECT n.nspname, c.relname, ic.relname,
       string_agg(CASE WHEN k.attnum > 0 THEN a.attname::text ELSE pg_get_indexdef(i.indexrelid, k.n::int, false) END,
                  ', ' ORDER BY k.n), NULL::text, NULL::text, NULL::text
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisunique AND i.indrelid = ANY(%(oids)s::oid[]) AND k.n <= i.indnkeyatts
GROUP BY n.nspname, c.relname, ic.relname
UNION ALL
SELECT n.nspname, c.relname, con.conname,
       (SELECT string_agg(a.attname::text, ', ' ORDER BY k.n) FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
       pn.nspname::text, pc.relname::text,
       (SELECT string_agg(a.attname::text, ', ' ORDER BY k.n) FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class pc ON pc.oid = con.confrelid LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE con.contype IN ('f', 'c', 'x')
  AND (con.conrelid = ANY(%(oids)s::oid[]) OR con.confrelid = ANY(%(oids)s::oid[]))
"""
# the tables (by OID) with an enabled BEFORE ROW INSERT or UPDATE trigger that may skip the row: its function
# returns NULL (or OLD, NULL in an INSERT) somewhere in its text, or is not PL/pgSQL, so its text says nothing
# (an SQL function cannot be a trigger). Such a row is not written and no error is raised; on these tables
# the applier counts what each statement wrote (`PostgresApplier._skipping`). A trigger that only sets NEW's
# columns (an `updated_at`) returns NEW and costs nothing.
_SKIPPING_SQL = r"""
SELECT DISTINCT t.tgrelid FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')
  AND t.tgtype & 3 = 3 AND t.tgtype & 20 <> 0
  AND (l.lanname <> 'plpgsql' OR p.prosrc ~* '\mreturn\s+(null|old)\M')
"""

# the SQLSTATEs whose diag names a constraint: unique, foreign key, check, exclusion
_CONSTRAINT_ERRORS = ("23505", "23503", "23514", "23P01")


class PostgresApplier(Applier):
    kind = "postgresql"
    reports_waits = True  # every statement goes through _run
    whole_converters = _WHOLE

    def __init__(self, conn: Connection, stream: str):
        super().__init__(conn, stream)
        self.db: Any = None
        self.schema = _Identifier(conn.state_schema)
        self._sql_cache: dict[tuple[Any, ...], Any] = {}
        # runs of at least this many rows go through COPY + one merge statement (pgcopy.py); None: never
        self.copy_min_rows: int | None = COPY_MIN_ROWS
        # staging tables of this session, by (table, columns): temporary, ON COMMIT DELETE ROWS
        self._stages: dict[tuple[TableRef, tuple[str, ...]], str] = {}
        self._stages_created: list[tuple[TableRef, tuple[str, ...]]] = []  # in the open transaction
        self._stages_filled: set[str] = set()  # written in the open transaction: emptied before reuse
        self._encoders: dict[tuple[TableRef, tuple[str, ...]], RowEncoder] = {}
        self._stage_seq = 0
        self._may_stage = False  # the apply account may create temporary tables (read at connect)
        self._stageable: set[TableRef] = set()  # tables it may SELECT from (read by load_types)
        self._shapes: dict[TableRef, tuple[int, str]] = {}  # (OID, digest of _SHAPES_SQL), read by load_types
        self._ckpt_sql: str | None = None
        # (schema, table, constraint) -> (its columns, the referenced table and its columns for a foreign key):
        # read by load_types (error_column names a violated constraint's columns from it)
        self._constraints: dict[tuple[str, str, str], tuple[str, TableRef | None, str | None]] = {}
        # tables with a BEFORE ROW trigger that may skip a row (_SKIPPING_SQL, read by load_types): what each
        # statement writes there is counted, and a row not written is a row error (RowsSkipped)
        self._skipping: set[TableRef] = set()

    def connect(self) -> None:
        self._stages.clear()  # a new session has none of the old one's temporary tables
        self._end_transaction(False)
        self.db = pg_connect(self.conn, self.conn.apply)
        self.db.autocommit = False
        t = self.conn.timeouts
        # an application's row lock or a runaway statement fails our statement (retried with
        # back-off) instead of holding the apply thread until the watchdog kills the process
        self._run(self._session, int(t.lock_seconds * 1000), int(t.statement_seconds * 1000))
        self.report_up(1)

    def _session(self, lock_ms: int, statement_ms: int) -> None:
        with self.db.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false), "
                        "has_database_privilege(current_database(), 'TEMPORARY')",
                        (f"{lock_ms}ms", f"{statement_ms}ms"))
            # PUBLIC may create temporary tables unless an administrator revoked it: then no COPY path
            self._may_stage = bool(cur.fetchone()[2])
        self.db.commit()

    def interrupt(self) -> None:
        """From another thread: break the statement this session runs off (a stop must not wait for
        it). The socket is shut down rather than a cancel request sent: a cancel opens a new
        connection, which a hung server would hold as well. The owning thread sees a lost connection."""
        db = self.db
        if db is None or db.closed:
            return
        try:
            sock = socket.fromfd(db.fileno(), socket.AF_INET, socket.SOCK_STREAM)  # a dup of the fd
        except (psycopg2.Error, OSError):
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            finally:
                self.db = None
                self.report_up(0)

    def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        gate = self.io_gate
        if gate is not None:
            gate.lend()  # the statements below wait on the server with the GIL released: the reader may decode
        try:
            return fn(*args)
        except psycopg2.Error as exc:
            cls = pg_error_class(exc)
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if cls == CONNECTION:
                self.report_up(0)
            if cls in RETRIABLE:
                where = f" on {self.current_table}" if cls == TIMEOUT and self.current_table else ""
                raise RetriableError(f"{self.conn.describe()}: {cls}{where} (SQLSTATE {exc.pgcode or '-'}): "
                                     f"{text}") from None
            if cls == ACCESS:
                raise ConfigError(f"{self.conn.describe()}: the apply account lacks a privilege "
                                  f"(SQLSTATE {exc.pgcode}): {text}") from None
            raise
        finally:
            if gate is not None:
                gate.reclaim()

    def lock(self, fail_fast: bool) -> None:
        def q() -> bool:
            with self.db.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                            (session_lock_name("postgresql", self.conn.state_schema, self.stream),))
                got: bool = cur.fetchone()[0]
            self.db.commit()
            self._end_transaction(True)
            return got
        if not self._run(q):
            self.lock_busy(fail_fast)

    def read_checkpoint(self) -> Position | None:
        def q() -> Any:
            with self.db.cursor() as cur:
                cur.execute(sql.SQL("SELECT position FROM {}.checkpoint WHERE stream = %s").format(self.schema),
                            (self.stream,))
                row = cur.fetchone()
            self._end_transaction(False)
            self.db.rollback()
            return row
        row = self._run(q)
        return position_from_json(row[0]) if row else None

    def begin(self) -> None:
        self.written.clear()

        def q() -> None:
            with self.db.cursor() as cur:
                cur.execute("SELECT pg_logical_emit_message(true, %s, %s)", (MESSAGE_PREFIX, self.stream))
        self._run(q)
        self.tagged = True

    def commit(self, position: Position, commit_time: Any) -> None:
        # the tables written in this transaction, by OID, with the shape digest load_types read
        shapes = [(t, self._shapes[t]) for t in self.written if t in self._shapes]

        def q() -> list[TableRef]:
            with self.db.cursor() as cur:
                if self._ckpt_sql is None:
                    self._ckpt_sql = sql.SQL(
                        "INSERT INTO {}.checkpoint AS c (stream, position, txn_seq, source_commit_time, updated_at) "
                        "VALUES (%s, %s, 1, %s, now()) ON CONFLICT (stream) DO UPDATE SET "
                        "position = EXCLUDED.position, txn_seq = c.txn_seq + 1, "
                        # no source commit time (a keepalive moved the position): the last transaction's stays
                        "source_commit_time = COALESCE(EXCLUDED.source_commit_time, c.source_commit_time), "
                        "updated_at = now()"
                    ).format(self.schema).as_string(self.db)
                params: tuple[Any, ...] = (self.stream, position.to_json(), commit_time)
                if not shapes:
                    cur.execute(self._ckpt_sql, params)
                else:
                    # the written tables' shape, in the same round trip: an ALTER ... TYPE committed before our
                    # write shows here (it changed the column under it); one after it waits for our commit (its
                    # ACCESS EXCLUSIVE lock conflicts with the ROW EXCLUSIVE one our writes hold)
                    cur.execute(self._ckpt_sql + "; " + _SHAPES_SQL, (*params, [oid for _t, (oid, _d) in shapes]))
                    now = dict(cur.fetchall())
                    changed = [t for t, (oid, digest) in shapes if now.get(oid) != digest]
                    if changed:
                        return changed
            self.db.commit()
            self._end_transaction(True)
            return []
        changed = self._run(q)
        if changed:
            self.shape_moved(changed)

    def commit_untracked(self) -> None:
        """Commit the open transaction without touching the checkpoint (state rows, repairs, `dlq retry`): the
        mapped tables written in it are confirmed in their planned shape first, as `commit` does."""
        shapes = [(t, self._shapes[t]) for t in self.written if t in self._shapes]

        def q() -> list[TableRef]:
            if shapes:
                with self.db.cursor() as cur:
                    cur.execute(_SHAPES_SQL, ([oid for _t, (oid, _d) in shapes],))
                    now = dict(cur.fetchall())
                changed = [t for t, (oid, digest) in shapes if now.get(oid) != digest]
                if changed:
                    return changed
            self.db.commit()
            self._end_transaction(True)
            return []
        changed = self._run(q)
        if changed:
            self.shape_moved(changed)

    def rollback(self) -> None:
        self._end_transaction(False)
        if self.db is not None and not self.db.closed:
            try:
                self.db.rollback()
            except psycopg2.Error:
                pass

    def _end_transaction(self, committed: bool) -> None:
        """A staging table created in a transaction that rolls back is gone; ON COMMIT DELETE ROWS
        empties the others either way."""
        self.tagged = False
        self.written.clear()
        if not committed:
            for key in self._stages_created:
                self._stages.pop(key, None)
        self._stages_created.clear()
        self._stages_filled.clear()

    def load_types(self, tables: Sequence[TableRef]) -> None:
        self.not_tagged()
        self._run(self._load_types, tables)

    def _load_types(self, tables: Sequence[TableRef]) -> None:
        with self.db.cursor() as cur:
            for t in tables:
                cur.execute(
                    "SELECT column_name, data_type, is_nullable = 'NO' AND column_default IS NULL "
                    "AND is_identity = 'NO' AND is_generated = 'NEVER', numeric_scale, datetime_precision, "
                    "collation_name "
                    "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s", (t.schema, t.name))
                rows = cur.fetchall()
                # the staging table needs SELECT on the target (the documented grants give it); without it the
                # table's runs keep execute_values. The shape `commit` confirms: (OID, digest), and the types' names
                cur.execute(_PLAN_SQL, (t.schema, t.name))
                plan = cur.fetchall()
                if plan and plan[0][1]:
                    self._stageable.add(t)
                else:
                    self._stageable.discard(t)
                if plan and plan[0][3] is not None:
                    self._shapes[t] = (plan[0][0], plan[0][2])
                    self.planned[t] = {name: ty for _oid, _readable, _digest, name, ty in plan}
                else:
                    self._shapes.pop(t, None)
                types = {r[0]: r[1] for r in rows}
                self._types[t] = types
                self._required[t] = frozenset(r[0] for r in rows if r[2])
                self._columns[t] = {c: ColumnInfo(c, ty, "postgresql", scale, precision, coll)
                                    for c, ty, _, scale, precision, coll in rows}
                self._converters[t] = {c: _CONVERTERS[ty] for c, ty in types.items() if ty in _CONVERTERS}
            self._read_constraints(cur, tables)
        self._encoders.clear()
        self._stages.clear()  # made from the old column types; new ones get new names
        self._end_transaction(False)
        self.db.rollback()

    def _read_constraints(self, cur: Any, tables: Sequence[TableRef]) -> None:
        """The constraints of `tables` and the foreign keys referencing them (_CONSTRAINTS_SQL), in one read; and
        which of them have a trigger that may skip a row (_SKIPPING_SQL)."""
        loaded = set(tables)
        self._constraints = {k: v for k, v in self._constraints.items()
                             if TableRef(k[0], k[1]) not in loaded and v[1] not in loaded}
        self._skipping -= loaded
        oids = [self._shapes[t][0] for t in tables if t in self._shapes]
        if not oids:
            return
        cur.execute(_CONSTRAINTS_SQL, {"oids": oids})
        for schema, table, name, columns, pschema, ptable, pcolumns in cur.fetchall():
            if columns:
                parent = TableRef(pschema, ptable) if ptable is not None else None
                self._constraints[(schema, table, name)] = (columns, parent, pcolumns)
        cur.execute(_SKIPPING_SQL, (oids,))
        skipping = {oid for (oid,) in cur.fetchall()}
        self._skipping |= {t for t in tables if t in self._shapes and self._shapes[t][0] in skipping}

    def _table(self, t: TableRef) -> Any:
        return _Identifier(t.schema, t.name)


    def _upsert(self, run: Run, rows: list[TargetChange]) -> int:
        if self.is_partial(run):
            rows = self._update_existing(run, rows)
            if not rows:
                return 0
        count_missing = run.op.value == "update"
        # a table whose trigger may skip a row: every row written comes back, the rest is a row error. (DO
        # NOTHING returns only the rows it inserted: an existing row is skipped on purpose there, so nothing
        # tells a trigger's skip from it.)
        counted = bool(run.updates) and run.table in self._skipping
        fetch = count_missing or counted
        key = ("upsert", run.table, run.columns, run.key_columns, fetch, run.insert_only)
        stmt = self._sql_cache.get(key)
        if stmt is None:
            cols = sql.SQL(", ").join(map(_Identifier, run.columns))
            updates = run.updates
            conflict = sql.SQL(", ").join(map(_Identifier, run.key_columns))
            action: sql.Composable
            if updates:
                action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(_Identifier(c)) for c in updates)
            else:
                action = sql.SQL("DO NOTHING")
            stmt = sql.SQL("INSERT INTO {} AS t ({}) VALUES %s ON CONFLICT ({}) {}").format(
                self._table(run.table), cols, conflict, action)
            if fetch:
                stmt += sql.SQL(" RETURNING (xmax = 0)")
            stmt = stmt.as_string(self.db)
            self._sql_cache[key] = stmt
        values = self.convert_rows(run, rows)
        copied = self._copy_text(run, run.columns, values)
        if copied is not None:
            return self._run(self._merge, run, copied, count_missing, len(values) if counted else None)

        def q() -> int:
            with self.db.cursor() as cur:
                result = psycopg2.extras.execute_values(cur, stmt, values, page_size=PAGE, fetch=fetch)
            if counted and len(result) < len(values):
                raise RowsSkipped(run.table, len(values), len(result))
            return sum(1 for (inserted,) in result if inserted) if count_missing else 0
        return self._run(q)

    # -- checked updates of existing rows (the conflict check's narrowed runs)

    def updates_at_once(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str],
                        rows: int) -> bool:
        """Any number of rows, when every column has a type its VALUES entry can be cast to (`_pg_type`:
        an enum, a composite or an array has none that its bare catalog name would give)."""
        types = self._types.get(table, {})
        for c in columns:
            t = types.get(c)
            if t is None or t == "ARRAY" or t == "USER-DEFINED":
                return False
        return True

    def _update_rows(self, run: Run, rows: list[TargetChange]) -> None:
        """One `UPDATE t SET c = v.c FROM (VALUES ...) v WHERE t.k = v.k` for a run of existing, locked rows
        (`Run.exists`), PAGE rows a statement. Each value is cast to its column's type without a length
        (`_pg_type`), so the assignment coerces it as an INSERT's value is (a too-long text is the same
        error, not cut). The planner takes a join with a VALUES list of a few dozen rows as a hash join over
        a seq scan of the whole table (EXPLAIN, the bench's 10,000 rows and 100 keys: 13.9 us a row on the
        server, against 5.6 for the upsert it replaces, which probes the key's index per row), so hash and
        merge joins are off for this statement alone (SET LOCAL, set back to the session's own value in
        the same round trip; a rollback undoes it too): a nested loop over the key's index, 4.8 us a row."""
        updates = run.updates
        if not updates:
            return
        values = self.convert_rows(run, rows)
        # a table whose trigger may skip a row: each statement's count is its own (no SET LOCAL around it) and
        # a row it did not write, though it exists and is locked, is a row error
        counted = run.table in self._skipping
        copied = self._copy_text(run, run.columns, values)
        if copied is not None:  # a large run: COPY into the staging table, as an upsert's (same sizes, same text)
            done = self._run(self._merge_update, run, copied)
            if counted and done < len(values):
                raise RowsSkipped(run.table, len(values), done)
            return
        if not self.updates_at_once(run.table, run.key_columns, run.columns, len(rows)):
            if not counted:
                super()._update_rows(run, rows)
                return
            done = sum(1 for r in rows if self.update_by_key(run.table, run.key_columns, r.key,
                                                             {c: r.values[c] for c in updates}))
            if done < len(rows):
                raise RowsSkipped(run.table, len(rows), done)
            return
        key = ("update", run.table, run.columns, run.key_columns, run.insert_only, counted)
        types = self._types.get(run.table, {})
        cached = self._sql_cache.get(key)
        if cached is None or cached[0] is not types:  # (load_types makes a new dict: new casts)
            ident = sql.Identifier  # (not _Identifier: this text runs without parameters, a % stays one)
            head = sql.SQL("{}UPDATE {} AS t SET {} FROM (VALUES ").format(
                sql.SQL("" if counted else "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "),
                sql.Identifier(run.table.schema, run.table.name),
                sql.SQL(", ").join(sql.SQL("{0} = v.{0}").format(ident(c)) for c in updates))
            tail = sql.SQL(") AS v ({}) WHERE {}{}").format(
                sql.SQL(", ").join(map(ident, run.columns)),
                sql.SQL(" AND ").join(sql.SQL("t.{0} = v.{0}").format(ident(c)) for c in run.key_columns),
                sql.SQL("" if counted else "; SET LOCAL enable_hashjoin TO DEFAULT; "
                                           "SET LOCAL enable_mergejoin TO DEFAULT"))
            # (%s) in parentheses: `-32768::smallint` would be -(32768::smallint), out of range
            template = "(" + ", ".join(f"(%s)::{_pg_type(types[c])}" for c in run.columns) + ")"
            enc = psycopg2.extensions.encodings[self.db.encoding]  # (what mogrify's bytes are in)
            cached = self._sql_cache[key] = (types, head.as_string(self.db).encode(enc),
                                             tail.as_string(self.db).encode(enc), template)
        _, head_b, tail_b, template = cached

        def q() -> int:
            done = 0
            with self.db.cursor() as cur:
                mogrify = cur.mogrify
                for i in range(0, len(values), PAGE):
                    cur.execute(head_b + b",".join([mogrify(template, row) for row in values[i:i + PAGE]]) + tail_b)
                    done += cur.rowcount
            return done
        done = self._run(q)
        if counted and done < len(values):
            raise RowsSkipped(run.table, len(values), done)

    # -- the optimistic conditional write of a checked update run (conflicts/detect.py `_Check._optimistic`)

    def exact_kind(self, table: TableRef, column: str) -> str | None:
        """Applier.exact_kind: the types whose `IS NOT DISTINCT FROM` with a value cast to the column's type
        (`_pg_type`, as `_update_rows` casts) is exact -- integers, numeric (1.0 = 1.00 is the same number to
        the check too), boolean, date, timestamp (naive values only: a cast to timestamp drops an offset),
        timestamptz (instants), time (never 24:00:00, read as text), text and varchar compared under
        COLLATE "C" (byte-wise, whatever the column's collation; a nondeterministic ICU collation would call
        'a' and 'A' equal). Not character (blank-padded), floats, json, arrays, enums, bytea, interval."""
        return _EXACT_KINDS.get(self._types.get(table, {}).get(column, ""))

    def update_unchanged(self, run: Run, rows: list[TargetChange],
                         compared: tuple[str, ...]) -> list[TargetChange] | None:
        """Applier.update_unchanged: `UPDATE t SET c = v.xN FROM (VALUES (i, key, new..., old...)) v WHERE
        t.k = v.x0 AND t.k IN (keys) AND t.c IS NOT DISTINCT FROM v.oN ... RETURNING v.i`, PAGE rows a
        statement; the rows not returned go to the full check. The VALUES columns are cast as
        `_update_rows` casts them, the old ones like the new. `t.k IN (keys)` in place of `_update_rows`'s SET
        LOCAL join settings (which would have to be set back after the RETURNING, a second statement): the
        planner then reads the run's rows by the key's index and joins those few, instead of a hash join
        over a scan of the whole table. A large run (the COPY path's sizes): `_merge_unchanged`."""
        got = self.unchanged_inputs(run, rows, compared)
        if got is None:
            return None
        values, olds = got
        copied = self._copy_unchanged(run, values, olds, compared)
        if copied is not None:  # a large run: COPY into a staging table, as `_update_rows`'s
            return self._unwritten(run, rows, self._run(self._merge_unchanged, run, compared, copied))
        key = ("update_unchanged", run.table, run.columns, run.key_columns, run.insert_only, compared)
        types = self._types.get(run.table, {})
        cached = self._sql_cache.get(key)
        if cached is None or cached[0] is not types:
            ident = sql.Identifier  # (not _Identifier: the text runs without parameters)
            pos = {c: i for i, c in enumerate(run.columns)}
            cond: list[sql.Composable] = [_key_condition(types, c, f"x{pos[c]}", "v") for c in run.key_columns]
            cond += [_unchanged_condition(types, c, f"o{j}", "v") for j, c in enumerate(compared)]
            head = sql.SQL("UPDATE {} AS t SET {} FROM (VALUES ").format(
                sql.Identifier(run.table.schema, run.table.name),
                sql.SQL(", ").join(sql.SQL("{} = v.{}").format(ident(c), ident(f"x{pos[c]}")) for c in run.updates))
            names = sql.SQL(", ").join(ident(n) for n in (
                "i", *(f"x{i}" for i in range(len(run.columns))), *(f"o{j}" for j in range(len(compared)))))
            mid = sql.SQL(") AS v ({}) WHERE {}").format(names, sql.SQL(" AND ").join(cond))
            template = "(%s, " + ", ".join(f"(%s)::{_pg_type(types[c])}" for c in (*run.columns, *compared)) + ")"
            ins = [(sql.SQL(" AND t.{} IN (").format(ident(c)).as_string(self.db), f"(%s)::{_pg_type(types[c])}",
                    pos[c]) for c in run.key_columns]
            enc = psycopg2.extensions.encodings[self.db.encoding]
            cached = self._sql_cache[key] = (types, head.as_string(self.db).encode(enc),
                                             mid.as_string(self.db).encode(enc), template,
                                             [(a.encode(enc), b, i) for a, b, i in ins])
        _, head_b, mid_b, template, ins_b = cached

        def q() -> set[int]:
            written: set[int] = set()
            with self.db.cursor() as cur:
                mogrify = cur.mogrify
                for p in range(0, len(values), PAGE):
                    page = range(p, min(p + PAGE, len(values)))
                    parts = [head_b, b",".join([mogrify(template, (i, *values[i], *olds[i])) for i in page]), mid_b]
                    for prefix, one, i in ins_b:
                        parts += [prefix, b",".join(list(dict.fromkeys(mogrify(one, (values[r][i],)) for r in page))),
                                  b")"]
                    cur.execute(b"".join(parts) + b" RETURNING v.i")
                    written.update(i for (i,) in cur.fetchall())
            return written
        return self._unwritten(run, rows, self._run(q))

    def _unwritten(self, run: Run, rows: list[TargetChange], written: set[int]) -> list[TargetChange]:
        """The rows `update_unchanged` did not write, by their index; the written ones counted."""
        if written:
            metrics.rows_applied.labels(self.direction, str(run.table), "update").inc(len(written))
        if len(written) == len(rows):
            return []
        return [r for i, r in enumerate(rows) if i not in written]

    def _copy_unchanged(self, run: Run, values: list[list[Any]], olds: list[list[Any]],
                        compared: tuple[str, ...]) -> str | None:
        """`_copy_text` for `update_unchanged`: the rows as COPY text of (index, run.columns..., old values...),
        when the run is large enough for COPY to pay off (psycopg2's mogrify of a 1,000-row VALUES list cost
        13 CPU us a row in bench/detect_cost.py --server) and every value has an exact COPY form."""
        if self.copy_min_rows is None or len(values) < self.copy_min_rows or not self._may_stage \
                or run.table not in self._stageable:
            return None
        key = (run.table, ("#unchanged", *run.columns, "#old", *compared))
        encoder = self._encoders.get(key)
        if encoder is None:
            types = self._types.get(run.table, {})
            if any(c not in types for c in (*run.columns, *compared)):
                return None
            encoder = self._encoders[key] = RowEncoder(["integer", *(types[c] for c in (*run.columns, *compared))])
        try:
            # column by column (RowEncoder.columns): the run's values of a column share a class
            return encoder.columns([range(len(values)), *zip(*values), *zip(*olds)])
        except Unsupported:
            return None

    def _merge_unchanged(self, run: Run, compared: tuple[str, ...], text: str) -> set[int]:
        """`update_unchanged` of a large run: COPY into a staging table of (i, x0.., o0..) typed as the target's
        columns (`_stage`'s `select`), then one `UPDATE t SET c = s.xN FROM pg_temp.stage s WHERE t.k = s.x0 AND
        t.c IS NOT DISTINCT FROM s.oN ... RETURNING s.i`."""
        ident = _Identifier
        pos = {c: i for i, c in enumerate(run.columns)}
        select = sql.SQL(", ").join([sql.SQL("0::integer AS i")]
                                    + [sql.SQL("{} AS {}").format(ident(c), ident(f"x{i}")) for i, c in enumerate(run.columns)]
                                    + [sql.SQL("{} AS {}").format(ident(c), ident(f"o{j}")) for j, c in enumerate(compared)])
        columns = ("#unchanged", *run.columns, "#old", *compared)
        with self.db.cursor() as cur:
            name = self._stage(cur, run.table, columns, select)
            cur.copy_expert(f"COPY pg_temp.{pg_ident(name)} FROM STDIN", io.StringIO(text))
            key = ("merge_unchanged", name, run.table, run.columns, run.key_columns, run.insert_only, compared)
            stmt = self._sql_cache.get(key)
            if stmt is None:
                stmt = sql.SQL("UPDATE {} AS t SET {} FROM pg_temp.{} AS s WHERE {} RETURNING s.i").format(
                    self._table(run.table),
                    sql.SQL(", ").join(sql.SQL("{} = s.{}").format(ident(c), ident(f"x{pos[c]}")) for c in run.updates),
                    ident(name),
                    sql.SQL(" AND ").join(
                        [_key_condition(self._types.get(run.table, {}), c, f"x{pos[c]}", "s", _Identifier)
                         for c in run.key_columns]
                        + [_unchanged_condition(self._types.get(run.table, {}), c, f"o{j}", "s", _Identifier)
                           for j, c in enumerate(compared)])
                ).as_string(self.db)
                self._sql_cache[key] = stmt
            cur.execute(stmt, ())
            return {i for (i,) in cur.fetchall()}

    def _merge_update(self, run: Run, text: str) -> int:
        """`_update_rows` of a large run: its rows COPied into the staging table (the target's own column
        types: no casts), then one `UPDATE t SET c = s.c FROM pg_temp.stage s WHERE t.k = s.k`; the rows
        it updated."""
        with self.db.cursor() as cur:
            name = self._fill_stage(cur, run.table, run.columns, text)
            key = ("merge_update", name, run.table, run.columns, run.key_columns, run.insert_only)
            stmt = self._sql_cache.get(key)
            if stmt is None:
                stmt = sql.SQL("UPDATE {} AS t SET {} FROM pg_temp.{} AS s WHERE {}").format(
                    self._table(run.table),
                    sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(_Identifier(c)) for c in run.updates),
                    _Identifier(name),
                    sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(_Identifier(c)) for c in run.key_columns)
                ).as_string(self.db)
                self._sql_cache[key] = stmt
            cur.execute(stmt, ())
            rowcount: int = cur.rowcount
            return rowcount

    # -- the COPY path for large runs (pgcopy.py): COPY into a staging table, then one statement

    def _copy_text(self, run: Run, columns: tuple[str, ...], values: list[list[Any]]) -> str | None:
        """The run's rows as COPY text when the run is large enough for COPY to pay off and every value
        has an exact COPY form; None: execute_values."""
        if self.copy_min_rows is None or len(values) < self.copy_min_rows or not self._may_stage \
                or run.table not in self._stageable:
            return None
        key = (run.table, columns)
        encoder = self._encoders.get(key)
        if encoder is None:
            types = self._types.get(run.table, {})
            if any(c not in types for c in columns):
                return None  # a column the catalog did not list: let the server say so, the usual way
            encoder = self._encoders[key] = RowEncoder([types[c] for c in columns])
        try:
            return encoder.rows(values)
        except Unsupported:
            return None

    def _stage(self, cur: Any, table: TableRef, columns: tuple[str, ...], select: sql.Composable | None = None) -> str:
        """The session's staging table for these columns of `table`, empty; created on first use. Its
        columns are the target's (types, typmods, domains), without constraints or defaults. `select`: its
        select list instead of `columns` (`_merge_unchanged`'s; `columns` then only names the shape)."""
        key = (table, columns)
        name = self._stages.get(key)
        create = sql.SQL("CREATE TEMPORARY TABLE {}{} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA")
        listed = select if select is not None else sql.SQL(", ").join(map(_Identifier, columns))
        if name is None:
            # never a name used before in this session: a table made in a rolled-back transaction is gone,
            # one made from older column types (load_types again) stays, unused
            self._stage_seq += 1
            name = f"replicator_stage_{self._stage_seq}"
            cur.execute(create.format(sql.SQL(""), sql.Identifier(name), listed, self._table(table)), ())
            self._stages[key] = name
            self._stages_created.append(key)
        elif key in self._stages_created:
            # made in this transaction: a ROLLBACK TO SAVEPOINT since (the dead-letter queue applies a batch
            # inside a savepoint and rolls back to it when a row fails) may have undone the CREATE
            cur.execute(create.format(sql.SQL("IF NOT EXISTS "), sql.Identifier(name), listed, self._table(table)), ())
        if name in self._stages_filled:
            # written earlier in this transaction. (A savepoint rolled back since cannot leave rows that this
            # set does not know about: at the start of a transaction the table is empty, ON COMMIT DELETE ROWS)
            cur.execute(sql.SQL("TRUNCATE pg_temp.{}").format(sql.Identifier(name)))
        self._stages_filled.add(name)
        return name

    def _fill_stage(self, cur: Any, table: TableRef, columns: tuple[str, ...], text: str) -> str:
        name = self._stage(cur, table, columns)
        # no column list: the staging table has exactly these columns, in this order
        cur.copy_expert(f"COPY pg_temp.{pg_ident(name)} FROM STDIN", io.StringIO(text))
        return name

    def _merge(self, run: Run, text: str, count_missing: bool, counted: int | None = None) -> int:
        """`_upsert` of a large run; `counted`: the run's row count, when every row must come back (`_upsert`)."""
        fetch = count_missing or counted is not None
        with self.db.cursor() as cur:
            name = self._fill_stage(cur, run.table, run.columns, text)
            key = ("merge", name, run.table, run.columns, run.key_columns, fetch, run.insert_only)
            stmt = self._sql_cache.get(key)
            if stmt is None:
                cols = sql.SQL(", ").join(map(_Identifier, run.columns))
                conflict = sql.SQL(", ").join(map(_Identifier, run.key_columns))
                action: sql.Composable = sql.SQL("DO NOTHING")
                if run.updates:
                    action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(_Identifier(c)) for c in run.updates)
                # a temporary table is read in the order it was written, the run's order (as execute_values)
                stmt = sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM pg_temp.{} ON CONFLICT ({}) {}").format(
                    self._table(run.table), cols, cols, _Identifier(name), conflict, action)
                if fetch:
                    stmt += sql.SQL(" RETURNING (xmax = 0)")
                stmt = stmt.as_string(self.db)
                self._sql_cache[key] = stmt
            cur.execute(stmt, ())
            result = cur.fetchall() if fetch else []
            if counted is not None and len(result) < counted:
                raise RowsSkipped(run.table, counted, len(result))
            return sum(1 for (inserted,) in result if inserted) if count_missing else 0

    def _delete(self, run: Run, rows: list[TargetChange]) -> int:
        key = ("delete", run.table, run.key_columns)
        stmt = self._sql_cache.get(key)
        if stmt is None:
            types = self._types.get(run.table, {})
            names = sql.SQL(", ").join(map(_Identifier, run.key_columns))
            cond = sql.SQL(" AND ").join(
                sql.SQL("t.{0} = v.{0}::{1}").format(_Identifier(c), sql.SQL(_pg_type(types.get(c, "text"))))
                for c in run.key_columns)
            stmt = sql.SQL("DELETE FROM {} AS t USING (VALUES %s) AS v ({}) WHERE {} RETURNING 1").format(
                self._table(run.table), names, cond).as_string(self.db)
            self._sql_cache[key] = stmt
        # deletes stay here whatever the run's size: DELETE ... USING a staging table was slower at every
        # size measured (0.3-0.8x, bench/pg_apply_paths.py): the planner knows the VALUES list's row
        # count, not the fresh staging table's
        keys = [self.convert_key(run, r.key) for r in rows]

        def q() -> int:
            with self.db.cursor() as cur:
                return len(psycopg2.extras.execute_values(cur, stmt, keys, page_size=PAGE, fetch=True))
        return self._run(q)

    def quote_table(self, table: TableRef) -> str:
        return f"{_ident(table.schema)}.{_ident(table.name)}"

    def quote_col(self, column: str) -> str:
        return _ident(column)

    def locked_query(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Applier.locked_query (`read_rows`), with the values of json/jsonb, interval and a time of 24:00:00
        as their text (`_READ_CASTERS`): what the check writes back must be what it read."""
        def q() -> list[tuple[Any, ...]]:
            with self.db.cursor() as cur:
                for caster in _READ_CASTERS:
                    psycopg2.extensions.register_type(caster, cur)
                cur.execute(text, list(params))
                rows: list[tuple[Any, ...]] = cur.fetchall()
                return rows
        return self._run(q)

    def query(self, sql_text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        def q() -> list[tuple[Any, ...]]:
            with self.db.cursor() as cur:
                cur.execute(sql_text, list(params))
                return cur.fetchall() if cur.description else []
        return self._run(q)

    def execute(self, sql_text: str, params: Sequence[Any]) -> int:
        def q() -> int:
            with self.db.cursor() as cur:
                cur.execute(sql_text, list(params))
                rowcount: int = cur.rowcount
                return rowcount
        return self._run(q)

    def _truncate(self, table: TableRef) -> None:
        def q() -> None:
            with self.db.cursor() as cur:
                cur.execute(sql.SQL("TRUNCATE {}").format(self._table(table)), ())  # () : %% is read as %
        self._run(q)

    def describe_error(self, exc: Exception) -> str:
        """The server's first line; for a unique or foreign key violation (23505, 23503) with its DETAIL, which
        names the key's columns and value and, for a foreign key, the other table."""
        text = super().describe_error(exc)
        diag = getattr(exc, "diag", None)
        detail = getattr(diag, "message_detail", None) if diag else None
        if getattr(exc, "pgcode", None) in ("23505", "23503") and detail:
            return f"{text} ({detail.strip()})"
        return text

    def error_column(self, exc: Exception, change: TargetChange | None = None) -> str | None:
        diag = getattr(exc, "diag", None)
        column = getattr(diag, "column_name", None) if diag else None
        if column is None and getattr(exc, "pgcode", None) in _CONSTRAINT_ERRORS:
            column = self._constraint_columns(diag, change)
        if column is None and getattr(exc, "pgcode", None) in ("23505", "23503"):
            # a constraint load_types did not see (added since): the DETAIL line, in English only
            # 'Key (email)=(a@x) already exists.', 'Key (p)=(99) is not present in table "fkp".'
            m = _DETAIL_KEY.match(getattr(diag, "message_detail", None) or "")
            if m:
                return m.group(1)
        if column is None and change is not None:
            column = _quoted_column(getattr(diag, "message_primary", None) or str(exc), change)
        return column

    def _constraint_columns(self, diag: Any, change: TargetChange | None) -> str | None:
        """The columns of the constraint `diag` names (schema_name, table_name, constraint_name: set whatever the
        server's language), as load_types read them. A foreign key's error names the referencing table: the
        columns are the referencing ones when the row written was there (an insert or update of a child), the
        referenced ones when it was the parent's (a delete, or a change of its key, of a row still referenced)."""
        names = tuple(getattr(diag, a, None) for a in ("schema_name", "table_name", "constraint_name"))
        found = self._constraints.get(names) if None not in names else None  # type: ignore[arg-type]
        if found is None:
            return None
        columns, parent, parent_columns = found
        if parent is None:
            return columns
        child = TableRef(str(names[0]), str(names[1]))
        if change is not None:
            on_parent = change.table == parent and (change.op is Op.DELETE or change.table != child)
            return parent_columns if on_parent else columns
        # no single change (a linked run): the side this applier writes, when it writes only one of the two
        written = {t for t in (child, parent) if t in self._types}
        if written == {child}:
            return columns
        if written == {parent}:
            return parent_columns
        return None

    def is_row_error(self, exc: Exception) -> bool:
        return isinstance(exc, RowsSkipped) or pg_error_class(exc) in (ROW, MISSING)


# information_schema data_type -> Applier.exact_kind (see PostgresApplier.exact_kind)
_EXACT_KINDS = {
    "smallint": "int", "integer": "int", "bigint": "int", "numeric": "decimal", "boolean": "bool",
    "date": "date", "timestamp without time zone": "naive", "timestamp with time zone": "aware",
    "time without time zone": "time", "text": "str", "character varying": "str",
}
_COLLATED = frozenset({"text", "character varying"})  # compared under COLLATE "C": byte-wise


def _unchanged_condition(types: dict[str, str], column: str, name: str, alias: str,
                         ident: type[sql.Identifier] = sql.Identifier) -> sql.Composable:
    """`update_unchanged`'s test that the stored value of `column` is the old value `alias.name`, exactly (see
    exact_kind): text and varchar byte-wise, under COLLATE "C". `ident`: as for `_key_condition`."""
    if types.get(column) in _COLLATED:
        return sql.SQL('t.{} COLLATE "C" IS NOT DISTINCT FROM {}.{} COLLATE "C"').format(
            ident(column), sql.Identifier(alias), ident(name))
    return sql.SQL("t.{} IS NOT DISTINCT FROM {}.{}").format(ident(column), sql.Identifier(alias), ident(name))


def _key_condition(types: dict[str, str], column: str, name: str, alias: str,
                   ident: type[sql.Identifier] = sql.Identifier) -> sql.Composable:
    """`update_unchanged`'s join of a key column: a text key also byte-wise (COLLATE "C"), so that under a
    nondeterministic collation one target row is never matched by two keys of the run (the check would
    compare each with the row as it was); `t.k IN (keys)` still finds the rows by the key's index. `ident`:
    _Identifier for a statement run with parameters (a % doubled)."""
    if types.get(column) in _COLLATED:
        return sql.SQL('t.{} COLLATE "C" = {}.{} COLLATE "C"').format(
            ident(column), sql.Identifier(alias), sql.Identifier(name))
    return sql.SQL("t.{} = {}.{}").format(ident(column), sql.Identifier(alias), sql.Identifier(name))


_DETAIL_KEY = re.compile(r"Key \((.*?)\)=\(")


def _quoted_column(message: str, change: TargetChange) -> str | None:
    """The column of `change` whose value a PostgreSQL error quotes at its end (22P02 'malformed array literal:
    "a,b"', 'invalid input value for enum mood: "c"', 'invalid input syntax for type integer: "x"'): these
    carry no column name. Only a value that one column alone holds names it."""
    m = re.search(r': "(.*)"\s*$', message.strip().splitlines()[0] if message.strip() else "", re.S)
    if m is None:
        return None
    quoted = m.group(1)
    found = [c for c, v in change.values.items() if v is not None and _text_of(v) == quoted]
    return found[0] if len(found) == 1 else None


def _text_of(value: Any) -> str:
    if isinstance(value, (set, frozenset)):  # a MariaDB SET as _text writes it
        return ",".join(sorted(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _ident(name: str) -> str:
    """PostgreSQL identifier quoting; % doubled because statements run with parameters."""
    return for_params(pg_ident(name))


# information_schema names that, as a bare cast, mean a length of one: `'ABCDE'::character` is 'A', so a
# key of char(5) would match (and delete) the wrong row, or none. Their unbounded forms keep the value whole.
_UNBOUNDED = {"character": "bpchar", "bit": "varbit"}


def _pg_type(data_type: str) -> str:
    """information_schema's data_type as a cast target; safe because it comes from the catalog."""
    if data_type == "ARRAY" or data_type == "USER-DEFINED":
        return "text"
    if data_type in _UNBOUNDED:
        return _UNBOUNDED[data_type]
    return data_type if data_type.replace(" ", "").isalnum() else "text"
