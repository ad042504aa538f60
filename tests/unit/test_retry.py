"""stream/retry.py: which errors are retried at once, the back-off, its reset, and waits that end on stop."""
from __future__ import annotations

import threading
import time

import pytest

from replicator.errors import RetriableError
from replicator.stream import retry


class _PgError(Exception):
    def __init__(self, pgcode: str):
        super().__init__("ERROR")
        self.pgcode = pgcode


def _wrapped(driver_exc: Exception, text: str = "crm: lost") -> RetriableError:
    """How the appliers raise: `raise RetriableError(...) from None` inside `except driver error`."""
    try:
        try:
            raise driver_exc
        except Exception:
            raise RetriableError(text) from None
    except RetriableError as exc:
        return exc


@pytest.mark.parametrize("driver_exc, cause", [
    (_PgError("40P01"), retry.DEADLOCK),
    (_PgError("40001"), retry.SERIALIZATION),
    (_PgError("55P03"), retry.LOCK_TIMEOUT),
    (_PgError("08006"), retry.OTHER),
    (Exception(1213, "Deadlock found when trying to get lock"), retry.DEADLOCK),
    (Exception(1205, "Lock wait timeout exceeded"), retry.LOCK_TIMEOUT),
    (Exception(2013, "Lost connection to server during query"), retry.OTHER),
])
def test_cause_from_the_driver_error(driver_exc: Exception, cause: str) -> None:
    assert retry.cause_of(_wrapped(driver_exc)) == cause


def test_cause_from_the_text_when_the_driver_error_is_gone() -> None:
    assert retry.cause_of(RetriableError("erp: Deadlock found when trying to get lock")) == retry.DEADLOCK
    assert retry.cause_of(RetriableError("could not serialize access due to concurrent update")) \
        == retry.SERIALIZATION
    assert retry.cause_of(RetriableError("binlog stream ended")) == retry.OTHER
    assert set(retry.CAUSES) >= retry.CONFLICTS | {retry.OTHER}


def _backoff(stop: threading.Event | None = None) -> retry.Backoff:
    return retry.Backoff(retry.RetryPolicy(0.5, 30.0, immediate=3, jitter_seconds=0.05),
                         stop or threading.Event(), rand=lambda: 1.0)


def test_conflicts_are_retried_at_once_then_back_off() -> None:
    b = _backoff()
    assert [b.next_delay(retry.DEADLOCK) for _ in range(3)] == [0.05, 0.05, 0.05]
    # the fourth deadlock in a row without a commit between: back-off like an outage
    assert b.next_delay(retry.DEADLOCK) == pytest.approx(0.55)
    assert b.next_delay(retry.SERIALIZATION) == pytest.approx(1.1)


def test_outages_back_off_up_to_the_maximum() -> None:
    b = _backoff()
    delays = [b.next_delay(retry.OTHER) / 1.1 for _ in range(9)]
    assert delays == pytest.approx([0.5, 1, 2, 4, 8, 16, 30, 30, 30])


def test_a_commit_resets_the_back_off_and_the_conflict_count() -> None:
    """The issue's case: separate deadlocks with streaming in between must not wait 0.5, 1, 2, ... 30 s."""
    b = _backoff()
    for _ in range(5):
        b.next_delay(retry.OTHER)
    for _ in range(3):
        b.next_delay(retry.DEADLOCK)
    b.committed()
    waits = []
    for _ in range(20):  # twenty separate deadlocks, each followed by a successful commit
        waits.append(b.next_delay(retry.DEADLOCK))
        b.committed()
    assert max(waits) <= 0.05
    assert b.next_delay(retry.OTHER) == pytest.approx(0.55)


def test_jitter_spreads_immediate_retries() -> None:
    b = retry.Backoff(retry.RetryPolicy(0.5, 30.0), threading.Event())
    waits = {b.next_delay(retry.DEADLOCK) for _ in range(3)}
    assert all(0 <= w < 0.05 for w in waits) and len(waits) > 1


def test_a_wait_ends_at_once_when_stopping() -> None:
    stop = threading.Event()
    b = _backoff(stop)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert b.wait(30.0) is False
    assert time.monotonic() - started < 1.0


def test_a_wait_runs_out_and_reports_alive() -> None:
    b = _backoff()
    beats: list[float] = []
    started = time.monotonic()
    assert b.wait(1.3, lambda: beats.append(time.monotonic())) is True
    assert 1.3 <= time.monotonic() - started < 2.0
    assert len(beats) >= 1
