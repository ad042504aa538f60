"""stream/lag.py: the lag gauge within the source's time resolution, zero when idle, growing when stalled."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from replicator import metrics
from replicator.stream.lag import BINLOG_TIME_RESOLUTION, LagGauge


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _lag(direction: str) -> float:
    return metrics.REGISTRY.get_sample_value("replicator_lag_seconds", {"direction": direction})


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def test_binlog_whole_seconds_do_not_read_as_lag_when_keeping_up() -> None:
    """Committed at 100.93 (the binlog says 100), taken at 100.935, applied at 100.95: 20 ms, not 0.95 s."""
    clock = Clock(100.95)
    g = LagGauge("t_keep_up", BINLOG_TIME_RESOLUTION, clock)
    g.applied(_at(100.0), _at(100.0), 100.935)
    assert _lag("t_keep_up") == pytest.approx(0.015)
    assert metrics.REGISTRY.get_sample_value("replicator_last_applied_timestamp_seconds",
                                             {"direction": "t_keep_up"}) == 100.0


@pytest.mark.parametrize("true_commit", [100.0, 100.4, 100.999])
def test_binlog_lag_behind_is_within_the_resolution(true_commit: float) -> None:
    """Taken long after the commit (a backlog): the estimate is never more than 1 s off, and never high."""
    clock = Clock(130.0)
    g = LagGauge("t_behind", BINLOG_TIME_RESOLUTION, clock)
    g.applied(_at(int(true_commit)), _at(int(true_commit)), 129.5)
    true_lag = 130.0 - true_commit
    assert true_lag - 1.0 <= _lag("t_behind") <= true_lag


def test_postgresql_microseconds_are_used_as_they_are() -> None:
    clock = Clock(200.5)
    g = LagGauge("t_pg", 0.0, clock)
    g.applied(_at(200.123456), _at(200.123456), 200.4)
    assert _lag("t_pg") == pytest.approx(200.5 - 200.123456)


def test_idle_reads_zero_and_echoes_count_as_handled() -> None:
    clock = Clock(300.0)
    g = LagGauge("t_idle", BINLOG_TIME_RESOLUTION, clock)
    g.applied(_at(290.0), _at(290.0), 299.0)
    assert _lag("t_idle") == pytest.approx(9.0)
    clock.now = 310.0
    g.handled(_at(309.0), taken_at=309.99)  # an echo of our own write: handled, not stale
    assert _lag("t_idle") == pytest.approx(0.01)
    assert metrics.REGISTRY.get_sample_value("replicator_last_applied_timestamp_seconds",
                                             {"direction": "t_idle"}) == 290.0
    clock.now = 400.0
    g.idle()
    assert _lag("t_idle") == 0.0


def test_stalled_grows_from_the_last_caught_up_moment() -> None:
    clock = Clock(500.0)
    g = LagGauge("t_stall", 0.0, clock)
    g.stalled()  # nothing known yet: no value invented
    assert _lag("t_stall") in (None, 0.0)
    g.idle()
    clock.now = 507.5
    g.stalled()
    assert _lag("t_stall") == pytest.approx(7.5)
    g.applied(_at(507.0), _at(507.0), 508.0)
    clock.now = 510.0
    g.stalled()
    assert _lag("t_stall") == pytest.approx(3.0)


def test_a_batch_reads_the_lag_of_its_first_transaction() -> None:
    """A batch of an old change and a fresh echo of our own write: the old change's wait is the lag."""
    clock = Clock(700.5)
    g = LagGauge("t_batch", BINLOG_TIME_RESOLUTION, clock)
    g.applied(_at(700.0), _at(698.0), 698.2)  # first: committed in [698, 698.2]; last: an echo at 700
    assert _lag("t_batch") == pytest.approx(700.5 - 698.2)
    assert metrics.REGISTRY.get_sample_value("replicator_last_applied_timestamp_seconds",
                                             {"direction": "t_batch"}) == 700.0
    clock.now = 703.0
    g.stalled()  # everything up to the echo is in
    assert _lag("t_batch") == pytest.approx(3.0)


def test_a_keepalive_after_an_echo_reads_caught_up() -> None:
    """A source whose keepalives come more often than the applier's idle timeout never lets `idle` run:
    the keepalive itself says nothing waits up to its position, so the echo's reading does not stay."""
    clock = Clock(500.0)
    g = LagGauge("t_keepalive", BINLOG_TIME_RESOLUTION, clock)
    g.handled(_at(499.0), taken_at=499.7)  # an echo, read 0.3 s ago
    assert _lag("t_keepalive") == pytest.approx(0.3)
    clock.now = 501.0
    g.handled(None, taken_at=501.0)
    assert _lag("t_keepalive") == 0.0
    clock.now = 530.0
    g.stalled()  # and a stall counts from the keepalive, not from the echo
    assert _lag("t_keepalive") == pytest.approx(29.0)
