"""Parked changes that never leave (docs/mappings.md, "Parked rows that never leave").

A child whose parent never gets a counterpart (the lines of a quote that is never accepted) waits in
`<state_schema>.parked` forever. Two things keep that visible and bounded: the age of the oldest
parked change (`replicator_parked_oldest_age_seconds`, `replicator status`, an alert), and a retention
per mapping (`parked: {drop_after_days: N}`) that drops older changes inside the applier's transaction,
counts them (`replicator_parked_dropped_total`) and logs each with its mapping and key.

A record renamed on its side (`replicator crosswalk rename`) takes the changes parked for it under its old key
along (`move_waiting`): their reference to it is rewritten to the new key, in the same transaction as the pair
when both live in one database.

Times are the target database's: `parked_at` is its clock, and ages are computed by it, so a skewed
host clock changes nothing.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dataclasses import replace

from replicator import metrics
from replicator.appliers.base import Applier
from replicator.codec import dumps_change, dumps_key, loads_change
from replicator.changes import Op, RowChange, zero_dated
from replicator.errors import ReplicatorError
from replicator.mapping.model import MappingSet

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


def move_waiting(applier: Applier, parked: str, change_col: str, stream: str, mset: MappingSet, source_side: str,
                 mapping: str, old: Any, new: Any) -> int:
    """Inside `applier`'s open transaction: the changes of `stream` parked until `mapping`'s record `old` (its
    source-side key, one value) had a counterpart now wait for `new`, the key its application renamed it to. A
    parked change is replayed from its own row, which names the parent by the old key: the column that does is
    rewritten too (`renamed_reference`), else the replay would park it again under the old key, for good. Returns
    how many moved."""
    rows = applier.query(f"SELECT id, mapping, {change_col} FROM {parked} WHERE stream = %s AND waiting_mapping = %s "
                         f"AND waiting_key = %s ORDER BY id", [stream, mapping, dumps_key((old,))])
    for row_id, parked_by, text in rows:
        change = renamed_reference(mset, source_side, str(parked_by), loads_change(text), mapping, old, new)
        applier.execute(f"UPDATE {parked} SET waiting_key = %s, {change_col} = %s WHERE id = %s",
                        [dumps_key((new,)), dumps_change(change), row_id])
    return len(rows)


def renamed_reference(mset: MappingSet, side: str, parked_by: str, change: RowChange, mapping: str, old: Any,
                      new: Any) -> RowChange:
    """`change` (parked by mapping `parked_by`, read from `side`) with each column that names `mapping`'s record
    `old` -- a `references:` field, a fold's parent column, whatever routing turns into a reference to it --
    holding `new` instead: a column holding `old` is rewritten when routing the change then refers to `old` less
    often. Raises ReplicatorError when no column does (the rename is then rolled back: a parked change left naming
    the old key would wait for good)."""
    from replicator.mapping.router import LinkedChange, Ref, route

    def refs(c: RowChange) -> int:
        n = 0
        for out in route(mset, side, c, only=parked_by):
            if isinstance(out, LinkedChange):
                for v in [*out.values.values(), *(out.expect or {}).values()]:
                    n += isinstance(v, Ref) and v.mapping == mapping and type(v.value) is type(old) and v.value == old
        return n

    left = refs(change)
    for image in ("before", "after"):
        for column in list(getattr(change, image) or {}):
            row = getattr(change, image)
            value = row[column]
            if left == 0 or type(value) is not type(old) or value != old:
                continue
            moved = zero_dated({**row, column: new}, getattr(row, "zero_dates", ()), getattr(row, "zero_texts", None))
            tried = replace(change, before=moved) if image == "before" else replace(change, after=moved)
            now = refs(tried)
            if now < left:
                change, left = tried, now
    if left:
        raise ReplicatorError(f"a change of mapping {parked_by} parked until {mapping} {dumps_key((old,))} had a "
                              f"counterpart names it in no column this command can rewrite; nothing moved")
    return change
