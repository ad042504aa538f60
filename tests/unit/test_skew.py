"""The lag gauge under a skewed source clock (stream/skew.py, stream/lag.py), with fake clocks."""
from __future__ import annotations

from datetime import datetime, timezone

from replicator import metrics
from replicator.config import Account, Connection, Secret
from replicator.stream.lag import LagGauge
from replicator.stream.skew import ClockSkew

ACC = Account("u", Secret(""))
ERP = Connection("erp", "mariadb", "h", 3306, "erpdb", ACC, ACC)
NOW = 1_765_000_000.0  # our clock


def test_the_estimate_is_the_servers_time_less_the_midpoint_of_ours_by_the_fastest_probe() -> None:
    # three probes: round trips of 0.8 s, 0.2 s and 0.6 s; the server answers 30 s ahead of each midpoint,
    # give or take what a slow round trip hides (the 0.2 s one is the one to trust)
    ticks = iter([NOW, NOW + 0.8, NOW + 1.0, NOW + 1.2, NOW + 2.0, NOW + 2.6])
    answers = iter([NOW + 30.0, NOW + 31.1, NOW + 32.0])
    skew = ClockSkew("erp_to_crm", ERP, query=lambda sql: next(answers), clock=lambda: next(ticks))
    assert abs(skew.sample() - 30.0) < 1e-6
    assert abs(metrics.source_clock_skew.labels("erp_to_crm")._value.get() - 30.0) < 1e-6


def test_a_skew_within_the_deadband_is_applied_as_none() -> None:
    skew = ClockSkew("crm_to_erp", ERP, query=lambda sql: NOW + 0.3, clock=lambda: NOW)
    assert skew.sample() == 0.0  # NTP-synced clocks: the estimate's noise must not move the lag
    assert abs(metrics.source_clock_skew.labels("crm_to_erp")._value.get() - 0.3) < 1e-6  # shown as estimated


def test_a_failed_sample_keeps_the_last_estimate() -> None:
    answers = iter([NOW + 5.0] * 3)

    def query(sql: str) -> float:
        assert sql == "SELECT UNIX_TIMESTAMP(NOW(6))"
        return next(answers)  # the second sample fails (StopIteration: an exception like a lost connection)
    skew = ClockSkew("erp_to_crm", ERP, query=query, clock=lambda: NOW)
    assert skew.sample() == 5.0 and skew.sample() == 5.0


def test_a_source_clock_ahead_no_longer_hides_the_lag() -> None:
    """The erp's clock 30 s ahead; a change committed 10 s ago (by our clock) is applied now."""
    committed = datetime.fromtimestamp(NOW - 10 + 30, timezone.utc)  # as the erp's clock stamped it
    plain = LagGauge("t1", 0.0, clock=lambda: NOW)
    plain.applied(committed, committed, NOW)
    assert metrics.lag_seconds.labels("t1")._value.get() == 0.0  # before: hidden
    gauge = LagGauge("t2", 0.0, clock=lambda: NOW)
    gauge.skew = 30.0
    gauge.applied(committed, committed, NOW)
    assert abs(metrics.lag_seconds.labels("t2")._value.get() - 10.0) < 1e-6
    gauge.stalled()  # counts from the last applied commit, in our time
    assert abs(metrics.lag_seconds.labels("t2")._value.get() - 10.0) < 1e-6
