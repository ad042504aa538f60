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
- BIT(n) -> its bit string; YEAR 0000 -> 0 (the binlog stores it as 0; binlog.py corrects the library's 1900).
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
TIME of a TIME key, padded BINARY(n), a UUID's text...). Each read is its
own short statement, followed by a rollback; ``lock_keys`` is the exception: it reads with a shared row lock
inside the caller's transaction and leaves it open.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Protocol, Sequence

from replicator.changes import TableRef, ZeroDatedRow
from replicator.sources.scancolumn import ScanColumn, TableScanError, compile_rows, try_convert
from replicator.sources.scanmariadb import ZERO_DATE_CONVERTERS, my_column
from replicator.sources.scanpostgres import pg_conv, pg_param


class Applier(Protocol):
    """What the scanner needs of a connection: an applier's read side (queries, quoting, rollback).
    A protocol, so the sources do not depend on the appliers."""

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...
    def rollback(self) -> None: ...
    def quote_table(self, table: TableRef) -> str: ...
    def quote_col(self, column: str) -> str: ...


__all__ = ["KeyCursor", "TableScanError", "TableScanner"]

KEYS_PER_STATEMENT = 1000  # by_keys / lock_keys: key tuples per IN list
_ALIAS = "scanned"


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
        self._convert = compile_rows(self.columns, [c.conv for c in cols])
        # MariaDB DATE/DATETIME/TIMESTAMP columns: a value that is not NULL and reads as None is a zero date, and
        # its row a changes.ZeroDatedRow naming it (the router refuses it where a mapping carries it)
        self._zero_cols = () if self._pg else tuple(
            (i, c.name) for i, c in enumerate(cols) if c.conv in ZERO_DATE_CONVERTERS)

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
        return self._by_keys(keys)

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

    def lock_keys(self, keys: Sequence[tuple[Any, ...]], update: bool = False) -> list[dict[str, Any]]:
        """Like by_keys but inside the caller's open transaction with a shared row lock (PostgreSQL FOR SHARE,
        MariaDB LOCK IN SHARE MODE), or with `update` an exclusive one (FOR UPDATE: what the caller will write),
        and WITHOUT rollback at the end: the caller holds the locks until it ends the transaction."""
        return self._by_keys(keys, lock="update" if update else "share")

    # -- internals

    def _by_keys(self, keys: Sequence[tuple[Any, ...]], lock: str = "") -> list[dict[str, Any]]:
        keys = list(dict.fromkeys(tuple(k) for k in keys))  # each key once
        if not keys:
            return []
        tail = (" FOR UPDATE" if lock == "update" else " FOR SHARE" if self._pg else " LOCK IN SHARE MODE") \
            if lock else ""
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
        if self._zero_cols:
            zero_cols = self._zero_cols
            for n, raw in enumerate(rows):
                row = result[n]
                zero = {name: raw[i] for i, name in zero_cols if raw[i] is not None and row[name] is None}
                if zero:
                    result[n] = ZeroDatedRow(row, tuple(zero), {c: str(v) for c, v in zero.items()})
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
                    key = tuple(try_convert(self._cols[j].conv, raw[j]) for j in self._key_index)
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
    def _mark(col: ScanColumn) -> str:
        return f"%s::{col.cast}" if col.cast else "%s"

    # -- PostgreSQL catalog

    def _load_postgres(self) -> list[ScanColumn]:
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
            cols.append(ScanColumn(name, expr, pg_conv(typoid), pg_param, typname.replace("%", "%%")))
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

    def _load_mariadb(self) -> list[ScanColumn]:
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
            cols.append(my_column(db, table, name, dtype, ctype, charset, collation_id, octets, precision,
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


class KeyCursor:
    """One table read in key chunks, each after the last key of the one before: the one keyed snapshot
    reader of sync (sync/snapshot.py, resuming after a saved key) and verify (verify/scan.py)."""

    def __init__(self, scanner: TableScanner, chunk_rows: int, after: tuple[Any, ...] | None = None):
        self.scanner, self.n = scanner, chunk_rows
        self.after = after  # the last key read (None: from the start)
        self.done = False  # a chunk came back short: nothing after it

    def next(self) -> list[dict[str, Any]]:
        """The next chunk of at most `chunk_rows` rows; [] at the end."""
        if self.done:
            return []
        rows = self.scanner.chunk(self.after, self.n)
        self.done = len(rows) < self.n
        if rows:
            self.after = self.scanner.key_of(rows[-1])
        return rows
