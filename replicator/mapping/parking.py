"""Parked changes that never leave (docs/mappings.md, "Parked rows that never leave").

A child whose parent never gets a counterpart (the lines of a quote that is never accepted) waits in
`<state_schema>.parked` forever. Two things keep that visible and bounded: the age of the oldest
parked change (`replicator_parked_oldest_age_seconds`, `replicator status`, an alert), and a retention
per mapping (`parked: {drop_after_days: N}`) that drops older changes inside the applier's transaction,
counts them (`replicator_parked_dropped_total`) and logs each with its mapping and key.

Times are the target database's: `parked_at` is its clock, and ages are computed by it, so a skewed
host clock changes nothing.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from replicator import metrics
from replicator.appliers.base import Applier
from replicator.codec import loads_change
from replicator.changes import Op

log = logging.getLogger(__name__)

SWEEP_SECONDS = 600.0  # how often a running stream drops expired parked changes
# how often a running stream looks again at what its parked changes wait for: a pair the *other* direction
# made meanwhile (a product the CRM created and linked by natural key in the ERP) wakes no change of this
# direction, so without this a line waiting for that product stayed parked until the next start
RETRY_SECONDS = 60.0

# stream -> time.monotonic() of the oldest parked change's arrival, None when nothing is parked; the gauge
# reads it when scraped, so the age grows while the stream is idle
_oldest: dict[str, float | None] = {}
_lock = threading.Lock()


def _age_sql(kind: str, parked: str) -> str:
    if kind == "postgresql":
        return f"SELECT EXTRACT(EPOCH FROM now() - MIN(parked_at)) FROM {parked} WHERE stream = %s"
    return f"SELECT TIMESTAMPDIFF(MICROSECOND, MIN(parked_at), CURRENT_TIMESTAMP(6)) / 1000000 FROM {parked} WHERE stream = %s"


def oldest_age(applier: Applier, parked: str, stream: str) -> float | None:
    """Seconds since the oldest change of `stream` was parked, by the target's clock; None when none is."""
    rows = applier.query(_age_sql(applier.kind, parked), [stream])
    return None if not rows or rows[0][0] is None else max(0.0, float(rows[0][0]))


def refresh(applier: Applier, parked: str, stream: str) -> float | None:
    """Read the oldest parked change's age and let the gauge follow it from now on."""
    age = oldest_age(applier, parked, stream)
    with _lock:
        _oldest[stream] = None if age is None else time.monotonic() - age
    _register(stream)
    return age


def _age(stream: str) -> float:
    with _lock:
        since = _oldest.get(stream)
    return 0.0 if since is None else time.monotonic() - since


def parked_now(stream: str) -> None:
    """A change was just parked: the oldest is at least this old (cheaper than asking the database)."""
    with _lock:
        if _oldest.get(stream) is None:
            _oldest[stream] = time.monotonic()
    _register(stream)


_registered: set[str] = set()


def _register(stream: str) -> None:
    if stream not in _registered:
        _registered.add(stream)
        metrics.parked_oldest_age.labels(stream).set_function(lambda: _age(stream))


def drop_expired(applier: Applier, parked: str, change_col: str, stream: str, mapping: str, days: float,
                 source_key: tuple[str, ...]) -> int:
    """Delete `mapping`'s changes of `stream` parked more than `days` ago; log each, count them."""
    seconds = days * 86400.0
    if applier.kind == "postgresql":
        cond = "parked_at < now() - make_interval(secs => %s)"
    else:
        cond = "parked_at < CURRENT_TIMESTAMP(6) - INTERVAL %s SECOND"
    rows = applier.query(f"SELECT id, waiting_mapping, waiting_key, {change_col} FROM {parked} "
                         f"WHERE stream = %s AND mapping = %s AND {cond} ORDER BY id", [stream, mapping, seconds])
    for row_id, waiting, waiting_key, text in rows:
        applier.execute(f"DELETE FROM {parked} WHERE id = %s", [row_id])
        change = loads_change(text)
        image: Any = change.before if change.op is Op.DELETE else change.after
        key = tuple(image.get(c) for c in source_key) if image else None
        log.warning("%s: dropped a parked %s change of %s row %s: it waited more than %g day(s) for %s %s "
                    "(parked: drop_after_days)", stream, change.op.value, mapping, key, days, waiting, waiting_key)
    if rows:
        metrics.parked_dropped.labels(stream, mapping).inc(len(rows))
    return len(rows)
