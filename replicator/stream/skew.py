"""How far a source server's clock is from ours: replicator_lag_seconds corrected for clock skew.

The lag gauge compares the source's commit times (the source server's clock) with the daemon host's
clock: a source clock 30 s ahead hid 30 s of lag (the gauge read 0), one behind added its skew. So each
direction samples its source's clock -- `now()` on a short read-only session -- at the start of every
session and then at most every SAMPLE_SECONDS while it is idle (never while a batch is open: the query
must not delay applying), and the gauge subtracts the estimate from the commit times it compares.

The estimate is the server's time minus the midpoint of our clock around the query: exact to within
half its round trip (milliseconds on a LAN). A sample that fails keeps the last estimate (a source that
cannot be reached stops the reader anyway). The estimate is shown as
replicator_source_clock_skew_seconds{direction}; `replicator_last_applied_timestamp_seconds` stays the
source's time as reported.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from replicator import metrics
from replicator.config import Connection

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 60.0
SQL = {"postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8",
       "mariadb": "SELECT UNIX_TIMESTAMP(NOW(6))"}


class ClockSkew:
    """One direction's estimate of its source's clock minus ours, in seconds (0 until sampled)."""

    def __init__(self, direction: str, conn: Connection, query: Callable[[str], Any] | None = None,
                 clock: Callable[[], float] = time.time, every: float = SAMPLE_SECONDS):
        self.conn = conn
        self.seconds = 0.0
        self._query = query or self._server_now
        self._clock = clock
        self._every = every
        self._next = 0.0  # time.monotonic() of the next sample
        self._gauge = metrics.source_clock_skew.labels(direction)

    def due(self) -> float:
        """Sample when one is due; the current estimate."""
        if time.monotonic() >= self._next:
            self.sample()
        return self.seconds

    def sample(self) -> float:
        self._next = time.monotonic() + self._every
        try:
            before = self._clock()
            server = float(self._query(SQL[self.conn.kind]))
            after = self._clock()
        except Exception as exc:  # kept: the reader reports an unreachable source
            log.debug("clock of %s not sampled: %s", self.conn.name, exc)
            return self.seconds
        self.seconds = server - (before + after) / 2
        self._gauge.set(self.seconds)
        return self.seconds

    def _server_now(self, sql: str) -> Any:
        from replicator.appliers import make_applier  # (a session of its own, like appliers.lookup)

        db = make_applier(self.conn, "clock", "")
        db.connect()
        try:
            rows = db.query(sql, [])
            return rows[0][0]
        finally:
            db.rollback()
            db.close()
