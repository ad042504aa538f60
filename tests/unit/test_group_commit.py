"""When the apply loop treats a dry channel as "caught up" (commit now) or as "catching up" (keep
filling the batch up to max_ms/max_rows): stream.pipeline.Direction._catching_up."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from types import SimpleNamespace

from replicator.changes import Transaction
from replicator.stream.lag import BINLOG_TIME_RESOLUTION, LagGauge
from replicator.stream.pipeline import CATCHING_UP_SECONDS, Direction


def _txn(commit_time: datetime | None) -> Transaction:
    return Transaction("t", None, commit_time, (), True, False)  # type: ignore[arg-type]


def _catching_up(resolution: float, commit_time: datetime | None, taken_at: float) -> bool:
    holder = SimpleNamespace(lag=LagGauge("test_group_commit", resolution))
    return bool(Direction._catching_up(holder, _txn(commit_time), taken_at))  # type: ignore[arg-type]


def test_a_fresh_binlog_transaction_is_not_a_backlog_despite_whole_second_commit_times() -> None:
    now = time.time()
    # the binlog says the commit second only: up to 0.999 s "old" the moment it is committed
    reported = datetime.fromtimestamp(int(now), timezone.utc)
    assert not _catching_up(BINLOG_TIME_RESOLUTION, reported, taken_at=now)


def test_an_old_transaction_means_the_source_is_ahead() -> None:
    now = time.time()
    old = datetime.fromtimestamp(now - CATCHING_UP_SECONDS - BINLOG_TIME_RESOLUTION - 1, timezone.utc)
    assert _catching_up(BINLOG_TIME_RESOLUTION, old, taken_at=now)
    assert _catching_up(0.0, datetime.fromtimestamp(now - CATCHING_UP_SECONDS - 0.5, timezone.utc), taken_at=now)


def test_a_recent_wal_transaction_commits_when_the_channel_is_dry() -> None:
    now = time.time()
    assert not _catching_up(0.0, datetime.fromtimestamp(now - 0.05, timezone.utc), taken_at=now)


def test_no_commit_time_is_never_a_backlog() -> None:
    assert not _catching_up(0.0, None, taken_at=time.time())
