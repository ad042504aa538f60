"""Sync: existing rows copied through the mappings while the stream keeps running.

How a copy stays consistent with the stream: watermarked chunks, the algorithm of Netflix's DBLog
(Andreas Andreakis, Ioannis Papapanagiotou, 2019) that Debezium's incremental snapshots also use.
For each chunk of a source table, in primary-key order, the snapshotter thread of a direction

1. writes a LOW watermark into the source's change stream,
2. reads the chunk (`key > last key ORDER BY key LIMIT n`, its own short snapshot, no lock),
3. writes a HIGH watermark.

The direction's apply loop meets LOW and HIGH in commit order like any other change. Between them
it remembers the keys of every change to that table (echoes included: a row our other direction
wrote during the window was also read by the chunk). At HIGH it drops those keys from the chunk --
their events in the window are newer and are applied themselves -- and applies the remaining rows
right there, as upserts through the chunk's mapping, in the same target transaction that records
the sync's progress (`<state_schema>.sync` in the target) and the stream's checkpoint. So

- a row changed before LOW is in the chunk with its newest value, after its event was applied;
- a row changed between LOW and HIGH is taken from the stream, not from the chunk;
- a row changed after HIGH is applied after the chunk;

and no change is lost or applied twice. The copy never holds a lock or a long transaction, works
on a live system, and a crash resumes at the last chunk the target committed (a HIGH watermark of
a previous session is not in memory any more and is ignored: its chunk is simply read again).

Why not an exported snapshot (`CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT`, or MariaDB's
`START TRANSACTION WITH CONSISTENT SNAPSHOT` with the binlog position): it only exists when a slot
is created, holds one long transaction (and the xmin horizon / purge) for the whole copy, cannot
resume after a crash, and cannot re-copy one mapping while the stream applies the others. The
watermark scheme does all of that with one mechanism on both databases.

Watermarks: PostgreSQL -- a transactional logical message (prefix `replicator.watermark`), no
table and no grant. MariaDB -- an upsert of the stream's row in `<state_schema>.watermark`.

A two-way mapping is copied from one side first (`sync.first_side`, default: the first
connection), then from the other: on fields without an owner the first side's values win, and
rows that exist on one side only are created on the other.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from replicator import metrics
from replicator.appliers.base import Applier
from replicator.changes import Op, RowChange, TableRef, Transaction
from replicator.codec import dumps_key, loads_key
from replicator.config import Config, Connection
from replicator.errors import ReplicatorError, RetriableError
from replicator.loopguard import stream_name
from replicator.mapping import Flow, Mapping, MappingSet

log = logging.getLogger(__name__)

SYNC_TABLE = "sync"
WATERMARK_TABLE = "watermark"
WATERMARK_PREFIX = "replicator.watermark"
OUTSTANDING = 2  # chunks read ahead of the apply loop (memory: OUTSTANDING * chunk_rows rows)
POLL_SECONDS = 2.0  # how often a direction looks for new sync requests

PENDING, RUNNING, DONE = "pending", "running", "done"


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
    last_key: tuple | None
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
        out = []
        for r in self.db.query(sql + " ORDER BY stream, mapping", params):
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
        now = datetime.now(timezone.utc).replace(tzinfo=None) if self.db.kind == "mariadb" else datetime.now(timezone.utc)
        if row is None:
            self.db.execute(f"INSERT INTO {self.table} (stream, mapping, status, requested_at) VALUES (%s, %s, %s, %s)",
                            [stream, mapping, PENDING, now])
        else:
            self.db.execute(f"UPDATE {self.table} SET status = %s, last_key = NULL, rows_done = 0, rows_estimated = 0, "
                            f"requested_at = %s, started_at = NULL, finished_at = NULL "
                            f"WHERE stream = %s AND mapping = %s", [PENDING, now, stream, mapping])
        return True

    def save(self, stream: str, mapping: str, last_key: tuple | None, rows_done: int, estimated: int,
             done: bool) -> None:
        """Progress of one chunk, inside the target transaction that applies it."""
        now = datetime.now(timezone.utc)
        if self.db.kind == "mariadb":
            now = now.replace(tzinfo=None)
        self.db.execute(
            f"UPDATE {self.table} SET status = %s, last_key = %s, rows_done = %s, rows_estimated = %s, "
            f"started_at = COALESCE(started_at, %s), finished_at = %s WHERE stream = %s AND mapping = %s",
            [DONE if done else RUNNING, None if last_key is None else dumps_key(last_key), rows_done, estimated,
             now, now if done else None, stream, mapping])


# ---------------------------------------------------------------- chunks


@dataclass
class Job:
    mapping: str
    flow: Flow
    last_key: tuple | None
    rows_done: int


@dataclass
class Chunk:
    job: Job
    rows: list[dict[str, Any]]
    last_key: tuple | None
    rows_done: int  # after this chunk
    estimated: int
    done: bool


@dataclass
class Window:
    table: TableRef
    key: tuple[str, ...]
    keys: set = field(default_factory=set)


@dataclass(frozen=True)
class Progress:
    """The sync table update that goes into the target transaction with a chunk's rows."""

    stream: str
    chunk: Chunk


class Snapshotter:
    """Reads the chunks of a direction's sync jobs, one job after the other, in a thread.

    Owns one source connection (the source side's apply account: SELECT on the mapped tables and
    writes for watermarks). Hands chunks to the apply loop through `SyncDriver`.
    """

    def __init__(self, driver: "SyncDriver", jobs: list[Job], wait_for: Callable[[str], bool]):
        self.driver = driver
        self.jobs = jobs
        self.wait_for = wait_for  # mapping -> True once the other side's copy of it is done
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"sync-{driver.stream}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from replicator.appliers import make_applier
        from replicator.tablescan import TableScanner

        d = self.driver
        db = make_applier(d.source, f"sync:{d.stream}", "")
        try:
            db.connect()
            for job in self.jobs:
                while not self.wait_for(job.mapping):
                    if d.stop.wait(1.0) or d.snapshotter is not self:
                        return
                scanner = TableScanner(db, job.flow.source.table, job.flow.source.key)
                estimated = max(scanner.estimate(), job.rows_done)
                metrics.sync_running.labels(d.stream, job.mapping).set(1)
                metrics.sync_rows_estimated.labels(d.stream, job.mapping).set(estimated)
                log.info("%s: sync of %s from %s starts%s (about %d rows)", d.stream, job.mapping,
                         job.flow.source.table, f" after key {job.last_key}" if job.last_key else "", estimated)
                after, done_rows = job.last_key, job.rows_done
                while True:
                    if not d.wait_room():
                        return
                    low = d.open_window(job.flow.source.table, job.flow.source.key)
                    self._watermark(db, low, "low")
                    rows = scanner.chunk(after, d.chunk_rows)
                    done = len(rows) < d.chunk_rows
                    if rows:
                        after = scanner.key_of(rows[-1])
                    done_rows += len(rows)
                    estimated = max(estimated, done_rows)
                    high = d.add_chunk(low, Chunk(job, rows, after, done_rows, estimated, done))
                    self._watermark(db, high, "high")
                    if done:
                        break
        except BaseException as exc:  # handed to the apply loop, which decides
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
    transaction, and applies the changes it returns. The snapshotter thread calls `open_window`,
    `add_chunk` and `wait_room`.
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
        self._lows: dict[str, Window] = {}  # registered by the snapshotter, opened when LOW is seen
        self._open: dict[str, Window] = {}  # LOW seen, HIGH not yet
        self._chunks: dict[str, tuple[str, Chunk]] = {}  # HIGH mark -> (LOW mark, chunk)
        self._inflight: set[str] = set()  # LOW marks whose chunk the apply loop has not consumed yet
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
                error = snap.error
                self._snapshotter = None
                if isinstance(error, ReplicatorError):
                    raise error
                raise RetriableError(f"{self.stream}: sync reader: {type(error).__name__}: {error}") from error
            if snap.thread.is_alive() or self._chunks or self._open:
                return
            self._finish()
        if time.monotonic() - self._polled_at < POLL_SECONDS:
            return
        self._polled_at = time.monotonic()
        state = SyncState(applier, self.target.state_schema)
        rows = [r for r in state.rows(self.stream) if r.active]
        applier.rollback()
        jobs = []
        for r in rows:
            mapping = mset.by_name.get(r.mapping)
            flow = mapping.flow(self.source.name) if mapping is not None else None
            if flow is None:
                log.warning("%s: sync of %s requested, but no such mapping flows this way; ignored",
                            self.stream, r.mapping)
                continue
            jobs.append(Job(r.mapping, flow, r.last_key, r.rows_done))
        if not jobs:
            return
        jobs = _parents_first(jobs, mset)
        self._keep_echoes(True)
        self._snapshotter = Snapshotter(self, jobs, self._waiter(mset))
        self._snapshotter.start()

    def observe(self, txn: Transaction) -> list[Any]:
        """Track window keys; at a HIGH watermark return the chunk's rows to apply (RowChanges of the
        chunk's flow, as (flow, RowChange) pairs) followed by its Progress."""
        if not (self._open or self._lows):
            return []
        out: list[Any] = []
        for ch in txn.changes:
            if ch.table == self.wm_table:
                out.extend(self._watermark(ch))
                continue
            for w in self._open.values():
                if ch.table == w.table:
                    for image in (ch.before, ch.after):
                        if image:
                            w.keys.add(tuple(image.get(c) for c in w.key))
        return out

    def _watermark(self, ch: RowChange) -> list[Any]:
        row = ch.after or {}
        if row.get("stream") != self.stream:
            return []
        mark, kind = row.get("mark"), row.get("kind")
        with self._lock:
            if kind == "low":
                window = self._lows.pop(mark, None)
                if window is not None:
                    self._open[mark] = window
                return []
            found = self._chunks.pop(mark, None)
            self._lock.notify_all()
        if found is None:
            return []  # a previous session's watermark: its chunk is read again
        low, chunk = found
        with self._lock:
            self._inflight.discard(low)
            self._lock.notify_all()
        window = self._open.pop(low, Window(chunk.job.flow.source.table, chunk.job.flow.source.key))
        table = chunk.job.flow.source.table
        out: list[Any] = []
        for row_ in chunk.rows:
            if tuple(row_[c] for c in window.key) in window.keys:
                continue  # changed during the window: the stream brought the newer version
            out.append((chunk.job.flow, RowChange(table, Op.INSERT, None, row_)))
        metrics.sync_rows.labels(self.stream, chunk.job.mapping).inc(len(chunk.rows))
        out.append(Progress(self.stream, chunk))
        return out

    def save(self, applier: Applier, p: Progress) -> None:
        c = p.chunk
        SyncState(applier, self.target.state_schema).save(p.stream, c.job.mapping, c.last_key, c.rows_done,
                                                          c.estimated, c.done)

    def committed(self, progress: Iterable[Progress]) -> None:
        """After the target commit: metrics for finished copies."""
        for p in progress:
            if p.chunk.done:
                metrics.sync_running.labels(self.stream, p.chunk.job.mapping).set(0)
                metrics.sync_completed_timestamp.labels(self.stream, p.chunk.job.mapping).set_to_current_time()
                log.info("%s: sync of %s done: %d rows", self.stream, p.chunk.job.mapping, p.chunk.rows_done)

    def stop_snapshotter(self) -> None:
        snap, self._snapshotter = self._snapshotter, None
        if snap is not None:
            with self._lock:
                self._lock.notify_all()
            snap.thread.join(10)
        self._finish()

    def _finish(self) -> None:
        self._snapshotter = None
        with self._lock:
            self._lows.clear()
            self._open.clear()
            self._chunks.clear()
            self._inflight.clear()
            self._lock.notify_all()
        self._keep_echoes(False)

    def _keep_echoes(self, on: bool) -> None:
        for source in self.sources:
            source.keep_echoes = on

    def _waiter(self, mset: MappingSet) -> Callable[[str], bool]:
        """A two-way mapping is copied from `first` first: the other side waits until that copy is done."""
        first = self.config.sync.first_side or self.config.connections[0].name
        if first == self.source.name:
            return lambda _mapping: True
        lookup: dict[str, Any] = {}
        logged: set[str] = set()

        def ready(mapping: str) -> bool:
            m = mset.by_name.get(mapping)
            if m is None or m.flow(self.target.name) is None:
                return True  # one-way: nothing to wait for
            from replicator.appliers import make_applier

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
    def wait_room(self) -> bool:
        """Block while OUTSTANDING chunks wait for the apply loop; False when stopping."""
        with self._lock:
            while len(self._inflight) >= OUTSTANDING and not self.stop.is_set() \
                    and self._snapshotter is not None:
                self._lock.wait(0.5)
            return not self.stop.is_set() and self._snapshotter is not None

    def open_window(self, table: TableRef, key: Sequence[str]) -> str:
        mark = uuid.uuid4().hex
        with self._lock:
            self._lows[mark] = Window(table, tuple(key))
            self._inflight.add(mark)
        return mark

    def add_chunk(self, low: str, chunk: Chunk) -> str:
        mark = uuid.uuid4().hex
        with self._lock:
            self._chunks[mark] = (low, chunk)
        return mark

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()


def _parents_first(jobs: list[Job], mset: MappingSet) -> list[Job]:
    """Referenced mappings are copied before the mappings that reference them (fewer parked rows)."""
    names = {j.mapping for j in jobs}
    deps: dict[str, set[str]] = {}
    for j in jobs:
        refs = {p.references for p in j.flow.plans if p.references} | ({j.flow.parent[0]} if j.flow.parent else set())
        deps[j.mapping] = {r for r in refs if r in names and r != j.mapping}
    ordered: list[Job] = []
    placed: set[str] = set()
    remaining = list(jobs)
    while remaining:
        ready = [j for j in remaining if deps[j.mapping] <= placed] or remaining[:1]  # a cycle: keep file order
        for j in ready:
            ordered.append(j)
            placed.add(j.mapping)
            remaining.remove(j)
    return ordered


# ---------------------------------------------------------------- requests from the command line


def request(config: Config, mset: MappingSet, names: Sequence[str] | None) -> list[tuple[Connection, str, str]]:
    """Record sync requests in both targets; returns (target connection, stream, mapping) for each."""
    from replicator.appliers import make_applier

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
