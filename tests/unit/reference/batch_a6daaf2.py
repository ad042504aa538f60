# Batch's three steps per source transaction as of a6daaf2 (replicator/stream/batch.py), verbatim: the apply
# loop makes one `Batch.add_txn` call instead, and tests/unit/test_batch.py checks it against these.
# Do not edit; do not import from replicator code.
from __future__ import annotations

import time

from replicator.changes import Transaction
from replicator.stream.batch import Batch, Item


class StepBatch(Batch):
    """Batch with `add`, `end_of` and `full`: what `add_txn` does in one call."""

    def add(self, changes: list[Item]) -> None:
        """Part or all of a source transaction's changes; a full page goes to the server now."""
        self.pending.extend(changes)
        self.rows += len(changes)
        if len(self.pending) >= self._page:
            self._flush(self.pending)
            self.pending = []

    def end_of(self, txn: Transaction, taken_at: float) -> None:
        """After `add`: whether the batch now ends on a source transaction boundary."""
        self.mid_txn = not txn.final
        if txn.final:
            self.last = txn
            if self.oldest is None and txn.commit_time is not None:
                self.oldest = (txn.commit_time, taken_at)
            self.txns += 1 if txn.changes else 0

    def full(self, max_rows: int, max_ms: float) -> bool:
        return self.rows >= max_rows or time.monotonic() - self.started >= max_ms / 1000
