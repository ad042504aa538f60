"""The hand-off between a direction's reader thread and its applier thread.

Bounded by rows, not by items: a burst of single-row transactions can queue thousands of them
(so the applier gets large batches), while a few big chunks still cap memory. The applier takes
everything waiting in one call, so the per-item locking cost is paid once per batch, not once
per transaction.

The gate (`gate`, `lend`, `reclaim`, `peer_waits`): the reader and the applier share one GIL, so
the reader's decoding overlaps only the applier's waits on the target server, never its Python
work. Without the gate the reader filled the whole channel right after each `take_all`, taking
turns on the GIL with the applier's routing and encoding, and then sat on a full channel through
the applier's COPY, merge and commit round trips, while the GIL was free (docs/performance.md,
"fast10"). With it, past `low` rows the reader waits until the applier says it waits on the server
(`lend`, until `reclaim`); under `low` it always goes on, so the applier never runs dry because of
the gate, and an idle stream's single transaction is handed over at once. `peer_waits`: the other
direction's applier waits in the commit clock for this reader (conflicts/clock.py), so the gate
must not hold it. Only the timing changes: the items, their order and the bound are the same.
"""
from __future__ import annotations

import threading
from typing import Any


class Channel:
    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self._items: list[Any] = []
        self._rows = 0
        # `with self._lock`, not `with self._cond`: a Condition's __enter__/__exit__ are two Python calls
        # per put and per take, the lock's are C (the Condition waits on this same lock)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # threads waiting in take_all / in a full put: the other side notifies only when someone waits
        # (a notify_all per single-row transaction was a measurable share of the reader thread)
        self._takers = 0
        self._putters = 0
        # the gate: a put waits while `_rows >= _limit` (max_rows when ungated, lent or a peer waits)
        self._low: int | None = None
        self._lent = False
        self._peer = 0
        self._limit = max_rows

    def gate(self, low: int) -> None:
        """Hold the reader at `low` rows except while the applier waits on the server (`lend`)."""
        with self._lock:
            self._low = max(1, min(low, self.max_rows))
            self._set_limit()

    def lend(self) -> None:
        """The applier is about to wait on the server: the reader may fill the channel meanwhile."""
        if self._low is None or self._lent:
            return
        with self._lock:
            self._lent = True
            self._set_limit()

    def reclaim(self) -> None:
        """The applier is back from the server: the reader stops at `low` again (after the item it decodes)."""
        if self._lent:
            with self._lock:
                self._lent = False
                self._set_limit()

    def peer_waits(self, waiting: bool) -> None:
        """Another thread waits for this reader to get further (the commit clock's `wait_for`)."""
        with self._lock:
            self._peer += 1 if waiting else -1
            self._set_limit()

    def _set_limit(self) -> None:  # under the lock
        low = self._low
        self._limit = self.max_rows if low is None or self._lent or self._peer > 0 else low
        if self._putters:
            self._cond.notify_all()

    def put(self, item: Any, rows: int, stop: threading.Event) -> bool:
        """Append, waiting while the channel is full (or held at the gate). False when `stop` was set while waiting."""
        with self._lock:
            while self._rows >= self._limit and self._items:
                if stop.is_set():
                    return False
                self._putters += 1
                try:
                    self._cond.wait(0.5)
                finally:
                    self._putters -= 1
            self._items.append(item)
            self._rows += rows
            if self._takers:
                self._cond.notify_all()
        return True

    def put_final(self, item: Any) -> None:
        """Append without waiting (an error or the end of the stream must always get through)."""
        with self._lock:
            self._items.append(item)
            self._cond.notify_all()

    def take_all(self, timeout: float) -> list[Any]:
        """Everything waiting, in order; waits up to `timeout` seconds for the first item."""
        with self._lock:
            if not self._items and timeout > 0:
                self._takers += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._takers -= 1
            items, self._items = self._items, []
            self._rows = 0
            if self._putters:
                self._cond.notify_all()
        return items

    def empty(self) -> bool:
        with self._lock:
            return not self._items

    def rows(self) -> int:
        with self._lock:
            return self._rows
