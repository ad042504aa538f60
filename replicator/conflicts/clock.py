"""When the other side's edit was committed: what `latest` by commit time needs from the other direction.

A direction that finds a conflict knows the commit time of its incoming change, not that of the edit
it found in the target: that edit is read by the *other* direction's reader, from the target's own
log. Both directions run in one process (stream.pipeline.Daemon), so each reader tells this shared
record, before handing a transaction on, the commit time and new row of each change of a two-way
mapping's table: the latest per (side, table, key), bounded (oldest forgotten first).

`wait_for` finds the edit that produced the value the target row holds now: the recorded row of that
key whose value of the conflicting column equals the target's current value. If the other reader has
not read that far yet, it waits (bounded, `COMMIT_TIME_WAIT_SECONDS`): the edit is committed already (we
read it), so its reader gets to it soon. Then both directions compare the same two commit times and
decide alike; if it cannot be known in time (a reader far behind), the caller falls back to the first
connection and says so in the conflict's detail.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from replicator import compare
from replicator.changes import Op, TableRef, Transaction

COMMIT_TIME_WAIT_SECONDS = 5.0
# rows remembered, over all tables: 5 s of both directions at 5k rows/s each, far more than a reader lags
# behind the other when both keep up. 200,000 rows of ~1 KB each took ~190 MB when a large source
# transaction filled them all; 50,000 (with long values kept as digests, below) cap the clock near
# 50 MB. An edit that fell out is decided by the first connection, and the conflict's detail says so.
SIZE = 50_000
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


def _slim(row: Mapping[str, Any]) -> Mapping[str, Any]:
    for v in row.values():
        if (v.__class__ is str or v.__class__ is bytes) and len(v) > LONG:
            return {c: _Digest(v) if (v.__class__ is str or v.__class__ is bytes) and len(v) > LONG else v
                    for c, v in row.items()}
    return row  # as decoded (never changed afterwards): kept, not copied


def key_form(key: Iterable[Any]) -> tuple[Any, ...]:
    """A key as both directions spell it: the reader's raw value and the applier's mapped value agree."""
    return tuple(v if v.__class__ is int or v.__class__ is str else compare.canonical(compare.OTHER, v) for v in key)


def _same(recorded: Any, value: Any, equal: Callable[[Any, Any], bool]) -> bool:
    return recorded.matches(value) if isinstance(recorded, _Digest) else equal(recorded, value)


class CommitClock:
    def __init__(self, keys: dict[tuple[str, TableRef], tuple[str, ...]], size: int = SIZE):
        self.keys = keys  # (side, table) -> key columns, for the tables of two-way mappings
        self.size = size
        self._rows: OrderedDict[tuple[str, TableRef, tuple[Any, ...]], tuple[datetime, Mapping[str, Any]]] = OrderedDict()
        self._cond = threading.Condition()

    def saw(self, side: str, txn: Transaction) -> None:
        """A reader read `txn` (called before it is handed to the applier)."""
        if txn.echo or txn.commit_time is None or not txn.changes:
            return
        entries = []
        for ch in txn.changes:
            cols = self.keys.get((side, ch.table))
            row = ch.after if ch.op is not Op.DELETE else ch.before
            if cols is None or row is None:
                continue
            try:
                key = key_form(row[c] for c in cols)
            except KeyError:
                continue
            entries.append(((side, ch.table, key), (txn.commit_time, _slim(row) if ch.op is not Op.DELETE else {})))
        if not entries:
            return
        with self._cond:
            for k, v in entries:
                self._rows[k] = v
                self._rows.move_to_end(k)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
            self._cond.notify_all()

    def wait_for(self, side: str, table: TableRef, key: Iterable[Any], column: str, value: Any,
                 equal: Callable[[Any, Any], bool], timeout: float = COMMIT_TIME_WAIT_SECONDS,
                 deleted: bool = False) -> datetime | None:
        """The commit time of the edit on `side` that left `column` of this row at `value` (`deleted`: that
        deleted the row), or None when it was not read within `timeout` seconds."""
        k = (side, table, key_form(key))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._rows.get(k)
                if found is not None and (not found[1] if deleted else column in found[1] and _same(
                        found[1][column], value, equal)):
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
