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
that exist on both sides, and creates the rows that exist on its side only. Its fields without an owner
still fill a NULL in an existing row (`_fill`: never over a value), for a row the first side's copy never
saw -- made since by another mapping's copy into the same table; a mapping that creates no rows in its
table is copied after those that do (snapshot._parents_first), so that such a row is there to fill.

A fold (mapping/folds.py) follows the same rule for its one column: on the second side its copy writes the
folded value only where the first side has none (no child row, a NULL column) and never overwrites or deletes
one. An echo row of a fold is judged by the columns the echo wrote (`_echoed`), not by the row: the parent
mapping's copy writing a parent's name says nothing about its folded e-mail, which must still be copied.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

import threading
import time

from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import UNCHANGED, Op, RowChange, TableRef, TargetChange, Transaction, Watermark
from replicator.config import Config, Connection
from replicator.connect import RETRIABLE, error_class
from replicator.errors import FatalError, ReplicatorError, RetriableError, RowError
from replicator.loopguard import stream_name
from replicator.mapping.model import Flow, Mapping, MappingSet
from replicator.mapping.folds import child_columns, deleted_child, folds_into_children
from replicator.mapping.router import LinkedChange, Routed, key_of, route_flow
from replicator.sources.base import Source
from replicator.sync.snapshot import Chunk, Job, Progress, Snapshotter, _parents_first, foreign_key_parents
from replicator.sync.state import SyncState


log = logging.getLogger(__name__)


OUTSTANDING = 2  # chunks read ahead of the apply loop (memory: OUTSTANDING * chunk_rows rows)
POLL_SECONDS = 2.0  # how often a direction looks for new sync requests
STOP_SECONDS = 10.0  # how long stopping waits for a snapshotter whose query was cancelled


CHANGED, ECHO = "changed", "echo"  # how a key changed since a sync started


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
        self._lock = threading.Condition()
        # synced table -> (its key columns, {key changed since the sync started: CHANGED or ECHO});
        # the apply thread's
        self._tracked: dict[TableRef, tuple[tuple[str, ...], dict[tuple[Any, ...], str]]] = {}
        # synced table -> {key of an ECHO row: the columns our echoes changed in it, None when not known (an
        # insert, an old image without them)}: a fold's copy asks whether an echo wrote its column (the apply thread's)
        self._echoed: dict[TableRef, dict[tuple[Any, ...], frozenset[str] | None]] = {}
        self._chunks: dict[str, Chunk] = {}  # HIGH mark -> chunk read before it, not applied yet
        # the flow and source row of each change the last `observe` returned (by id()): what the
        # dead-letter queue records of a copied row the target rejects (stream/deadletter.note_copied)
        self.copied_from: dict[int, tuple[Flow, RowChange]] = {}
        # copied rows the mapping refused (a zero date it carries without `zero_date: null`) for a mapping that
        # quarantines: their placeholder change (by id()) and why, queued by the dead-letter queue (note_copied)
        self.copied_unroutable: dict[int, str] = {}
        # the other direction's driver (same process), which tells us about rows deleted on our target
        self.peer: SyncDriver | None = None
        # tables of our source whose deletes the peer's sync wants to know: table -> {columns: their values in
        # the deleted rows} (the key; a fold's child table also by its parent and slice columns)
        # (written by both apply threads: the peer's watch/unwatch, our observe; under _watched_lock)
        self._watched: dict[TableRef, dict[tuple[str, ...], set[Any]]] = {}
        self._watched_lock = threading.Lock()
        self._snapshotter: Snapshotter | None = None
        self._polled_at = 0.0
        self.sources: list[Source] = []  # stream readers told to keep echo rows while a sync runs
        # Parked rows after a copy. A child copied before its parent's crosswalk pair exists is parked
        # (mapping/links.py); when the pair is made by the other direction's copy, nothing in this
        # direction's stream would ever wake it. So each time a copy ends, and each time a retry
        # applied something (which may make pairs the peer's parked rows wait for), a round begins and
        # both directions retry their parked rows between target transactions, until a round applies
        # nothing. `retry_parked` is set by the apply loop: it retries in a tagged transaction of
        # its own and returns how many parked changes it took out.
        self.retry_parked: Callable[[], int] | None = None
        self.parked_round = 0  # bumped by this direction: a copy ended, or a retry applied something
        self._parked_seen = 0  # the highest round (ours or the peer's) this direction has retried for

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
            self.parked_round += 1  # the copy is done: parked rows of both directions may find their pair
        self._retry_parked()
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
            jobs.append(Job(r.mapping, flow, r.last_key, r.rows_done, insert_only, not_owned,
                            rows_skipped=r.rows_skipped, fill=self._fill(flow, insert_only)))
        if not jobs:
            if self.peer is not None:
                self.peer.unwatch_all()  # every copy is done: no more deletes to know
            return
        jobs = _parents_first(jobs, foreign_keys)
        self.track(jobs)
        self._keep_echoes(True)
        self._snapshotter = Snapshotter(self, jobs, self._waiter(mset))
        self._snapshotter.start()

    def _wanted_round(self) -> int:
        peer = self.peer.parked_round if self.peer is not None else 0
        return max(self.parked_round, peer)

    def _retry_parked(self) -> None:
        """Retry parked rows once per round (see `parked_round`), between target transactions."""
        wanted = self._wanted_round()
        if self.retry_parked is None or self._snapshotter is not None or self._parked_seen >= wanted:
            return
        self._parked_seen = wanted
        done = self.retry_parked()
        if done:
            log.info("%s: %d parked change(s) applied after a copy (their parent's pair exists now)",
                     self.stream, done)
            self.parked_round = self._wanted_round() + 1  # may unblock more, here or in the peer

    @property
    def parked_settled(self) -> bool:
        """No copy runs here and the parked rows were retried since the last copy or useful retry of
        either direction (`replicator sync` reports what is still parked only then)."""
        return self._snapshotter is None and (self.retry_parked is None or self._parked_seen >= self._wanted_round())

    def track(self, jobs: Sequence[Job]) -> None:
        """Remember changed keys of the jobs' tables from now on (before any chunk is read), and ask
        the other direction for the keys deleted on the jobs' target tables."""
        for job in jobs:
            self._tracked.setdefault(job.flow.source.table, (job.flow.source.key, {}))
            self._echoed.setdefault(job.flow.source.table, {})
            if self.peer is not None and folds_into_children(job.flow):
                # a child row's key is made anew: the parent and the type say which row it was (folds.deleted_child)
                self.peer.watch(job.flow.target.table, child_columns(job.flow))
            elif self.peer is not None and not job.flow.link.crosswalk:  # a crosswalk pair outlives its row
                self.peer.watch(job.flow.target.table, job.flow.target.key)

    # -------------------------------------------------------------- for the peer (its apply thread)
    def watch(self, table: TableRef, key: Sequence[str]) -> None:
        """Remember the keys of rows deleted (not by us) in `table` of our source from now on."""
        with self._watched_lock:
            self._watched.setdefault(table, {}).setdefault(tuple(key), set())

    def deleted(self, table: TableRef, key: Sequence[str] | None = None) -> frozenset[Any]:
        """The values of `key` (default: the first columns watched, the key) of the rows deleted so far: a copy,
        our apply thread goes on adding to the set."""
        with self._watched_lock:
            watched = self._watched.get(table)
            if not watched:
                return frozenset()
            found = watched.get(tuple(key)) if key is not None else next(iter(watched.values()))
            return frozenset(found) if found is not None else frozenset()

    def unwatch(self, tables: Iterable[TableRef]) -> None:
        with self._watched_lock:
            for table in tables:
                self._watched.pop(table, None)

    def unwatch_all(self) -> None:
        with self._watched_lock:
            self._watched.clear()

    def observe(self, txn: Transaction) -> list[Routed | Progress]:
        """Remember changed keys; at a HIGH watermark return the chunk's rows to apply (routed through
        the chunk's flow: TargetChanges and LinkedChanges) followed by its Progress."""
        if not (self._tracked or self._watched):
            return []
        out: list[Routed | Progress] = []
        # a change of ours (an echo) brought the other side's fields into this row, nothing else; a
        # deleted row is deleted whoever deleted it
        for ch in txn.changes:
            if ch.op is Op.DELETE and not txn.echo and ch.before:
                with self._watched_lock:  # not across _watermark: the peer's lock is taken there
                    for cols, deleted in self._watched.get(ch.table, {}).items():
                        deleted.add(tuple(ch.before.get(c) for c in cols))
            tracked = self._tracked.get(ch.table)
            if tracked is not None:
                cols, keys = tracked
                kind = ECHO if txn.echo and ch.op is not Op.DELETE else CHANGED
                echoed = self._echoed.setdefault(ch.table, {})
                wrote = _changed_columns(ch) if kind is ECHO else None
                for image in (ch.before, ch.after):
                    if image:
                        key = tuple(image.get(c) for c in cols)
                        if keys.get(key) is not CHANGED:
                            keys[key] = kind
                        if kind is ECHO:
                            was = echoed.get(key, frozenset())
                            echoed[key] = None if was is None or wrote is None else was | wrote
        for mark in txn.watermarks:  # after the transaction's rows (a snapshotter's has none)
            out.extend(self._watermark(mark))
        return out

    def _watermark(self, mark: Watermark) -> list[Routed | Progress]:
        if mark.stream != self.stream or mark.kind != "high":
            return []
        with self._lock:
            chunk = self._chunks.pop(mark.mark, None)  # marks are uuid hex: "" finds none
            self._lock.notify_all()
        if chunk is None:
            return []  # a previous session's watermark: its chunk is read again
        job = chunk.job
        table = job.flow.source.table
        cols, changed = self._tracked.get(table, (job.flow.source.key, {}))
        echoed = self._echoed.get(table, {})
        children: frozenset[tuple[str, ...]] = frozenset()
        if self.peer is not None and folds_into_children(job.flow):
            deleted: Any = set()
            children = frozenset(deleted_child(v) for v in self.peer.deleted(job.flow.target.table,
                                                                            child_columns(job.flow)))
        else:
            deleted = self.peer.deleted(job.flow.target.table) if self.peer is not None else set()
        out: list[Routed | Progress] = []
        sources = self.copied_from = {}
        unroutable = self.copied_unroutable = {}
        skipped = 0
        for row_ in chunk.rows:
            key = tuple(row_[c] for c in cols)
            kind = changed.get(key)
            if kind is ECHO and _fold_echoed(job.flow, echoed.get(key)) is False:
                kind = None  # our echo wrote other columns of the row (the parent mapping's): the fold's is copied
            source = RowChange(table, Op.INSERT, None, row_)
            if kind is CHANGED:
                # changed since the sync started: the stream brings (or brought) its newest state; routed only to
                # count it (a row error in it is the stream's to meet)
                try:
                    skipped += not route_flow(job.flow, source)
                except ReplicatorError:
                    pass
                continue
            try:
                routed = route_flow(job.flow, source)
            except RowError as exc:
                if job.flow.on_error != "quarantine":
                    raise
                # the row cannot be carried (a zero date the mapping refuses): queued, as the stream queues one
                failed = _unroutable(job.flow, source)
                unroutable[id(failed)] = str(exc)
                sources[id(failed)] = (job.flow, source)
                out.append(failed)
                continue
            if not routed:
                skipped += 1  # outside the mapping's slice or filter: not the mapping's row, not copied
                continue
            if children:  # a fold into child rows: folds.FoldApplier._to_child makes none the target deleted meanwhile
                routed = [replace(c, deleted_children=children) if isinstance(c, LinkedChange) else c for c in routed]
            if kind is ECHO:
                for change in self._echo_row(job, routed, echoed.get(key)):
                    sources[id(change)] = (job.flow, source)
                    out.append(change)
                continue
            for change in routed:
                if deleted and _target_key(job.flow, change) in deleted:
                    continue  # deleted on the target meanwhile: the delete is on its way here, do not revive it
                # the flow's own insert_only fields (`insert_only: true`) stay insert-only too
                if job.fill:
                    change = replace(change, insert_only=change.insert_only | job.insert_only, fill=job.fill)
                elif job.insert_only:
                    change = replace(change, insert_only=change.insert_only | job.insert_only)
                sources[id(change)] = (job.flow, source)
                out.append(change)
        job.rows_done += len(chunk.rows) - skipped
        job.rows_skipped += skipped
        metrics.sync_rows.labels(self.stream, job.mapping).inc(len(chunk.rows) - skipped)
        metrics.sync_rows_skipped.labels(self.stream, job.mapping).inc(skipped)
        out.append(Progress(self.stream, chunk, job.rows_done, job.rows_skipped))
        return out

    @staticmethod
    def _echo_row(job: Job, routed: list[Routed], wrote: frozenset[str] | None = None) -> list[Routed]:
        """A row our other direction wrote into this side since the sync started: it exists on the
        other side (or was deleted there since: it must not come back), and the echo carried the
        other side's fields. Only the fields this side owns are written, into an existing row.

        A fold's row (its column is not known to be the echo's: `_fold_echoed`) fills the other side's value
        only where it has none, never overwrites one: an echo of only the parent mapping's columns must not
        keep the fold's value from being copied, and one of the fold's column carried a value already."""
        if job.flow.fold is not None:
            if _fold_echoed(job.flow, wrote) is True:
                return []  # the echo wrote the fold's column: the other side's value is here already
            fill = frozenset({folded_column(job.flow)})
            return [replace(change, insert_only=change.insert_only | fill) for change in routed]
        key = set(job.flow.target.key)
        if not any(p.target not in key and p.target not in job.echo_insert_only for p in job.flow.plans):
            return []  # this side owns none of the fields: nothing to bring over
        out: list[Routed] = []
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
        SyncState(applier, self.target.state_schema).save(p.stream, c.job.mapping, c.last_key, p.rows_done,
                                                          max(c.estimated, c.rows_read), c.done, c.job.started,
                                                          p.rows_skipped)

    def committed(self, progress: Iterable[Progress]) -> None:
        """After the target commit: metrics for finished copies."""
        for p in progress:
            if p.chunk.done:
                metrics.sync_running.labels(self.stream, p.chunk.job.mapping).set(0)
                metrics.sync_completed_timestamp.labels(self.stream, p.chunk.job.mapping).set_to_current_time()
                log.info("%s: sync of %s done: %d rows copied, %d skipped (outside the mapping's slice or filter)",
                         self.stream, p.chunk.job.mapping, p.rows_done, p.rows_skipped)

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
        self._echoed = {}
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
        if flow.fold is not None:  # a fold has no fields (and no owner): its one column, filled where empty
            return frozenset({folded_column(flow)})
        owners = {f.name: f.owner for f in mapping.fields}
        return frozenset(p.target for p in flow.plans if owners.get(p.name) is None and p.target not in flow.target.key)

    def _fill(self, flow: Flow, insert_only: frozenset[str]) -> frozenset[str]:
        """The second side's fields without an owner (`insert_only`) that an existing counterpart still gets where
        its value is NULL. The rule "the first side's values win" keeps what the first side's copy wrote; a NULL
        there means the first side held none -- or that its copy never saw the row: another mapping's copy into
        the same table (an account made from the second side's record, whose 1:1 extension this mapping carries)
        made it after the first side's copy of this mapping had passed. Filling it is what makes both sides
        agree; a value the first side holds is never overwritten (one `COALESCE` update, appliers' update_by_key).
        Not on the first side (a resumed copy there keeps to insert-only: what the other side wrote since the
        restart is not known), not a fold's (folds.FoldApplier fills its own column), not the flow's own
        `insert_only: true` fields (the target's once the row exists)."""
        if not insert_only or flow.fold is not None or self._first_side() == self.source.name:
            return frozenset()
        return insert_only - flow.insert_only

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


def folded_column(flow: Flow) -> str:
    """The column a fold's flow writes in its target: the parent's column, or the child row's value."""
    fold = flow.fold
    assert fold is not None
    return fold.value if flow.target.side == fold.child else fold.into


def _changed_columns(change: RowChange) -> frozenset[str] | None:
    """The columns an update changed, None when that cannot be told (an insert; an old image without the
    column: PostgreSQL's default replica identity)."""
    before, after = change.before, change.after
    if change.op is not Op.UPDATE or before is None or after is None:
        return None
    out = set()
    for column, value in after.items():
        if value is UNCHANGED:
            continue  # an unchanged TOAST value
        old = before.get(column, UNCHANGED)
        if old is UNCHANGED:
            return None
        try:
            same = old.__class__ is value.__class__ and bool(old == value)
        except Exception:
            same = False
        if not same:
            out.add(column)
    return frozenset(out)


def _fold_echoed(flow: Flow, wrote: frozenset[str] | None) -> bool | None:
    """Whether our echo wrote what a fold's flow reads from its source row; None when the echo's columns are
    not known (an insert, an update without its old image: PostgreSQL's default replica identity). A row's echo
    is the whole row's for any other flow, and for a two-hop fold (one way)."""
    fold = flow.fold
    if fold is None or fold.via is not None:
        return True
    if wrote is None:
        return None
    if flow.source.side == fold.child:
        read = {fold.value, fold.by, *(c for c, _ in flow.source.slice)}
    else:
        read = {fold.into}
    return bool(read & wrote)


def _target_key(flow: Flow, change: Any) -> tuple[Any, ...] | None:
    if isinstance(change, TargetChange):
        return change.key
    try:  # a linked change of a shared-key flow: the key is among its values
        return tuple(change.values[c] for c in flow.target.key)
    except (KeyError, AttributeError):
        return None


def _unroutable(flow: Flow, source: RowChange) -> TargetChange:
    """The placeholder of a copied row its mapping refused, keyed as stream/deadletter.Quarantine.route keys
    one: by the target key (the source row's key for a linked flow)."""
    row = source.after or {}
    if flow.linked:
        return TargetChange(flow.target.table, source.op, flow.source.key,
                            tuple(row.get(c) for c in flow.source.key), {}, mapping=flow.mapping)
    return TargetChange(flow.target.table, source.op, flow.target.key, key_of(flow, row, source), {},
                        mapping=flow.mapping)
