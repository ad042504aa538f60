"""Sync: existing rows copied through the mappings while the stream keeps running.

How a copy stays consistent with the stream -- a watermark scheme in the family of Netflix's DBLog
(Andreakis and Papapanagiotou, 2019) and Debezium's incremental snapshots:

1. From the moment a sync starts, the direction's apply loop remembers the key of every change it
   sees in the synced table, our own echoes included (sources keep echo rows while a sync runs).
2. The snapshotter thread reads the table in primary-key chunks (`key > last ORDER BY key LIMIT n`,
   each its own short snapshot, no lock) and after each read writes a HIGH watermark into the
   source's change stream.
3. When the apply loop meets the HIGH watermark, in commit order like any other change, it drops
   from the chunk every remembered key and applies the remaining rows right there, as upserts
   through the chunk's mapping, in the target transaction that also records the sync's progress
   (`<state_schema>.sync` in the target) and the stream's checkpoint.

Why that is exactly right: a remembered key changed after the sync started, so the stream itself
carries its newest state; every other row of the chunk has not changed since the sync started, so
the chunk holds its current state, and any change after the HIGH watermark is applied after the
chunk. DBLog only drops keys changed between a LOW and the HIGH watermark; dropping every key
changed since the start costs one key of memory per row changed during the copy and needs one
watermark per chunk instead of two. A row our other direction wrote into the source (an echo)
is not dropped but copied with only the fields this side owns: the echo carried the other side's
fields, and writing those back could overwrite a newer change made there meanwhile.

The copy never holds a lock or a long transaction, works on a live system, and a crash resumes at
the last chunk the target committed (a HIGH watermark of a previous session is not in memory any
more and is ignored: its chunk is simply read again).

Why not an exported snapshot (`CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT`, or MariaDB's
`START TRANSACTION WITH CONSISTENT SNAPSHOT` with the binlog position): it only exists when a slot
is created, holds one long transaction (and the xmin horizon / purge) for the whole copy, cannot
resume after a crash, and cannot re-copy one mapping while the stream applies the others. The
watermark scheme does all of that with one mechanism on both databases.

Deletes on the target side: a row deleted there (not by us) after the copy started has its delete
on the way to the source; copying the row would revive it. The other direction's driver (same
process) remembers such keys for a running copy, and the copy skips them (both directions
register before either reads at start). Left open, for two-way mappings with shared keys: a delete
the other direction has not even read yet when the chunk is applied (its read lag, normally
milliseconds). A crosswalk-linked mapping is not affected (a pair outlives its rows), and
`replicator verify` after such a copy finds any revived row.

Watermarks: PostgreSQL -- a transactional logical message (prefix `replicator.watermark`), no
table and no grant. MariaDB -- an upsert of the stream's row in `<state_schema>.watermark`.

A two-way mapping is copied from one side first (`sync.first_side`, default: the first
connection), then from the other. The first side's copy writes every field it maps, so on fields
without an owner its values win; the second side's copy writes only the fields it owns into rows
that exist on both sides, and creates the rows that exist on its side only.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import Op, RowChange, TableRef, TargetChange, Transaction
from replicator.codec import dumps_key, loads_key
from replicator.config import Config, Connection
from replicator.connect import MISSING, RETRIABLE, error_class
from replicator.errors import ConfigError, FatalError, ReplicatorError, RetriableError
from replicator.loopguard import WATERMARK_PREFIX, WATERMARK_TABLE, stream_name
from replicator.mapping.model import Flow, Mapping, MappingSet
from replicator.mapping.router import route_flow
from replicator.sources.tablescan import TableScanner  # imported here, not in a thread: mysql-replication's
# package has import cycles that break when two threads import it at once

log = logging.getLogger(__name__)

SYNC_TABLE = "sync"
OUTSTANDING = 2  # chunks read ahead of the apply loop (memory: OUTSTANDING * chunk_rows rows)
POLL_SECONDS = 2.0  # how often a direction looks for new sync requests
STOP_SECONDS = 10.0  # how long stopping waits for a snapshotter whose query was cancelled

PENDING, RUNNING, DONE = "pending", "running", "done"
CHANGED, ECHO = "changed", "echo"  # how a key changed since a sync started


def postgres_ddl(schema: str) -> list[str]:
    return [f"""CREATE TABLE IF NOT EXISTS {schema}.sync (
        stream text NOT NULL, mapping text NOT NULL, status text NOT NULL, last_key text,
        rows_done bigint NOT NULL DEFAULT 0, rows_estimated bigint NOT NULL DEFAULT 0,
        requested_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, finished_at timestamptz,
        PRIMARY KEY (stream, mapping))"""]


def mariadb_ddl(schema: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.sync (
            stream VARCHAR(128) NOT NULL, mapping VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL,
            last_key TEXT NULL, rows_done BIGINT NOT NULL DEFAULT 0, rows_estimated BIGINT NOT NULL DEFAULT 0,
            requested_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), started_at DATETIME(6) NULL,
            finished_at DATETIME(6) NULL, PRIMARY KEY (stream, mapping)) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {schema}.watermark (
            stream VARCHAR(128) NOT NULL PRIMARY KEY, mark VARCHAR(64) NOT NULL, kind VARCHAR(8) NOT NULL
        ) ENGINE=InnoDB""",
    ]


def watermark_table(source: Connection) -> TableRef:
    """The table the direction reading `source` sees watermarks as (a real table on MariaDB)."""
    return TableRef(source.state_schema, WATERMARK_TABLE)


# ---------------------------------------------------------------- state in the target


@dataclass(frozen=True)
class SyncRow:
    stream: str
    mapping: str
    status: str
    last_key: tuple[Any, ...] | None
    rows_done: int
    rows_estimated: int
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in (PENDING, RUNNING)


class SyncState:
    """The `<state_schema>.sync` table of one database (the target of the streams it records)."""

    def __init__(self, db: Applier, schema: str):
        self.db = db
        self.table = db.quote_table(TableRef(schema, SYNC_TABLE))

    def rows(self, stream: str | None = None) -> list[SyncRow]:
        """Inside the caller's transaction (the caller ends it)."""
        sql = (f"SELECT stream, mapping, status, last_key, rows_done, rows_estimated, requested_at, started_at, "
               f"finished_at FROM {self.table}")
        params: list[Any] = []
        if stream is not None:
            sql += " WHERE stream = %s"
            params.append(stream)
        try:
            found = self.db.query(sql + " ORDER BY stream, mapping", params)
        except ReplicatorError:
            raise
        except Exception as exc:
            if error_class(self.db.kind, exc) == MISSING:  # PostgreSQL 42P01, MariaDB 1146
                raise ConfigError(f"{self.table} is missing in {self.db.conn.describe()}: run `replicator setup` "
                                  f"(it adds the tables a newer version needs and keeps everything else)") from None
            raise
        out = []
        for r in found:
            out.append(SyncRow(r[0], r[1], r[2], loads_key(r[3]) if r[3] else None, int(r[4]), int(r[5]),
                               r[6], r[7], r[8]))
        return out

    def request(self, stream: str, mapping: str) -> bool:
        """Ask for a copy of `mapping`; a copy already pending or running is left to go on (resumes).
        Inside the caller's transaction. True when a new copy was requested."""
        existing = {r.mapping: r for r in self.rows(stream)}
        row = existing.get(mapping)
        if row is not None and row.active:
            return False
        now = self._now()
        if row is None:
            self.db.execute(f"INSERT INTO {self.table} (stream, mapping, status, requested_at) VALUES (%s, %s, %s, %s)",
                            [stream, mapping, PENDING, now])
        else:
            self.db.execute(f"UPDATE {self.table} SET status = %s, last_key = NULL, rows_done = 0, rows_estimated = 0, "
                            f"requested_at = %s, started_at = NULL, finished_at = NULL "
                            f"WHERE stream = %s AND mapping = %s", [PENDING, now, stream, mapping])
        return True

    def _now(self, now: datetime | None = None) -> datetime:
        now = now or datetime.now(timezone.utc)
        return now.replace(tzinfo=None) if self.db.kind == "mariadb" else now

    def save(self, stream: str, mapping: str, last_key: tuple[Any, ...] | None, rows_done: int, estimated: int,
             done: bool, started: datetime | None = None) -> None:
        """Progress of one chunk, inside the target transaction that applies it; `started` is when the
        copy began reading (kept from its first chunk on)."""
        now = self._now()
        self.db.execute(
            f"UPDATE {self.table} SET status = %s, last_key = %s, rows_done = %s, rows_estimated = %s, "
            f"started_at = COALESCE(started_at, %s), finished_at = %s WHERE stream = %s AND mapping = %s",
            [DONE if done else RUNNING, None if last_key is None else dumps_key(last_key), rows_done, estimated,
             self._now(started) if started else now, now if done else None, stream, mapping])


# ---------------------------------------------------------------- chunks


@dataclass
class Job:
    mapping: str
    flow: Flow
    last_key: tuple[Any, ...] | None
    rows_done: int
    # the second side of a two-way mapping: fields without an owner are only written into rows it
    # creates (existing rows hold the first side's values, or newer ones the streams brought)
    insert_only: frozenset[str] = frozenset()
    # for rows our other direction wrote into the source since the sync started: every field but the
    # ones this side owns (those the other direction did not bring over)
    echo_insert_only: frozenset[str] = frozenset()
    started: datetime | None = None  # when the snapshotter began reading it (this session)


@dataclass
class Chunk:
    job: Job
    rows: list[dict[str, Any]]
    last_key: tuple[Any, ...] | None
    rows_done: int  # after this chunk
    estimated: int
    done: bool


@dataclass(frozen=True)
class Progress:
    """The sync table update that goes into the target transaction with a chunk's rows."""

    stream: str
    chunk: Chunk


class Snapshotter:
    """Reads the chunks of a direction's sync jobs, one job after the other, in a thread.

    Owns one source connection (the source side's apply account: SELECT on the mapped tables and
    writes for watermarks). Hands chunks to the apply loop through `SyncDriver`. It belongs to the
    streaming session that started it: once that session stopped it (`cancel`), the driver refuses
    its chunks, even if a query kept it alive into the next session.
    """

    def __init__(self, driver: "SyncDriver", jobs: list[Job], wait_for: Callable[[str], bool]):
        self.driver = driver
        self.jobs = jobs
        self.wait_for = wait_for  # mapping -> True once the other side's copy of it is done
        self.error: BaseException | None = None
        self.mapping: str | None = None  # the job being read, for error messages
        self.cancelled = threading.Event()
        self._db: Applier | None = None
        self.thread = threading.Thread(target=self._run, name=f"sync-{driver.stream}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        """From the apply thread: stop at once, cancelling the query it may be waiting for."""
        self.cancelled.set()
        db = self._db
        if db is not None:
            db.interrupt()

    def _run(self) -> None:
        d = self.driver
        db = self._db = make_applier(d.source, f"sync:{d.stream}", "")
        try:
            if self.cancelled.is_set():
                return
            db.connect()
            for job in self.jobs:
                while not self.wait_for(job.mapping):
                    if d.stop.wait(1.0) or d.snapshotter is not self:
                        return
                self.mapping = job.mapping
                job.started = datetime.now(timezone.utc)
                scanner = TableScanner(db, job.flow.source.table, job.flow.source.key)
                estimated = max(scanner.estimate(), job.rows_done)
                metrics.sync_running.labels(d.stream, job.mapping).set(1)
                metrics.sync_rows_estimated.labels(d.stream, job.mapping).set(estimated)
                log.info("%s: sync of %s from %s starts%s (about %d rows)", d.stream, job.mapping,
                         job.flow.source.table, f" after key {job.last_key}" if job.last_key else "", estimated)
                after, done_rows = job.last_key, job.rows_done
                while True:
                    if not d.wait_room(self):
                        return
                    rows = scanner.chunk(after, d.chunk_rows)
                    done = len(rows) < d.chunk_rows
                    if rows:
                        after = scanner.key_of(rows[-1])
                    done_rows += len(rows)
                    estimated = max(estimated, done_rows)
                    high = d.add_chunk(self, Chunk(job, rows, after, done_rows, estimated, done))
                    if high is None:
                        return  # its session ended while it read: the next session reads the chunk again
                    self._watermark(db, high, "high")
                    if done:
                        break
        except BaseException as exc:  # handed to the apply loop, which decides
            if not self.cancelled.is_set():  # else the error is the cancel's own
                self.error = exc
                d.wake()
        finally:
            db.rollback()
            db.close()

    def _watermark(self, db: Applier, mark: str, kind: str) -> None:
        d = self.driver
        payload = json.dumps({"stream": d.stream, "mark": mark, "kind": kind})
        if db.kind == "postgresql":
            db.query("SELECT pg_logical_emit_message(true, %s, %s)", [WATERMARK_PREFIX, payload])
        else:
            table = db.quote_table(watermark_table(d.source))
            db.execute(f"INSERT INTO {table} (stream, mark, kind) VALUES (%s, %s, %s) "
                       f"ON DUPLICATE KEY UPDATE mark = VALUES(mark), kind = VALUES(kind)", [d.stream, mark, kind])
        db.commit_untracked()


class SyncDriver:
    """The sync side of one direction's apply loop: requests, the snapshotter, windows and chunks.

    The apply thread calls `poll` between target transactions, `observe` for every source
    transaction, and applies the changes it returns. The snapshotter thread calls `add_chunk` and
    `wait_room`.
    """

    def __init__(self, config: Config, source: Connection, target: Connection, stop: threading.Event):
        self.config = config
        self.source = source
        self.target = target
        self.stream = stream_name(source.name, target.name)
        self.opposite = stream_name(target.name, source.name)
        self.stop = stop
        self.chunk_rows = config.sync.chunk_rows
        self.wm_table = watermark_table(source)
        self._lock = threading.Condition()
        # synced table -> (its key columns, {key changed since the sync started: CHANGED or ECHO});
        # the apply thread's
        self._tracked: dict[TableRef, tuple[tuple[str, ...], dict[tuple[Any, ...], str]]] = {}
        self._chunks: dict[str, Chunk] = {}  # HIGH mark -> chunk read before it, not applied yet
        # the other direction's driver (same process), which tells us about rows deleted on our target
        self.peer: SyncDriver | None = None
        # tables of our source whose deletes the peer's sync wants to know: table -> (key columns, keys)
        # (written by both apply threads: the peer's watch/unwatch, our observe; under _watched_lock)
        self._watched: dict[TableRef, tuple[tuple[str, ...], set[Any]]] = {}
        self._watched_lock = threading.Lock()
        self._snapshotter: Snapshotter | None = None
        self._polled_at = 0.0
        self.sources: list[Any] = []  # stream readers told to keep echo rows while a sync runs

    # -------------------------------------------------------------- apply thread
    @property
    def snapshotter(self) -> Snapshotter | None:
        return self._snapshotter

    def start_session(self, applier: Applier, mset: MappingSet, first_start: bool) -> None:
        """At the start of a streaming session: request first-run copies, then start what is pending."""
        self.stop_snapshotter()
        if self.config.sync.on_first_run:
            state = SyncState(applier, self.target.state_schema)
            known = {r.mapping for r in state.rows(self.stream)}
            wanted = [m.name for m in mset.mappings if m.flow(self.source.name) is not None and m.name not in known]
            for name in wanted:
                state.request(self.stream, name)
            if wanted:
                log.info("%s: first run of mapping(s) %s: their existing rows will be copied (sync.on_first_run)",
                         self.stream, ", ".join(wanted))
            applier.commit_untracked()
        self._polled_at = 0.0
        self.poll(applier, mset)

    def poll(self, applier: Applier, mset: MappingSet) -> None:
        """Between target transactions: start a snapshotter for pending or unfinished copies."""
        snap = self._snapshotter
        if snap is not None:
            if snap.error is not None:
                self._snapshotter = None
                raise self._sync_failed(snap.mapping, snap.error)
            if snap.thread.is_alive() or self._chunks:
                return
            self._finish()
        if time.monotonic() - self._polled_at < POLL_SECONDS:
            return
        self._polled_at = time.monotonic()
        state = SyncState(applier, self.target.state_schema)
        rows = [r for r in state.rows(self.stream) if r.active]
        foreign_keys = foreign_key_parents(applier) if rows else {}
        applier.rollback()
        jobs = []
        for r in rows:
            mapping = mset.by_name.get(r.mapping)
            flow = mapping.flow(self.source.name) if mapping is not None else None
            if flow is None:
                log.warning("%s: sync of %s requested, but no such mapping flows this way; ignored",
                            self.stream, r.mapping)
                continue
            assert mapping is not None  # no mapping, no flow
            owners = {f.name: f.owner for f in mapping.fields}
            not_owned = frozenset(p.target for p in flow.plans
                                  if owners.get(p.name) != self.source.name and p.target not in flow.target.key)
            insert_only = self._insert_only(mapping, flow, resumed=r.last_key is not None)
            jobs.append(Job(r.mapping, flow, r.last_key, r.rows_done, insert_only, not_owned))
        if not jobs:
            if self.peer is not None:
                self.peer.unwatch_all()  # every copy is done: no more deletes to know
            return
        jobs = _parents_first(jobs, foreign_keys)
        self.track(jobs)
        self._keep_echoes(True)
        self._snapshotter = Snapshotter(self, jobs, self._waiter(mset))
        self._snapshotter.start()

    def track(self, jobs: Sequence[Job]) -> None:
        """Remember changed keys of the jobs' tables from now on (before any chunk is read), and ask
        the other direction for the keys deleted on the jobs' target tables."""
        for job in jobs:
            self._tracked.setdefault(job.flow.source.table, (job.flow.source.key, {}))
            if self.peer is not None and not job.flow.link.crosswalk:  # a crosswalk pair outlives its row
                self.peer.watch(job.flow.target.table, job.flow.target.key)

    # -------------------------------------------------------------- for the peer (its apply thread)
    def watch(self, table: TableRef, key: Sequence[str]) -> None:
        """Remember the keys of rows deleted (not by us) in `table` of our source from now on."""
        with self._watched_lock:
            self._watched.setdefault(table, (tuple(key), set()))

    def deleted(self, table: TableRef) -> frozenset[Any]:
        """The keys deleted so far: a copy, our apply thread goes on adding to the set."""
        with self._watched_lock:
            watched = self._watched.get(table)
            return frozenset(watched[1]) if watched is not None else frozenset()

    def unwatch(self, tables: Iterable[TableRef]) -> None:
        with self._watched_lock:
            for table in tables:
                self._watched.pop(table, None)

    def unwatch_all(self) -> None:
        with self._watched_lock:
            self._watched.clear()

    def observe(self, txn: Transaction) -> list[Any]:
        """Remember changed keys; at a HIGH watermark return the chunk's rows to apply (routed through
        the chunk's flow: TargetChanges and LinkedChanges) followed by its Progress."""
        if not (self._tracked or self._watched):
            return []
        out: list[Any] = []
        # a change of ours (an echo) brought the other side's fields into this row, nothing else; a
        # deleted row is deleted whoever deleted it
        for ch in txn.changes:
            if ch.table == self.wm_table:
                out.extend(self._watermark(ch))
                continue
            if ch.op is Op.DELETE and not txn.echo and ch.before:
                with self._watched_lock:  # not across _watermark: the peer's lock is taken there
                    watched = self._watched.get(ch.table)
                    if watched is not None:
                        watched[1].add(tuple(ch.before.get(c) for c in watched[0]))
            tracked = self._tracked.get(ch.table)
            if tracked is not None:
                cols, keys = tracked
                kind = ECHO if txn.echo and ch.op is not Op.DELETE else CHANGED
                for image in (ch.before, ch.after):
                    if image:
                        key = tuple(image.get(c) for c in cols)
                        if keys.get(key) is not CHANGED:
                            keys[key] = kind
        return out

    def _watermark(self, ch: RowChange) -> list[Any]:
        row = ch.after or {}
        if row.get("stream") != self.stream or row.get("kind") != "high":
            return []
        with self._lock:
            chunk = self._chunks.pop(row.get("mark", ""), None)  # marks are uuid hex: "" finds none
            self._lock.notify_all()
        if chunk is None:
            return []  # a previous session's watermark: its chunk is read again
        job = chunk.job
        table = job.flow.source.table
        cols, changed = self._tracked.get(table, (job.flow.source.key, {}))
        deleted = self.peer.deleted(job.flow.target.table) if self.peer is not None else set()
        out: list[Any] = []
        for row_ in chunk.rows:
            kind = changed.get(tuple(row_[c] for c in cols))
            if kind is CHANGED:
                continue  # changed since the sync started: the stream brings (or brought) its newest state
            if kind is ECHO:
                out.extend(self._echo_row(job, route_flow(job.flow, RowChange(table, Op.INSERT, None, row_))))
                continue
            for change in route_flow(job.flow, RowChange(table, Op.INSERT, None, row_)):
                if deleted and _target_key(job.flow, change) in deleted:
                    continue  # deleted on the target meanwhile: the delete is on its way here, do not revive it
                # the flow's own insert_only fields (`insert_only: true`) stay insert-only too
                out.append(replace(change, insert_only=change.insert_only | job.insert_only) if job.insert_only
                           else change)
        metrics.sync_rows.labels(self.stream, job.mapping).inc(len(chunk.rows))
        out.append(Progress(self.stream, chunk))
        return out

    @staticmethod
    def _echo_row(job: Job, routed: list[Any]) -> list[Any]:
        """A row our other direction wrote into this side since the sync started: it exists on the
        other side (or was deleted there since: it must not come back), and the echo carried the
        other side's fields. Only the fields this side owns are written, into an existing row."""
        key = set(job.flow.target.key)
        if not any(p.target not in key and p.target not in job.echo_insert_only for p in job.flow.plans):
            return []  # this side owns none of the fields: nothing to bring over
        out = []
        for change in routed:
            if isinstance(change, TargetChange):
                values = {c: v for c, v in change.values.items() if c in key or c not in job.echo_insert_only}
                out.append(replace(change, op=Op.UPDATE, values=values, must_exist=True))
            else:
                out.append(replace(change, insert_only=change.insert_only | job.insert_only | job.echo_insert_only,
                                   must_exist=True))
        return out

    def save(self, applier: Applier, p: Progress) -> None:
        c = p.chunk
        SyncState(applier, self.target.state_schema).save(p.stream, c.job.mapping, c.last_key, c.rows_done,
                                                          c.estimated, c.done, c.job.started)

    def committed(self, progress: Iterable[Progress]) -> None:
        """After the target commit: metrics for finished copies."""
        for p in progress:
            if p.chunk.done:
                metrics.sync_running.labels(self.stream, p.chunk.job.mapping).set(0)
                metrics.sync_completed_timestamp.labels(self.stream, p.chunk.job.mapping).set_to_current_time()
                log.info("%s: sync of %s done: %d rows", self.stream, p.chunk.job.mapping, p.chunk.rows_done)

    def stop_snapshotter(self) -> None:
        """End this session's snapshotter: from here on its chunks are refused (it may still be
        inside a query); its query is cancelled so that it ends within seconds."""
        with self._lock:
            snap, self._snapshotter = self._snapshotter, None
            self._chunks.clear()
            self._lock.notify_all()
        if snap is not None:
            snap.cancel()
            if snap.thread.is_alive():
                snap.thread.join(STOP_SECONDS)
            if snap.thread.is_alive():
                log.warning("%s: the sync reader did not stop within %.0f s of its query being cancelled; "
                            "it is detached from the stream and nothing it reads is applied", self.stream,
                            STOP_SECONDS)
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._snapshotter = None
            self._chunks.clear()
            self._lock.notify_all()
        self._tracked = {}
        self._keep_echoes(False)

    def _keep_echoes(self, on: bool) -> None:
        for source in self.sources:
            source.keep_echoes = on

    def _insert_only(self, mapping: Mapping, flow: Flow, resumed: bool = False) -> frozenset[str]:
        """Fields without an owner that this copy may not write over existing rows: on the second side
        of a two-way mapping, and on the first side too once a copy resumes in a new session (the keys
        the other direction wrote before the restart are no longer known, and writing those rows back
        could overwrite newer changes on the other side)."""
        if mapping.flow(self.target.name) is None:
            return frozenset()
        if self._first_side() == self.source.name and not resumed:
            return frozenset()
        owners = {f.name: f.owner for f in mapping.fields}
        return frozenset(p.target for p in flow.plans if owners.get(p.name) is None and p.target not in flow.target.key)

    def _first_side(self) -> str:
        return self.config.sync.first_side or self.config.connections[0].name

    def _waiter(self, mset: MappingSet) -> Callable[[str], bool]:
        """A two-way mapping is copied from `first` first: the other side waits until that copy is done."""
        if self._first_side() == self.source.name:
            return lambda _mapping: True
        lookup: dict[str, Any] = {}
        logged: set[str] = set()

        def ready(mapping: str) -> bool:
            m = mset.by_name.get(mapping)
            if m is None or m.flow(self.target.name) is None:
                return True  # one-way: nothing to wait for
            db = lookup.get("db")
            if db is None:
                db = lookup["db"] = make_applier(self.source, f"sync-wait:{self.stream}", "")
                db.connect()
            try:
                rows = {r.mapping: r for r in SyncState(db, self.source.state_schema).rows(self.opposite)}
            finally:
                db.rollback()
            row = rows.get(mapping)
            if row is None:
                # not requested there (yet): on a first run the other direction is about to request it
                ok = not self.config.sync.on_first_run
            else:
                ok = not row.active
            if not ok and mapping not in logged:
                logged.add(mapping)
                log.info("%s: sync of %s waits for %s to finish copying it first (sync.first_side)",
                         self.stream, mapping, self.opposite)
            if ok:
                db.close()
                lookup.clear()
            return ok
        return ready

    # -------------------------------------------------------------- snapshotter thread
    def wait_room(self, snap: object) -> bool:
        """Block while OUTSTANDING chunks wait for the apply loop; False when stopping or when
        `snap` is no longer this session's snapshotter."""
        with self._lock:
            while len(self._chunks) >= OUTSTANDING and not self.stop.is_set() and self._snapshotter is snap:
                self._lock.wait(0.5)
            return not self.stop.is_set() and self._snapshotter is snap

    def add_chunk(self, snap: object, chunk: Chunk) -> str | None:
        """Register a chunk `snap` just read; returns the mark of the HIGH watermark to write for it,
        or None when `snap` belongs to a session that has ended (the chunk is dropped)."""
        mark = uuid.uuid4().hex
        with self._lock:
            if self._snapshotter is not snap:
                return None
            self._chunks[mark] = chunk
        return mark

    def _sync_failed(self, mapping: str | None, error: BaseException) -> ReplicatorError:
        """What a snapshotter's error does: a retriable one ends the session, which backs off and
        resumes the copy from its last chunk; anything else stops with a message naming the copy
        (retrying a query that is wrong, or a bug, would only repeat it forever)."""
        what = f"{self.stream}: sync of {mapping or '?'}"
        if isinstance(error, RetriableError) or \
                (not isinstance(error, ReplicatorError) and error_class(self.source.kind, error) in RETRIABLE):
            metrics.sync_errors.labels(self.stream, "retriable").inc()
            if isinstance(error, RetriableError):
                return error
            return RetriableError(f"{what}: {type(error).__name__}: {error}")
        metrics.sync_errors.labels(self.stream, "fatal").inc()
        if isinstance(error, ReplicatorError):
            return error
        return FatalError(f"{what} failed and stops the stream (it resumes from its last chunk once the cause "
                          f"is fixed): {type(error).__name__}: {str(error).strip() or '?'}")

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()


def _target_key(flow: Flow, change: Any) -> tuple[Any, ...] | None:
    if isinstance(change, TargetChange):
        return change.key
    try:  # a linked change of a shared-key flow: the key is among its values
        return tuple(change.values[c] for c in flow.target.key)
    except (KeyError, AttributeError):
        return None


def foreign_key_parents(db: Applier) -> dict[TableRef, set[TableRef]]:
    """Table -> the tables its foreign keys reference, from the database's catalog (the caller ends
    the transaction)."""
    if db.kind == "postgresql":
        sql = ("SELECT cn.nspname, c.relname, pn.nspname, p.relname FROM pg_constraint k "
               "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace "
               "JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace "
               "WHERE k.contype = 'f'")
    else:
        sql = ("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME "
               "FROM information_schema.REFERENTIAL_CONSTRAINTS")
    out: dict[TableRef, set[TableRef]] = {}
    for schema, table, ref_schema, ref_table in db.query(sql, []):
        out.setdefault(TableRef(schema, table), set()).add(TableRef(ref_schema, ref_table))
    return out


def _parents_first(jobs: list[Job], foreign_keys: dict[TableRef, set[TableRef]]) -> list[Job]:
    """Parents are copied before their children: a mapping whose target table has a foreign key to
    another one's target table, or whose fields reference another mapping (references:, parent:),
    comes after it. Otherwise, and in a cycle, the order stays as it is."""
    names = {j.mapping for j in jobs}
    by_table: dict[TableRef, set[str]] = {}
    for j in jobs:
        by_table.setdefault(j.flow.target.table, set()).add(j.mapping)
    deps: dict[str, set[str]] = {}
    for j in jobs:
        refs = {p.references for p in j.flow.plans if p.references} | ({j.flow.parent[0]} if j.flow.parent else set())
        for parent_table in foreign_keys.get(j.flow.target.table, ()):
            refs |= by_table.get(parent_table, set())
        deps[j.mapping] = {r for r in refs if r in names and r != j.mapping}
    ordered: list[Job] = []
    placed: set[str] = set()
    remaining = list(jobs)
    while remaining:
        ready = [j for j in remaining if deps[j.mapping] <= placed] or remaining[:1]  # a cycle: keep the order
        for j in ready:
            ordered.append(j)
            placed.add(j.mapping)
            remaining.remove(j)
    return ordered


# ---------------------------------------------------------------- requests from the command line


def request(config: Config, mset: MappingSet, names: Sequence[str] | None) -> list[tuple[Connection, str, str]]:
    """Record sync requests in both targets; returns (target connection, stream, mapping) for each."""
    selected: list[Mapping] = [mset.by_name[n] for n in names] if names else list(mset.mappings)
    out = []
    for target in config.connections:
        source = next(c for c in config.connections if c is not target)
        stream = stream_name(source.name, target.name)
        todo = [m.name for m in selected if m.flow(source.name) is not None]
        if not todo:
            continue
        db = make_applier(target, f"sync-request:{stream}", "")
        db.connect()
        try:
            state = SyncState(db, target.state_schema)
            for name in todo:
                state.request(stream, name)
                out.append((target, stream, name))
            db.commit_untracked()
        finally:
            db.close()
    return out
