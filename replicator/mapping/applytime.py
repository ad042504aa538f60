"""The apply time a `now: true` field writes (docs/mappings.md, "Times replicator stamps").

One instant per applied target transaction: every row of the transaction gets the same stamp, as a
database's own `now()` gives one value per transaction. Routing happens in the thread that applies
(the direction's apply thread, `dlq retry`, `verify --repair`), before and while its transaction is
open, so the instant is taken lazily by the first stamped row after the previous transaction ended,
and `next_transaction` (called by the owner of the transaction when it commits or rolls back)
starts the next one. Per thread: the two directions apply in their own threads at the same time.

The value is an aware datetime in UTC (docs/types.md: every timestamp travels as UTC), by the
daemon's clock; the appliers store it as UTC in a naive column and exactly in a zoned one.
"""
from __future__ import annotations

import threading
from datetime import datetime, timezone

_local = threading.local()


def now() -> datetime:
    """This thread's current transaction's apply time: taken at the first call after `next_transaction`."""
    at: datetime | None = getattr(_local, "at", None)
    if at is None:
        at = _local.at = datetime.now(timezone.utc)
    return at


def next_transaction() -> None:
    """The thread's transaction ended (committed or rolled back): the next stamp is a new instant."""
    _local.at = None
