"""sources/wal: the WAL source as a Source (no server): pgoutput messages in, our messages out --
whole transactions in commit order, echoes dropped at the loop tag, sync watermarks as Watermarks (not
rows of a table PostgreSQL does not have), idle positions as Keepalives, acks confirmed to the server.

The replication connection is replaced by a fake stream that hands out prepared pgoutput payloads.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from hypothesis import given, settings, strategies as st

from replicator import metrics
from replicator.changes import LSN, Keepalive, Op, RowChange, SourceMessage, TableRef, Transaction, Watermark
from replicator.config import Account, Connection, Secret
from replicator.errors import FatalError
from replicator.loopguard import MESSAGE_PREFIX, WATERMARK_PREFIX, LoopGuard
from replicator.sources import wal as wal_module
from replicator.sources.base import Source
from replicator.sources.wal import WalSource
from tests.unit.test_pgoutput import begin, commit, insert, message, relation
from tests.unit.test_shape import Watch

T = TableRef("public", "t")
OTHER = TableRef("public", "not_mapped")
REL_T = relation(1, "public", "t", [("id", 23, -1, True), ("v", 25, -1, False)])
REL_OTHER = relation(2, "public", "not_mapped", [("id", 23, -1, True)])


@dataclass
class Msg:
    payload: bytes


class FakeStream:
    """What WalSource._read uses of walproto.CopyStream."""

    def __init__(self, payloads: list[bytes], wal_end: int):
        self.payloads = list(payloads)
        self.wal_end = wal_end
        self.io_time = time.time()
        self.wait_asked_at = None
        self.confirmed = 0
        self.confirms: list[int] = []
        self._r, self._w = os.pipe()  # select() on it times out: nothing more to read

    def read(self) -> Msg | None:
        return Msg(self.payloads.pop(0)) if self.payloads else None

    def read_batch(self) -> list[bytes]:
        """Everything at once, as CopyStream.read_batch hands over what libpq holds."""
        out, self.payloads = self.payloads, []
        return out

    def confirm(self, lsn: int) -> None:
        self.confirms.append(lsn)
        self.confirmed = max(self.confirmed, lsn)

    def fileno(self) -> int:
        return self._r

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> WalSource:
    monkeypatch.setattr(wal_module, "KEEPALIVE_EVERY", 0.0)  # an idle position at once
    conn = Connection("crm", "postgresql", "h", 5432, "crm", Account("a", Secret("")), Account("c", Secret("")))
    s = WalSource(conn, "crm_to_erp", [T], LoopGuard("replicator", "erp_to_crm"), LSN(100), chunk_rows=1000)
    monkeypatch.setattr(s, "_slot_stats", lambda: None)
    return s


def read(source: WalSource, payloads: list[bytes], wal_end: int, until: int) -> tuple[list[SourceMessage], FakeStream]:
    """The messages the source yields for `payloads`, up to and including the one at position `until`."""
    stream = FakeStream(payloads, wal_end)
    out: list[SourceMessage] = []
    it: Iterator[SourceMessage] = source._read(stream, source.start)  # type: ignore[arg-type]
    try:
        for msg in it:
            out.append(msg)
            position = msg.position
            if position == LSN(until):
                break
    finally:
        stream.close()
    return out, stream


def test_the_wal_source_keeps_the_source_protocol(source: WalSource) -> None:
    as_source: Source = source
    assert as_source.keep_echoes is False and as_source.safe_position is None


def test_a_transaction_comes_whole_with_its_commit_position(source: WalSource) -> None:
    payloads = [REL_T, REL_OTHER, begin(300, 0, 7), insert(1, "1", "a"), insert(2, "9"), insert(1, "2", "b"),
                commit(290, 300, 0)]
    out, _ = read(source, payloads, wal_end=300, until=300)
    assert len(out) == 1 and isinstance(out[0], Transaction)
    txn = out[0]
    assert (txn.txid, txn.position, txn.final, txn.echo, txn.watermarks) == ("7", LSN(300), True, False, ())
    assert [(c.table, c.op, dict(c.after or {})) for c in txn.changes] == [
        (T, Op.INSERT, {"id": 1, "v": "a"}), (T, Op.INSERT, {"id": 2, "v": "b"})]  # the unmapped table left out


def test_an_echo_is_dropped_at_its_tag_and_still_moves_the_position(source: WalSource) -> None:
    payloads = [REL_T, begin(400, 0, 8), message(True, 390, MESSAGE_PREFIX, b"erp_to_crm"), insert(1, "1", "a"),
                commit(395, 400, 0)]
    out, _ = read(source, payloads, wal_end=400, until=400)
    assert len(out) == 1 and isinstance(out[0], Transaction)
    assert out[0].echo and out[0].changes == () and out[0].position == LSN(400)


def test_another_streams_tag_is_not_an_echo(source: WalSource) -> None:
    payloads = [REL_T, begin(400, 0, 8), message(True, 390, MESSAGE_PREFIX, b"crm_to_erp"), insert(1, "1", "a"),
                commit(395, 400, 0)]
    out, _ = read(source, payloads, wal_end=400, until=400)
    assert isinstance(out[0], Transaction) and not out[0].echo and len(out[0].changes) == 1


def test_a_sync_watermark_is_a_watermark_not_a_row(source: WalSource) -> None:
    mark = json.dumps({"stream": "crm_to_erp", "mark": "abc", "kind": "high"}).encode()
    payloads = [begin(500, 0, 9), message(True, 490, WATERMARK_PREFIX, mark), commit(495, 500, 0)]
    out, _ = read(source, payloads, wal_end=500, until=500)
    assert isinstance(out[0], Transaction)
    assert out[0].changes == () and out[0].watermarks == (Watermark("crm_to_erp", "high", "abc"),)


def test_an_undecodable_watermark_stops_with_an_error_naming_it(source: WalSource) -> None:
    payloads = [begin(500, 0, 9), message(True, 490, WATERMARK_PREFIX, b"[1, 2]"), commit(495, 500, 0)]
    with pytest.raises(FatalError, match="undecodable sync watermark"):
        read(source, payloads, wal_end=500, until=500)


def test_when_idle_the_source_yields_its_wal_end_as_a_keepalive(source: WalSource) -> None:
    out, _ = read(source, [], wal_end=700, until=700)
    assert out == [Keepalive(LSN(700))]
    assert source.safe_position == LSN(700)


def test_a_transaction_already_in_the_target_is_skipped_but_its_position_still_comes(source: WalSource) -> None:
    payloads = [REL_T, begin(50, 0, 3), insert(1, "1", "a"), commit(40, 50, 0)]  # before the start, LSN 100
    out, _ = read(source, payloads, wal_end=50, until=50)
    assert isinstance(out[0], Transaction) and out[0].changes == ()


def test_an_ack_is_confirmed_to_the_server_and_never_moves_back(source: WalSource) -> None:
    source.ack(LSN(300))
    source.ack(LSN(200))
    payloads = [REL_T, begin(400, 0, 8), insert(1, "1", "a"), commit(395, 400, 0)]
    _, stream = read(source, payloads, wal_end=400, until=400)
    assert stream.confirms == [300]
    with pytest.raises(FatalError):
        source.ack(object())  # type: ignore[arg-type]  # not an LSN: a wiring error, said at once


def test_rows_read_are_counted_per_table_echoes_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from replicator import metrics

    conn = Connection("crm", "postgresql", "h", 5432, "crm", Account("a", Secret("")), Account("c", Secret("")))
    s = WalSource(conn, "count_test", [T, OTHER], LoopGuard("replicator", "erp_to_crm"), LSN(100), chunk_rows=1000)
    monkeypatch.setattr(s, "_slot_stats", lambda: None)

    def counted(table: TableRef) -> float:
        return metrics.REGISTRY.get_sample_value("replicator_changes_read_total",
                                                 {"direction": "count_test", "table": str(table)}) or 0.0

    before = counted(T), counted(OTHER)
    payloads = [REL_T, REL_OTHER, begin(300, 0, 7), insert(1, "1", "a"), insert(2, "9"), insert(1, "2", "b"),
                commit(290, 300, 0), begin(400, 0, 8), insert(1, "3", "c"), commit(390, 400, 0),
                begin(500, 0, 9), message(True, 490, MESSAGE_PREFIX, b"erp_to_crm"), insert(1, "4", "d"),
                commit(495, 500, 0)]
    read(s, payloads, wal_end=500, until=500)
    assert (counted(T) - before[0], counted(OTHER) - before[1]) == (3, 1)


@settings(max_examples=100, deadline=None)
@given(picks=st.lists(st.lists(st.integers(0, 3), max_size=12), max_size=6))
def test_changes_read_counts_each_table_of_each_transaction(picks: list[list[int]]) -> None:
    """`_count` tallies a transaction's rows by runs of one TableRef object: the same counts per table as
    one per row, also for equal tables that are distinct objects and for tables that come back later."""
    tables = [TableRef("public", "count_a"), TableRef("public", "count_a"), TableRef("public", "count_b"),
              TableRef("other", "count_a")]
    conn = Connection("crm", "postgresql", "h", 5432, "crm", Account("a", Secret("")), Account("c", Secret("")))
    s = WalSource(conn, "count_test", tables, LoopGuard("replicator", "erp_to_crm"), LSN(100), chunk_rows=1000)

    def counts() -> dict[str, float]:
        return {str(t): metrics.changes_read.labels("count_test", str(t))._value.get() for t in tables}
    before = counts()
    expected = dict.fromkeys(before, 0.0)
    for txn in picks:
        s._count([RowChange(tables[i], Op.INSERT, None, {}) for i in txn])
        if len(txn) > 1:  # what a multi-row transaction counts is in the metric at once
            assert s._uncounted == 0
        for i in txn:
            expected[str(tables[i])] += 1
    s._flush_count()  # (what `_read` does before each batch it takes from the stream, and at its end)
    after = counts()
    assert {k: after[k] - before[k] for k in after} == expected


def test_single_row_transactions_are_in_the_metric_once_their_batch_is_handed_over(source: WalSource) -> None:
    """`_count` keeps a single-row transaction's row back and `_read` adds them up before it takes the next
    batch from the stream: while the reader waits for more (the keepalive it yields when idle), the metric
    holds every row it has handed over, with the generator still open."""
    from replicator import metrics

    def counted() -> float:
        return metrics.REGISTRY.get_sample_value("replicator_changes_read_total",
                                                 {"direction": "crm_to_erp", "table": str(T)}) or 0.0
    before = counted()
    payloads = [REL_T]
    for i in range(3):
        payloads += [begin(300 + 100 * i, 0, 7 + i), insert(1, str(i), "a"), commit(290 + 100 * i, 300 + 100 * i, 0)]
    stream = FakeStream(payloads, 600)
    it = source._read(stream, source.start)  # type: ignore[arg-type]
    try:
        got = [next(it) for _ in range(3)]
        assert all(isinstance(m, Transaction) for m in got)
        assert counted() - before <= 3  # (kept back until the batch is done)
        assert isinstance(next(it), Keepalive)  # idle: the next read_batch came back empty
        assert counted() - before == 3
    finally:
        it.close()
        stream.close()
    assert counted() - before == 3


def test_each_relation_message_of_a_mapped_table_tells_its_shape_before_the_rows(source: WalSource) -> None:
    seen: list[tuple[TableRef, tuple[tuple[str, str], ...]]] = []
    source.shapes = Watch(seen.append)  # type: ignore[assignment]
    widened = relation(1, "public", "t", [("id", 20, -1, True), ("v", 1043, 54, False)])
    payloads = [REL_T, REL_OTHER, begin(300, 0, 7), insert(1, "1", "a"), widened, insert(1, "2", "b"),
                commit(290, 300, 0)]
    read(source, payloads, wal_end=300, until=300)
    assert seen == [(T, (("id", "integer"), ("v", "text"))),
                    (T, (("id", "bigint"), ("v", "character varying(50)")))]  # never the unmapped table's


def test_a_shape_the_watch_refuses_stops_the_stream_before_the_rows_after_it(source: WalSource) -> None:
    def refuse(table: TableRef, shape: tuple[tuple[str, str], ...]) -> None:
        if dict(shape)["id"] == "bigint":
            raise FatalError("refused")
    source.shapes = Watch(lambda ts: refuse(*ts))  # type: ignore[assignment]
    widened = relation(1, "public", "t", [("id", 20, -1, True), ("v", 25, -1, False)])
    payloads = [REL_T, begin(300, 0, 7), insert(1, "1", "a"), commit(290, 300, 0),
                begin(400, 0, 8), widened, insert(1, "2", "b"), commit(390, 400, 0)]
    with pytest.raises(FatalError, match="refused"):
        read(source, payloads, wal_end=400, until=400)


def test_a_mapped_table_renamed_stops_at_its_relation_message_naming_both_names(source: WalSource) -> None:
    from replicator.errors import SchemaChangeError

    renamed = relation(1, "public", "t_old", [("id", 23, -1, True), ("v", 25, -1, False)])
    payloads = [REL_T, begin(300, 0, 7), insert(1, "1", "a"), commit(290, 300, 0),
                begin(400, 0, 8), renamed, insert(1, "2", "b"), commit(390, 400, 0)]
    with pytest.raises(SchemaChangeError, match="public.t was renamed to public.t_old"):
        read(source, payloads, wal_end=400, until=400)


def test_a_mapped_table_out_of_the_publication_stops_the_stream(source: WalSource) -> None:
    from replicator.errors import SchemaChangeError

    source._check_published({T, OTHER})  # still published: nothing to say
    with pytest.raises(SchemaChangeError, match="public.t is no longer in publication") as info:
        source._check_published({OTHER})  # dropped (and created again: a new table is in no publication)
    assert "replicator setup" in str(info.value) and "replicator sync" in str(info.value)
