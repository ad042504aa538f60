"""replicator_lag_seconds: how long ago the oldest source change not yet in the target was committed.

Three things made the plain "now minus the last commit time" wrong:
- MariaDB binlog event times are whole seconds (the time truncated), so a change applied 10 ms after
  its commit read as up to a second late. The true commit lies in [t, t + 1 s) and, by causality,
  before the applier took it from the reader; the earlier of the two bounds is the estimate, so the
  gauge is exact to within the time spent in our own queue when we keep up, and never more than the
  resolution (1 s) too low when we are behind. PostgreSQL commit times are microseconds (resolution 0).
- Transactions that map to nothing (our own echoes under two-way traffic, unmapped tables) were never
  committed to the target, so the gauge kept the value of the last one that was: they count as
  handled when they are taken. Inside a batch it is the other way round: the batch's lag is that of
  its first transaction, not of the last (often a fresh echo).
- An idle source sends nothing to apply, so the gauge froze at its last value. When the reader has
  handed over nothing for a while and no target transaction is open, every change the source sent
  is in the target: the lag is 0. A silent (partitioned) source connection is detected by the
  reader's read timeout (three heartbeats), after which the direction retries and the gauge grows
  from the last moment it was known to be caught up (`stalled`), as it does during any back-off.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from replicator import metrics

BINLOG_TIME_RESOLUTION = 1.0  # seconds: binlog event headers hold whole seconds


class LagGauge:
    """One direction's lag gauge; called from its applier thread only."""

    def __init__(self, direction: str, resolution: float, clock: Callable[[], float] = time.time):
        self.resolution = resolution
        self._clock = clock
        self._lag = metrics.lag_seconds.labels(direction)
        self._last = metrics.last_applied_timestamp.labels(direction)
        self._caught_up_at: float | None = None  # wall time up to which every source change is applied
        self.skew = 0.0  # the source's clock minus ours (stream/skew.py): taken off its commit times

    def estimate(self, commit_time: datetime, taken_at: float) -> float:
        """The source commit time as a Unix time: the reported time made as late as its resolution
        allows, but never later than the moment we held the transaction."""
        reported = commit_time.timestamp() - self.skew
        return min(reported + self.resolution, max(reported, taken_at))

    def applied(self, last_commit_time: datetime | None, first_commit_time: datetime | None,
                first_taken_at: float) -> None:
        """A target transaction committed. Its lag is that of its first source transaction (taken from
        the reader at `first_taken_at`), the longest any of its changes waited: a batch that ends with a
        fresh echo of our own write must not hide an old change at its start."""
        if last_commit_time is not None:
            self._last.set(last_commit_time.timestamp())
        if first_commit_time is None:
            return
        self._lag.set(max(0.0, self._clock() - self.estimate(first_commit_time, first_taken_at)))
        # everything up to the batch's last transaction is in: the lag counts from there when stalled
        if last_commit_time is not None:
            self._caught_up_at = last_commit_time.timestamp() - self.skew

    def handled(self, commit_time: datetime | None, taken_at: float) -> None:
        """Everything up to a source transaction committed at `commit_time` is in the target or needs
        nothing there (an echo, an unmapped table). Without a commit time (a keepalive: nothing for us up
        to its position) it is caught up as of now, as when idle: a source that sends keepalives more
        often than the applier's idle timeout would otherwise freeze the gauge at its last echo's reading."""
        if commit_time is None:
            self.idle()
            return
        source_commit = self.estimate(commit_time, taken_at)
        self._caught_up_at = source_commit
        self._lag.set(max(0.0, self._clock() - source_commit))

    def idle(self) -> None:
        """Nothing waits to be applied and nothing arrived for a while: caught up as of now."""
        self._caught_up_at = self._clock()
        self._lag.set(0.0)

    def stalled(self) -> None:
        """Not applying (an error, a back-off, a reconnect): the lag grows from the last moment every
        change was known to be applied. Before the first commit nothing is known; the gauge stays."""
        if self._caught_up_at is not None:
            self._lag.set(max(0.0, self._clock() - self._caught_up_at))
