"""Wiring: for each direction, a reader thread decodes the source while the applier thread
writes batches to the target. Decode and apply overlap; the queue between them is bounded.

Batching: many source transactions go into one target transaction, bounded by `max_rows` and
`max_ms`, and committed at once when the queue runs dry, so an idle system has low latency and
a busy one large batches. Catching up from a backlog (the transactions in hand were committed at
the source more than CATCHING_UP_SECONDS ago), a dry queue means only that the reader decodes
slower than the target absorbs: the batch then waits for more, up to `max_ms`/`max_rows`, instead
of committing a few hundred rows at a time (each target commit costs the checkpoint write, the
commit and, for two-way mappings, the conflict read of every run). A target transaction always ends on a source transaction boundary,
and its last statement writes the checkpoint. The source is acked only after that commit.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime
from typing import Any, Callable, Sequence

from replicator import checkpoint as ckpt
from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.appliers.lookup import SourceLookup
from replicator.mapping import applytime
from replicator.stream import retry
from replicator.conflicts.clock import CommitClock
from replicator.conflicts.detect import Detector
from replicator.stream import deadletter, deadlinked, deadretry, lease
from replicator.stream.batch import Batch
from replicator.stream.channel import Channel
from replicator.stream.lag import BINLOG_TIME_RESOLUTION, LagGauge
from replicator.stream.shapes import ShapeGuard, TargetShapes
from replicator.stream.skew import ClockSkew
from replicator.mapping.folds import coalesced
from replicator.mapping.links import Linker
from replicator.mapping.router import LinkedChange, Routed, route, route_all
from replicator.changes import LSN, BinlogPosition, Keepalive, Position, TableRef, TargetChange, Transaction
from replicator.config import Config, Connection
from replicator.errors import (CheckpointError, FatalError, LockBusy, ReplicatorError, RetriableError, RowError,
                               TargetShapeChanged)
from replicator.loopguard import LoopGuard, stream_name
from replicator.mapping.model import MappingSet
from replicator.sources.base import Source
from replicator.sources.binlog import BinlogSource, binlog_files
from replicator.sources.wal import WalSource
from replicator.sync.driver import SyncDriver
from replicator.sync.snapshot import Progress

log = logging.getLogger(__name__)

# A PostgreSQL fast shutdown waits until the slot is confirmed up to the last record the walsender
# decoded, and we confirm only what the target checkpoint holds: a WAL source's skipped positions
# (echoes, unmapped changes) are recorded after this much idle time, not after heartbeat_seconds.
WAL_IDLE_CHECKPOINT_SECONDS = 1.0
START_GATE_SECONDS = 10.0  # how long a starting direction waits for the other one's first session
# behind the source by more than this (beyond MariaDB's 1 s commit time resolution): group commit
CATCHING_UP_SECONDS = 1.0
# the reader waits at this share of `queue_rows` while the applier computes (stream/channel.py's gate)
GATE_LOW = 0.2
# how long a thread may keep the GIL while another waits for it (CPython's default: 5 ms). The applier
# comes back from each statement to a GIL the reader holds while it decodes ahead (the channel's gate):
# at 5 ms the applier spent ~25% longer in its statements of a 100-row erp_to_crm burst (4.2-4.9 against
# 3.2-3.6 s for the same 391 statements), waiting for the GIL, not for the server (docs/performance.md)
SWITCH_INTERVAL_SECONDS = 0.001
STOP_GRACE_SECONDS = 3.0  # after a stop, how long a direction may finish its statement before it is cut off


class _EndOfStream:
    pass


class _Reload(Exception):
    """The mappings changed: end this session between transactions and start again from the checkpoint."""


class MappingHolder:
    """The mappings in force. `swap` installs new ones; directions pick them up between transactions."""

    def __init__(self, mappings: MappingSet):
        self._mappings = mappings
        self.version = 0
        self._lock = threading.Lock()

    def current(self) -> tuple[MappingSet, int]:
        with self._lock:
            return self._mappings, self.version

    def swap(self, mappings: MappingSet) -> None:
        with self._lock:
            self._mappings = mappings
            self.version += 1


class Direction:
    """One direction, source side to target side. `run` returns on stop and raises on fatal errors."""

    def __init__(self, config: Config, source: Connection, target: Connection,
                 mappings: MappingHolder, stop: threading.Event):
        self.config = config
        self.source_conn = source
        self.target_conn = target
        self.mappings = mappings
        self.stop = stop
        self.name = stream_name(source.name, target.name)
        self.guard = LoopGuard(source.state_schema, stream_name(target.name, source.name))
        self.alive_at = time.monotonic()  # the watchdog's view: the loop is turning
        self.first_start = True
        self._version = -1
        self._linker: Linker | None = None
        self.sync = SyncDriver(config, source, target, stop)
        # set by Daemon: at the first start both directions register what their syncs need from each
        # other (SyncDriver.track) before either reads its source: (this one is ready, the other is)
        self.start_gate: tuple[threading.Event, threading.Event] | None = None
        self._progress: list[Progress] = []  # sync chunks in the open target transaction
        self._applier: Applier | None = None  # the session's, for interrupt() from the main thread
        self._target_tables: list[TableRef] = []  # the session's mapped target tables
        self._moved = 0  # TargetShapeChanged since the last commit
        self._dlq: deadletter.Quarantine | None = None  # the session's view of the dead-letter queue
        self._reloaded = False  # the mappings were reloaded: retry the queue at the next session start
        self.holder = f"{socket.gethostname()}:{os.getpid()}"  # who holds the lease, for the standby and status
        self.epoch = 0  # our lease epoch while active (stream/lease.py)
        self._renewed_at = 0.0  # monotonic time we last proved the lease in a commit
        metrics.role.labels(self.name).set(0)
        # set by Daemon: both directions' readers record commit times there, for `latest` by commit time
        self.clock: CommitClock | None = None
        for kind in ("retriable", "row", "fatal", "source_lost", "checkpoint", "decode", "config", "schema"):
            metrics.errors.labels(self.name, kind)  # export zeros so rate() and alerts see the first error
        for cause in retry.CAUSES:
            metrics.retries.labels(self.name, cause)
        self.backoff = retry.Backoff(retry.RetryPolicy(config.reconnect_initial_seconds,
                                                       config.reconnect_max_seconds), stop)
        self.lag = LagGauge(self.name, BINLOG_TIME_RESOLUTION if source.kind == "mariadb" else 0.0)
        self.skew = ClockSkew(self.name, source)  # the lag gauge's correction for the source's clock
        # the mapped source tables' columns as the reader met them: an ALTER TABLE while streaming (shapes.py);
        # kept across sessions, so that a reconnect compares with what was seen before it
        self.shapes = ShapeGuard(config, source, self.name)
        # the tables it writes as its applier planned with them: an ALTER TABLE on them while streaming is found
        # before the commit of the first transaction written into the new shape (TargetShapes)
        self.target_shapes = TargetShapes(config, target, self.name)

    def _waiting(self) -> None:
        self.alive_at = time.monotonic()  # waiting out an outage is healthy, not hung
        self.lag.stalled()

    # ------------------------------------------------------------ supervision
    def run(self) -> None:
        metrics.running.labels(self.name).set(1)
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    self._stream_once()
                    return
                except _Reload:
                    log.info("%s: mappings reloaded; resuming from the checkpoint", self.name)
                    self._reloaded = True
                    continue
                except TargetShapeChanged as exc:
                    # rolled back, and the new shape still carries the mapped columns exactly (`_commit`): plan
                    # with it and apply the transactions again from the checkpoint, at once
                    log.warning("%s: %s; planning with the new shape and applying it again", self.name, exc)
                    self._moved += 1
                    if self._moved > 3:  # moving again and again (a DBA's script half-way): back off
                        self.backoff.wait(self.backoff.next_delay(retry.OTHER), self._waiting)
                    continue
                except lease.Fenced as exc:
                    # nothing of the open transaction was committed: wait as a standby again
                    log.warning("%s", exc)
                    metrics.role.labels(self.name).set(0)
                    continue
                except RetriableError as exc:
                    # a deadlock is retried at once, an outage backs off (stream/retry.py)
                    metrics.errors.labels(self.name, exc.kind).inc()
                    cause = retry.cause_of(exc)
                    metrics.retries.labels(self.name, cause).inc()
                    if time.monotonic() - started > retry.WORKED_SECONDS:
                        self.backoff.committed()  # streamed a while (idle: nothing to commit): start over
                    delay = self.backoff.next_delay(cause)
                    log.warning("%s: %s; retrying in %.2f s (%s)", self.name, exc, delay, cause)
                    self.lag.stalled()
                    self.backoff.wait(delay, self._waiting)
                except ReplicatorError as exc:
                    metrics.errors.labels(self.name, exc.kind).inc()
                    raise
                finally:
                    self.first_start = False
        finally:
            metrics.running.labels(self.name).set(0)

    # ------------------------------------------------------------ one connected session
    def _stream_once(self) -> None:
        mset, version = self.mappings.current()
        self._version = version
        applier = self._applier = make_applier(self.target_conn, self.name, self.guard.echo_stream)
        source: Source | None = None
        reader: threading.Thread | None = None
        chan = Channel(self.config.batching.queue_rows)
        if applier.reports_waits:
            # the reader decodes ahead while the applier waits on the server, not during its Python work
            # (stream/channel.py); under GATE_LOW of the queue it always goes on
            chan.gate(int(self.config.batching.queue_rows * GATE_LOW))
            applier.io_gate = chan
        cleanup: list[Callable[[], None]] = []
        try:
            applier.connect()
            if not self._take_over(applier):
                return  # stopped while standing by
            self._target_tables = [e.table for e in mset.target_endpoints(self.target_conn.name)]
            applier.load_types(self._target_tables)
            applier.lossy = mset.lossy_columns(self.target_conn.name)
            self.target_shapes.use(mset)
            self.target_shapes.planned(applier.planned)  # changed since the last session's plan?
            self.lag.skew = self.skew.sample()
            feed = None
            if self.clock is not None:
                self.clock.use_keys(self.source_conn.name, two_way_keys(mset))
                self.clock.watch_departures(fold_children(mset))
                self.clock.reader_waited(self.source_conn.name, chan.peer_waits if applier.io_gate is chan else None)
                if any(side == self.source_conn.name for side, _ in self.clock.keys):
                    feed = self.clock
            detector = Detector(mset, self.source_conn.name, self.clock,
                                syncing=lambda: self.sync.snapshotter is not None)
            applier.resolver = detector if detector.flows else None  # two-way mappings: check for conflicts
            dlq = self._dlq = deadletter.Quarantine(self.name, mset, self.source_conn.name)
            dlq.load(applier, [e.table for e in mset.target_endpoints(self.target_conn.name)])
            position = applier.read_checkpoint()
            self._linker = None
            if mset.uses_links():
                lookup = SourceLookup(self.source_conn)
                cleanup.append(lookup.close)
                self._linker = Linker(applier, mset, self.name, self.source_conn.name, self.target_conn.name,
                                      self.target_conn.state_schema, lookup.query, self.source_conn.kind)
                applier.begin()
                self._linker.retry_parked()
                self._commit(applier, position, None) if position is not None else applier.rollback()
            self.sync.retry_parked = (lambda: self._retry_parked(applier)) if self._linker is not None else None
            # after the linker: a queued change of a linked mapping is replayed through it
            if self._reloaded and dlq.held:
                self._retry_queue(applier, mset)  # the operator may have fixed what the rows failed on
            self._reloaded = False
            self.sync.start_session(applier, mset, self.first_start)
            if self.start_gate is not None:
                (mine, other), self.start_gate = self.start_gate, None
                mine.set()
                deadline = time.monotonic() + START_GATE_SECONDS
                while not other.wait(0.2) and not self.stop.is_set():
                    if time.monotonic() > deadline:
                        log.info("%s: the other direction is not up yet; starting anyway", self.name)
                        break
            self.shapes.use(mset)
            source = self._make_source(mset, position)
            self.sync.sources = [source]
            source.keep_echoes = self.sync.snapshotter is not None
            reader = threading.Thread(target=self._read, args=(source, chan, feed), name=f"read-{self.name}",
                                      daemon=True)
            reader.start()
            log.info("%s: streaming from %s", self.name, position)
            final = self._apply_loop(applier, source, chan, mset, position)
            if final is not None:
                self._final_checkpoint(applier, source, reader, chan, final)
        finally:
            self.sync.stop_snapshotter()
            self.sync.retry_parked = None
            self.sync.sources = []
            self._progress = []
            if source is not None:
                source.stop()
            if reader is not None:
                deadline = time.monotonic() + 5
                while reader.is_alive() and time.monotonic() < deadline:
                    chan.take_all(0)  # unblock a reader waiting on a full channel
                    reader.join(0.1)
            applier.rollback()
            applier.close()
            for fn in cleanup:
                fn()

    def interrupt(self) -> None:
        """From the main thread, when a stop is not honoured in time: break off the statement the
        apply thread (or the sync reader) waits for -- a lock, a hung server. An open batch is rolled
        back with its checkpoint, so nothing is lost or doubled; the thread then sees `stop`."""
        applier = self._applier
        if applier is not None:
            applier.interrupt()
        snap = self.sync.snapshotter
        if snap is not None:
            snap.cancel()

    def _make_source(self, mset: MappingSet, position: Position | None) -> Source:
        src = self.source_conn
        if position is None:
            raise CheckpointError(
                f"{self.name}: no checkpoint in {self.target_conn.describe()} "
                f"({self.target_conn.state_schema}.checkpoint); run `replicator setup` to record where to start")
        tables = mset.source_tables(src.name)
        chunk = self.config.batching.chunk_rows
        if src.kind == "postgresql":
            if not isinstance(position, LSN):
                raise FatalError(f"{self.name}: checkpoint {position} is not a PostgreSQL LSN")
            return WalSource(src, self.name, tables, self.guard, position, chunk, shapes=self.shapes)
        if not isinstance(position, BinlogPosition):
            raise FatalError(f"{self.name}: checkpoint {position} is not a binlog position")
        start = ckpt.check_binlog(position, binlog_files(src))
        return BinlogSource(src, self.name, tables, self.guard, start, chunk,
                            heartbeat_seconds=min(10.0, self.config.heartbeat_seconds),
                            quarantine_undecodable=deadletter.quarantining_tables(mset, src.name),
                            shapes=self.shapes)

    def _read(self, source: Source, chan: Channel, clock: CommitClock | None = None) -> None:
        side = self.source_conn.name
        put, stop = chan.put, self.stop  # per transaction of a burst: looked up once
        saw = clock.saw if clock is not None else None
        try:
            for msg in source.transactions():
                rows = 1
                if msg.__class__ is Transaction or isinstance(msg, Transaction):
                    if saw is not None:
                        saw(side, msg)  # before the applier can see it: the other direction may be waiting
                    rows = len(msg.changes) or 1
                if not put(msg, rows, stop):
                    return
            chan.put_final(_EndOfStream())
        except BaseException as exc:  # handed to the applier thread, which decides
            chan.put_final(exc)

    # ------------------------------------------------------------ the apply loop
    def _apply_loop(self, applier: Applier, source: Source, chan: Channel, mset: MappingSet,
                    checkpoint: Position | None) -> Position | None:
        """Returns the checkpoint when it stops between target transactions, None mid-batch."""
        b = self.config.batching
        side = self.source_conn.name
        m_seconds = metrics.batch_seconds.labels(self.name)
        m_rows = metrics.batch_rows.labels(self.name)
        m_txns = metrics.transactions_applied.labels(self.name)
        m_depth = metrics.queue_depth.labels(self.name)
        taken_at = 0.0  # wall time the items were taken from the reader (lag.py)

        def committed(position: Position) -> None:  # right after the target commit, before anything else
            if self._dlq is not None:
                self._dlq.committed()
            source.ack(position)
            if self._progress:
                self.sync.committed(self._progress)
                self._progress = []

        batch = Batch(applier, lambda changes: self._apply(applier, changes),
                      lambda position, commit_time: self._commit(applier, position, commit_time),
                      committed, checkpoint)

        def commit(position: Position, commit_time: Any) -> None:
            done = batch.commit(position, commit_time)
            m_seconds.observe(done.seconds)
            m_rows.observe(done.rows)
            m_txns.inc(done.txns)
            self.lag.applied(commit_time, *(done.oldest or (None, 0.0)))  # a batch's lag is its first transaction's
            self.backoff.committed()

        idle_checkpoint = self.config.heartbeat_seconds
        if self.source_conn.kind == "postgresql":
            idle_checkpoint = min(idle_checkpoint, WAL_IDLE_CHECKPOINT_SECONDS)
        while not self.stop.is_set():
            self.alive_at = time.monotonic()
            if not batch.open and self.mappings.version != self._version:
                raise _Reload()
            if not batch.open:
                self.sync.poll(applier, mset)  # new sync requests; a failed sync reader raises here
                source.keep_echoes = self.sync.snapshotter is not None
            items = chan.take_all(batch.timeout(b.max_ms))
            taken_at = time.time()
            if items and not batch.open and self.mappings.version != self._version:
                raise _Reload()  # swapped while we waited: these are read again from the checkpoint
            m_depth.set(chan.rows())
            if not items:
                if batch.ready() and batch.last is not None:
                    commit(batch.last.position, _commit_time(batch.last))
                elif not batch.open:
                    self.lag.idle()  # nothing arrived for `timeout` and nothing is open: caught up
                    self.lag.skew = self.skew.due()  # idle: a query to the source delays nothing
                    if time.monotonic() - self._renewed_at >= self.config.ha.takeover_seconds / 3:
                        lease.prove(applier, self.name, self.epoch)  # idle: the standby must see us alive
                        applier.commit_untracked()
                        self._renewed_at = time.monotonic()
                    due = time.monotonic() - batch.last_commit_at >= idle_checkpoint
                    skipped_to = batch.skipped_to
                    if due and skipped_to is not None and not ckpt.is_applied(skipped_to, batch.checkpoint):
                        # only echoes or unmapped changes since the last commit: record the position
                        # so the checkpoint (and the slot) keep moving
                        batch.begin()
                        commit(skipped_to, None)
                continue
            items.reverse()
            while items:
                # popped as handled, not iterated: a handled transaction's rows are freed once its page is
                # flushed instead of living until the whole hand-over (thousands of rows) is done
                item = items.pop()
                if item.__class__ is not Transaction:  # the usual item first: one check, not three
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, _EndOfStream):
                        raise RetriableError(f"{self.name}: the source stream ended")
                    if isinstance(item, Keepalive):
                        # nothing for us up to its position (never inside a transaction): recorded like a
                        # skipped transaction, or as where the open batch ends
                        if batch.open:
                            batch.ends_at(item)
                        else:
                            batch.skip(item.position)
                            self.lag.handled(None, taken_at)
                        continue
                txn: Transaction = item
                chunk = self.sync.observe(txn)  # window keys; a chunk's rows at its HIGH watermark
                changes: Sequence[Routed | Progress]
                dlq = self._dlq
                if txn.echo:  # rows kept only for the sync's windows
                    changes = []
                elif dlq is not None and dlq.enabled:  # notes where each change came from, for the queue
                    changes = [tc for ch in txn.changes
                               for tc in dlq.route(mset, side, ch, txn.position, txn.commit_time)]
                elif len(txn.changes) == 1:  # a single-row transaction: route's own list, not a copy
                    changes = route(mset, side, txn.changes[0], txn.commit_time)
                else:
                    changes = route_all(mset, side, txn.changes, txn.commit_time)  # route of each, in order
                if chunk:  # a new list: route's is not ours to extend
                    if dlq is not None and dlq.enabled:  # a copied row the target rejects is queued too
                        dlq.note_copied(chunk, self.sync.copied_from, txn.position, self.sync.copied_unroutable)
                    changes = [*changes, *chunk]
                if not changes and not batch.open:
                    if txn.final:
                        batch.skip(txn.position)
                        self.lag.handled(txn.commit_time, taken_at)  # an echo is not lag either
                    continue
                if not batch.open:
                    batch.begin()
                    if dlq is not None and dlq.held:
                        dlq.refresh(applier)  # `dlq retry|skip` may have run meanwhile
                if batch.add_txn(changes, txn, taken_at, b.max_rows, b.max_ms):  # add, end_of, full
                    commit(txn.position, txn.commit_time)
            last = batch.last
            if batch.ready() and last is not None and chan.empty() and not self._catching_up(last, taken_at):
                commit(last.position, _commit_time(last))  # nothing else waiting: do not hold the batch
        if batch.open:
            batch.rollback()  # stopping: the open batch is replayed from the checkpoint next time
            self._progress = []
            return None
        return batch.checkpoint

    def _catching_up(self, last: Transaction | Keepalive, taken_at: float) -> bool:
        """The last transaction in hand is old: the source is far ahead of us, so more is coming."""
        commit_time = _commit_time(last)
        if commit_time is None:
            return False
        return time.time() - self.lag.estimate(commit_time, taken_at) > CATCHING_UP_SECONDS

    def _final_checkpoint(self, applier: Applier, source: Source, reader: threading.Thread, chan: Channel,
                          checkpoint: Position) -> None:
        """Stopping between transactions: record where a WAL source can safely resume.

        The reader's last idle position (the server's WAL end with everything before it handed over)
        holds nothing more for us; recording it saves re-reading that WAL at the next start. The
        slot itself is confirmed only up to committed checkpoints (sources/walproto.py), so it is
        never ahead of the checkpoint because of us, with or without this."""
        position = source.safe_position
        if position is None:
            return
        source.stop()
        reader.join(5)
        left = chan.take_all(0)
        if reader.is_alive() or not all(isinstance(item, _EndOfStream) for item in left) \
                or ckpt.is_applied(position, checkpoint):
            return  # something was read that the loop did not handle: the checkpoint stays put
        applier.begin()
        self._commit(applier, position, None)
        log.debug("%s: stopped at %s", self.name, position)

    def _apply(self, applier: Applier, changes: list[Routed | Progress]) -> None:
        """Consecutive plain changes go to the server as batches; linked ones row by row, in order, except
        consecutive two-hop fold changes, applied together (each parent read and written once)."""
        plain: list[TargetChange] = []
        through: list[LinkedChange] = []
        for ch in changes:
            if isinstance(ch, TargetChange):
                if through:
                    self._apply_through(applier, through)
                    through = []
                plain.append(ch)
                continue
            self._apply_plain(applier, plain)
            plain = []
            if isinstance(ch, LinkedChange) and coalesced(ch) and self._coalesces(ch):
                through.append(ch)
                continue
            if through:
                self._apply_through(applier, through)
                through = []
            if isinstance(ch, LinkedChange):
                self._apply_linked(applier, ch)
            else:
                self.sync.save(applier, ch)
                self._progress.append(ch)
        self._apply_plain(applier, plain)
        if through:
            self._apply_through(applier, through)

    def _coalesces(self, lc: LinkedChange) -> bool:
        """A two-hop fold's change goes with the others unless the dead-letter queue is to hold or guard it
        (quarantined and replayed one change at a time, stream/deadlinked)."""
        dlq = self._dlq
        return dlq is None or not (dlq.quarantines_linked(lc) or (dlq.held and dlq.held_linked(lc)))

    def _apply_through(self, applier: Applier, lcs: list[LinkedChange]) -> None:
        linker = self._linker
        assert linker is not None
        if len(lcs) == 1:
            self._apply_linked(applier, lcs[0])
            return
        try:
            linker.apply_through(lcs)
        except (RetriableError, RowError):
            raise
        except Exception as exc:
            if not applier.is_row_error(exc):
                raise
            lc = linker.folds.writing or lcs[-1]
            metrics.errors.labels(self.name, "row").inc()
            raise RowError(f"mapping {lc.flow.mapping}: {applier.describe_error(exc)}",
                           table=str(lc.flow.target.table), key=lc.source_key,
                           column=applier.error_column(exc), key_side=lc.flow.source.side) from None

    def _apply_plain(self, applier: Applier, changes: list[TargetChange]) -> None:
        if not changes:
            return
        dlq = self._dlq
        if dlq is not None and (dlq.enabled or dlq.held):
            try:
                dlq.apply(applier, changes)  # rejected rows of quarantining mappings go to the queue
            except RowError:
                metrics.errors.labels(self.name, "row").inc()
                raise
            return
        try:
            applier.apply(changes)
        except (RetriableError, RowError):
            raise
        except Exception as exc:
            if not applier.is_row_error(exc):
                raise
            error = applier.locate_row_error(changes, exc)
            metrics.errors.labels(self.name, "row").inc()
            raise error from None

    def _commit(self, applier: Applier, position: Position, commit_time: Any) -> None:
        """Commit the open transaction with the checkpoint, proving in it that the lease is still ours."""
        lease.prove(applier, self.name, self.epoch)
        try:
            applier.commit(position, commit_time)
        except TargetShapeChanged:
            # a table written in it changed under our write (rolled back, nothing committed): its new shape,
            # checked as `check` would (a refusal stops the direction here), then planned with anew
            applier.load_types(self._target_tables)
            self.target_shapes.planned(applier.planned)
            raise
        self._moved = 0
        self._renewed_at = time.monotonic()

    def _take_over(self, applier: Applier) -> bool:
        """Take the direction's session lock and a new lease epoch. While another instance holds it, wait
        as a standby; when its lease is older than ha.takeover_seconds (paused, cut off, dead without its
        session being closed), end its session and take over. False: stopped while waiting."""
        takeover = self.config.ha.takeover_seconds
        standing_by = False
        while not self.stop.is_set():
            try:
                applier.lock(fail_fast=True)
                break
            except LockBusy:
                pass
            held = lease.read(applier, self.name)
            applier.rollback()
            if held is not None and held.holder == self.holder and not standing_by:
                # our own session from before a reconnect, not closed yet: no need to wait for its lease
                lease.end_session(applier, held.session)
                applier.rollback()
                self.stop.wait(0.2)
                continue
            if not standing_by:
                standing_by = True
                metrics.role.labels(self.name).set(0)
                log.warning("%s: standby: %s holds this direction; taking over when its lease is older than %.0f s",
                            self.name, held.holder if held else "another instance", takeover)
            if held is not None and held.age_seconds > takeover:
                log.warning("%s: the lease of %s is %.1f s old: ending its session and taking over",
                            self.name, held.holder, held.age_seconds)
                lease.end_session(applier, held.session)
                applier.rollback()
                try:
                    lease.end_walsender(self.source_conn)
                except Exception as exc:  # the slot then frees itself at wal_sender_timeout
                    log.warning("%s: could not end the old walsender of slot %s: %s", self.name,
                                self.source_conn.slot, exc)
                self.stop.wait(0.2)
                continue  # the lock is free once the server has ended that session
            self._waiting()
            self.stop.wait(min(1.0, takeover / 10))
        else:
            return False
        self.epoch = lease.acquire(applier, self.name, self.holder)
        self._renewed_at = time.monotonic()
        metrics.role.labels(self.name).set(1)
        log.info("%s: active (lease epoch %d)%s", self.name, self.epoch, " after standing by" if standing_by else "")
        return True

    def _retry_queue(self, applier: Applier, mset: MappingSet) -> None:
        """After a mapping reload: apply what the queue holds, in order, through the tagged path; what
        still fails stays queued (with its new error) and keeps its row held."""
        applier.begin()
        entries = deadletter.select(applier, stream=self.name, lock=True)
        linker = self._linker
        outcome = deadretry.retry(applier, entries, mset, None if linker is None else (
            lambda db, e, flow: deadlinked.replay_entry(db, linker, e, flow)))
        applier.commit_untracked()
        applytime.next_transaction()  # its stamps (`now: true`) were this transaction's instant
        log.info("%s: dead-letter queue retried after the reload: %d applied, %d still failing, %d waiting",
                 self.name, len(outcome.applied), len(outcome.failed), len(outcome.waiting))
        assert self._dlq is not None
        self._dlq.load(applier, [e.table for e in mset.target_endpoints(self.target_conn.name)])

    def _retry_parked(self, applier: Applier) -> int:
        """Between target transactions, after a copy ended (sync/driver.py): parked changes whose parent
        has a pair now, applied in a tagged transaction of their own (no checkpoint moves)."""
        assert self._linker is not None
        applier.begin()
        try:
            done = self._linker.retry_parked()
            lease.prove(applier, self.name, self.epoch)
            applier.commit_untracked()
        except BaseException:
            applier.rollback()
            raise
        finally:
            applytime.next_transaction()  # its stamps (`now: true`) were this transaction's instant
        return done

    def _apply_linked(self, applier: Applier, lc: LinkedChange) -> None:
        dlq = self._dlq
        if dlq is not None and self._linker is not None and (dlq.enabled or dlq.held):
            # a rejected row of a quarantining mapping is queued, a row held in the queue waits behind it
            deadlinked.apply(dlq, applier, lc, self._linker, lambda c: self._write_linked(applier, c))
            return
        self._write_linked(applier, lc)

    def _write_linked(self, applier: Applier, lc: LinkedChange) -> None:
        assert self._linker is not None
        try:
            self._linker.apply(lc)
        except (RetriableError, RowError):
            raise
        except Exception as exc:
            if not applier.is_row_error(exc):
                raise
            metrics.errors.labels(self.name, "row").inc()
            raise RowError(f"mapping {lc.flow.mapping}: {applier.describe_error(exc)}",
                           table=str(lc.flow.target.table), key=lc.source_key,
                           column=applier.error_column(exc), key_side=lc.flow.source.side) from None


def _commit_time(last: Transaction | Keepalive) -> datetime | None:
    """A batch ending at an idle position commits no source transaction's time."""
    return last.commit_time if isinstance(last, Transaction) else None


def two_way_keys(mset: MappingSet) -> dict[tuple[str, TableRef], tuple[str, ...]]:
    """The key columns of every table of a two-way mapping, by side: what the commit clock records."""
    return {(e.side, e.table): e.key for m in mset.mappings if any(f.two_way for f in m.flows)
            for e in m.endpoints}


def fold_children(mset: MappingSet) -> dict[tuple[str, TableRef], set[tuple[str, tuple[str, ...]]]]:
    """The child tables of two-way one-hop folds, by side: (the column naming the parent, the slice's columns),
    whose rows leaving a parent the commit clock remembers (`CommitClock.departed`)."""
    out: dict[tuple[str, TableRef], set[tuple[str, tuple[str, ...]]]] = {}
    for m in mset.mappings:
        for f in m.flows:
            fold = f.fold
            if f.two_way and fold is not None and fold.via is None and f.source.side == fold.child:
                out.setdefault((f.source.side, f.source.table), set()).add(
                    (fold.by, tuple(c for c, _ in f.source.slice)))
    return out


class Daemon:
    """Both directions, each in its own thread; the first fatal error stops everything. Side jobs
    (the periodic verifier, started by the CLI) run beside them and never stop the daemon."""

    def __init__(self, config: Config, mappings: MappingHolder):
        self.config = config
        self.mappings = mappings
        self.stop = threading.Event()
        a, b = config.connections
        self.directions = [Direction(config, a, b, mappings, self.stop), Direction(config, b, a, mappings, self.stop)]
        first, second = self.directions
        first.sync.peer, second.sync.peer = second.sync, first.sync  # each tells the other about deletes
        first.clock = second.clock = CommitClock({})
        ready = (threading.Event(), threading.Event())
        first.start_gate, second.start_gate = ready, (ready[1], ready[0])
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # process-wide: both directions' readers and appliers
        for d in self.directions:
            t = threading.Thread(target=self._run, args=(d,), name=f"apply-{d.name}", daemon=True)
            t.start()
            self.threads.append(t)

    def start_side_job(self, name: str, run: Callable[[], None]) -> None:
        """A thread beside the directions (the periodic verifier): it shares `stop` but its failures are
        its own business, so it is not joined by `wait` and never stops the daemon."""
        threading.Thread(target=run, name=name, daemon=True).start()

    def _run(self, d: Direction) -> None:
        try:
            d.run()
        except BaseException as exc:
            # an error we did not foresee gets its traceback into the log, for the bug report
            log.error("%s stopped: %s", d.name, exc, exc_info=not isinstance(exc, ReplicatorError))
            self.errors.append(exc)
            self.stop.set()

    def healthy(self, within: float) -> bool:
        now = time.monotonic()
        return all(now - d.alive_at < within for d in self.directions)

    def wait(self, poll: Callable[[], None] | None = None, interval: float = 1.0) -> None:
        stop_seen: float | None = None
        while any(t.is_alive() for t in self.threads):
            if self.stop.is_set():
                # a statement waiting on a lock or a hung server must not hold a stop (SIGTERM) for
                # the whole lock or network timeout
                stop_seen = stop_seen or time.monotonic()
                if time.monotonic() - stop_seen >= STOP_GRACE_SECONDS:
                    stop_seen = float("inf")
                    log.warning("stopping: a direction has not stopped after %.0f s; breaking off its database sessions",
                                STOP_GRACE_SECONDS)
                    for d in self.directions:
                        d.interrupt()
            if poll:
                poll()
            for t in self.threads:
                t.join(interval / len(self.threads))

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
