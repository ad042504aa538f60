"""stream/pipeline: the apply loop against fake objects that implement the Source protocol and the
applier's transaction calls (no servers): batching bounds, a target transaction only ever ending on a
source transaction boundary, the source acked only after the target commit, idle positions recorded.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from replicator.changes import LSN, Keepalive, Op, Position, RowChange, SourceMessage, TargetChange, Transaction
from replicator.config import Config
from replicator.errors import RetriableError
from replicator.mapping.model import MappingSet
from replicator.sources.base import Source
from replicator.stream.channel import Channel
from replicator.stream import lease
from replicator.stream.pipeline import SWITCH_INTERVAL_SECONDS, Daemon, Direction, MappingHolder
from tests.unit.test_mapping import CUSTOMER
from tests.unit.mapsets import load, make_config

YAML = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
"""


class FakeSource:
    """A Source whose messages the test puts into the channel itself; records acks in the shared log."""

    def __init__(self, log: list[tuple[str, Any]]):
        self.log = log
        self.keep_echoes = False
        self.stopped = False

    @property
    def safe_position(self) -> Position | None:
        return None

    def transactions(self) -> Iterator[SourceMessage]:
        return iter(())

    def ack(self, position: Position) -> None:
        self.log.append(("ack", position))

    def stop(self) -> None:
        self.stopped = True


class FakeApplier:
    """The applier calls the loop makes; `stop_at`: set the stop event once this position is committed."""

    def __init__(self, log: list[tuple[str, Any]], stop: threading.Event, stop_at: Position | None,
                 fail_commit: bool = False):
        self.log = log
        self.stop = stop
        self.stop_at = stop_at
        self.fail_commit = fail_commit
        self.open = False
        self.rows_in_txn = 0
        self.txn_rows: list[int] = []  # rows written per committed target transaction

    def begin(self) -> None:
        assert not self.open, "begin inside an open target transaction"
        self.open, self.rows_in_txn = True, 0
        self.log.append(("begin", None))

    def apply(self, changes: Sequence[TargetChange]) -> None:
        assert self.open, "changes applied outside a target transaction"
        self.rows_in_txn += len(changes)
        self.log.append(("apply", len(changes)))

    def commit(self, position: Position, commit_time: Any) -> None:
        assert self.open
        if self.fail_commit:
            raise RetriableError("target connection lost during COMMIT")
        self.open = False
        self.txn_rows.append(self.rows_in_txn)
        self.log.append(("commit", position))
        if position == self.stop_at:
            self.stop.set()

    def rollback(self) -> None:
        self.open = False
        self.log.append(("rollback", None))

    def commit_untracked(self) -> None:
        """An idle lease renewal (lease.prove is stubbed here): no rows, no checkpoint, not logged."""

    def is_row_error(self, exc: Exception) -> bool:
        return False


class NoSync:
    """The sync driver's apply-side calls, with no sync running."""

    snapshotter = None

    def poll(self, applier: Any, mset: MappingSet) -> None:
        pass

    def observe(self, txn: Transaction) -> list[Any]:
        return []


@pytest.fixture(autouse=True)
def _lease_always_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each commit proves the active-instance lease in the target (stream/lease.py, tested against real
    servers in test_standby); these tests are about batching and acks, so the proof always holds."""
    monkeypatch.setattr(lease, "prove", lambda db, stream, epoch: None)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "maps").mkdir()
    return make_config(tmp_path)


@pytest.fixture
def mset(config: Config) -> MappingSet:
    return load(config, YAML)


def direction(config: Config, mset: MappingSet, **batching: int) -> Direction:
    config = replace(config, batching=replace(config.batching, **batching))
    crm, erp = config.connections
    d = Direction(config, crm, erp, MappingHolder(mset), threading.Event())
    d.sync = NoSync()  # type: ignore[assignment]
    d._version = d.mappings.version  # as _stream_once does: the mappings in force
    return d


def txn(lsn: int, *ids: int, final: bool = True) -> Transaction:
    rows = tuple(RowChange(CUSTOMER, Op.INSERT, None, {"id": i, "name": f"n{i}"}) for i in ids)
    return Transaction(f"x{lsn}", LSN(lsn), None, rows, final=final)


def run(d: Direction, items: list[Any], stop_at: Position | None, fail_commit: bool = False,
        limit: float = 5.0, log: list[tuple[str, Any]] | None = None) -> tuple[list[tuple[str, Any]], FakeApplier, Any]:
    log = [] if log is None else log
    applier = FakeApplier(log, d.stop, stop_at, fail_commit)
    source = FakeSource(log)
    chan = Channel(d.config.batching.queue_rows)
    for item in items:
        chan.put(item, 1, d.stop)
    timer = threading.Timer(limit, d.stop.set)  # a loop that never reaches stop_at fails the test, not hangs it
    timer.start()
    try:
        src: Source = source  # the fake keeps the protocol (checked by mypy)
        result = d._apply_loop(applier, src, chan, d.mappings.current()[0], LSN(0))  # type: ignore[arg-type]
    finally:
        timer.cancel()
    return log, applier, result


def commits(log: list[tuple[str, Any]]) -> list[Any]:
    return [p for what, p in log if what == "commit"]


def test_a_batch_is_cut_at_max_rows_on_a_transaction_boundary(config: Config, mset: MappingSet) -> None:
    d = direction(config, mset, max_rows=3, max_ms=60_000)
    log, applier, result = run(d, [txn(1, 1), txn(2, 2), txn(3, 3), txn(4, 4), txn(5, 5)], stop_at=LSN(5))
    assert commits(log) == [LSN(3), LSN(5)]  # 3 rows reach max_rows; the rest when the queue runs dry
    assert applier.txn_rows == [3, 2]
    assert result == LSN(5)


def test_the_source_is_acked_only_after_the_target_committed(config: Config, mset: MappingSet) -> None:
    d = direction(config, mset, max_rows=2, max_ms=60_000)
    log, _, _ = run(d, [txn(1, 1), txn(2, 2), txn(3, 3)], stop_at=LSN(3))
    acks = [i for i, (what, _) in enumerate(log) if what == "ack"]
    assert [log[i][1] for i in acks] == [LSN(2), LSN(3)]
    for i in acks:
        assert log[i - 1] == ("commit", log[i][1]), f"ack of {log[i][1]} not right after its commit: {log}"


def test_a_failed_commit_acks_nothing(config: Config, mset: MappingSet) -> None:
    d = direction(config, mset, max_rows=1, max_ms=60_000)
    log: list[tuple[str, Any]] = []
    with pytest.raises(RetriableError):
        run(d, [txn(1, 1)], stop_at=None, fail_commit=True, log=log)
    assert ("apply", 1) in log, "the change reached the target transaction"
    assert all(what != "ack" for what, _ in log)


def test_a_chunked_source_transaction_is_never_split_across_target_transactions(
        config: Config, mset: MappingSet) -> None:
    d = direction(config, mset, max_rows=2, max_ms=0)  # every bound already reached at the first chunk
    chunks = [txn(7, 1, 2, final=False), txn(7, 3, 4, final=False), txn(7, 5, 6, final=True)]
    log, applier, _ = run(d, chunks, stop_at=LSN(7))
    assert commits(log) == [LSN(7)]
    assert applier.txn_rows == [6]


def test_a_batch_waits_at_most_max_ms_for_more(config: Config, mset: MappingSet) -> None:
    d = direction(config, mset, max_rows=1000, max_ms=100)
    log: list[tuple[str, Any]] = []
    applier = FakeApplier(log, d.stop, LSN(2))
    chan = Channel(100)
    chan.put(txn(1, 1), 1, d.stop)

    def later() -> None:  # arrives while the batch is open, then nothing more
        time.sleep(0.02)
        chan.put(txn(2, 2), 1, d.stop)

    feeder = threading.Thread(target=later)
    timer = threading.Timer(5.0, d.stop.set)
    feeder.start()
    timer.start()
    started = time.monotonic()
    d._apply_loop(applier, FakeSource(log), chan, d.mappings.current()[0], LSN(0))  # type: ignore[arg-type]
    timer.cancel()
    feeder.join()
    assert commits(log)[-1] == LSN(2)
    assert time.monotonic() - started < 2.0


def test_an_idle_position_is_recorded_without_a_fake_transaction(config: Config, mset: MappingSet) -> None:
    """A WAL keepalive carries no rows: the loop records its position when idle (after about
    WAL_IDLE_CHECKPOINT_SECONDS), with no commit time, and acks it."""
    d = direction(config, mset)
    log, applier, result = run(d, [Keepalive(LSN(9))], stop_at=LSN(9))
    assert log == [("begin", None), ("commit", LSN(9)), ("ack", LSN(9))]
    assert applier.txn_rows == [0]
    assert result == LSN(9)


def test_a_keepalive_inside_an_open_batch_ends_it_at_the_idle_position(config: Config, mset: MappingSet) -> None:
    d = direction(config, mset, max_rows=1000, max_ms=60_000)
    log, applier, _ = run(d, [txn(1, 1), Keepalive(LSN(4))], stop_at=LSN(4))
    assert commits(log) == [LSN(4)]
    assert applier.txn_rows == [1]


def test_an_echo_moves_the_checkpoint_but_writes_nothing(config: Config, mset: MappingSet) -> None:
    d = direction(config, mset)
    echo = Transaction("e", LSN(6), None, (), echo=True)
    log, applier, _ = run(d, [echo], stop_at=LSN(6))
    assert commits(log) == [LSN(6)] and applier.txn_rows == [0]
    assert ("apply", 1) not in log


def test_handled_transactions_are_freed_before_the_whole_hand_over_is_done(
        config: Config, mset: MappingSet) -> None:
    """The loop takes everything waiting in one call (thousands of rows while catching up); a transaction it
    has applied and committed must not stay alive until the rest of that hand-over is handled too."""
    import weakref

    d = direction(config, mset, max_rows=1, max_ms=60_000)  # one commit per source transaction
    log: list[tuple[str, Any]] = []
    alive_at_commit: list[int] = []
    refs: list[weakref.ref[Transaction]] = []

    class Counting(FakeApplier):
        def commit(self, position: Position, commit_time: Any) -> None:
            alive_at_commit.append(sum(1 for r in refs if r() is not None))
            super().commit(position, commit_time)

    applier = Counting(log, d.stop, LSN(6), False)
    chan = Channel(d.config.batching.queue_rows)
    for i in range(1, 7):
        t = txn(i, i)
        refs.append(weakref.ref(t))
        chan.put(t, 1, d.stop)
    del t
    timer = threading.Timer(5.0, d.stop.set)
    timer.start()
    try:
        src: Source = FakeSource(log)
        d._apply_loop(applier, src, chan, d.mappings.current()[0], LSN(0))  # type: ignore[arg-type]
    finally:
        timer.cancel()
    assert commits(log) == [LSN(i) for i in range(1, 7)]
    # at each commit only the transaction being committed (and those not handled yet) are alive
    assert alive_at_commit == [6, 5, 4, 3, 2, 1]


def test_the_default_read_ahead_holds_a_few_thousand_rows(config: Config) -> None:
    """The reader stops decoding once `queue_rows` rows wait (a catch-up backlog otherwise sits decoded in
    memory: 20,000 rows per direction took ~90 MB of the 202 MB peak, docs/performance.md)."""
    chan = Channel(config.batching.queue_rows)
    stop = threading.Event()
    put = 0

    def reader() -> None:
        nonlocal put
        while chan.put(object(), 100, stop):
            put += 1

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)
    waiting = chan.rows()
    stop.set()
    t.join(2)
    assert config.batching.queue_rows == 5000
    assert waiting == 5000 and put == 50  # then the reader waits: nothing more is decoded


def test_a_single_row_transactions_route_list_is_used_as_it_is_and_a_chunk_follows_it(
        config: Config, mset: MappingSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The apply loop takes a single-row transaction's routed list without copying it; a sync chunk that
    the transaction's watermark releases comes after its rows, in a new list (route's is not extended)."""
    from replicator.mapping.router import route as real

    routed: list[list[Any]] = []

    def route(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        routed.append(out)
        return out

    chunk_row = TargetChange(CUSTOMER, Op.INSERT, ("id",), (99,), {"id": 99})

    class ChunkAtTwo(NoSync):
        def observe(self, txn: Transaction) -> list[Any]:
            return [chunk_row] if txn.position == LSN(2) else []

    from replicator.mapping.router import route_all as real_all

    def route_all(*args: Any, **kwargs: Any) -> Any:  # a multi-row transaction's routing
        out = real_all(*args, **kwargs)
        routed.append(out)
        return out

    monkeypatch.setattr("replicator.stream.pipeline.route", route)
    monkeypatch.setattr("replicator.stream.pipeline.route_all", route_all)
    d = direction(config, mset, max_rows=100, max_ms=60_000)
    d.sync = ChunkAtTwo()  # type: ignore[assignment]
    log, applier, _ = run(d, [txn(1, 1), txn(2, 2), txn(3, 3, 4)], stop_at=LSN(3))
    assert commits(log) == [LSN(3)] and applier.txn_rows == [5]  # 1 + (1 + the chunk's 1) + 2
    assert [len(r) for r in routed] == [1, 1, 2]  # the lists as route and route_all made them, none extended


def test_the_daemon_hands_the_gil_over_every_millisecond(config: Config, mset: MappingSet,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader decodes ahead while the applier waits on its server (stream/channel.py's gate): back from
    a statement, the applier must not wait CPython's default 5 ms for the GIL."""
    monkeypatch.setattr(Direction, "run", lambda self: None)
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        daemon = Daemon(config, MappingHolder(mset))
        daemon.start()
        daemon.shutdown(2.0)
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS)
        assert SWITCH_INTERVAL_SECONDS < 0.005
    finally:
        sys.setswitchinterval(before)
