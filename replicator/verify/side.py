"""One database as `replicator verify` sees it: a read-only session of the apply account.

Every statement's transaction is rolled back. Besides reading rows (`scanner`), a session knows the
catalog's column types (`info`), converts values as the target applier would send them (`converted`,
`converter`), and reads where the source's change stream is (`position`), how far a stream was applied
(`checkpoint`) and whether a daemon applies it now (`stream_applied`), for the re-checks.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import LSN, BinlogPosition, Position, TableRef, position_from_json
from replicator.checkpoint import session_lock_holder
from replicator.compare import ColumnInfo
from replicator.config import Connection

log = logging.getLogger(__name__)

_CONVERT_ERRORS = (ValueError, TypeError, UnicodeError, OverflowError)  # as Applier._converted catches


class Side:
    """One database, read-only: an apply-account session whose transactions are always rolled back.
    Not thread-safe."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.db: Applier = make_applier(conn, "verify", "")
        _keeping_gauge(conn, self.db.connect)
        self._typed: set[TableRef] = set()
        self._scanners: dict[tuple[Any, ...], Any] = {}
        self.crosswalk = self.db.quote_table(TableRef(conn.state_schema, "crosswalk"))
        self.checkpoint_table = self.db.quote_table(TableRef(conn.state_schema, "checkpoint"))

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.db.query(sql, params)
        finally:
            self.db.rollback()

    def scanner(self, table: TableRef, key: Sequence[str]) -> Any:
        from replicator.sources.tablescan import TableScanner

        k = (table, tuple(key))
        if k not in self._scanners:
            self._scanners[k] = TableScanner(self.db, table, tuple(key))
        return self._scanners[k]

    def info(self, table: TableRef) -> dict[str, ColumnInfo]:
        """The table's columns as the catalog describes them: the applier's own reading (load_types), so
        verify compares by the very column types the stream writes by."""
        self._load_types(table)
        return self.db.column_info(table)

    def _load_types(self, table: TableRef) -> None:
        if table not in self._typed:
            self.db.load_types([table])
            self._typed.add(table)

    def converted(self, table: TableRef, values: dict[str, Any], key: Any = None) -> dict[str, Any]:
        """Values as the applier would send them (RowError when one cannot be converted)."""
        self._load_types(table)
        return dict(zip(values, self.db.convert_row(table, values, key)))

    def converter(self, table: TableRef, columns: Sequence[str]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """`converted(table, values, key)` as a function for value dicts whose keys are exactly `columns`,
        in that order (any other dict takes the general path): straight-line code, one call per column
        that has a converter. The same results and the same RowError."""
        self._load_types(table)
        convs = getattr(self.db, "_converters", None)
        general = self.converted
        if not isinstance(convs, dict):

            def convert_general(values: dict[str, Any], key: Any = None) -> dict[str, Any]:
                return general(table, values, key)
            return convert_general
        by_column = convs.get(table, {})
        names = tuple(columns)
        ns: dict[str, Any] = {"general": general, "table": table, "names": names, "errors": _CONVERT_ERRORS}
        lines, items = [], []
        for i, name in enumerate(names):
            lines.append(f"        v{i} = values[{name!r}]")
            if by_column.get(name) is not None:
                ns[f"c{i}"] = by_column[name]
                lines.append(f"        if v{i} is not None:\n            v{i} = c{i}(v{i})")
            items.append(f"{name!r}: v{i}")
        src = ("def convert(values, key=None):\n"
               "    if tuple(values) != names:\n"
               "        return general(table, values, key)\n"
               "    try:\n" + ("\n".join(lines) or "        pass") + "\n"
               "    except errors:\n"
               "        return general(table, values, key)  # raises the applier's RowError\n"
               f"    return {{{', '.join(items)}}}\n")
        exec(compile(src, "<verify-convert>", "exec"), ns)  # noqa: S102 - names only appear as repr() literals
        convert: Callable[[dict[str, Any], Any], dict[str, Any]] = ns["convert"]
        return convert

    def position(self) -> Position | None:
        """Where the source's change stream is now; None when it cannot be read (then re-checks just wait)."""
        try:
            if self.conn.kind == "postgresql":
                rows = self.query("SELECT pg_current_wal_lsn()::text", [])
                return LSN.parse(rows[0][0]) if rows else None
            try:
                rows = self.query("SHOW MASTER STATUS", [])
            except Exception:  # SHOW MASTER STATUS needs BINLOG MONITOR: the capture account has it
                rows = []
            if not rows and self.conn.capture != self.conn.apply:
                rows = _master_status(self.conn)
            return BinlogPosition(rows[0][0], int(rows[0][1])) if rows else None
        except Exception as exc:  # never fatal: the re-check then waits recheck_seconds
            log.debug("%s: cannot read the current position: %s", self.conn.name, exc)
            return None

    def checkpoint(self, stream: str) -> Position | None:
        try:
            rows = self.query(f"SELECT position FROM {self.checkpoint_table} WHERE stream = %s", [stream])
            return position_from_json(rows[0][0]) if rows else None
        except Exception as exc:
            log.debug("%s: cannot read the checkpoint of %s: %s", self.conn.name, stream, exc)
            return None

    def stream_applied(self, stream: str) -> bool:
        """Whether a daemon applies `stream` into this database now (holds its session lock, see
        Applier.lock), looked up without taking the lock. When unknown: True (then re-checks wait)."""
        try:
            return session_lock_holder(self.conn.kind, self.conn.state_schema, stream, self.query) is not None
        except Exception as exc:
            log.debug("%s: cannot tell whether %s is applied: %s", self.conn.name, stream, exc)
            return True

    def close(self) -> None:
        _keeping_gauge(self.conn, self.db.close)


def _master_status(conn: Connection) -> list[tuple[Any, ...]]:
    from replicator.connect import my_connect

    db = my_connect(conn, conn.capture)
    try:
        with db.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            return list(cur.fetchall())
    finally:
        db.close()


def _keeping_gauge(conn: Connection, fn: Any) -> None:
    """Our sessions must not change replicator_connection_up, which describes the daemon's own."""
    gauge = metrics.connection_up.labels(conn.name, "apply")
    before = gauge._value.get()
    try:
        fn()
    finally:
        gauge.set(before)
