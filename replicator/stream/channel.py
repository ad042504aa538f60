"""The hand-off between a direction's reader thread and its applier thread.

Bounded by rows, not by items: a burst of single-row transactions can queue thousands of them
(so the applier gets large batches), while a few big chunks still cap memory. The applier takes
everything waiting in one call, so the per-item locking cost is paid once per batch, not once
per transaction.
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

    def put(self, item: Any, rows: int, stop: threading.Event) -> bool:
        """Append, waiting while the channel is full. False when `stop` was set while waiting."""
        with self._lock:
            while self._rows >= self.max_rows and self._items:
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
