"""PostgreSQL WAL source: logical replication with pgoutput over psycopg2.

Transactions arrive whole and in commit order. A transaction carrying our loop tag (a logical
message emitted first by the applier) is dropped at its first message, before any row is kept.
The server is told a position is flushed only after the pipeline has committed it to the target
(`ack`), so a crash always replays from the target checkpoint. We, not psycopg2, answer the
server's keepalives (sources/walproto.py): psycopg2 would confirm WAL ends we never committed.
"""
from __future__ import annotations

import json
import logging
import select
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

import psycopg2
import psycopg2.extras

from replicator import checkpoint as ckpt
from replicator import metrics
from replicator.connect import ACCESS, MISSING, pg_connect, pg_error_class
from replicator.changes import (LSN, Keepalive, Op, Position, RowChange, SourceMessage, TableRef, Transaction, Watermark,
                               final_transaction)
from replicator.config import Connection
from replicator.errors import FatalError, ReplicatorError, RetriableError, SchemaChangeError, SourceLostError
from replicator.loopguard import WATERMARK_PREFIX, LoopGuard
from replicator.sources.pgoutput import (
    BEGIN_LAYOUT, BEGIN_SIZE, COMMIT_LAYOUT, COMMIT_SIZE, PG_EPOCH, Message, PgOutputDecoder, Relation, Truncate,
)
from replicator.sources.shape import ShapeWatch, pg_shape
from replicator.sources.walproto import CopyStream


log = logging.getLogger(__name__)

KEEPALIVE_EVERY = 1.0  # seconds between idle position reports while nothing is committed
SLOT_STATS_EVERY = 10.0  # seconds between slot retention samples
SILENT_LIMIT = 120.0  # seconds without any byte from the walsender before we reconnect
# A server shutting down waits until we confirm its WAL end. We confirm only what the target holds;
# if it cannot commit that in this time (it hangs), we let go of the connection so the shutdown goes on.
SHUTDOWN_WAIT_LIMIT = 5.0


class WalSource:
    def __init__(self, conn: Connection, direction: str, tables: Sequence[TableRef], guard: LoopGuard,
                 start: LSN, chunk_rows: int, shapes: ShapeWatch | None = None):
        """`shapes`: told each mapped table's columns from every Relation message (a table's first, and
        again after an ALTER TABLE), before the rows that follow it; it may raise to stop the stream."""
        self.conn = conn
        self.shapes = shapes
        self.direction = direction
        self.tables = frozenset(tables)
        self._changes_read: dict[TableRef, Any] = {}  # labelled metric children, looked up once per table
        self._last_counted: tuple[TableRef | None, Any] = (None, None)  # the last of them, see _count
        self._uncounted = 0  # single-row transactions' rows of _last_counted's table not yet added: _flush_count
        self.guard = guard
        self.start = start
        self.chunk_rows = chunk_rows
        self._stop = threading.Event()
        self._acked = start
        self._ack_lock = threading.Lock()
        self._ack_pending = False
        self._db: Any = None
        self._monitor: Any = None
        # while a sync runs, the rows of echo transactions are kept (marked echo) so that the sync can
        # tell which keys changed during a chunk's window; otherwise they are not even decoded
        self.keep_echoes = False
        # the server's WAL end the last time the reader was between transactions with everything before
        # it handed over: nothing for us up to there, so a stopping pipeline may record it as its
        # checkpoint (see Direction._final_checkpoint); only then is it confirmed, at the next start
        self.safe_position: LSN | None = None

    # -- called from the applier thread
    def ack(self, position: Position) -> None:
        if not isinstance(position, LSN):
            raise FatalError(f"{self.direction}: cannot confirm {position} to a PostgreSQL slot")
        with self._ack_lock:
            if position > self._acked:
                self._acked = position
                self._ack_pending = True

    def stop(self) -> None:
        self._stop.set()

    # -- the reader thread
    def validate(self) -> LSN:
        """Check the slot against the checkpoint before streaming (fail closed)."""
        db = pg_connect(self.conn, self.conn.capture)
        try:
            with db.cursor() as cur:
                cur.execute(
                    "SELECT confirmed_flush_lsn::text, wal_status, plugin FROM pg_replication_slots "
                    "WHERE slot_name = %s AND database = current_database()", (self.conn.slot,))
                row = cur.fetchone()
        except psycopg2.OperationalError as exc:  # the server went away between connect and query
            raise RetriableError(f"{self._describe()}: {str(exc).strip()}") from None
        finally:
            db.close()
        if row and row[2] != "pgoutput":
            raise FatalError(f"replication slot {self.conn.slot!r} uses plugin {row[2]!r}, not pgoutput")
        return ckpt.check_slot(self.conn.slot, row[:2] if row else None, self.start)

    def transactions(self) -> Iterator[SourceMessage]:
        start = self.validate()
        try:
            self._db = pg_connect(self.conn, self.conn.capture,
                                  connection_factory=psycopg2.extras.LogicalReplicationConnection)
        except RetriableError:
            raise
        metrics.connection_up.labels(self.conn.name, "capture").set(1)
        try:
            cur = self._db.cursor()
            try:
                cur.start_replication(
                    slot_name=self.conn.slot, decode=False, start_lsn=start.value, status_interval=10,
                    options={"proto_version": "1", "publication_names": self.conn.publication,
                             "messages": "true"})
            except psycopg2.Error as exc:
                raise self._classify(exc) from None
            yield from self._read(CopyStream(self._db, confirmed=start.value), start)
        except psycopg2.Error as exc:
            if self._stop.is_set():
                return
            raise self._classify(exc) from None
        finally:
            self._close()

    def _describe(self) -> str:
        """The replication session for logs: it runs as the capture account, not the apply one."""
        return f"{self.conn.kind}://{self.conn.capture.user}@{self.conn.host}:{self.conn.port}/{self.conn.database}"

    def _classify(self, exc: psycopg2.Error) -> Exception:
        """By SQLSTATE and the catalog, never by the message's words (the server's lc_messages)."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        code = getattr(exc, "pgcode", None)
        cls = pg_error_class(exc)
        if cls == ACCESS:
            return FatalError(f"capture user {self.conn.capture.user!r}: {text} (SQLSTATE {code}; "
                              f"ALTER ROLE ... REPLICATION)")
        if code == "55006":  # object_in_use: the slot is still held by our previous walsender
            return RetriableError(f"WAL stream from {self._describe()}: {text}")
        if cls == MISSING or code == "55000":
            # undefined_object (a dropped slot or a missing publication) or object_not_in_prerequisite_state
            # (an invalidated slot): the catalog says which
            lost = self._diagnose()
            if lost is not None:
                return lost
        return RetriableError(f"WAL stream from {self._describe()}: {text}")

    def _diagnose(self) -> Exception | None:
        """Which of the stream's objects is gone, read from the catalog; None when it cannot tell."""
        try:
            db = pg_connect(self.conn, self.conn.capture)
        except ReplicatorError:
            return None
        try:
            with db.cursor() as cur:
                cur.execute("SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots "
                            "WHERE slot_name = %s AND database = current_database()", (self.conn.slot,))
                slot = cur.fetchone()
                cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.conn.publication,))
                publication = cur.fetchone()
        except psycopg2.Error:
            return None
        finally:
            db.close()
        try:
            ckpt.check_slot(self.conn.slot, slot, self.start)  # dropped or invalidated: its own message
        except FatalError as lost:
            return lost
        if publication is None:
            return FatalError(f"publication {self.conn.publication!r} does not exist; run `replicator setup`")
        return None

    def _close(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                monitor.close()
            except psycopg2.Error:
                pass
        db, self._db = self._db, None
        if db is None:
            return
        try:
            db.close()
        except Exception:
            pass
        metrics.connection_up.labels(self.conn.name, "capture").set(0)

    def _slot_stats(self) -> None:
        """Export how much WAL the slot holds back and how much is left before it is invalidated; and stop when a
        mapped table left the publication (`_check_published`)."""
        try:
            if self._monitor is None or self._monitor.closed:
                self._monitor = pg_connect(self.conn, self.conn.capture)
                self._monitor.autocommit = True
            with self._monitor.cursor() as cur:
                cur.execute("SELECT pg_current_wal_lsn() - restart_lsn, safe_wal_size, wal_status "
                            "FROM pg_replication_slots WHERE slot_name = %s", (self.conn.slot,))
                row = cur.fetchone()
                cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                            (self.conn.publication,))
                tables = {TableRef(s, t) for s, t in cur.fetchall()}
                published: set[TableRef] | None = tables
                if not self.tables <= tables:  # (a publication that is gone: the stream's error says so)
                    cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.conn.publication,))
                    published = tables if cur.fetchone() else None
        except (psycopg2.Error, RetriableError) as exc:
            log.debug("slot statistics unavailable: %s", exc)
            return
        if published is not None:
            self._check_published(published)
        if row is None:
            return
        retained, safe, status = row
        metrics.slot_retained_bytes.labels(self.conn.name).set(float(retained or 0))
        metrics.slot_safe_wal_bytes.labels(self.conn.name).set(float(safe) if safe is not None else -1)
        if status == "unreserved":
            log.warning("slot %s is about to lose WAL it needs (wal_status=unreserved)", self.conn.slot)

    def _check_published(self, published: set[TableRef]) -> None:
        """A mapped table that left the publication -- dropped (and perhaps created again: a new table is in no
        publication), renamed, or taken out -- sends no changes any more: stop rather than go on without them."""
        missing = sorted(self.tables - published, key=str)
        if missing:
            raise SchemaChangeError(
                f"{self.direction}: mapped table {missing[0]} is no longer in publication {self.conn.publication} "
                f"(dropped, created again, renamed or removed from it while replicator ran): its changes no longer "
                f"reach replicator", hint="create or rename the table back, run `replicator setup` (it adds the "
                f"mapped tables to the publication), start again, then `replicator sync` its mappings: changes made "
                f"while it was out of the publication were never sent")

    def _renamed(self, oid: int, old: TableRef, new: TableRef) -> SchemaChangeError:
        return SchemaChangeError(
            f"{self.direction}: mapped table {old} was renamed to {new} while replicator ran (relation oid {oid}); "
            f"its rows would no longer be carried, nothing of them was applied",
            hint=f"rename it back, or change `table:` in its mappings to {new.name} and run `replicator setup`, "
                 f"then start again")

    def _check_alive(self, stream: CopyStream) -> None:
        """The server sends keepalives at least every wal_sender_timeout/2; a silent connection
        for SILENT_LIMIT seconds is a partition the TCP stack has not noticed yet (C1)."""
        last = stream.io_time
        metrics.last_event_timestamp.labels(self.direction).set(last)
        if time.time() - last > SILENT_LIMIT:
            raise RetriableError(f"WAL stream from {self._describe()}: nothing received for "
                                 f"{time.time() - last:.0f} s; reconnecting")
        asked = stream.wait_asked_at
        if asked is not None and time.monotonic() - asked > SHUTDOWN_WAIT_LIMIT:
            raise RetriableError(
                f"WAL stream from {self._describe()}: the server waits for WAL up to "
                f"{LSN(stream.wal_end)} to be confirmed (shutting down?) but the target has committed only "
                f"{LSN(stream.confirmed)}; reconnecting so that it can go on")

    def _send_ack(self, stream: CopyStream) -> None:
        if not self._ack_pending:  # read without the lock: an ack set just now is sent at the next call
            return
        with self._ack_lock:
            pending, lsn = self._ack_pending, self._acked
            self._ack_pending = False
        if pending:
            stream.confirm(lsn.value)

    def _count(self, rows: list[RowChange]) -> None:
        """replicator_changes_read_total per table. `labels()` takes the metric's lock and hashes the label
        values: it was 14% of this reader's time when called once per transaction, so the children are kept.
        A one-row transaction (the usual one) skips the per-table tally, and its row is only added up here:
        `_flush_count` adds them to the metric, once per batch of messages `_read` takes from the stream (the
        metric's `inc` -- four Python calls and its lock -- was 16% of the reader's calls in a single-row
        burst), when the table changes, and before a multi-row transaction is counted."""
        if not rows:
            return
        if len(rows) == 1:
            table = rows[0].table
            if table is not self._last_counted[0]:  # the same TableRef object as last time: no dataclass hash
                self._flush_count()
                cache = self._changes_read
                child = cache.get(table)
                if child is None:
                    child = cache[table] = metrics.changes_read.labels(self.direction, str(table))
                self._last_counted = (table, child)
            self._uncounted += 1
            return
        self._flush_count()
        cache = self._changes_read
        # tallied by runs of the same TableRef object (a relation's rows share one): the dict, whose key is a
        # dataclass hash (a Python call), is asked once per run, not per row; equal tables still add up
        per_table: dict[TableRef, int] = {}
        last: TableRef = rows[0].table
        n = 0
        for r in rows:
            if r.table is last:
                n += 1
                continue
            per_table[last] = per_table.get(last, 0) + n
            last, n = r.table, 1
        per_table[last] = per_table.get(last, 0) + n
        for table, n in per_table.items():
            child = cache.get(table)
            if child is None:
                child = cache[table] = metrics.changes_read.labels(self.direction, str(table))
            child.inc(n)

    def _flush_count(self) -> None:
        """Adds the rows `_count` kept back to the metric."""
        if self._uncounted:
            self._last_counted[1].inc(self._uncounted)
            self._uncounted = 0

    def _read(self, stream: CopyStream, start: LSN) -> Iterator[SourceMessage]:
        """The per-message loop, kept to a few Python calls per message (issue 14): the stream hands over
        every buffered message at once; Begin and Commit are unpacked here (pgoutput.BEGIN_LAYOUT), rows
        go through `PgOutputDecoder.row`, everything else -- and any Begin or Commit not of its one size,
        whose error `decode` then raises -- through `decode`. tests/unit/test_wal_differential.py holds
        it to the yields of the loop it replaced (tests/unit/reference/wal_6905239.py)."""
        decoder = PgOutputDecoder()
        decode, row_of = decoder.decode, decoder.row
        tables = self.tables
        mapped_oids: dict[int, TableRef] = {}  # a mapped table's relation oid: a rename keeps it
        kept_table: TableRef | None = None
        # the open transaction: (final LSN, commit time in PostgreSQL microseconds, xid) of its Begin
        begin: tuple[int, int, int] | None = None
        rows: list[RowChange] = []
        marks: list[Watermark] = []
        echo = skip = False
        # keep_echoes is switched by the apply thread; it is read once per transaction, at its Begin,
        # so that an echo transaction is kept whole or dropped whole, never half
        keep = self.keep_echoes
        drop = False  # skip or (echo and not keep): this transaction's rows are not wanted
        chunks = 0
        chunk_rows = self.chunk_rows
        start_value = start.value
        last_idle = start
        idle_sent_at = time.monotonic()
        stats_at = 0.0
        m_event = metrics.Stamp(metrics.last_event_timestamp.labels(self.direction))
        m_dropped = metrics.loop_dropped.labels(self.direction)
        unpack_begin, unpack_commit = BEGIN_LAYOUT.unpack_from, COMMIT_LAYOUT.unpack_from
        try:
            while not self._stop.is_set():
                if time.monotonic() - stats_at >= SLOT_STATS_EVERY:
                    stats_at = time.monotonic()
                    self._slot_stats()
                self._flush_count()  # what the last batch's transactions read, in the metric
                batch = stream.read_batch()
                if not batch:
                    self._send_ack(stream)
                    self._check_alive(stream)
                    now = time.monotonic()
                    wal_end = LSN(stream.wal_end) if stream.wal_end else last_idle
                    if begin is None:
                        self.safe_position = wal_end
                    if begin is None and wal_end > last_idle and now - idle_sent_at >= KEEPALIVE_EVERY:
                        # nothing open, everything before wal_end was sent: a safe place to resume
                        last_idle, idle_sent_at = wal_end, now
                        yield Keepalive(wal_end)
                        continue
                    select.select([stream], [], [], 0.5)
                    continue
                for payload in batch:
                    kind = payload[0] if payload else 0
                    if kind == 0x49 or kind == 0x55 or kind == 0x44:  # 'I', 'U', 'D'
                        if drop:
                            continue  # dropped anyway: do not pay for decoding it
                        change = row_of(payload)
                        # a relation's rows share its one TableRef: the set (a dataclass hash, a
                        # Python call) is asked only when the table differs from the last one kept
                        if change.table is not kept_table:
                            if change.table not in tables:
                                continue
                            kept_table = change.table
                        rows.append(change)
                        if len(rows) >= chunk_rows:
                            assert begin is not None
                            yield Transaction(str(begin[2]), last_idle, _pg_time(begin[1]), tuple(rows),
                                              final=False, echo=echo)
                            rows, chunks = [], chunks + 1
                    elif kind == 0x42 and len(payload) == BEGIN_SIZE:  # 'B'
                        begin = unpack_begin(payload, 1)
                        rows, marks, echo, chunks = [], [], False, 0
                        keep = self.keep_echoes
                        # already in the target: the checkpoint is the end of a later or equal commit
                        skip = drop = begin[0] < start_value
                    elif kind == 0x43 and len(payload) == COMMIT_SIZE:  # 'C'
                        _flags, commit_lsn, end_lsn, ts = unpack_commit(payload, 1)
                        if begin is None:
                            raise FatalError(f"commit at {LSN(commit_lsn)} without a begin")
                        position = LSN(end_lsn)
                        m_event()
                        if self._ack_pending:  # _send_ack's own first test, without its call
                            self._send_ack(stream)  # under steady load the stream is never idle: ack here too
                        if skip:
                            rows, marks = [], []
                        if echo:
                            m_dropped.inc()
                        elif len(rows) == 1 and rows[0].table is self._last_counted[0]:
                            self._uncounted += 1  # _count's usual case (the table counted last), without its call
                        elif rows:
                            self._count(rows)
                        if end_lsn > last_idle.value:  # max(): LSN's dataclass order is a Python call
                            last_idle = position
                        # timedelta(0, 0, ts) is timedelta(microseconds=ts) without the keyword's own path
                        yield final_transaction(str(begin[2]), position, PG_EPOCH + timedelta(0, 0, ts),
                                                tuple(rows), echo, tuple(marks) if marks else ())
                        begin, rows, marks, echo, skip, drop = None, [], [], False, False, False
                    else:
                        event = decode(payload)  # Begin or Commit only if malformed: then it raises
                        if isinstance(event, Message):
                            if event.transactional and not echo \
                                    and self.guard.is_tag_message(event.prefix, event.content):
                                if chunks:
                                    raise FatalError(
                                        f"loop tag in the middle of transaction {begin[2] if begin else '?'}")
                                echo, rows, marks = True, [], []
                                drop = skip or not keep
                            elif event.transactional and event.prefix == WATERMARK_PREFIX and not (echo or skip):
                                marks.append(_watermark(event.content))
                        elif isinstance(event, Truncate):
                            if not (echo or skip):
                                rows.extend(RowChange(t, Op.TRUNCATE) for t in event.tables if t in tables)
                        elif isinstance(event, Relation):
                            if event.table in tables:
                                mapped_oids[event.oid] = event.table
                                if self.shapes is not None:
                                    self.shapes.seen(event.table, pg_shape(event.columns))
                            elif event.oid in mapped_oids:
                                raise self._renamed(event.oid, mapped_oids[event.oid], event.table)
                        # Origin and Type messages only feed the decoder's cache
        finally:
            self._flush_count()
            try:
                self._send_ack(stream)  # the last committed position, also on shutdown
            except psycopg2.Error:
                pass


def _pg_time(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


def _watermark(content: bytes) -> Watermark:
    """A sync watermark (replicator.sync.driver): the logical message holds the MariaDB side's row as JSON."""
    try:
        row = json.loads(content)
    except ValueError:
        row = None
    if not isinstance(row, dict):
        raise FatalError(f"undecodable sync watermark message {content[:80]!r}")
    return Watermark.from_row(row)


