"""When the other side's edit was committed: what `latest` by commit time needs from the other direction.

A direction that finds a conflict knows the commit time of its incoming change, not that of the edit
it found in the target: that edit is read by the *other* direction's reader, from the target's own
log. Both directions run in one process (stream.pipeline.Daemon), so each reader tells this shared
record, before handing a transaction on, the commit time and new row of each change of a two-way
mapping's table: the latest per (side, table, key), bounded (oldest forgotten first), with, for the
columns that edit left as they were, the time of the remembered edit that set them (`_older`).

The record is lazy. It is written for every transaction of a two-way table, on the reader threads, but read
only when a conflict is found (`wait_for`): rare. Building the index as the changes came (the key, the
slimmed row, `_older` compared column by column for a row edited again) was the largest piece of the cost of
detection (10-15% of all the daemon's samples in single-row update bursts). So `saw` only queues the
transaction's changes of two-way tables with a cheap size estimate, and the index is brought up to date from
that queue, in order and by the code that used to run in `saw` (`_index_txn`), when somebody reads it: the
answers are those of the eager record by construction (tests/unit/test_clock_lazy.py compares them with a
copy of it). The first lookup after a quiet spell indexes up to SIZE queued changes at once (~0.1 s, under
the lock: the readers pause meanwhile); the CPU is never more than the eager record's. Most queued changes
are never indexed: the bound (SIZE changes, BYTES estimated bytes, over the index and the queue together)
forgets the oldest first, the index's least recently edited rows before any queued change (the index is
older than the whole queue; forgetting from the middle of the timeline would date a row by an edit before a
gap). Counted in changes, not rows, the bound is what its size was chosen for: seconds of both directions'
changes. Queued changes keep the reader's rows alive (both images of an update, long values undigested), and
the estimate counts them (`QUEUED_BYTES`): the bound stays a bound in bytes, it just holds fewer changes of
wide updates. An edit that fell out is decided by the first connection, as before. The reader's rows are not
changed after they are handed over (RowChange is frozen, and no stage writes into its dicts), so indexing
them later reads the values that were read.

`wait_for` finds the edit that produced the value the target row holds now: the recorded row of that
key whose value of the conflicting column equals the target's current value, dated by the edit that
set that column (a later edit of another column of the row is not the edit that raced). If the other reader has
not read that far yet, it waits (bounded, `COMMIT_TIME_WAIT_SECONDS`): the edit is committed already (we
read it), so its reader gets to it soon. Then both directions compare the same two commit times and
decide alike; if it cannot be known in time (a reader far behind), the caller falls back to the first
connection and says so in the conflict's detail.

That fallback alone would not agree: the direction that waited in vain decides for the first
connection, and the other direction, which by then knows both times (its own edit, and the first
direction's edit, read before it was applied), could decide by time: the values would swap sides. So
the first decision taken for a race is kept here too (`share`), under the race's identity (mapping,
both sides' keys, mapping field; `None` for a whole row) and the commit times it knew, and the peer
direction takes it (`shared`) instead of deciding anew. A kept decision is taken once, and is
forgotten after DECISION_SECONDS or when SIZE decisions are kept (oldest first); a peer that comes
later than that decides on its own, as before.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from collections import OrderedDict, deque
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from replicator import compare
from replicator.changes import Op, RowChange, TableRef, Transaction
from replicator.conflicts.rules import Decision

_T = TypeVar("_T")

COMMIT_TIME_WAIT_SECONDS = 5.0
# changes remembered (rows indexed plus changes queued), over all tables: 5 s of both directions at 5k
# rows/s each, far more than a reader lags behind the other when both keep up. 200,000 rows of ~1 KB each
# took ~190 MB when a large source transaction filled them all; 50,000 (with long values kept as digests,
# below) cap the clock near 50 MB. An edit that fell out is decided by the first connection, and the
# conflict's detail says so.
SIZE = 50_000
# ... and bytes remembered (an estimate, below): rows of a wide table would otherwise take SIZE times their
# width (50,000 rows of 20 text columns of 200 characters: ~250 MB). At ~1 KB a row (bench_item's 7 columns)
# this keeps the last ~44,000 rows, 4.4 s of both directions at 5k rows/s each: more than a reader lags
# behind the other while both keep up, for ~40 MB of the daemon's 150 MB budget. Queued updates hold both
# images of the row (~1.5 KB a bench row): ~27,000 of them, 2.7 s.
BYTES = 40_000_000
ENTRY_BYTES = 250  # what any entry costs: the table slot, key and value tuples, the commit time
COLUMN_BYTES = 72  # a column's tuple slot and a small value (int 28, datetime 48, Decimal 104 bytes)
DIGEST_BYTES = 120  # a _Digest and its 32-byte SHA-256
OLDER_BYTES = 100  # a column's slot in an entry's `older` dict (the datetime is shared with the earlier entry)
# a queued change: its RowChange, its row dicts' own overhead and its slot in the queue (a dict's column slot
# and value are COLUMN_BYTES, its str and bytes values count their length: a queued value is not digested)
QUEUED_BYTES = 250
NAMES = 1000  # distinct column-name tuples shared between rows; more (ever changing shapes): start over
DECISION_SECONDS = 300.0  # a decision waits this long for its peer direction (readers minutes apart decide alone)
LONG = 256  # longer text and bytes values are remembered by a digest (memory stays bounded by SIZE rows)


class _Digest:
    """A long value, remembered by its SHA-256: equal only to the same text or bytes."""

    __slots__ = ("sha",)

    def __init__(self, value: str | bytes):
        self.sha = _sha(value)

    def matches(self, value: Any) -> bool:
        return isinstance(value, (str, bytes)) and len(value) > LONG and _sha(value) == self.sha


def _sha(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value).digest()


def _slim(row: Mapping[str, Any]) -> tuple[tuple[Any, ...], int]:
    """The row's values in its column order (the names are kept once per shape, not per row as a dict
    would), long ones as digests, and an estimate of the bytes the entry keeps alive."""
    values = tuple(row.values())
    size = ENTRY_BYTES + COLUMN_BYTES * len(values)
    long = False
    for v in values:
        if v.__class__ is str or v.__class__ is bytes:
            if len(v) > LONG:
                long, size = True, size + DIGEST_BYTES
            else:
                size += len(v)
    if long:
        values = tuple(_Digest(v) if (v.__class__ is str or v.__class__ is bytes) and len(v) > LONG else v
                       for v in values)
    return values, size


def _older(prev: _Entry, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, datetime] | None:
    """For the columns an update left as they were: the commit time of the remembered edit that set them.
    The latest edit of a row is not the edit of every column it holds: an edit of the name after a race
    on the phone would otherwise date the phone, and the two directions would name different winners.
    Only computed when an earlier edit of the same row is remembered (a row edited once costs nothing)."""
    t, names, values, _, had = prev
    if not names:  # the previous change was a delete: this row is new since
        return None
    row = dict(zip(names, values))
    out: dict[str, datetime] = {}
    for c, v in after.items():
        if c not in before or c not in row:
            continue
        try:
            # unchanged by this edit, and the remembered edit left the same value (not a write of our own
            # in between, which no reader records): that edit set it
            kept = _same(before[c], v, _plain) and _same(row[c], v, _plain)
        except Exception:  # values that cannot be compared: dated by this edit, as before
            kept = False
        if kept:
            out[c] = had.get(c, t) if had else t
    return out or None


def key_form(key: Iterable[Any]) -> tuple[Any, ...]:
    """A key as both directions spell it: the reader's raw value and the applier's mapped value agree."""
    return tuple(v if v.__class__ is int or v.__class__ is str else compare.canonical(compare.OTHER, v) for v in key)


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    """Unknown matches anything; known times must be the same instant."""
    if a is None or b is None:
        return True
    return bool(compare.canonical(compare.TIMESTAMP, a) == compare.canonical(compare.TIMESTAMP, b))


def _same(recorded: Any, value: Any, equal: Callable[[Any, Any], bool]) -> bool:
    return recorded.matches(value) if isinstance(recorded, _Digest) else equal(recorded, value)


def _plain(a: Any, b: Any) -> bool:
    """Python's own equality (the values of one side, as its reader decoded them)."""
    return a is b or bool(a == b)


@dataclass(frozen=True)
class Race:
    """One conflict as both directions name it: direction A->B sees (A's key, B's key) as (source key,
    target key) and B->A the other way round, so the keys are held by side, in side order."""

    mapping: str
    keys: tuple[tuple[str, tuple[Any, ...]], ...]  # ((side, key_form(key)), ...), sorted by side
    field: str | None  # the mapping's field name (the same in both directions); None: the whole row

    @staticmethod
    def of(mapping: str, sides: Mapping[str, Iterable[Any]], field: str | None) -> Race:
        return Race(mapping, tuple(sorted((s, key_form(k)) for s, k in sides.items())), field)


@dataclass(frozen=True)
class _Kept:
    decision: Decision
    incoming_time: datetime | None  # the deciding direction's own edit
    target_time: datetime | None  # the other side's edit, if the deciding direction knew it
    until: float  # time.monotonic() after which it is forgotten


# commit time, column names, values, estimated bytes, {column: time of the edit that set it} or None
_Entry = tuple[datetime, tuple[str, ...], tuple[Any, ...], int, dict[str, datetime] | None]


# a queued transaction: side, commit time, its changes of two-way tables, their tables' key columns (one
# per change: as they were when it was read, a mapping reload may change them), its estimated bytes
_Queued = tuple[str, datetime, Sequence[RowChange], tuple[tuple[str, ...], ...], int]


class CommitClock:
    def __init__(self, keys: dict[tuple[str, TableRef], tuple[str, ...]], size: int = SIZE,
                 decision_seconds: float = DECISION_SECONDS, max_bytes: int = BYTES):
        self.keys = keys  # (side, table) -> key columns, for the tables of two-way mappings
        self.size = size
        self.max_bytes = max_bytes
        self.decision_seconds = decision_seconds
        # the index, up to date with every transaction read before those queued in `_queue`:
        # (side, table, key) -> (commit time, column names, values, estimated bytes, {column: commit time of
        # the edit that set it, for the columns this edit left as they were, when an earlier edit of the row
        # is remembered} or None); a delete: no names. Least recently edited first.
        self._index: OrderedDict[tuple[str, TableRef, tuple[Any, ...]], _Entry] = OrderedDict()
        self._index_bytes = 0  # estimated, of the index's rows
        self._queue: deque[_Queued] = deque()  # read, not indexed yet (oldest first)
        self._queued = 0  # changes in _queue
        self._queued_bytes = 0  # estimated, of _queue
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._kept: OrderedDict[tuple[Race, str], _Kept] = OrderedDict()  # (race, deciding side) -> decision
        self._lock = threading.Lock()  # guards all of the above but `keys`, `_last`
        self._cond = threading.Condition(self._lock)
        self._waiting = 0  # wait_for calls waiting on _cond (saw notifies only then)
        # side -> the table saw met last, its key columns (None: not of a two-way mapping) and the one-element
        # tuple of them a single-row transaction queues (not built anew per transaction)
        self._last: dict[str, tuple[TableRef, tuple[str, ...] | None, tuple[tuple[str, ...], ...] | None]] = {}
        # side -> told True/False when a wait_for starts/stops waiting for that side's reader: the reader's
        # channel then lets it read ahead whatever its own applier does (stream/channel.py `peer_waits`)
        self._readers: dict[str, Callable[[bool], None]] = {}
        # a two-way fold's child tables (`watch_departures`): (side, table) -> {(by column, slice columns)}; and
        # the child rows that left a parent (deleted, moved to another parent, out of the slice), the latest per
        # (side, table, by, parent, slice values): (the child row's key, commit time, deleted). Indexed with the rest
        self._watched: dict[tuple[str, TableRef], frozenset[tuple[str, tuple[str, ...]]]] = {}
        self._departed: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], datetime, bool]] = OrderedDict()

    @property
    def _rows(self) -> OrderedDict[tuple[str, TableRef, tuple[Any, ...]], _Entry]:
        """The index, brought up to date (for tests and inspection; lookups go through wait_for)."""
        with self._cond:
            self._catch_up()
            return self._index

    @property
    def bytes(self) -> int:
        """Estimated bytes remembered, once the queue is indexed (a row edited again counts once)."""
        with self._cond:
            self._catch_up()
            return self._index_bytes + self._queued_bytes

    def shared(self, race: Race, side: str, incoming_time: datetime | None,
               target_time: datetime | None) -> Decision | None:
        """The decision the other direction took for this race, if any (taken once). `side` is the asking
        direction's source side; the times are its own edit's and, if known, the target's edit's: a kept
        decision about other edits of the same row and field (an earlier race) does not match."""
        with self._cond:
            return self._take(race, side, incoming_time, target_time)

    def share(self, race: Race, side: str, incoming_time: datetime | None, target_time: datetime | None,
              decision: Decision) -> Decision:
        """Keep `decision` for the peer direction, unless the peer decided this race meanwhile: then its
        decision, which both must follow (checked and kept under one lock: one of them is first)."""
        with self._cond:
            peer = self._take(race, side, incoming_time, target_time)
            if peer is not None:
                return peer
            k = (race, side)
            self._kept[k] = _Kept(decision, incoming_time, target_time, time.monotonic() + self.decision_seconds)
            self._kept.move_to_end(k)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
            return decision

    def _take(self, race: Race, side: str, incoming_time: datetime | None,
              target_time: datetime | None) -> Decision | None:
        now = time.monotonic()
        while self._kept:  # forget the expired (oldest first: they were kept in order)
            first = next(iter(self._kept.values()))
            if first.until > now:
                break
            self._kept.popitem(last=False)
        for by, _ in race.keys:
            kept = self._kept.get((race, by)) if by != side else None
            # the peer's own edit is our target's edit, and our edit is the target the peer saw
            if kept is None or not _same_time(kept.incoming_time, target_time) \
                    or not _same_time(kept.target_time, incoming_time):
                continue
            del self._kept[(race, by)]
            return kept.decision
        return None

    def use_keys(self, side: str, keys: Mapping[tuple[str, TableRef], tuple[str, ...]]) -> None:
        """A direction (re)starts with these two-way tables' key columns, before its reader (of `side`) runs:
        `saw`'s memo of the table it met last is dropped with them (a reload that changed a table's key
        would otherwise go on keying that table's changes by the old columns)."""
        self.keys.update(keys)
        self._last.pop(side, None)

    def watch_departures(self, watched: Mapping[tuple[str, TableRef], Iterable[tuple[str, tuple[str, ...]]]]) -> None:
        """The child tables of two-way folds, by (side, table): each (the column naming the parent, the slice's
        columns). Their rows that leave a parent are remembered for `departed` (a change of the parent's
        column on the other side, whose child row is gone here: when did it go?)."""
        with self._lock:
            for k, v in watched.items():
                self._watched[k] = frozenset(v)

    def departed(self, side: str, table: TableRef, by: str, parent: Any, slice_: Sequence[tuple[str, Any]],
                 timeout: float = COMMIT_TIME_WAIT_SECONDS) -> tuple[tuple[Any, ...], datetime, bool] | None:
        """The key, commit time and whether it was deleted (not moved) of the latest row of `table` (of the slice `slice_`) that left `parent` on
        `side` (deleted, moved, out of the slice), or None when none was read within `timeout` seconds."""
        k = (side, table, by, key_form((parent,)), tuple(slice_))
        return self._wait(side, timeout, lambda: self._departed.get(k))

    def _departures(self, side: str, when: datetime, ch: RowChange, key: tuple[Any, ...]) -> None:
        """A change of a watched child table (`watch_departures`): the parent its old row belonged to, when it
        leaves it. Called under the lock, while indexing."""
        watched = self._watched.get((side, ch.table))
        before = ch.before
        if watched is None or before is None or ch.op is Op.INSERT:
            return
        after = ch.after
        for by, cols in watched:
            if by not in before or before[by] is None or any(c not in before for c in cols):
                continue
            if after is not None and all(_plain(before[c], after.get(c, before[c])) for c in (by, *cols)):
                continue  # still this parent's row of the slice
            k = (side, ch.table, by, key_form((before[by],)), tuple((c, before[c]) for c in cols))
            self._departed[k] = (key, when, after is None)
            self._departed.move_to_end(k)
            while len(self._departed) > self.size:
                self._departed.popitem(last=False)

    def reader_waited(self, side: str, told: Callable[[bool], None] | None) -> None:
        """A direction's session (re)starts its reader of `side`: `told(True)` while a `wait_for` waits for it."""
        with self._lock:
            if told is None:
                self._readers.pop(side, None)
            else:
                self._readers[side] = told

    def saw(self, side: str, txn: Transaction) -> None:
        """A reader read `txn` (called before it is handed to the applier). It runs on the reader thread
        for every transaction of a two-way table, and its result is rarely asked for (a conflict): so it
        only queues the changes of two-way tables, indexed when a lookup needs them (`_catch_up`). The
        usual case, a single-row transaction, is kept short: the key columns of the table met last (one
        reader per side: `_last` is only touched by that side's thread) with the one-element tuple queued
        for it, the transaction's own tuple of changes, no list, no call to `_forget` while the oldest
        queued change is a single-row transaction too, no notify when nobody waits."""
        if txn.echo or txn.commit_time is None:
            return
        changes = txn.changes
        if len(changes) != 1:
            if changes:
                self._saw_many(side, txn.commit_time, changes)
            return
        ch = changes[0]
        table = ch.table
        last = self._last.get(side)
        # the binlog reader makes a new TableRef per event: compared by its two strings, not by the
        # dataclass's __eq__/__hash__ (Python calls)
        if last is not None and (table is last[0] or (table.name == last[0].name
                                                      and table.schema == last[0].schema)):
            one = last[2]
        else:
            cols = self.keys.get((side, table))
            one = None if cols is None else (cols,)
            self._last[side] = (table, cols, one)
        if one is None:
            return
        # what the queued row dicts keep alive, estimated like `_slim` (which digests long values; a queued
        # row still holds them, so they count their whole length); inline: a function called twice per
        # change was a third of saw
        size = QUEUED_BYTES
        # (`type(v)` is a specialised call in CPython 3.11; `v.__class__`, a descriptor looked up per value,
        # made this loop ~20% slower)
        row = ch.after
        if row is not None:
            size += COLUMN_BYTES * len(row)
            for v in row.values():
                t = type(v)
                if t is str or t is bytes:
                    size += len(v)
        row = ch.before
        if row is not None:
            size += COLUMN_BYTES * len(row)
            for v in row.values():
                t = type(v)
                if t is str or t is bytes:
                    size += len(v)
        with self._lock:  # the Condition's own `with` is two Python calls
            queue = self._queue
            queue.append((side, txn.commit_time, changes, one, size))
            self._queued += 1
            self._queued_bytes += size
            if len(self._index) + self._queued > self.size \
                    or self._index_bytes + self._queued_bytes > self.max_bytes:
                if self._index:
                    self._forget()  # the index's rows go first
                else:
                    # a full clock in a burst (a catch-up fills it): every saw forgets the oldest queued
                    # single-row transaction, here, as `_forget` would, without calling it
                    while queue and (self._queued > self.size or self._queued_bytes > self.max_bytes):
                        if len(queue[0][2]) != 1:
                            self._forget()  # a larger transaction: only as many of its changes as needed
                            break
                        self._queued_bytes -= queue.popleft()[4]
                        self._queued -= 1
            if self._waiting:
                self._cond.notify_all()

    def _saw_many(self, side: str, when: datetime, changes: Sequence[RowChange]) -> None:
        """`saw` for a transaction of several changes: only those of two-way tables are queued."""
        last = self._last.get(side)
        last_table, last_cols = (last[0], last[1]) if last is not None else (None, None)
        held: list[RowChange] | None = None  # only when some changes are not of a two-way table
        cols_of: list[tuple[str, ...]] = []
        size = 0
        for ch in changes:
            table = ch.table
            if table is last_table or (last_table is not None and table.name == last_table.name
                                       and table.schema == last_table.schema):
                cols = last_cols
            else:
                cols = self.keys.get((side, table))
                last_table, last_cols = table, cols
            if cols is None:
                if held is None:
                    held = list(changes[:len(cols_of)])  # all changes before this one were kept
                continue
            if held is not None:
                held.append(ch)
            cols_of.append(cols)
            size += QUEUED_BYTES
            # as saw's estimate: `type(v)`, not `v.__class__` (a descriptor look-up per value), and no tuple
            # of the two images per change
            row = ch.after
            if row is not None:
                size += COLUMN_BYTES * len(row)
                for v in row.values():
                    t = type(v)
                    if t is str or t is bytes:
                        size += len(v)
            row = ch.before
            if row is not None:
                size += COLUMN_BYTES * len(row)
                for v in row.values():
                    t = type(v)
                    if t is str or t is bytes:
                        size += len(v)
        if last_table is not None and (last is None or last_table is not last[0]):
            self._last[side] = (last_table, last_cols, None if last_cols is None else (last_cols,))
        if not cols_of:
            return
        with self._lock:
            self._queue.append((side, when, changes if held is None else held, tuple(cols_of), size))
            self._queued += len(cols_of)
            self._queued_bytes += size
            if len(self._index) + self._queued > self.size \
                    or self._index_bytes + self._queued_bytes > self.max_bytes:
                self._forget()
            if self._waiting:
                self._cond.notify_all()

    def _forget(self) -> None:
        """Back within the bound over the index and the queue: the oldest first, so the index's least
        recently edited rows before any queued change, then the oldest queued changes (of a large
        transaction, only as many as needed, its bytes counted pro rata). Called under the lock."""
        index = self._index
        while index and (len(index) + self._queued > self.size
                         or self._index_bytes + self._queued_bytes > self.max_bytes):
            self._index_bytes -= index.popitem(last=False)[1][3]
        queue = self._queue
        while queue and (self._queued > self.size or self._queued_bytes > self.max_bytes):
            side, when, changes, cols_of, size = queue[0]
            n = len(changes)
            if n == 1:  # the usual case: a single-row transaction
                queue.popleft()
                self._queued -= 1
                self._queued_bytes -= size
                continue
            excess_bytes = self._queued_bytes - self.max_bytes
            drop = max(self._queued - self.size, -(-excess_bytes * n // size) if excess_bytes > 0 else 0)
            if drop >= n:
                queue.popleft()
                self._queued -= n
                self._queued_bytes -= size
                continue
            kept = size * (n - drop) // n
            queue[0] = (side, when, changes[drop:], cols_of[drop:], kept)
            self._queued -= drop
            self._queued_bytes -= size - kept

    def _catch_up(self) -> None:
        """Index the queued transactions, in the order they were read. Called under the lock."""
        queue = self._queue
        while queue:
            side, when, changes, cols_of, size = queue.popleft()
            self._queued -= len(changes)
            self._queued_bytes -= size
            self._index_txn(side, when, changes, cols_of)

    def _index_txn(self, side: str, when: datetime, changes: Sequence[RowChange],
                   cols_of: tuple[tuple[str, ...], ...]) -> None:
        """One transaction into the index: what `saw` did as the transactions came, before it was lazy."""
        entries: list[tuple[tuple[str, TableRef, tuple[Any, ...]], _Entry, Mapping[str, Any] | None,
                            Mapping[str, Any] | None]] = []
        for ch, cols in zip(changes, cols_of):
            table = ch.table
            deleted = ch.op is Op.DELETE
            row = ch.before if deleted else ch.after
            if row is None:
                continue
            try:
                if len(cols) == 1:
                    v = row[cols[0]]
                    key = (v,) if v.__class__ is int or v.__class__ is str else key_form((v,))
                else:
                    key = key_form([row[c] for c in cols])
            except KeyError:
                continue
            if self._watched and ch.op is not Op.INSERT:
                self._departures(side, when, ch, key)
            if deleted:
                entries.append(((side, table, key), (when, (), (), ENTRY_BYTES, None), None, None))
                continue
            values, size = _slim(row)
            names = tuple(row)
            shared = self._names.get(names)
            if shared is None:
                if len(self._names) >= NAMES:
                    self._names.clear()
                shared = self._names[names] = names
            entries.append(((side, table, key), (when, shared, values, size, None),
                            ch.before if ch.op is Op.UPDATE else None, row))
        if not entries:
            return
        rows = self._index
        for k, v, before, after in entries:
            old = rows.get(k)
            if old is not None:
                self._index_bytes -= old[3]
                if before is not None and after is not None:
                    older = _older(old, before, after)
                    if older is not None:
                        v = (v[0], v[1], v[2], v[3] + OLDER_BYTES * len(older), older)
            rows[k] = v
            rows.move_to_end(k)
            self._index_bytes += v[3]
        while rows and (len(rows) > self.size or self._index_bytes > self.max_bytes):
            self._index_bytes -= rows.popitem(last=False)[1][3]

    def wait_for(self, side: str, table: TableRef, key: Iterable[Any], column: str, value: Any,
                 equal: Callable[[Any, Any], bool], timeout: float = COMMIT_TIME_WAIT_SECONDS,
                 deleted: bool = False) -> datetime | None:
        """The commit time of the edit on `side` that left `column` of this row at `value` (`deleted`: that
        deleted the row), or None when it was not read within `timeout` seconds. Indexes what was queued
        first (and again after each wake-up: what the other reader queued meanwhile)."""
        k = (side, table, key_form(key))

        def made() -> datetime | None:
            found = self._index.get(k)
            if found is not None and (not found[1] if deleted else column in found[1] and _same(
                    found[2][found[1].index(column)], value, equal)):
                # an update that left this column as it was did not make its value: the earlier edit did
                older = found[4]
                return older.get(column, found[0]) if older and not deleted else found[0]
            return None
        return self._wait(side, timeout, made)

    def _wait(self, side: str, timeout: float, probe: Callable[[], _T | None]) -> _T | None:
        """What `probe` finds (under the lock) once `side`'s reader has indexed it, or None when nothing was found
        within `timeout` seconds. Indexes what was queued first, and again after each wake-up (what the other
        reader queued meanwhile); while waiting, that reader is told not to wait for its own applier (whose turn
        may depend on us)."""
        deadline = time.monotonic() + timeout
        told: Callable[[bool], None] | None = None
        with self._cond:
            try:
                while True:
                    self._catch_up()
                    found = probe()
                    if found is not None:
                        return found
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    if told is None:
                        told = self._readers.get(side)
                        if told is not None:
                            told(True)
                    self._waiting += 1
                    try:
                        self._cond.wait(left)
                    finally:
                        self._waiting -= 1
            finally:
                if told is not None:
                    told(False)
