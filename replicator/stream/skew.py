"""How far a source server's clock is from ours: replicator_lag_seconds corrected for clock skew.

The lag gauge compares the source's commit times (the source server's clock) with the daemon host's
clock: a source clock 30 s ahead hid 30 s of lag (the gauge read 0), one behind added its skew. So each
direction samples its source's clock -- `now()` on a short read-only session -- at the start of every
session and then at most every SAMPLE_SECONDS while it is idle (never while a batch is open: the query
must not delay applying), and the gauge subtracts the estimate from the commit times it compares.

The estimate is the server's time minus the midpoint of our clock around the query, on a session
already open (connecting inside the measured interval biased it by half the connect time: +0.4 s of lag
seen under load), the best of PROBES queries by round trip: exact to within half that round trip
(milliseconds on a LAN). Below DEADBAND the clocks count as equal (NTP keeps them within milliseconds;
under load the estimate's own noise is larger than that), so a synced source's lag is not moved by
noise. A sample that fails keeps the last estimate (a source that cannot be reached stops the reader
anyway). The estimate is shown as replicator_source_clock_skew_seconds{direction};
`replicator_last_applied_timestamp_seconds` stays the source's time as reported.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from replicator import metrics
from replicator.config import Connection

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 60.0
PROBES = 3  # queries per sample; the one with the shortest round trip is kept
DEADBAND = 0.5  # seconds: a smaller estimate is applied as 0
SQL = {"postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8",
       "mariadb": "SELECT UNIX_TIMESTAMP(NOW(6))"}


class ClockSkew:
    """One direction's estimate of its source's clock minus ours, in seconds (0 until sampled).
    `query(sql)` runs one query on an open session and returns the server's time (tests pass their own)."""

    def __init__(self, direction: str, conn: Connection, query: Callable[[str], Any] | None = None,
                 clock: Callable[[], float] = time.time, every: float = SAMPLE_SECONDS):
        self.conn = conn
        self.seconds = 0.0  # the estimate as applied (0 within DEADBAND)
        self._query = query
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
            estimate = self._query_with(self._query) if self._query is not None else self._on_session()
        except Exception as exc:  # kept: the reader reports an unreachable source
            log.debug("clock of %s not sampled: %s", self.conn.name, exc)
            return self.seconds
        self._gauge.set(estimate)
        self.seconds = estimate if abs(estimate) >= DEADBAND else 0.0
        return self.seconds

    def _query_with(self, query: Callable[[str], Any]) -> float:
        """The best of PROBES: server time minus our midpoint, from the query with the shortest round trip."""
        best: tuple[float, float] | None = None
        for _ in range(PROBES):
            before = self._clock()
            server = float(query(SQL[self.conn.kind]))
            after = self._clock()
            if best is None or after - before < best[0]:
                best = (after - before, server - (before + after) / 2)
        assert best is not None
        return best[1]

    def _on_session(self) -> float:
        from replicator.appliers import make_applier  # (a session of its own, like appliers.lookup)

        db = make_applier(self.conn, "clock", "")
        db.connect()
        try:
            return self._query_with(lambda sql: db.query(sql, [])[0][0])
        finally:
            db.rollback()
            db.close()
