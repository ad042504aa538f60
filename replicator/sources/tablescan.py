"""Read existing rows of a source table in primary-key chunks, valued exactly as the change stream values them.

The initial sync and the verifier copy and compare rows that are already in a table; the router must not be
able to tell such a row from one that arrived through the stream. So every row dict here holds the same
values, of the same Python types, as the stream's after-image of that row:

PostgreSQL (reference: ``sources/pgoutput.py``). pgoutput sends each value as the text of the column type's
output function (for a domain: the domain's OID, the base type's output) and the decoder converts it with
``converter_for(oid)``. The scanner asks for the same text, ``col::text`` (an I/O conversion, which *is* the
output function) or, for the types whose cast to text is a function that differs from their output
(boolean, bpchar, "char", name, inet, cidr, xml, domains over them), ``format('%s', col)``; then runs the
same converter on it. So a domain over int stays ``'5'``, a domain over boolean ``'f'``, arrays, enums, json,
interval... stay the stream's text. Both sessions must format values alike, so the applier's session
settings (``connect.pg_connect``: UTC, ISO dates, hex bytea, ISO 8601 intervals) are checked.
Generated columns are left out (pgoutput does not send them), and so are columns outside the publication's
column list, if it has one for the table.

MariaDB (reference: ``sources/binlog.py`` with ``sources/rowdecode.py``, i.e. mysql-replication's decoding
plus binlog.py's conversions). PyMySQL's text-protocol values are normalised per column type:

- FLOAT is read as ``CAST(col AS DOUBLE)``: the stored float32 exactly (the text of a FLOAT has 6 digits).
- BIT(n) -> its bit string; YEAR 0000 -> 1900 (the binlog stores it as 0, read back as 1900 + 0).
- zero dates and dates with a zero part -> None; a DATETIME(n) the library cannot build -> None; a DATE or
  old-format DATETIME it cannot build makes the stream fail, so the scanner raises.
- TIMESTAMP -> aware datetime in ``timezone.utc`` (the session is in +00:00); the zero TIMESTAMP -> None.
- TIME(n) -> timedelta, exact (the binlog source corrects the library's reading of a negative value with
  a fraction, ``rowdecode.exact_time``); old-format (``/* mariadb-5.3 */``) TIME: a negative value comes
  out as the library reads its 3 bytes unsigned.
- BINARY(n) -> its n bytes, trailing zero bytes kept (the binlog source pads them back,
  ``rowdecode.fixed_binary_length``); an empty VARBINARY/BLOB value -> '' (as the library gives it).
- INET6, UUID -> their 16 stored bytes.
- CHAR/VARCHAR/TEXT/ENUM in a utf8mb3/utf8mb4 character set: the text as is. In any other character set the
  raw bytes are read (``CAST(col AS BINARY)``) and decoded with the very codec mysql-replication picks for
  the column's collation id (latin1 -> cp1252; bytes kept when Python has no such codec); undecodable
  bytes raise, as they stop the stream. ENUM/SET member names in such a character set are what the library
  makes of the table map's bytes: UTF-8, or '' when they are not (so a latin1 ENUM('é') value is '').
- SET -> text in definition order, '' for the empty set (binlog.py's conversion).

A column type the scanner cannot value like the stream (MySQL's binary JSON, old-format temporal columns
with a fraction, YEAR(2), an unknown type) raises ``TableScanError`` naming table and column when the
scanner is built; a value it cannot convert raises naming table, column and key. Nothing is guessed.

Reading: keyset pagination in the server's own key order (PostgreSQL ``(a, b) > (x, y)``; MariaDB the
expanded ``a > x OR (a = x AND b > y)``, which, unlike the row comparison, is a range scan of the primary
key). Key values taken from row dicts are turned back into what the server compares correctly (the real
TIME of a TIME key, 0000 for the 1900 of a YEAR key, padded BINARY(n), a UUID's text...). Each read is its
own short statement, followed by a rollback; ``lock_keys`` is the exception: it reads with a shared row lock
inside the caller's transaction and leaves it open.
"""
from __future__ import annotations

import binascii
import ipaddress
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from replicator.changes import TableRef
from replicator.errors import FatalError
from replicator.sources.pgoutput import converter_for



class Applier(Protocol):
    """What the scanner needs of a connection: an applier's read side (queries, quoting, rollback).
    A protocol, so the sources do not depend on the appliers."""

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...
    def rollback(self) -> None: ...
    def quote_table(self, table: TableRef) -> str: ...
    def quote_col(self, column: str) -> str: ...

__all__ = ["TableScanError", "TableScanner"]

KEYS_PER_STATEMENT = 1000  # by_keys / lock_keys: key tuples per IN list
_ALIAS = "scanned"
_UTC = timezone.utc


class TableScanError(FatalError):
    """A table, column or value the scanner cannot read exactly as the change stream would deliver it."""

    kind = "scan"

    def __init__(self, message: str, *, table: Any, column: str | None = None, key: Any = None):
        self.table = str(table)
        self.column = column
        self.key = key
        where = f"table {table}"
        if column is not None:
            where += f", column {column}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {message}")


Conv = Optional[Callable[[Any], Any]]


class _Column:
    """How one column is selected, converted to the stream's value, and (for a key) passed back."""

    __slots__ = ("name", "expr", "conv", "param", "cast", "unsupported_key")

    def __init__(self, name: str, expr: str, conv: Conv = None, param: Conv = None, cast: str = "",
                 unsupported_key: str | None = None):
        self.name = name
        self.expr = expr  # SQL select expression
        self.conv = conv  # driver value (not None) -> stream value; None: as is
        self.param = param  # stream value of a key column -> statement parameter; None: as is
        self.cast = cast  # PostgreSQL: type name the parameter is cast to
        self.unsupported_key = unsupported_key  # why this column cannot be a key column


def _try(conv: Conv, value: Any) -> Any:
    """A key value for an error message: converted if it can be, else as the driver gave it."""
    if conv is None or value is None:
        return value
    try:
        return conv(value)
    except Exception:
        return value


def _compile_rows(names: Sequence[str], convs: Sequence[Conv]) -> Callable[[Sequence[tuple[Any, ...]]], list[Any]]:
    """A function turning driver rows into row dicts: straight-line code, one converter call per column that
    needs one, no per-value type dispatch."""
    ns: dict[str, Any] = {}
    unpack = ", ".join(f"v{i}" for i in range(len(names))) + ("," if len(names) == 1 else "")
    items = []
    for i, (name, conv) in enumerate(zip(names, convs)):
        if conv is None:
            items.append(f"{name!r}: v{i}")
        else:
            ns[f"c{i}"] = conv
            items.append(f"{name!r}: None if v{i} is None else c{i}(v{i})")
    src = ("def convert(rows):\n"
           "    out = []\n"
           "    append = out.append\n"
           "    for r in rows:\n"
           f"        {unpack} = r\n"
           f"        append({{{', '.join(items)}}})\n"
           "    return out\n")
    exec(compile(src, "<tablescan>", "exec"), ns)  # noqa: S102 - names only appear as repr() literals
    convert: Callable[[Sequence[tuple[Any, ...]]], list[Any]] = ns["convert"]
    return convert


class TableScanner:
    """Reads one table in primary-key order; each row is a dict column -> value exactly as that
    database's stream decoder would produce it for the same row."""

    def __init__(self, db: "Applier", table: TableRef, key: Sequence[str]):
        self.db = db
        self.table = table
        self.key: tuple[str, ...] = tuple(key)
        if not self.key:
            raise TableScanError("no key columns given", table=table)
        if len(set(self.key)) != len(self.key):
            raise TableScanError(f"key {list(self.key)} names a column twice", table=table)
        kind = getattr(db, "kind", None)
        if kind not in ("postgresql", "mariadb"):
            raise TableScanError(f"cannot scan through a {kind!r} connection", table=table)
        self._pg = kind == "postgresql"
        try:
            cols = self._load_postgres() if self._pg else self._load_mariadb()
            by_name = {c.name: c for c in cols}
            for k in self.key:
                col = by_name.get(k)
                if col is None:
                    raise TableScanError(f"key column {k} is not a column of the table (or not in the stream)",
                                         table=table, column=k)
                if col.unsupported_key:
                    raise TableScanError(f"cannot be a key column of a scan: {col.unsupported_key}", table=table,
                                         column=k)
            self._pg_check_unique() if self._pg else self._my_check_unique()
        finally:
            db.rollback()
        self._cols = cols
        self.columns: tuple[str, ...] = tuple(c.name for c in cols)
        self._key_cols = tuple(by_name[k] for k in self.key)
        self._key_index = tuple(self.columns.index(k) for k in self.key)
        # key columns whose converter may give None for a non-NULL value (MariaDB zero dates)
        self._null_keys = tuple(c for c in self._key_cols if c.conv is not None and not self._pg)
        self._convert = _compile_rows(self.columns, [c.conv for c in cols])

        # key columns are named through the table's alias: a bare name in ORDER BY would mean the select
        # list's column of that name, i.e. PostgreSQL's text of it
        def q(name: str) -> str:
            return f"{_ALIAS}.{db.quote_col(name)}"
        self._from = f"SELECT {', '.join(c.expr for c in cols)} FROM {db.quote_table(table)} AS {_ALIAS}"
        self._order = " ORDER BY " + ", ".join(q(k) for k in self.key)
        if self._pg:
            marks = ", ".join(self._mark(c) for c in self._key_cols)
            names = ", ".join(q(k) for k in self.key)
            if len(self.key) == 1:
                self._after_sql = f" WHERE {names} > {marks}"
            else:
                self._after_sql = f" WHERE ({names}) > ({marks})"
            self._in_head = f" WHERE ({names}) IN (VALUES "
            self._in_one = f"({marks})"
        else:
            # a > x OR (a = x AND b > y) OR ...: MariaDB does not range-scan (a, b) > (x, y)
            ors = []
            for i in range(len(self.key)):
                eqs = [f"{q(k)} = %s" for k in self.key[:i]] + [f"{q(self.key[i])} > %s"]
                ors.append(" AND ".join(eqs) if len(eqs) == 1 else "(" + " AND ".join(eqs) + ")")
            self._after_sql = " WHERE " + " OR ".join(ors)
            if len(self.key) == 1:
                self._in_head = f" WHERE {q(self.key[0])} IN ("
                self._in_one = "%s"
            else:
                self._in_head = f" WHERE ({', '.join(q(k) for k in self.key)}) IN ("
                self._in_one = "(" + ", ".join(["%s"] * len(self.key)) + ")"

    # -- public API

    def chunk(self, after: tuple[Any, ...] | None, limit: int) -> list[dict[str, Any]]:
        """Rows whose key is greater than `after` (None: from the start), ascending key order, at most `limit`.
        `after` is the key tuple of the last row of the previous chunk, exactly as returned in the row dicts."""
        limit = int(limit)
        if limit <= 0:
            return []
        if after is None:
            sql, params = self._from + self._order, []
        else:
            params = self._key_params(after)
            if not self._pg:  # the expanded condition names the leading key values again for each column
                params = [p for i in range(len(self.key)) for p in params[:i + 1]]
            sql = self._from + self._after_sql + self._order
        return self._read(f"{sql} LIMIT {limit}", params, rollback=True)

    def by_keys(self, keys: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """The rows (any order) whose key is one of `keys` (key tuples as found in row dicts); missing keys
        are simply absent."""
        return self._by_keys(keys, lock=False)

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key)

    def estimate(self) -> int:
        """A cheap row-count estimate for progress display (pg_class.reltuples / information_schema
        TABLE_ROWS; never a full COUNT(*) on big tables; >= 0)."""
        try:
            if self._pg:
                rows = self.db.query(
                    "SELECT c.reltuples::bigint, s.n_live_tup FROM pg_class c "
                    "LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = %s", [self._oid])
                if not rows:
                    return 0
                reltuples, live = rows[0]
                # reltuples is -1 until the table was first vacuumed or analyzed
                value = reltuples if reltuples is not None and reltuples >= 0 else live
            else:
                rows = self.db.query("SELECT TABLE_ROWS FROM information_schema.TABLES "
                                     "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                                     [self.table.schema, self.table.name])
                value = rows[0][0] if rows else 0
        finally:
            self.db.rollback()
        return max(0, int(value or 0))

    def lock_keys(self, keys: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Like by_keys but inside the caller's open transaction with a shared row lock (PostgreSQL FOR SHARE,
        MariaDB LOCK IN SHARE MODE) and WITHOUT rollback at the end: the caller holds the locks until it
        ends the transaction."""
        return self._by_keys(keys, lock=True)

    # -- internals

    def _by_keys(self, keys: Sequence[tuple[Any, ...]], lock: bool) -> list[dict[str, Any]]:
        keys = list(dict.fromkeys(tuple(k) for k in keys))  # each key once
        if not keys:
            return []
        tail = (" FOR SHARE" if self._pg else " LOCK IN SHARE MODE") if lock else ""
        out: list[dict[str, Any]] = []
        try:
            for i in range(0, len(keys), KEYS_PER_STATEMENT):
                part = keys[i:i + KEYS_PER_STATEMENT]
                params = [p for k in part for p in self._key_params(k)]
                sql = self._from + self._in_head + ", ".join([self._in_one] * len(part)) + ")" + tail
                out.extend(self._read(sql, params, rollback=False))
        finally:
            if not lock:
                self.db.rollback()
        return out

    def _read(self, sql: str, params: list[Any], rollback: bool) -> list[dict[str, Any]]:
        try:
            rows = self.db.query(sql, params)
        finally:
            if rollback:
                self.db.rollback()
        try:
            result = self._convert(rows)
        except Exception:  # name the value that failed
            self._explain_failure(rows)
            raise
        for col in self._null_keys:  # a key we could not pass back would end the scan early
            for row in result:
                if row[col.name] is None:
                    raise TableScanError(
                        "key value reads as NULL (a zero date?); rows after it could not be found by key",
                        table=self.table, column=col.name, key=self.key_of(row))
        return result

    def _explain_failure(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for raw in rows:
            for i, col in enumerate(self._cols):
                value = raw[i]
                if value is None or col.conv is None:
                    continue
                try:
                    col.conv(value)
                except Exception as exc:
                    key = tuple(_try(self._cols[j].conv, raw[j]) for j in self._key_index)
                    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + "..."
                    raise TableScanError(f"cannot value {shown} as the change stream would: "
                                         f"{type(exc).__name__}: {exc}", table=self.table, column=col.name,
                                         key=key) from exc

    def _key_params(self, key: Sequence[Any]) -> list[Any]:
        if key is None or len(key) != len(self.key):
            raise TableScanError(f"key {key!r} does not have the {len(self.key)} values of key {list(self.key)}",
                                 table=self.table)
        out = []
        for col, value in zip(self._key_cols, key):
            if value is None:
                raise TableScanError("a key value is None; it cannot be compared", table=self.table,
                                     column=col.name, key=tuple(key))
            if col.param is not None:
                try:
                    value = col.param(value)
                except Exception as exc:
                    raise TableScanError(f"key value {value!r} cannot be passed back to the server: {exc}",
                                         table=self.table, column=col.name, key=tuple(key)) from exc
            out.append(value)
        return out

    @staticmethod
    def _mark(col: _Column) -> str:
        return f"%s::{col.cast}" if col.cast else "%s"

    # -- PostgreSQL catalog

    def _load_postgres(self) -> list[_Column]:
        db, table = self.db, self.table
        settings = db.query(
            "SELECT '2000-01-01 00:00:00+00'::timestamptz::text, current_setting('DateStyle'), "
            "current_setting('bytea_output'), current_setting('IntervalStyle'), "
            "current_setting('extra_float_digits')::int, current_setting('server_version_num')::int", [])[0]
        tz_text, datestyle, bytea_output, intervalstyle, float_digits, version = settings
        if (tz_text != "2000-01-01 00:00:00+00" or not datestyle.startswith("ISO") or bytea_output != "hex"
                or intervalstyle != "iso_8601" or float_digits <= 0):
            raise TableScanError(
                f"the session does not format values like the WAL stream (TimeZone UTC, DateStyle ISO, "
                f"bytea_output hex, IntervalStyle iso_8601, extra_float_digits > 0); it has "
                f"timestamptz {tz_text!r}, DateStyle {datestyle!r}, bytea_output {bytea_output!r}, "
                f"IntervalStyle {intervalstyle!r}, extra_float_digits {float_digits} (connect with "
                f"replicator.connect.pg_connect)", table=table)
        rel = db.query("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
                       [table.schema, table.name])
        if not rel:
            raise TableScanError("no such table", table=table)
        self._oid = oid = rel[0][0]
        rows = db.query(
            """
            WITH RECURSIVE cols AS (
                SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull FROM pg_attribute a
                WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ), base(attnum, typ, depth) AS (
                SELECT attnum, atttypid, 0 FROM cols
                UNION ALL
                SELECT b.attnum, t.typbasetype, b.depth + 1 FROM base b JOIN pg_type t ON t.oid = b.typ
                WHERE t.typtype = 'd'
            )
            SELECT c.attname, c.atttypid, format_type(c.atttypid, c.atttypmod), c.attnotnull, bt.typ,
                   format_type(bt.typ, NULL),
                   EXISTS (SELECT 1 FROM pg_cast k WHERE k.castsource = bt.typ AND k.casttarget = 'text'::regtype)
            FROM cols c
            JOIN LATERAL (SELECT typ FROM base b WHERE b.attnum = c.attnum ORDER BY depth DESC LIMIT 1) bt ON true
            ORDER BY c.attnum
            """, [oid])
        published = None
        if version >= 150000:
            pub = getattr(getattr(db, "conn", None), "publication", None)
            if pub:
                found = db.query("SELECT attnames FROM pg_publication_tables WHERE pubname = %s "
                                 "AND schemaname = %s AND tablename = %s", [pub, table.schema, table.name])
                if found and found[0][0] is not None:
                    published = set(found[0][0])
        keyset = set(self.key)
        cols = []
        for name, typoid, typname, notnull, base_oid, base_name, has_cast in rows:
            if published is not None and name not in published:
                continue  # the stream does not send it
            q = db.quote_col(name)
            if base_name in ("text", "character varying") or not has_cast:
                expr = f"{q}::text"  # an I/O conversion: the output function's text
            else:
                # the cast to text is a function that may differ from the output (boolean -> 'true', bpchar
                # trimmed, inet with /32...): format() uses the output function; num_nulls keeps a composite
                # value whose fields are all NULL apart from NULL
                expr = f"CASE WHEN num_nulls({q}) = 0 THEN format('%%s', {q}) END"
            if name in keyset and not notnull:
                raise TableScanError("key column is nullable: keyset pagination would lose its NULL rows",
                                     table=table, column=name)
            cols.append(_Column(name, expr, _pg_conv(typoid), _pg_param, typname.replace("%", "%%")))
        if not cols:
            raise TableScanError("the table has no columns the stream sends", table=table)
        return cols

    def _pg_check_unique(self) -> None:
        oid = self._oid
        rows = self.db.query(
            "SELECT array_agg(a.attname::text) FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s AND (i.indisprimary OR i.indisunique) AND i.indpred IS NULL "
            "AND i.indexprs IS NULL AND i.indisvalid GROUP BY i.indexrelid", [oid])
        if not any(set(r[0]) == set(self.key) for r in rows):
            raise TableScanError(f"key {list(self.key)} is neither the primary key nor a unique index: "
                                 f"chunks by key could skip rows", table=self.table)

    # -- MariaDB catalog

    def _load_mariadb(self) -> list[_Column]:
        db, table = self.db, self.table
        tz, jan, jul, sql_mode, results, version = db.query(
            "SELECT @@session.time_zone, CONVERT_TZ('2000-01-01 00:00:00', @@session.time_zone, '+00:00'), "
            "CONVERT_TZ('2000-07-01 00:00:00', @@session.time_zone, '+00:00'), @@session.sql_mode, "
            "@@session.character_set_results, VERSION()", [])[0]
        if jan != datetime(2000, 1, 1) or jul != datetime(2000, 7, 1):
            raise TableScanError(f"the session's time_zone is {tz!r}, not UTC: TIMESTAMP values would not be "
                                 f"the binlog's (connect with replicator.connect.my_connect)", table=table)
        if "PAD_CHAR_TO_FULL_LENGTH" in (sql_mode or "").upper():
            raise TableScanError("sql_mode PAD_CHAR_TO_FULL_LENGTH pads CHAR values; the binlog does not",
                                 table=table)
        if results != "utf8mb4":
            raise TableScanError(f"character_set_results is {results!r}, not utf8mb4", table=table)
        dbms = "mariadb" if "mariadb" in str(version).lower() else "mysql"
        rows = db.query(
            "SELECT c.COLUMN_NAME, LOWER(c.DATA_TYPE), c.COLUMN_TYPE, c.CHARACTER_SET_NAME, co.ID, "
            "c.IS_NULLABLE = 'YES', c.CHARACTER_OCTET_LENGTH, c.NUMERIC_PRECISION, c.DATETIME_PRECISION "
            "FROM information_schema.COLUMNS c LEFT JOIN information_schema.COLLATIONS co "
            "ON co.COLLATION_NAME = c.COLLATION_NAME AND co.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME "
            "WHERE c.TABLE_SCHEMA = %s AND c.TABLE_NAME = %s ORDER BY c.ORDINAL_POSITION",
            [table.schema, table.name])
        if not rows:
            raise TableScanError("no such table", table=table)
        keyset = set(self.key)
        cols = []
        for name, dtype, ctype, charset, collation_id, nullable, octets, precision, fsp in rows:
            if name in keyset and nullable:
                raise TableScanError("key column is nullable: keyset pagination would lose its NULL rows",
                                     table=table, column=name)
            cols.append(_my_column(db, table, name, dtype, ctype, charset, collation_id, octets, precision,
                                   fsp, dbms))
        if len({c.name for c in cols}) != len(cols):
            raise TableScanError(f"the catalog lists a column twice: {[c.name for c in cols]}", table=table)
        return cols

    def _my_check_unique(self) -> None:
        rows = self.db.query(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0",
            [self.table.schema, self.table.name])
        indexes: dict[str, set[Any]] = {}
        for index, column in rows:
            indexes.setdefault(index, set()).add(column)
        if not any(cols == set(self.key) for cols in indexes.values()):
            raise TableScanError(f"key {list(self.key)} is neither the primary key nor a unique index: "
                                 f"chunks by key could skip rows", table=self.table)


# --- PostgreSQL values ------------------------------------------------------------------------------------

_PG_TEXT = converter_for(25)  # text: the decoder's bytes.decode; a str from psycopg2 is that already


def _pg_conv(type_oid: int) -> Conv:
    """The stream's converter for the OID pgoutput reports (atttypid), applied to the same text."""
    conv = converter_for(type_oid)
    if conv is _PG_TEXT:
        return None
    if conv is int or conv is float:  # int() and float() read str exactly as they read ASCII bytes
        return conv
    return lambda text: conv(text.encode())  # conv is bound once


def _pg_param(value: Any) -> str:
    """A key value as the stream gave it -> text the column type's input function reads back to that value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + binascii.hexlify(bytes(value)).decode()
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same double; 'nan', 'inf' are accepted
    if isinstance(value, (int, Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"unexpected {type(value).__name__}")


# --- MariaDB values ---------------------------------------------------------------------------------------

_INTS = {"tinyint", "smallint", "mediumint", "int", "bigint"}
_TEXTS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_BLOBS = {"varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
             "geometrycollection"}
_UTF8 = {"utf8mb4", "utf8mb3", "utf8"}
_OLD_FORMAT = "/* mariadb-5.3 */"
_CHARSET_NAME = re.compile(r"^[a-z0-9_]+$")


def _binlog_encoding(collation_id: Any, dbms: str) -> str | None:
    """The codec mysql-replication decodes a string column of this collation with (as rowdecode's
    _string_decode finds it), or None when it keeps the raw bytes."""
    from pymysqlreplication.row_event import RowsEvent, find_charset
    encode_name = find_charset(str(collation_id), dbms=dbms)[0] if collation_id is not None else "utf8"
    encoding = RowsEvent.charset_to_encoding(encode_name)
    if not isinstance(encoding, str):
        return None
    try:
        b"\x00".decode(encoding)
    except LookupError:
        return None
    except ValueError:
        pass
    return encoding


def _is_utf8(encoding: str | None) -> bool:
    if encoding is None:
        return False
    import codecs
    return codecs.lookup(encoding).name == "utf-8"


def _bits(n: int) -> Callable[[bytes], str]:
    spec = f"0{n}b"
    mask = (1 << n) - 1
    return lambda raw: format(int.from_bytes(raw, "big") & mask, spec)


def _year(value: int) -> int:
    return 1900 if value == 0 else value  # YEAR 0000 is stored as 0; the library adds 1900


def _year_param(value: int) -> int:
    return 0 if value == 1900 else value


def _timestamp(value: Any) -> Any:
    if value.__class__ is datetime:
        return value.replace(tzinfo=_UTC)
    return None  # '0000-00-00 00:00:00': PyMySQL leaves the text


def _timestamp_param(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)
    return value


def _datetime2(value: Any) -> Any:
    # a DATETIME(n) that datetime() rejects (zero date, zero month or day, a day past the month's end) is
    # None in the binlog; PyMySQL leaves such values as text
    return value if value.__class__ is datetime else None


def _zero_parts(text: str) -> bool:
    """A DATE/DATETIME text with a zero year, month or day."""
    m = re.match(r"^(\d+)-(\d+)-(\d+)", text)
    return m is not None and 0 in (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _date(value: Any) -> Any:
    if value.__class__ is date:
        return value
    if isinstance(value, str) and _zero_parts(value):
        return None
    raise ValueError(f"{value!r} is not a date (the binlog reader fails on it too)")


def _old_datetime(value: Any) -> Any:
    if value.__class__ is datetime:
        return value
    if isinstance(value, str) and _zero_parts(value):
        return None
    raise ValueError(f"{value!r} is not a date and time (the binlog reader fails on it too)")


_SECOND = 1_000_000


def _time_param(value: timedelta) -> str:
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, us = divmod(abs(micros), _SECOND)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{us:06d}"


def _old_time(value: timedelta) -> timedelta:
    """An old-format (MariaDB 5.3) TIME as the library reads it: the stored signed 3-byte integer
    [-]HHMMSS read unsigned, then split into hours, minutes and seconds."""
    if value >= timedelta(0):
        return value
    seconds = -(value // timedelta(seconds=1))
    stored = (-(seconds // 3600 * 10000 + seconds // 60 % 60 * 100 + seconds % 60)) & 0xFFFFFF
    return timedelta(hours=int(stored / 10000), minutes=int((stored % 10000) / 100), seconds=int(stored % 100))


def _binary(value: bytes) -> Any:
    return bytes(value)  # all n bytes of a BINARY(n): the binlog source pads the stored value back to n


def _blob(value: bytes) -> Any:
    return value if value else ""  # the library gives an empty binary value as ''


def _binary_param(size: int) -> Callable[[Any], bytes]:
    return lambda value: (b"" if value == "" else bytes(value)).ljust(size, b"\x00")  # a key from older rows


def _blob_param(value: Any) -> bytes:
    return b"" if value == "" else bytes(value)


def _inet6(text: str) -> Any:
    return _binary(ipaddress.IPv6Address(text).packed)


def _inet6_param(value: Any) -> str:
    return str(ipaddress.IPv6Address(_binary_param(16)(value)))


def _uuid(text: str) -> Any:
    return _binary(uuid.UUID(text).bytes)


def _uuid_param(value: Any) -> str:
    return str(uuid.UUID(bytes=_binary_param(16)(value)))


def _decode(encoding: str | None) -> Callable[[bytes], Any]:
    if encoding is None:  # no Python codec: the library keeps the bytes
        return _blob
    return lambda raw: raw.decode(encoding)


def _member_name(raw: bytes) -> str:
    """An ENUM/SET member name as mysql-replication reads it from the table map: UTF-8, or ''."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return ""


_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _members(column_type: str) -> list[str]:
    """Member names from information_schema's COLUMN_TYPE "set('a','it''s')"."""
    body = column_type[column_type.index("(") + 1:column_type.rindex(")")]
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        if body[i] != "'":
            i += 1
            continue
        i += 1
        chars = []
        while i < n:
            ch = body[i]
            if ch == "'" and i + 1 < n and body[i + 1] == "'":
                chars.append("'")
                i += 2
            elif ch == "'":
                i += 1
                break
            elif ch == "\\" and i + 1 < n:
                chars.append(_ESCAPES.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                chars.append(ch)
                i += 1
        out.append("".join(chars))
    return out


def _set_text(db: Any, table: TableRef, name: str, column_type: str, charset: str) -> Callable[[int], str]:
    """SET bitmask -> the text binlog.py makes of the library's value for a SET in a non-UTF-8 character set:
    members whose (library) name is among the set ones, in definition order."""
    if not _CHARSET_NAME.match(charset):
        raise TableScanError(f"unexpected character set {charset!r}", table=table, column=name)
    members = _members(column_type)
    if not members:
        raise TableScanError(f"cannot read the members of {column_type}", table=table, column=name)
    # the names' bytes in the column's character set, converted by the server itself
    raw = db.query("SELECT " + ", ".join(f"CAST(CONVERT(%s USING {charset}) AS BINARY)" for _ in members),
                   members)[0]
    names = [_member_name(bytes(r)) for r in raw]
    bits = [(1 << i, v) for i, v in enumerate(names)]
    cache: dict[int, str] = {}

    def text(mask: int) -> str:
        value = cache.get(mask)
        if value is None:
            chosen = {v for bit, v in bits if mask & bit}
            value = ",".join(v for v in names if v in chosen)
            if len(cache) < 4096:
                cache[mask] = value
        return value
    return text


def _my_column(db: Any, table: TableRef, name: str, dtype: str, ctype: str, charset: str | None,
               collation_id: Any, octets: Any, precision: Any, fsp: Any, dbms: str) -> _Column:
    q = db.quote_col(name)
    column_type, ctype = ctype, ctype.lower()
    old = _OLD_FORMAT in ctype

    def unsupported(why: str) -> TableScanError:
        return TableScanError(f"{ctype}: {why}", table=table, column=name)

    if dtype in _INTS or dtype == "decimal" or dtype == "double" and "(" not in ctype:
        return _Column(name, q)  # a DOUBLE's text is the shortest that reads back to the same double
    if dtype in ("float", "double"):
        # the text of a FLOAT has 6 significant digits, a DOUBLE(M,D)'s has D decimals; as a plain DOUBLE
        # either is the stored value exactly
        return _Column(name, f"CAST({q} AS DOUBLE)")
    if dtype == "bit":
        return _Column(name, q, _bits(int(precision)), lambda bits: int(bits, 2))
    if dtype == "year":
        if ctype not in ("year", "year(4)"):
            raise unsupported("two-digit YEAR is not supported")
        return _Column(name, q, _year, _year_param)
    if dtype in ("date", "datetime", "timestamp", "time") and old and fsp:
        raise unsupported("an old-format (MariaDB 5.3) temporal column with a fraction of a second; the binlog "
                          "reader cannot decode it either (ALTER TABLE ... FORCE converts it)")
    if dtype == "date":
        return _Column(name, q, _date)
    if dtype == "datetime":
        return _Column(name, q, _old_datetime if old else _datetime2)
    if dtype == "timestamp":
        return _Column(name, q, _timestamp, _timestamp_param)
    if dtype == "time":
        if old:
            return _Column(name, q, _old_time, unsupported_key="an old-format TIME cannot be passed back as a key")
        return _Column(name, q, None, _time_param)
    if dtype == "binary":
        return _Column(name, q, _binary, _binary_param(int(octets)))
    if dtype in _BLOBS:
        return _Column(name, q, _blob, _blob_param)
    if dtype in _GEOMETRY:
        return _Column(name, q, _blob, unsupported_key="a geometry key is not supported")
    if dtype == "inet6":
        return _Column(name, q, _inet6, _inet6_param)
    if dtype == "uuid":
        return _Column(name, q, _uuid, _uuid_param)
    if dtype in _TEXTS or dtype in ("enum", "set"):
        encoding = _binlog_encoding(collation_id, dbms)
        utf8 = (charset or "").lower() in _UTF8 and _is_utf8(encoding)
        no_key = "ENUM and SET keys are not supported (the server orders them by member number)"
        if dtype == "enum":
            if utf8:
                return _Column(name, q, unsupported_key=no_key)
            # the library's member name: the table map's bytes (in the column's charset) read as UTF-8, or ''
            return _Column(name, f"CAST({q} AS BINARY)", _member_name, unsupported_key=no_key)
        if dtype == "set":
            if utf8:
                return _Column(name, q, unsupported_key=no_key)
            return _Column(name, f"{q} + 0", _set_text(db, table, name, column_type, charset or ""),
                           unsupported_key=no_key)
        if utf8:
            return _Column(name, q)
        # another character set: the raw bytes, decoded with the library's codec
        why = None if encoding is not None else f"character set {charset} has no Python codec"
        return _Column(name, f"CAST({q} AS BINARY)", _decode(encoding), unsupported_key=why)
    if dtype == "json":
        raise unsupported("MySQL's binary JSON is decoded by the binlog reader into Python objects; not supported")
    raise unsupported(f"type {dtype} is not supported")
