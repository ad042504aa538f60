"""MariaDB/MySQL binlog source: the one module that touches mysql-replication.

It turns binlog events into our Transactions at once. Transaction boundaries: a transaction
starts at a GTID event and ends at an Xid event (InnoDB), a `COMMIT` query (MyISAM/Aria), or,
for a standalone DDL, the query itself. Only the position after such a boundary is ever used
to resume, so a reconnect never lands inside a transaction (python-mysql-replication #314).
"""
from __future__ import annotations

import functools
import logging
import math
import re
import socket
import threading
from collections import OrderedDict, deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE, NONE_SOURCE
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from replicator import metrics
from replicator.changes import (BinlogPosition, Op, Position, RowChange, SourceMessage, TableRef, Transaction,
                               UndecodedRowChange, Watermark, binlog_position, final_transaction, new_row_change,
                               zero_dated)
from replicator.connect import ACCESS, MyConnection, my_connect, my_error_class, ssl_settings
from replicator.config import Connection
from replicator.errors import DecodeError, FatalError, ReplicatorError, RetriableError, SourceLostError, show_key
from replicator.identifiers import unquote_ident
from replicator.loopguard import CHECKPOINT_TABLE, WATERMARK_TABLE, LoopGuard
from replicator.sources import libraryrows
from replicator.sources.binlogfast import LEAN_GTID, LEAN_ROWS, FastBinLogStreamReader
from replicator.sources.shape import ShapeWatch, mariadb_shape
from replicator.sources.rowdecode import (RowDecoder, Undecodable, escaped_columns, exact_time,
                                          fixed_binary_length, replaced, undefined_byte)

log = logging.getLogger(__name__)

_TIMESTAMP_TYPES = {FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2}
_ZERO_DATE = {NONE_SOURCE.OUT_OF_DATE_RANGE, NONE_SOURCE.OUT_OF_DATETIME_RANGE, NONE_SOURCE.OUT_OF_DATETIME2_RANGE}
_ROW_EVENTS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)
_OPS = {WriteRowsEvent: Op.INSERT, UpdateRowsEvent: Op.UPDATE, DeleteRowsEvent: Op.DELETE}
# the library decodes TIMESTAMP with utcfromtimestamp: the zero date (stored as 0) becomes the epoch,
# which no real TIMESTAMP can hold (the range starts at 1970-01-01 00:00:01 UTC)
_ZERO_TIMESTAMP = datetime(1970, 1, 1)
_STANDALONE = 1  # MariaDB GTID flag: a DDL or other statement with no Xid


# what the reader does with an event, by its class (_event_kind fills it; subclasses count as their base)
_GTID, _ROWS, _QUERY, _XID, _OTHER = range(5)
_LEAN = 8  # a GTID or XID event as FastBinLogStreamReader.fetchone(lean=True)'s tuple
_EVENT_KINDS: dict[type, int] = {tuple: _LEAN}
# what the rows of a table are to the reader (BinlogSource._classify)
_TAG, _MARK, _MAPPED = range(5, 8)
_CACHE_SIZE = 4096  # tables or column lists remembered; a table-map storm only costs recomputing them


def _event_kind(cls: type) -> int:
    kind = (_GTID if issubclass(cls, MariadbGtidEvent) else _ROWS if issubclass(cls, _ROW_EVENTS)
            else _QUERY if issubclass(cls, QueryEvent) else _XID if issubclass(cls, XidEvent) else _OTHER)
    _EVENT_KINDS[cls] = kind
    return kind


def _time(timestamp: int | None) -> datetime | None:
    """A binlog event header's time (whole seconds, UTC); None: no GTID or boundary seen yet."""
    return datetime.fromtimestamp(timestamp, timezone.utc) if timestamp is not None else None


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=timezone.utc) if isinstance(value, datetime) and value.tzinfo is None else value


_TABLE_MAP_CACHE: "OrderedDict[tuple[Any, ...], dict[str, Any]]" = OrderedDict()
_TABLE_MAP_CACHE_SIZE = 4096
_UNCACHED = ("packet", "table_map", "_ctl_connection")


def _install_table_map_cache() -> None:
    """Memoise TableMapEvent parsing by the event's raw bytes.

    Every binlog transaction repeats a table-map event for each table it touches; parsing one
    with full metadata costs mysql-replication ~100 us, more than decoding a small row. The same
    bytes (table id, names, types, metadata) always parse to the same result, so we parse each
    distinct one once. Only events whose columns all have names are cached (names fetched from
    information_schema could change), and the key includes the reader's table filters (the
    only kwargs that change the outcome for the same bytes).
    """
    original: Any = TableMapEvent.__init__
    if getattr(original, "_replicator_cached", False):
        return

    def init(self: Any, from_packet: Any, event_size: int, table_map: dict[int, Any], ctl_connection: Any, **kwargs: Any) -> None:
        # peek without consuming: the library reads the rest through the same packet
        inner = from_packet.packet
        raw = bytes(inner._data[inner._position:inner._position + event_size])
        key = (raw, kwargs.get("only_tables") and tuple(kwargs["only_tables"]),
               kwargs.get("only_schemas") and tuple(kwargs["only_schemas"]))
        state = _TABLE_MAP_CACHE.get(key)
        if state is not None:
            from_packet.advance(event_size)
            self.__dict__.update(state)
            self.packet, self.table_map, self._ctl_connection = from_packet, table_map, ctl_connection
            # the header is this event's own, not the first occurrence's
            self.timestamp, self.event_type, self.event_size = from_packet.timestamp, from_packet.event_type, event_size
            table_map[self.table_id] = self.table_obj
            return
        original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        if self._processed and all(c.name for c in self.columns):
            _TABLE_MAP_CACHE[key] = {k: v for k, v in self.__dict__.items() if k not in _UNCACHED}
            if len(_TABLE_MAP_CACHE) > _TABLE_MAP_CACHE_SIZE:
                _TABLE_MAP_CACHE.popitem(last=False)

    init._replicator_cached = True  # type: ignore[attr-defined]
    TableMapEvent.__init__ = init  # type: ignore[method-assign]


class _NoReconnectNoise(logging.Filter):
    """mysql-replication warns that it will re-request the connection; we refuse that reconnect
    (see _OneConnection) and report the loss ourselves, so its warning only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Re-request the connection" not in record.getMessage()


logging.getLogger("pymysqlreplication").addFilter(_NoReconnectNoise())


class _OneConnection:
    """pymysql connect wrapper that refuses the library's silent mid-stream reconnect.

    mysql-replication reconnects on errors 2006/2013 at its current position, which may be
    inside a transaction; we raise instead and restart from the last transaction boundary.
    """

    def __init__(self) -> None:
        self.stream_connects = 0

    def __call__(self, **kwargs: Any) -> Any:
        if kwargs.get("db") != "information_schema":
            self.stream_connects += 1
            if self.stream_connects > 1:
                raise RetriableError("binlog stream connection lost")
        return MyConnection(**kwargs)  # PyMySQL's, with its TLS context shared (connect.py)


class BinlogSource:
    """Reads committed transactions of the mapped tables, starting at a checkpoint."""

    def __init__(self, conn: Connection, direction: str, tables: Sequence[TableRef], guard: LoopGuard,
                 start: BinlogPosition, chunk_rows: int, heartbeat_seconds: float = 10.0,
                 quarantine_undecodable: frozenset[TableRef] = frozenset(), shapes: ShapeWatch | None = None,
                 lower_case_table_names: int | None = None):
        """`quarantine_undecodable`: tables whose every mapping quarantines (on_error): a row with a byte its
        character set leaves undefined is handed on as an UndecodedRowChange, for the dead-letter queue,
        instead of stopping the stream. `shapes`: told a mapped table's columns from each new table map (an
        ALTER TABLE gives the table a new one), before its rows; it may raise to stop the stream.
        `lower_case_table_names`: the server's setting, read from it at the start of `transactions()` when None
        (until then names match exactly, as with 0)."""
        self.conn = conn
        self.shapes = shapes
        self._watched: dict[int, Any] = {}  # table map column lists told to `shapes`, by identity
        self.quarantine_undecodable = quarantine_undecodable
        self.direction = direction
        self.tables = frozenset(tables)
        self.guard = guard
        self.lower_case_table_names = 0
        self._folded: dict[tuple[str, str], TableRef] | None = None  # names_as_server: None matches exactly
        self._read_name_case = lower_case_table_names is None
        self.start = start
        self.chunk_rows = chunk_rows
        self.heartbeat = heartbeat_seconds
        # sync watermarks are rows of a state table here (replicator.sync.driver); they become Watermarks
        self.watermark_table = TableRef(guard.state_schema, WATERMARK_TABLE)
        self._stream: BinLogStreamReader | None = None
        self._stop = threading.Event()
        _install_table_map_cache()
        self._idle = start  # last boundary we passed
        self._fix_columns: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        # the same, by the identity of the table map's column list (kept alive here, so the id is not reused)
        self._fix_by_columns: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        self._seen_tables: dict[tuple[str, str], tuple[int, TableRef]] = {}
        # labelled metric children, looked up once; keyed by (schema, name): hashing a TableRef is a Python call
        self._changes_read: dict[tuple[str, str], Any] = {}
        # compiled row decoding (mysql-replication's event.rows is the fallback), converting values the way
        # _row() does: TIMESTAMP UTC-aware, a zero TIMESTAMP None, SET as MariaDB's text
        self._decoder = RowDecoder(utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True,
                                   exact_values=True)
        # while a sync runs, rows of echo transactions are kept (marked echo): the sync needs their keys
        self.keep_echoes = False
        self.names_as_server(lower_case_table_names or 0)

    def names_as_server(self, lower_case_table_names: int) -> None:
        """Match database and table names as a server with this `lower_case_table_names` does: 0 exactly (names are
        case-sensitive on Linux: `T` and `t` are two tables), 1 or 2 without regard to letter case (1: the server
        stores and binlogs them in lower case, whatever a statement or a mapping writes). Per table, not per row:
        `_classify` caches what a (schema, name) of the binlog is."""
        self.lower_case_table_names = lower_case_table_names
        self._seen_tables.clear()
        if not lower_case_table_names:
            self._folded = None
            return
        folded = {(_fold(t.schema), _fold(t.name)): t for t in self.tables}
        for name in (CHECKPOINT_TABLE, WATERMARK_TABLE):
            folded[(_fold(self.guard.state_schema), _fold(name))] = TableRef(self.guard.state_schema, name)
        self._folded = folded

    def _mapped(self, table: TableRef) -> TableRef | None:
        """The mapped table a name read from a statement names, as the server matches names (`names_as_server`),
        spelled as the mappings spell it; None for another table."""
        if self._folded is None:
            return table if table in self.tables else None
        found = self._folded.get((_fold(table.schema), _fold(table.name)))
        return found if found is not None and found in self.tables else None

    def _name_case(self) -> None:
        """Read the server's lower_case_table_names (set at its start; it cannot change while it runs)."""
        db = my_connect(self.conn, self.conn.capture, database=None)
        try:
            with db.cursor() as cur:
                cur.execute("SELECT @@lower_case_table_names")
                row = cur.fetchone()
        finally:
            db.close()
        self.names_as_server(int(row[0]) if row and row[0] is not None else 0)

    def ack(self, position: Position) -> None:
        """Nothing to tell a MariaDB server: binlog retention is by time, not by reader."""

    @property
    def safe_position(self) -> Position | None:
        """None: the binlog has no idle position past the last transaction boundary to record."""
        return None

    def idle_position(self) -> BinlogPosition:
        return self._idle

    def stop(self) -> None:
        """Stop reading; safe from another thread. Shutting the socket down wakes a blocked read."""
        self._stop.set()
        stream = self._stream
        conn = getattr(stream, "_stream_connection", None) if stream is not None else None
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _open(self) -> BinLogStreamReader:
        settings: dict[str, Any] = {
            "host": self.conn.host, "port": self.conn.port, "user": self.conn.capture.user,
            "passwd": self.conn.capture.password.value, "connect_timeout": math.ceil(self.conn.timeouts.connect_seconds),
            # silence for 3 heartbeats means a dead connection (C1: silent partition)
            "read_timeout": max(3 * self.heartbeat, 5),
        }
        ssl = ssl_settings(self.conn)
        if ssl:
            settings["ssl"] = ssl
        schemas = {t.schema for t in self.tables} | {self.guard.state_schema}
        names = {t.name for t in self.tables} | {CHECKPOINT_TABLE, WATERMARK_TABLE}
        if self._folded is not None:  # the library filters by exact name: the server's lower-case spelling too
            schemas |= {_fold(s) for s in schemas}
            names |= {_fold(n) for n in names}
        # lower_case_table_names=2 (case-insensitive file systems only; Linux servers run it as 0) keeps names as
        # created: no filter by name in the library, _classify decides
        wanted = self.lower_case_table_names != 2
        # same constructor and events as BinLogStreamReader, a cheaper per-event path (sources/binlogfast.py)
        return FastBinLogStreamReader(
            connection_settings=settings,
            server_id=self.conn.server_id,
            resume_stream=True,
            log_file=self.start.file,
            log_pos=self.start.pos,
            blocking=True,
            only_events=[MariadbGtidEvent, XidEvent, QueryEvent, RotateEvent, HeartbeatLogEvent, *_ROW_EVENTS],
            only_schemas=sorted(schemas) if wanted else None,
            only_tables=sorted(names) if wanted else None,
            slave_heartbeat=self.heartbeat,
            pymysql_wrapper=_OneConnection(),
            enable_logging=False,
        )

    def transactions(self) -> Iterator[SourceMessage]:
        try:
            if self._read_name_case:
                self._name_case()
            self._stream = stream = self._open()
            metrics.connection_up.labels(self.conn.name, "capture").set(1)
            yield from self._read(stream)
        except pymysql.OperationalError as exc:
            code = exc.args[0] if exc.args else None
            text = exc.args[1] if len(exc.args) > 1 else str(exc)
            if code == 1236:
                raise SourceLostError(
                    f"MariaDB {self.conn.host}:{self.conn.port} cannot send the binlog from "
                    f"{self.start}: {text}. The binlog was purged or the position is invalid; "
                    f"reset the checkpoint with `replicator setup --reset`, then re-sync the mapped tables with "
                    f"`replicator sync`"
                ) from None
            if code == 4052:  # ER_SLAVE_SAME_ID: also our own old session until the server notices it died
                raise RetriableError(
                    f"another binlog reader with server_id {self.conn.server_id} is connected to "
                    f"{self.conn.host}:{self.conn.port}: {text}. Give each replicator instance its own "
                    f"`server_id` in the configuration") from None
            if my_error_class(exc) == ACCESS:
                raise FatalError(f"binlog reader {self.conn.capture.user!r} lacks privileges: {text} "
                                 f"(GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*)") from None
            raise RetriableError(f"binlog stream from {self.conn.host}:{self.conn.port}: ({code}) {text}") from None
        except (pymysql.InterfaceError, ConnectionError, OSError) as exc:
            if self._stop.is_set():
                return
            raise RetriableError(f"binlog stream from {self.conn.host}:{self.conn.port}: {exc}") from None
        except RetriableError:
            # stop() shuts the socket down; the library then asks _OneConnection for a new connection,
            # which refuses: after a stop that is the end of the stream, not a loss
            if self._stop.is_set():
                return
            raise
        finally:
            self._stop.set()
            metrics.connection_up.labels(self.conn.name, "capture").set(0)
            if self._stream is not None:
                dump = getattr(self._stream, "_stream_connection", None)
                thread_id = getattr(dump, "server_thread_id", None)
                try:
                    self._stream.close()
                except (pymysql.MySQLError, OSError):
                    pass
                if thread_id:
                    self._end_dump_thread(thread_id[0])

    def _end_dump_thread(self, thread_id: int) -> None:
        """End our `Binlog Dump` thread on the server now.

        Closing our end is not enough: the dump thread waits for new binlog events, not for our
        socket, and notices the closed connection only when a write fails, after a heartbeat or two
        (24-92 s seen). Until then it pins the binlogs against PURGE and a restart's reader with the
        same server_id is refused. Any account may KILL its own connections; a server we cannot
        reach within a few seconds keeps the thread until it notices, as before."""
        try:
            db = my_connect(self.conn, self.conn.capture, database=None, connect_timeout=3, read_timeout=3,
                            write_timeout=3)
        except ReplicatorError as exc:
            log.debug("cannot end binlog dump thread %s: %s", thread_id, exc)
            return
        try:
            with db.cursor() as cur:
                cur.execute("KILL CONNECTION %s", (int(thread_id),))
        except pymysql.MySQLError as exc:  # 1094: unknown thread, already gone
            if not (exc.args and exc.args[0] == 1094):
                log.debug("cannot end binlog dump thread %s: %s", thread_id, exc)
        finally:
            try:
                db.close()
            except Exception:
                pass

    def _read(self, stream: BinLogStreamReader) -> Iterator[Transaction]:
        gtid: str | None = None
        txid = ""
        # the commit time as the event header's whole seconds: a datetime is made once, for the Transaction
        commit_ts: int | None = None
        standalone = False
        echo = False
        # keep_echoes is switched by the apply thread; it is read once per transaction, at its GTID
        # event, so that an echo transaction is kept whole or dropped whole, never half
        keep = self.keep_echoes
        rows: list[RowChange] = []
        marks: list[Watermark] = []
        chunks = 0
        in_txn = False
        m_event = metrics.Stamp(metrics.last_event_timestamp.labels(self.direction))
        m_dropped = metrics.loop_dropped.labels(self.direction)
        kinds = _EVENT_KINDS
        seen = self._seen_tables
        new_change, ops = new_row_change, _OPS
        # the reader's GTID and XID events as tuples (binlogfast.LEAN_*), not objects, when it can give them
        reader: Any = stream
        lean = bool(getattr(reader, "lean_events", False))
        fetch: Callable[[], Any] = functools.partial(reader.fetchone, True) if lean else reader.fetchone
        # and the rows events of mapped and watermark tables decoded without the library's event objects
        # (LEAN_ROWS): what _changes makes of them is the same; the loop tag's rows (_images reads the
        # library's values) and other tables' rows still come as events
        if lean and hasattr(reader, "row_decoder"):
            reader.row_decoder = self._decoder
            reader.lean_rows_wanted = self._lean_wanted
        paused = False  # reader.lean_rows_paused: in an echo transaction whose rows are dropped undecoded
        # consecutive transactions mostly commit within the same second: their datetime is made once
        last_ts: int | None = None
        last_time: datetime | None = None
        while not self._stop.is_set():
            try:
                event = fetch()
            except (pymysql.MySQLError, OSError, ReplicatorError):  # ours: a RetriableError, a shape refused
                raise
            except Exception as exc:
                raise DecodeError(
                    f"cannot decode the binlog event after {stream.log_file}:{stream.log_pos} "
                    f"(transaction {gtid or '?'}): {type(exc).__name__}: {exc}") from exc
            if event is None:
                if self._stop.is_set():
                    return
                raise RetriableError("binlog stream ended")
            # one dict look-up by exact class instead of a chain of isinstance (_event_kind for new classes)
            kind = kinds.get(event.__class__)
            if kind is None:
                kind = _event_kind(event.__class__)
            if kind == _ROWS or (kind == _LEAN and event[0] == LEAN_ROWS):
                if kind == _ROWS:
                    found = seen.get((event.schema, event.table))
                    table_kind, table = found if found is not None else self._classify(event.schema, event.table)
                    changes_of: Callable[[Any, TableRef], list[RowChange]] = self._changes
                else:
                    # (LEAN_ROWS, (table kind, table, changes_read's adder) from _lean_wanted, event class, pairs,
                    # zero_dates): the rows of a mapped or watermark table (never the loop tag's), decoded
                    handle = event[1]
                    table_kind, table = handle[0], handle[1]
                    changes_of = self._lean_changes
                    if table_kind == _MAPPED and not echo and len(event[3]) == 1 and not event[4]:
                        # one row, no zero date (a single-row transaction's): what _lean_changes makes, inline
                        handle[2](1)
                        before, after = event[3][0]
                        rows.append(new_change(table, ops[event[2]], before, after))
                        if len(rows) < self.chunk_rows:
                            continue
                        changes_of = _NO_CHANGES  # appended: the chunk below hands it over
                if table_kind == _MAPPED and not echo:
                    # the common case, stamped per transaction (at its boundary) or chunk, not per row event
                    rows.extend(changes_of(event, table))
                    if len(rows) >= self.chunk_rows:
                        m_event()
                        if commit_ts != last_ts:
                            last_ts, last_time = commit_ts, _time(commit_ts)
                        yield Transaction(txid, self._idle, last_time, tuple(rows), final=False, echo=echo)
                        rows, chunks = [], chunks + 1
                    continue
                m_event()
                if table_kind == _TAG:
                    # the tag opens the transaction; the same row is written again at its end (the checkpoint)
                    images = () if echo else self._images(event)
                    if any(self.guard.is_tag_row(table.schema, table.name, r) for r in images):
                        if chunks:
                            raise FatalError(f"loop tag found in the middle of transaction {gtid} after "
                                             f"{chunks} chunks were handed over; the applier writes it first")
                        echo, rows = True, []
                        if not keep and lean:  # its mapped rows are dropped: no use decoding them
                            reader.lean_rows_paused = paused = True
                    continue
                if table_kind == _MARK:
                    if not (echo and not keep):
                        marks.extend(Watermark.from_row(ch.after) for ch in changes_of(event, table) if ch.after)
                    continue
                if table_kind != _MAPPED or not keep:
                    continue
                rows.extend(changes_of(event, table))  # an echo kept for a running sync
                if len(rows) >= self.chunk_rows:
                    if commit_ts != last_ts:
                        last_ts, last_time = commit_ts, _time(commit_ts)
                    yield Transaction(txid, self._idle, last_time, tuple(rows), final=False, echo=echo)
                    rows, chunks = [], chunks + 1
                continue
            # the GTID event is not stamped: the transaction's boundary (or its chunks) is, a moment later
            if kind == _LEAN and event[0] == LEAN_GTID:  # (LEAN_GTID, gtid, timestamp, flags): as below
                gtid = txid = event[1]
                commit_ts = event[2]
                standalone = bool(event[3] & _STANDALONE)
                echo, rows, marks, chunks, in_txn = False, [], [], 0, True
                keep = self.keep_echoes
                if paused:
                    reader.lean_rows_paused = paused = False
                continue
            if kind == _GTID:
                gtid = event.gtid
                txid = gtid
                commit_ts = event.timestamp
                standalone = bool(event.flags & _STANDALONE)
                echo, rows, marks, chunks, in_txn = False, [], [], 0, True
                keep = self.keep_echoes
                if paused:
                    reader.lean_rows_paused = paused = False
                continue
            m_event()
            if kind == _LEAN:
                timestamp = event[1]  # (LEAN_XID, timestamp): a transaction boundary, as an XidEvent
            elif kind == _QUERY:
                query = event.query.strip().upper() if isinstance(event.query, str) else ""
                if query == "BEGIN":
                    continue
                if standalone and self.shapes is not None:  # a DDL: a mapped table renamed away?
                    self._renames(event)
                truncated = self._truncated(event) if standalone else None
                if truncated is not None and not echo:
                    rows.append(RowChange(truncated, Op.TRUNCATE))
                if standalone and not echo and "DROP" in query:  # DROP TABLE / DATABASE: its rows are gone too
                    rows.extend(RowChange(t, Op.TRUNCATE) for t in self._dropped(event))
                if not (query == "COMMIT" or standalone or not in_txn):
                    continue
                timestamp = event.timestamp
            elif kind == _XID:
                timestamp = event.timestamp
            else:
                continue  # Rotate, Heartbeat: the stream tracks the file name for us
            # a transaction boundary: everything up to here is committed
            position = binlog_position(stream.log_file, stream.log_pos, gtid)  # BinlogPosition(...)
            # the GTID event carries the time the transaction's first statement started; the XID
            # (or COMMIT) event the time of the commit, which is what lag and conflicts mean
            if timestamp:
                commit_ts = timestamp
            if commit_ts != last_ts:
                last_ts, last_time = commit_ts, _time(commit_ts)
            commit_time = last_time
            self._idle = position
            in_txn = False
            if echo:
                m_dropped.inc()
            yield final_transaction(txid or str(position), position, commit_time, tuple(rows), echo,
                                    tuple(marks))  # Transaction(..., final=True, echo=echo, watermarks=...)
            rows, marks, echo, chunks = [], [], False, 0
            if paused:
                reader.lean_rows_paused = paused = False

    def _classify(self, schema: str, name: str) -> tuple[int, TableRef]:
        """What the rows of a table are to this reader (the loop tag, sync watermarks, mapped or not),
        decided once per table instead of per row event."""
        table = TableRef(schema, name)
        if self._folded is not None:  # as the server matches names: the mappings' spelling of it
            table = self._folded.get((_fold(schema), _fold(name)), table)
        kind = (_TAG if self.guard.is_tag_table(table.schema, table.name) else _MARK if table == self.watermark_table
                else _MAPPED if table in self.tables else _OTHER)
        if len(self._seen_tables) >= _CACHE_SIZE:
            self._seen_tables.clear()
        self._seen_tables[(schema, name)] = (kind, table)  # under the binlog's spelling, which _read looks up
        return kind, table

    def _lean_wanted(self, schema: str, name: str, columns: Sequence[Any]) -> tuple[int, TableRef, Any] | None:
        """Whether the reader may hand this table map's rows over as LEAN_ROWS (asked once per table map): a
        mapped or watermark table whose columns all have names (else _changes's _fix raises, as before). The
        handle the LEAN_ROWS tuples then carry: what _read and _changes look up per rows event, made once."""
        found = self._seen_tables.get((schema, name))
        kind, table = found if found is not None else self._classify(schema, name)
        if not (kind == _MAPPED or kind == _MARK) or any(
                c.name is None or str(c.name).startswith("UNKNOWN_COL") for c in columns):
            return None
        if kind == _MAPPED and self.shapes is not None:
            self._watch(table, columns)
        key = (table.schema, table.name)
        changes_read = self._changes_read.get(key)
        if changes_read is None:
            changes_read = self._changes_read[key] = metrics.changes_read.labels(self.direction, str(table))
        # the counter's adder (metrics.adder): `changes_read.inc` without its per-call checks, per rows event
        return kind, table, metrics.adder(changes_read)

    def _watch(self, table: TableRef, columns: Any) -> None:
        """Tell the watch a table map's shape once per column list: binlogfast asks _lean_wanted again whenever a
        table's rows events change type (inserts, then updates), and the same table map keeps its list."""
        hit = self._watched.get(id(columns))
        if hit is not None and hit is columns:
            return
        assert self.shapes is not None
        self.shapes.seen(table, mariadb_shape(columns))
        if len(self._watched) >= _CACHE_SIZE:
            self._watched.clear()
        self._watched[id(columns)] = columns  # kept alive here, so that the id is not reused

    def _renames(self, event: Any) -> None:
        """`RENAME TABLE a TO b` or `ALTER TABLE a RENAME TO b` of a mapped table: its rows no longer come under
        its name (the binlog filter drops them), so the watch decides whether the stream may go on."""
        if not isinstance(event.query, str) or "RENAME" not in event.query.upper():
            return
        schema = event.schema.decode() if isinstance(event.schema, bytes) else (event.schema or "")
        for old, new in renamed_tables(event.query, schema, ansi_quotes=ansi_quotes(event),
                                       backslash_escapes=backslash_escapes(event)):
            mapped = self._mapped(old)
            if mapped is not None and self.shapes is not None:
                self.shapes.left(mapped, f"renamed to {new}")

    def _truncated(self, event: Any) -> TableRef | None:
        """The mapped table a `TRUNCATE [TABLE] name` statement empties, if any (its names read with the quoting of
        the statement's own sql_mode)."""
        if not isinstance(event.query, str):
            return None
        schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
        table = truncated_table(event.query, schema or "", ansi_quotes=ansi_quotes(event))
        return None if table is None else self._mapped(table)

    def _dropped(self, event: Any) -> list[TableRef]:
        """The mapped tables a `DROP TABLE` or `DROP DATABASE` statement drops: every row they held is gone, as
        after a TRUNCATE, and the reader hands each on as one (the mapping's `truncate:` decides). Read as
        `_truncated` reads its statement; a table created again afterwards is streamed on by name."""
        if not isinstance(event.query, str):
            return []
        schema = event.schema.decode() if isinstance(event.schema, bytes) else (event.schema or "")
        out: list[TableRef] = []
        for dropped in dropped_tables(event.query, schema, ansi_quotes=ansi_quotes(event)):
            if dropped.name:
                mapped = self._mapped(dropped)
                found = [mapped] if mapped is not None else []
            else:  # DROP DATABASE: each mapped table of it, as the server matches the database's name
                found = sorted((t for t in self.tables if self._mapped(TableRef(dropped.schema, t.name)) == t),
                               key=str)
            for table in found:
                if table not in out:
                    log.warning("%s: mapped table %s was dropped (%s): its rows are gone, read as a TRUNCATE of it "
                                "(the mapping's `truncate:` decides)", self.direction, table,
                                " ".join(event.query.split())[:200])
                    out.append(table)
        return out

    @staticmethod
    def _images(event: Any) -> list[dict[str, Any]]:
        out = []
        for r in event.rows:
            out.append(r.get("after_values") or r.get("values") or {})
        return out

    def _changes(self, event: Any, table: TableRef) -> list[RowChange]:
        columns = event.columns
        # every event of a table shares the table map's column list: look the corrections up by it first
        hit = self._fix_by_columns.get(id(columns))
        if hit is not None and hit[0] is columns:
            fix = hit[1]
        else:
            fix = self._fix(event, table)
            if self.shapes is not None and table in self.tables:  # (a nameless column: _fix raised)
                self._watch(table, columns)
            if len(self._fix_by_columns) >= _CACHE_SIZE:
                self._fix_by_columns.clear()
            self._fix_by_columns[id(columns)] = (columns, fix)
        name = (table.schema, table.name)
        changes_read = self._changes_read.get(name)
        if changes_read is None:
            changes_read = self._changes_read[name] = metrics.changes_read.labels(self.direction, str(table))
        decoded = self._decoder.decode(event)  # None: not for this table or event, use the library's rows
        if decoded is not None:
            pairs, zero = decoded
            if zero:
                metrics.zero_dates.labels(self.direction, str(table)).inc(zero)
            op = _OPS.get(event.__class__)
            if op is None:
                op = (Op.INSERT if isinstance(event, WriteRowsEvent) else
                      Op.UPDATE if isinstance(event, UpdateRowsEvent) else Op.DELETE)
            changes_read.inc(len(pairs))
            return row_changes(table, op, pairs)
        return self._library_changes(event, table, fix, changes_read)

    def _lean_changes(self, event: Any, table: TableRef) -> list[RowChange]:
        """_changes of a LEAN_ROWS tuple (the rows RowDecoder decoded; `table` is its handle's): the same
        metrics, the same RowChanges."""
        pairs = event[3]
        if event[4]:
            metrics.zero_dates.labels(self.direction, str(table)).inc(event[4])
        event[1][2](len(pairs))  # the handle's adder of replicator_changes_read_total
        return row_changes(table, _OPS[event[2]], pairs)

    def _fix(self, event: Any, table: TableRef) -> tuple[Any, ...]:
        """What binlog.py corrects in the library's values of this table map's columns (see _row)."""
        key = (event.schema, event.table, tuple((c.name, c.type) for c in event.columns))
        fix = self._fix_columns.get(key)
        if fix is None:
            if any(c.name is None or str(c.name).startswith("UNKNOWN_COL") for c in event.columns):
                raise FatalError(f"binlog rows of {table} carry no column names; set binlog_row_metadata=FULL "
                                 f"(events written before the change cannot be decoded safely)")
            fix = self._fix_columns[key] = (
                tuple(c.name for c in event.columns if c.type in _TIMESTAMP_TYPES),
                # members in definition order: the text MariaDB itself shows for a SET value
                tuple((c.name, tuple(c.set_values or ())) for c in event.columns if c.type == FIELD_TYPE.SET),
                exact_columns(event.columns),
            )
        return fix

    def _library_changes(self, event: Any, table: TableRef, fix: tuple[Any, ...],
                         changes_read: Any) -> list[RowChange]:
        """The rows as mysql-replication decodes them (`event.rows`), corrected as RowDecoder would."""
        at = libraryrows.mark(event)
        # the texts of the zero dates the library reads as None, so that their row errors name the value as the
        # fast decoder's do (a GEOMETRY table's rows come here)
        texts = libraryrows.watch_zero_dates(event)
        try:
            return self._library_rows(event, table, fix, changes_read, texts)
        except UnicodeDecodeError as exc:  # the library's codec for a column (a traceback without a name)
            found = self._decoder.undecodable
            if found is None or (found.schema, found.table) != (event.schema, event.table):
                # a table the fast decoder leaves to the library (GEOMETRY): its rows again, the byte kept
                found = self._library_undecodable(event, table, fix, at)
            if found is not None and (found.schema, found.table) == (event.schema, event.table):
                # the fast decoder met the byte first and found its row: name the key too, or hand the rows
                # on with the unreadable ones marked, for the dead-letter queue
                if table in self.quarantine_undecodable:
                    changes = undecoded_changes(table, _OPS.get(event.__class__) or (
                        Op.INSERT if isinstance(event, WriteRowsEvent) else
                        Op.UPDATE if isinstance(event, UpdateRowsEvent) else Op.DELETE), event.columns, found)
                    changes_read.inc(len(changes))
                    return changes
                raise DecodeError(undecodable_message(table, event.columns, found)) from exc
            columns = [c.name for c in event.columns if not _decodes(c.character_set_name, exc.object)]
            raise DecodeError(f"table {table}, column {' or '.join(map(str, columns)) or '?'}: a value is not "
                              f"text of its character set ({exc.encoding}: {exc.reason} at byte "
                              f"{exc.object[exc.start:exc.end]!r}); the rows of this table are decoded by "
                              f"mysql-replication, which cannot read it") from exc
        except (ValueError, ArithmeticError, LookupError) as exc:
            # anything else the library's readers raise (their dates past a month's end no longer do:
            # libraryrows.watch_zero_dates): never a bare traceback; the table, and the column and key as a row
            # error names them when the rows read again show where it failed
            failed = libraryrows.failure(event, at)
            where = f"table {table}" if failed is None else library_failure_where(table, event.columns, failed)
            raise DecodeError(f"{where}: mysql-replication cannot decode a value of this rows event "
                              f"({type(exc).__name__}: {exc}); the rows of this table are decoded by it (the fast "
                              f"decoder leaves them to it: {self._decoder.last_fallback or '?'})") from exc

    def _library_undecodable(self, event: Any, table: TableRef, fix: tuple[Any, ...],
                             at: libraryrows.Mark | None) -> Undecodable | None:
        """What RowDecoder finds for its own tables (rowdecode._find_undecodable), for an event the library
        decodes: its rows read again with the undefined bytes kept, corrected as usual, and the first row and
        column holding one (None: the rows cannot be read again, or no such byte is the cause)."""
        if libraryrows.reread(event, at) is None:
            return None
        pairs = [(None if c.before is None else dict(c.before), None if c.after is None else dict(c.after))
                 for c in self._library_rows(event, table, fix, _NOT_COUNTED)]
        for before, after in pairs:
            for image in (before, after):
                bad = escaped_columns(image)
                if image is not None and bad:
                    return Undecodable(str(event.schema), str(event.table), dict(image), bad[0],
                                       undefined_byte(image[bad[0]]), tuple(pairs))
        return None

    def _library_rows(self, event: Any, table: TableRef, fix: tuple[Any, ...], changes_read: Any,
                      texts: deque[str] | None = None) -> list[RowChange]:
        """`texts` (libraryrows.watch_zero_dates): the zero dates' texts in reading order, consumed image by image
        in the same order (each row's before image, then its after image)."""
        out: list[RowChange] = []
        try:
            rows = event.rows
        finally:
            libraryrows.unwatch(event)
        if isinstance(event, WriteRowsEvent):
            for r in rows:
                out.append(RowChange(table, Op.INSERT, None,
                                     self._row(r["values"], r, "none_sources", fix, table, texts)))
        elif isinstance(event, UpdateRowsEvent):
            for r in rows:
                out.append(RowChange(table, Op.UPDATE,
                                     self._row(r["before_values"], r, "before_none_sources", fix, table, texts),
                                     self._row(r["after_values"], r, "after_none_sources", fix, table, texts)))
        else:
            for r in rows:
                out.append(RowChange(table, Op.DELETE,
                                     self._row(r["values"], r, "none_sources", fix, table, texts), None))
        changes_read.inc(len(out))
        return out

    def _row(self, values: dict[str, Any], raw: dict[str, Any], sources_key: str, fix: tuple[Any, ...],
             table: TableRef, texts: deque[str] | None = None) -> dict[str, Any]:
        timestamps, sets, (binaries, times, years) = fix
        sources = raw.get(sources_key) or {}
        for col, size in binaries:  # the library strips a BINARY(n)'s trailing zero bytes ('' when all are)
            value = values[col]
            if value is not None:
                values[col] = (b"" if value == "" else value).ljust(size, b"\x00")
        for col in times:  # and reads a negative TIME(n) with a fraction wrong
            if values[col] is not None:
                values[col] = exact_time(values[col])
        for col in years:  # and YEAR 0000 (stored as 0) as 1900 + 0, a year no YEAR holds (1901..2155)
            if values[col] == 1900:
                values[col] = 0
        zeroed = [c for c, s in sources.items() if s in _ZERO_DATE] if sources else []
        shown: dict[str, str] = {}
        if texts is not None:
            for col in zeroed:  # (in reading order: the texts' order)
                if texts:
                    shown[col] = texts.popleft()
        for col in timestamps:
            if values[col] == _ZERO_TIMESTAMP:  # TIMESTAMP stores '0000-00-00 00:00:00' as 0
                values[col] = None
                zeroed.append(col)
                shown[col] = "0000-00-00 00:00:00"
            else:
                values[col] = _utc(values[col])
        zero = len(zeroed)
        for col, members in sets:
            value = values[col]
            if value is not None:
                values[col] = ",".join(m for m in members if m in value)
            elif sources.get(col) == NONE_SOURCE.EMPTY_SET:  # '' is not NULL
                values[col] = ""
        if zero:
            metrics.zero_dates.labels(self.direction, str(table)).inc(zero)
            # their columns named for the router, which refuses a zero date a mapping carries (changes.py)
            return zero_dated(values, zeroed, shown)
        return values


class _NotCounted:
    """A counter for rows read again only to find an undefined byte (they were counted, or are, once)."""

    def inc(self, _amount: float = 1) -> None:
        pass


_NOT_COUNTED = _NotCounted()


def _fold(name: str) -> str:
    """A database or table name as a server with lower_case_table_names 1 stores it (MariaDB lowers it with its
    utf8 file-name character set; Python's lower() agrees on ASCII and on the letters of European scripts)."""
    return name.lower()


# sql_mode's ANSI_QUOTES bit (MariaDB's MODE_ANSI_QUOTES) in the Q_SQL_MODE status variable of a QueryEvent
MODE_ANSI_QUOTES = 1 << 2
MODE_NO_BACKSLASH_ESCAPES = 1 << 20  # (0x100000 in a real server's QueryEvent)


def ansi_quotes(event: Any) -> bool:
    """Whether a QueryEvent's statement ran under sql_mode ANSI_QUOTES: read from the statement's own sql_mode, which
    MariaDB writes into every QueryEvent (mysql-replication's `sql_mode`, from the Q_SQL_MODE status variable). An
    event without it (none MariaDB writes) is read as under the default sql_mode."""
    return bool((getattr(event, "sql_mode", 0) or 0) & MODE_ANSI_QUOTES)


def backslash_escapes(event: Any) -> bool:
    """Whether a backslash escapes a quote in a QueryEvent statement's strings: unless its own sql_mode has
    NO_BACKSLASH_ESCAPES (read as `ansi_quotes`)."""
    return not (getattr(event, "sql_mode", 0) or 0) & MODE_NO_BACKSLASH_ESCAPES


class _Ddl:
    """The statements the reader reads a mapped table's name out of, compiled for one quoting: `` `x` `` only (the
    default sql_mode, where a `"x"` is a string) or `` `x` `` and `"x"` (sql_mode ANSI_QUOTES). Keywords in any case;
    before the statement any comments (`/* */`, `-- `, `#`); a name bare or quoted, with its database or not."""

    def __init__(self, ansi: bool):
        self.ansi = ansi
        quoted = r"`(?:[^`]|``)+`" + (r'|"(?:[^"]|"")+"' if ansi else "")
        bare = r"[^\s`.;,()" + ('"' if ansi else "") + r"]+"
        name = rf"(?:{quoted}|{bare})"
        qname = rf"({name})(?:\s*\.\s*({name}))?"
        lead = r"^\s*(?:(?:/\*.*?\*/|--(?:[ \t\r\f\v][^\n]*)?(?:\n|$)|#[^\n]*(?:\n|$))\s*)*"
        wait = r"(?:\s+(?:WAIT\s+[0-9.]+|NOWAIT))?"  # MariaDB's lock wait clause
        tail = r"\s*;?\s*(?:(?:/\*.*?\*/|--(?:[ \t\r\f\v][^\n]*)?(?:\n|$)|#[^\n]*(?:\n|$))\s*)*$"
        flags = re.IGNORECASE | re.DOTALL
        self.truncate = re.compile(lead + r"TRUNCATE\s+(?:TABLE\s+)?" + qname + wait + tail, flags)
        self.rename_table = re.compile(lead + r"RENAME\s+TABLES?\s+(?:IF\s+EXISTS\s+)?(.*)$", flags)
        # DROP TABLE [IF EXISTS] [/* comment */] a [, b ...] [WAIT n|NOWAIT] [RESTRICT|CASCADE] (never TEMPORARY);
        # MariaDB may add /* generated by server */ after the names
        one = rf"{name}(?:\s*\.\s*{name})?"  # qname without its groups
        self.drop_table = re.compile(lead + r"DROP\s+TABLES?\s+(?:IF\s+EXISTS\s+)?(?:/\*.*?\*/\s*)?("
                                     + one + r"(?:\s*,\s*" + one + r")*)" + wait
                                     + r"(?:\s+(?:RESTRICT|CASCADE))?" + tail, flags)
        self.names = re.compile(qname)
        self.drop_database = re.compile(lead + r"DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?(" + name + r")"
                                        + tail, flags)
        self.rename_pair = re.compile(qname + wait + r"\s+TO\s+" + qname, re.IGNORECASE)
        self.alter_table = re.compile(lead + r"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?"
                                      + qname + wait + r"(.*)$", flags)
        self.alter_rename = re.compile(r"(?:^|,)\s*RENAME\s+(?:TO\s+|AS\s+)?(?!(?:COLUMN|INDEX|KEY)\b)" + qname,
                                       re.IGNORECASE)

    def name(self, part: str) -> str:
        """A name as the server reads it (`identifiers.unquote_ident` with this quoting): without ANSI_QUOTES a
        `"x"` stays as it is, quotes and all, and so names no mapped table."""
        return unquote_ident(part, "mariadb", ansi_quotes=self.ansi)

    def ref(self, first: str, second: str | None, schema: str) -> TableRef:
        """`db.name` or `name` (in `schema`, the statement's default database) as a TableRef."""
        if second is not None:
            return TableRef(self.name(first), self.name(second))
        return TableRef(schema, self.name(first))


_DDL = {False: _Ddl(False), True: _Ddl(True)}


def renamed_tables(query: str, schema: str, *, ansi_quotes: bool = False,
                   backslash_escapes: bool = True) -> list[tuple[TableRef, TableRef]]:
    """(old, new) for each table a `RENAME TABLE` or `ALTER TABLE ... RENAME [TO|AS]` statement renames; a name
    without a database is `schema`'s (the statement's default database). `ansi_quotes`: the statement ran under
    sql_mode ANSI_QUOTES (`ansi_quotes(event)`), so a `"x"` is a name; `backslash_escapes`: a backslash escapes a
    quote in a string (no NO_BACKSLASH_ESCAPES: `backslash_escapes(event)`). A string (`COMMENT 'x, RENAME TO y'`)
    renames nothing."""
    ddl = _DDL[ansi_quotes]
    m = ddl.rename_table.match(query)
    if m is not None:
        return [(ddl.ref(p.group(1), p.group(2), schema), ddl.ref(p.group(3), p.group(4), schema))
                for p in ddl.rename_pair.finditer(m.group(1))]
    m = ddl.alter_table.match(query)
    if m is not None:
        r = ddl.alter_rename.search(_without_strings(m.group(3), ansi_quotes, backslash_escapes))
        if r is not None:
            return [(ddl.ref(m.group(1), m.group(2), schema), ddl.ref(r.group(1), r.group(2), schema))]
    return []


def _without_strings(sql: str, ansi_quotes: bool, backslash_escapes: bool = True) -> str:
    """`sql` with every string literal emptied (`'...'`, and `"..."` without ANSI_QUOTES; a quote doubled or
    escaped with a backslash inside), so that `COMMENT 'x, RENAME TO y'` is read as no rename. A quoted name
    (`` `...` ``, `"..."` under ANSI_QUOTES) is kept as it is: it may be the new name."""
    if "'" not in sql and (ansi_quotes or '"' not in sql):
        return sql
    out, i, n = [], 0, len(sql)
    strings = "'" if ansi_quotes else "'\""
    while i < n:
        c = sql[i]
        if c in strings or c == "`" or c == '"':
            j = i + 1
            while j < n:
                if sql[j] == "\\" and c in strings and backslash_escapes:
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(c + c if c in strings else sql[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def dropped_tables(query: str, schema: str, *, ansi_quotes: bool = False) -> list[TableRef]:
    """The tables a `DROP TABLE a, b` statement drops, or for `DROP DATABASE db` a TableRef(db, "") standing for
    every table of it; [] for another statement (`DROP TEMPORARY TABLE` too). `schema`, `ansi_quotes` as for
    `renamed_tables`."""
    ddl = _DDL[ansi_quotes]
    m = ddl.drop_table.match(query)
    if m is not None:
        return [ddl.ref(p.group(1), p.group(2), schema) for p in ddl.names.finditer(m.group(1))]
    m = ddl.drop_database.match(query)
    return [] if m is None else [TableRef(ddl.name(m.group(1)), "")]


def truncated_table(query: str, schema: str, *, ansi_quotes: bool = False) -> TableRef | None:
    """The table a `TRUNCATE [TABLE] [db.]name` statement empties, or None for another statement; `schema` and
    `ansi_quotes` as for `renamed_tables`."""
    ddl = _DDL[ansi_quotes]
    m = ddl.truncate.match(query)
    return None if m is None else ddl.ref(m.group(1), m.group(2), schema)


def _NO_CHANGES(_event: Any, _table: TableRef) -> list[RowChange]:
    """`changes_of` for a rows event whose change _read appended itself."""
    return []


def row_changes(table: TableRef, op: Op, pairs: Sequence[tuple[Any, Any]]) -> list[RowChange]:
    """[RowChange(table, op, before, after) for before, after in pairs], built without RowChange.__init__
    (changes.new_row_change)."""
    new = new_row_change
    return [new(table, op, before, after) for before, after in pairs]


def exact_columns(columns: Any) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...], tuple[str, ...]]:
    """The columns whose library value binlog.py corrects (RowDecoder's exact_values does the same):
    BINARY(n) / INET6 / UUID with their length, TIME(n) with a fraction, and YEAR (0000 read as 1900)."""
    binaries = tuple((c.name, n) for c in columns if (n := fixed_binary_length(c)) is not None)
    times = tuple(c.name for c in columns if c.type == FIELD_TYPE.TIME2 and c.__dict__.get("fsp"))
    years = tuple(c.name for c in columns if c.type == FIELD_TYPE.YEAR)
    return binaries, times, years


def binlog_files(conn: Connection) -> list[str]:
    """The binlog files the server still has, oldest first (SHOW BINARY LOGS)."""
    db = my_connect(conn, conn.capture, database=None)
    try:
        with db.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [row[0] for row in cur.fetchall()]
    except pymysql.MySQLError as exc:
        if my_error_class(exc) == ACCESS:
            raise FatalError(f"SHOW BINARY LOGS failed for {conn.capture.user!r}: {exc.args[-1]} "
                             f"(GRANT BINLOG MONITOR ON *.*)") from None
        raise RetriableError(f"SHOW BINARY LOGS on {conn.host}:{conn.port}: {exc.args[-1]}") from None
    finally:
        db.close()


def undecoded_changes(table: TableRef, op: Op, columns: Any, found: Undecodable) -> list[RowChange]:
    """The rows of an event holding a byte its character set leaves undefined (`found.pairs`, read with the
    byte kept): a row whose new image holds one is an UndecodedRowChange naming the column, never written;
    an old image's unreadable columns are left out (the update or delete is then written unchecked, as
    without a full old row), so that the DBA's correcting UPDATE or DELETE goes through."""
    out: list[RowChange] = []
    for before, after in found.pairs:
        bad = escaped_columns(after)
        if bad:
            assert after is not None
            msg = undecodable_message(table, columns, replace_found(found, after, bad[0]), stops=False)
            out.append(UndecodedRowChange(table, op, _clean(before), _clean(after), bad[0], msg))
            continue
        gone = set(escaped_columns(before))
        if before is not None and gone:
            before = {c: v for c, v in before.items() if c not in gone}
        out.append(RowChange(table, op, before, after))
    return out


def replace_found(found: Undecodable, image: dict[str, Any], column: str) -> Undecodable:
    return Undecodable(found.schema, found.table, image, column,
                       undefined_byte(image[column]),
                       found.pairs)


def _clean(image: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if image is None else {c: replaced(v) for c, v in image.items()}


def undecodable_message(table: TableRef, columns: Any, found: Undecodable, stops: bool = True) -> str:
    """A value no Python codec reads (a byte its single-byte character set leaves undefined): table, key
    (the table's primary key, from the row read with the byte kept), column and byte; `stops`: and what to do
    about the stopped stream."""
    key_columns = [c.name for c in columns if getattr(c, "is_primary", False)]
    key = tuple(replaced(found.image.get(c)) for c in key_columns)
    where = f"table {table}" + (f", key {key!r}" if key_columns and found.column not in key_columns else "")
    charset = next((c.character_set_name for c in columns if c.name == found.column), None)
    body = (f"a value is not text of its character set {charset or '?'} (byte {found.byte!r}, which that "
            f"character set leaves undefined: MariaDB shows it as '?')")
    if stops:
        body += ("; the binlog keeps this row as it is: with `on_error: quarantine` for its mapping the row is "
                 "queued instead and the stream goes on (docs/types.md)")
    return f"{where}, column {found.column}: {body}"


def library_failure_where(table: TableRef, columns: Any, found: libraryrows.Failure) -> str:
    """`table T, key K, column C` (`errors.RowError`'s words) for a value mysql-replication cannot decode: the key
    from the failing image's key columns read before the failing one, else from the row's old image (an update's),
    left out when neither holds it."""
    key_columns = [str(c.name) for c in columns if getattr(c, "is_primary", False)]
    key = None
    for image in (found.image, found.before):
        if key_columns and image is not None and all(c in image for c in key_columns):
            key = tuple(image[c] for c in key_columns)
            break
    return f"table {table}" + (f", key {show_key(key)}" if key is not None else "") + f", column {found.column}"


def _decodes(encoding: Any, raw: bytes) -> bool:
    """Whether mysql-replication decodes `raw` in a column of this `character_set_name` (a codec name)."""
    if encoding is None:
        return True
    try:
        raw.decode(str(RowsEvent.charset_to_encoding(encoding)))
    except LookupError:  # no Python codec: the library keeps the bytes
        return True
    except ValueError:
        return False
    return True
