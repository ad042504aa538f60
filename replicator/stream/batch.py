"""The open target transaction of one direction's apply loop: what it holds and when it is due.

A batch gathers routed changes from many source transactions into one target transaction. It
always ends on a source transaction boundary and commits with the checkpoint (the `commit`
callable writes it, with the lease proof, as the transaction's last statement); `on_commit` then
runs right after that commit -- the source is acked there, never before. Changes are sent to the
server a page at a time while the transaction is open, so memory stays bounded.

The batch also remembers where the target checkpoint stands and the last position skipped
without a target transaction (echoes, unmapped changes, keepalives), which the loop records when
idle so the checkpoint (and a WAL slot) keep moving.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from replicator.appliers.base import Applier
from replicator.changes import Keepalive, Position, Transaction
from replicator.mapping import applytime
from replicator.mapping.router import Routed
from replicator.sync.snapshot import Progress

PAGE = 1000  # target changes sent to the server at a time inside an open transaction

Item = Routed | Progress


@dataclass(frozen=True)
class Committed:
    """What one target commit carried, for the loop's metrics and lag."""
    position: Position
    commit_time: Any
    seconds: float  # from begin to just after on_commit (the batch's whole life)
    rows: int
    txns: int  # source transactions with changes
    oldest: tuple[Any, float] | None  # (commit time, taken at) of the batch's first transaction


class Batch:
    """Owns the open target transaction's state. Not thread-safe: only the apply thread uses it."""

    def __init__(self, applier: Applier, flush: Callable[[list[Item]], None],
                 commit: Callable[[Position, Any], None], on_commit: Callable[[Position], None],
                 checkpoint: Position | None, page: int = PAGE):
        self._applier = applier
        self._flush = flush  # sends changes to the server inside the open transaction
        self._commit = commit  # writes the checkpoint (and lease proof) and commits
        self._on_commit = on_commit  # after the commit: ack the source, note what it made durable
        self._page = page
        self.open = False
        self.mid_txn = False  # the open target transaction holds part of a source transaction
        self.pending: list[Item] = []
        self.rows = 0
        self.txns = 0
        self.started = 0.0
        # the last whole source transaction (or idle position) seen; kept across commits, as it is
        # only read while a batch is open and after a final transaction or keepalive set it again
        self.last: Transaction | Keepalive | None = None
        self.oldest: tuple[Any, float] | None = None
        self.checkpoint = checkpoint  # what the target holds
        self.skipped_to: Position | None = None  # skipped since the last commit, not recorded yet
        self.last_commit_at = time.monotonic()

    def begin(self) -> None:
        self._applier.begin()
        self.open, self.started = True, time.monotonic()

    def add_txn(self, changes: Sequence[Item], txn: Transaction, taken_at: float, max_rows: int,
                max_ms: float) -> bool:
        """A source transaction's changes (part or all of it; a full page goes to the server now), then
        whether the batch now ends on a source transaction boundary, and whether it is due: a final
        transaction with `max_rows` rows in the batch or a batch `max_ms` old. One call per source
        transaction (a single-row burst makes one per row); tests/unit/reference/batch_a6daaf2.py has
        the three steps it replaced."""
        pending = self.pending
        pending.extend(changes)
        self.rows += len(changes)
        if len(pending) >= self._page:
            self._flush(pending)
            self.pending = []
        if not txn.final:
            self.mid_txn = True
            return False
        self.mid_txn = False
        self.last = txn
        if self.oldest is None and txn.commit_time is not None:
            self.oldest = (txn.commit_time, taken_at)
        if txn.changes:
            self.txns += 1
        return self.rows >= max_rows or time.monotonic() - self.started >= max_ms / 1000

    def ends_at(self, keepalive: Keepalive) -> None:
        """Nothing for us up to the keepalive's position: the open batch may end there."""
        self.last = keepalive

    def skip(self, position: Position) -> None:
        self.skipped_to = position

    def ready(self) -> bool:
        """Open and on a source transaction boundary: it may commit at `last`."""
        return self.open and not self.mid_txn and self.last is not None

    def timeout(self, max_ms: float, idle: float = 0.5) -> float:
        """How long the loop may wait for more: until the batch is max_ms old when it could commit."""
        if self.open and not self.mid_txn:
            return max(0.0, self.started + max_ms / 1000 - time.monotonic())
        return idle

    def commit(self, position: Position, commit_time: Any) -> Committed:
        self._flush(self.pending)
        self._commit(position, commit_time)
        applytime.next_transaction()  # `now: true` stamps: the next batch's rows get the next instant
        self._on_commit(position)
        now = time.monotonic()
        done = Committed(position, commit_time, now - self.started, self.rows, self.txns, self.oldest)
        self.oldest = None
        self.checkpoint, self.skipped_to, self.last_commit_at = position, None, now
        self.open, self.pending, self.rows, self.txns = False, [], 0, 0
        return done

    def rollback(self) -> None:
        """Stopping: the open batch is replayed from the checkpoint next time."""
        self._applier.rollback()
        applytime.next_transaction()
        self.open, self.pending, self.rows, self.txns = False, [], 0, 0
        self.oldest = None
