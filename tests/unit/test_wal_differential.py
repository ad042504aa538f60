"""The faster WAL reader (issue 14) against the code it replaced, kept verbatim in tests/unit/reference/:

- the decoder: the same pgoutput payloads -- values of every converted type, valid, beyond Python's
  range and junk; NULL and unchanged-TOAST values; inserts, updates with and without a 'K'/'O' old
  tuple, deletes; truncated, trailing and mis-marked messages -- give equal events or the same error
  through the old `decode`, the new `decode` and the new `row`;
- the source: the same message sequences (transactions with mapped and unmapped tables, echoes, sync
  watermarks, truncates, skipped replays, chunks, malformed Begin/Commit) handed over in batches of any
  size give the same transactions, keepalives, safe position and errors as the old message-at-a-time loop;
- the copy stream: `read_batch` hands over what a sequence of `read` calls would, and sends the same
  feedback.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from datetime import timezone
from typing import Any, Callable, Iterator

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.changes import LSN, UNCHANGED, Keepalive, RowChange, TableRef, Transaction
from replicator.config import Account, Connection, Secret
from replicator.loopguard import MESSAGE_PREFIX, WATERMARK_PREFIX, LoopGuard
from replicator.sources import wal as wal_module
from replicator.sources import pgoutput
from replicator.sources.pgoutput import PgOutputDecoder
from replicator.sources.wal import WalSource
from tests.unit.reference import pgoutput_6905239 as old_pgoutput
from tests.unit.reference import wal_6905239 as old_wal
from tests.unit.test_pgoutput import begin, commit, message, relation, truncate, tup
from tests.unit.test_wal_feedback import FakeLibpq, keepalive, stream as copy_stream, xlogdata

UTC = timezone.utc
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- values ---------------------------------------------------------------------------------------

_JUNK = st.binary(max_size=10)
_INT = st.integers(-(2**63), 2**63 - 1).map(str)
_TEXT_OF: dict[int, st.SearchStrategy[str]] = {
    16: st.sampled_from(["t", "f"]),
    17: st.binary(max_size=8).map(lambda b: "\\x" + b.hex()),
    20: _INT, 21: _INT, 23: _INT, 26: _INT,
    700: st.floats(width=32).map(repr) | st.sampled_from(["NaN", "Infinity", "-Infinity", "3.4028235e+38"]),
    701: st.floats().map(repr) | st.sampled_from(["NaN", "Infinity", "-Infinity"]),
    1700: st.decimals(allow_nan=True, allow_infinity=True).map(str),
    1082: st.dates().map(lambda d: d.isoformat()) | st.sampled_from(
        ["infinity", "-infinity", "0044-03-15 BC", "10000-01-01"]),
    1083: st.times().map(lambda t: t.isoformat()) | st.just("24:00:00"),
    1114: st.datetimes().map(lambda d: d.isoformat(sep=" ")) | st.sampled_from(["infinity", "2000-01-01 BC"]),
    1184: st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat(sep=" "))
    | st.datetimes().map(lambda d: d.isoformat(sep=" ")),  # no offset: an error
    2950: st.uuids().map(str),
    1007: st.lists(st.none() | st.integers(-99, 99), max_size=4).map(
        lambda xs: "{" + ",".join("NULL" if x is None else str(x) for x in xs) + "}"),
    1009: st.lists(st.text(max_size=4), max_size=3).map(
        lambda xs: "{" + ",".join('"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"' for x in xs) + "}"),
    25: st.text(max_size=12),
    3802: st.text(max_size=12),  # jsonb: not converted, stays its text
}
TYPES = sorted(_TEXT_OF)


def value_of(type_oid: int) -> st.SearchStrategy[Any]:
    text = _TEXT_OF[type_oid].map(str.encode)
    return st.one_of(text, text, text, text, text, text, st.none(), st.just(UNCHANGED), _JUNK)


# relation OID 1 (mapped table public.t) and 2 (unmapped public.other): columns (name, type oid, key)
@st.composite
def relations(draw: Any) -> dict[int, list[tuple[str, int, bool]]]:
    out = {}
    for oid in (1, 2):
        types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=5))
        keys = draw(st.lists(st.booleans(), min_size=len(types), max_size=len(types)))
        keys[0] = True
        # any name: the tuple reader compiled per relation holds them as string literals
        names = draw(st.lists(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                                      min_size=1, max_size=5), min_size=len(types), max_size=len(types),
                              unique=True))
        out[oid] = [(name, t, k) for name, t, k in zip(names, types, keys)]
    return out


def rel_payload(oid: int, cols: list[tuple[str, int, bool]]) -> bytes:
    return relation(oid, "public", "t" if oid == 1 else "other", [(n, t, -1, k) for n, t, k in cols])


@st.composite
def row_message(draw: Any, rels: dict[int, list[tuple[str, int, bool]]]) -> bytes:
    oid = draw(st.sampled_from([1, 1, 1, 2]))
    cols = rels[oid]

    def values() -> bytes:
        return tup(*[draw(value_of(t)) for _, t, _ in cols])
    kind = draw(st.sampled_from(["I", "U", "UK", "UO", "D", "DK", "DO"]))
    head = kind[0].encode() + struct.pack(">I", oid)
    if kind == "I":
        out = head + b"N" + values()
    elif kind == "U":
        out = head + b"N" + values()
    elif kind in ("UK", "UO"):
        out = head + kind[1].encode() + values() + b"N" + values()
    else:
        out = head + (kind[1:] or "K").encode() + values()
    damage = draw(st.sampled_from(["none"] * 8 + ["cut", "trail", "marker", "oid", "width"]))
    if damage == "cut":
        out = out[: draw(st.integers(0, len(out) - 1))]
    elif damage == "trail":
        out += draw(st.binary(min_size=1, max_size=3))
    elif damage == "marker":
        at = draw(st.integers(0, len(out) - 1))
        out = out[:at] + draw(st.sampled_from([b"N", b"K", b"O", b"t", b"x"])) + out[at + 1:]
    elif damage == "oid":
        out = out[:1] + struct.pack(">I", 99) + out[5:]
    elif damage == "width":  # a tuple of another width than the relation's
        out = head + b"N" + tup(*[b"1"] * (len(cols) + 1))
    return out


def norm(value: Any) -> Any:
    """Comparable whatever the value: NaN is not equal to itself, a PgArray equals its str."""
    if isinstance(value, dict):
        return [(k, norm(v)) for k, v in value.items()]
    if isinstance(value, RowChange):
        return ("row", value.table, value.op, norm(value.before), norm(value.after))
    if isinstance(value, Transaction):
        return ("txn", value.txid, value.position, value.commit_time, [norm(c) for c in value.changes],
                value.final, value.echo, value.watermarks)
    if isinstance(value, Keepalive):
        return ("keepalive", value.position)
    return (type(value).__name__, repr(value))


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return norm(fn())
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


# --- the decoder ----------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_the_decoder_gives_what_the_old_one_gave(data: Any) -> None:
    rels = data.draw(relations())
    old, new = old_pgoutput.PgOutputDecoder(), PgOutputDecoder()
    for oid, cols in rels.items():
        payload = rel_payload(oid, cols)
        assert outcome(lambda: old.decode(payload)) == outcome(lambda: new.decode(payload))
    for payload in data.draw(st.lists(row_message(rels), min_size=1, max_size=6)):
        expected = outcome(lambda: old.decode(payload))
        assert outcome(lambda: new.decode(payload)) == expected
        if payload[:1] in (b"I", b"U", b"D"):
            assert outcome(lambda: new.row(payload)) == expected
            if expected[0] == "row":  # built without RowChange.__init__: the same fields in the same order
                made, decoded = new.row(payload), new.decode(payload)
                assert type(made) is RowChange and list(vars(made)) == list(vars(decoded)) == \
                    ["table", "op", "before", "after"]


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_a_relation_wider_than_the_unrolled_reader_decodes_alike(data: Any) -> None:
    cols = [(f"c{i}", data.draw(st.sampled_from(TYPES)), i == 0) for i in range(pgoutput.UNROLL_COLUMNS + 3)]
    rels = {1: cols, 2: cols[:1]}
    old, new = old_pgoutput.PgOutputDecoder(), PgOutputDecoder()
    for dec in (old, new):
        dec.decode(rel_payload(1, cols))
        dec.decode(rel_payload(2, cols[:1]))
    for payload in data.draw(st.lists(row_message(rels), min_size=1, max_size=4)):
        expected = outcome(lambda: old.decode(payload))
        assert outcome(lambda: new.row(payload)) == expected


def test_the_differential_test_meets_values_errors_and_each_old_tuple_form() -> None:
    """The generators reach what they are meant to: decoded rows of each form and conversion errors."""
    seen: set[Any] = set()

    @settings(max_examples=600, deadline=None, database=None)
    @given(data=st.data())
    def run(data: Any) -> None:
        rels = data.draw(relations())
        dec = PgOutputDecoder()
        for oid, cols in rels.items():
            dec.decode(rel_payload(oid, cols))
        payload = data.draw(row_message(rels))
        got = outcome(lambda: dec.row(payload))
        seen.add(got[0] if got[0] == "error" and "cannot convert" not in got[2] else
                 "conversion error" if got[0] == "error" else (payload[:1], payload[5:6]))
    run()
    assert {"error", "conversion error", (b"I", b"N"), (b"U", b"N"), (b"U", b"K"), (b"U", b"O"),
            (b"D", b"K"), (b"D", b"O")} <= seen


# --- the source -----------------------------------------------------------------------------------

T = TableRef("public", "t")
GUARD = LoopGuard("replicator", "erp_to_crm")
CONN = Connection("crm", "postgresql", "h", 5432, "crm", Account("a", Secret("")), Account("c", Secret("")))


class BatchStream:
    """CopyStream's interface over prepared payloads: `read` one at a time (the old loop), `read_batch`
    in the drawn batch sizes (the new one). The end of the payloads stops the source."""

    def __init__(self, source: Any, payloads: list[bytes], sizes: list[int], wal_end: int):
        self.source, self.payloads, self.sizes = source, list(payloads), list(sizes)
        self.wal_end, self.io_time, self.wait_asked_at, self.confirmed = wal_end, time.time(), None, 0
        self.confirms: list[int] = []
        self._ready = socket.socketpair()  # select() returns at once
        self._ready[1].send(b"x")

    def fileno(self) -> int:
        return self._ready[0].fileno()

    def read(self) -> Any:
        batch = self.read_batch(1)
        return type("Msg", (), {"payload": batch[0]})() if batch else None

    def read_batch(self, limit: int | None = None) -> list[bytes]:
        n = limit or (self.sizes.pop(0) if self.sizes else 3)
        out, self.payloads = self.payloads[:n], self.payloads[n:]
        if not out:
            self.source.stop()
        return out

    def confirm(self, lsn: int) -> None:
        self.confirms.append(lsn)

    def close(self) -> None:
        for s in self._ready:
            s.close()


@st.composite
def transaction(draw: Any, rels: dict[int, list[tuple[str, int, bool]]], lsn: int, xid: int) -> list[bytes]:
    final = lsn + 50
    out = [begin(final if draw(st.integers(0, 9)) else 150, draw(st.integers(-(10**12), 10**15)), xid)]
    if draw(st.integers(0, 3)) == 0:
        out.append(message(True, lsn, MESSAGE_PREFIX, draw(st.sampled_from([b"erp_to_crm", b"crm_to_erp"]))))
    for _ in range(draw(st.integers(0, 4))):
        pick = draw(st.integers(0, 9))
        if pick == 0:
            mark = {"stream": "crm_to_erp", "mark": "m", "kind": "high"}
            out.append(message(True, lsn, WATERMARK_PREFIX, json.dumps(mark).encode()))
        elif pick == 1:
            out.append(truncate(draw(st.lists(st.sampled_from([1, 2]), min_size=1, max_size=2)), 0))
        elif pick == 2:
            out.append(message(False, lsn, "other", b"x"))
        elif pick == 3:
            out.append(rel_payload(1, rels[1]))
        else:
            out.append(draw(row_message(rels)))
    end = commit(lsn + 40, final, draw(st.integers(-(10**12), 10**15)))
    damage = draw(st.sampled_from(["none"] * 12 + ["begin", "commit", "empty", "nobegin"]))
    if damage == "begin":
        out[0] = out[0][:-1]
    elif damage == "commit":
        end += b"\0"
    elif damage == "empty":
        out.insert(1, b"")
    elif damage == "nobegin":
        out = out[1:]
    return out + [end]


def run_source(cls: type, module: Any, payloads: list[bytes], sizes: list[int], chunk_rows: int,
               keep: bool) -> Any:
    source = cls(CONN, "crm_to_erp", [T], GUARD, LSN(200), chunk_rows=chunk_rows)
    source._slot_stats = lambda: None
    source.keep_echoes = keep
    stream = BatchStream(source, payloads, sizes, wal_end=10**9)
    out: list[Any] = []
    try:
        it: Iterator[Any] = source._read(stream, source.start)
        for msg in it:
            out.append(norm(msg))
    except Exception as exc:
        out.append(("error", type(exc).__name__, str(exc)))
    finally:
        stream.close()
    return out, source.safe_position, stream.confirms


@pytest.fixture
def keepalive_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle position at the first idle moment, in both loops (the same for every example)."""
    monkeypatch.setattr(wal_module, "KEEPALIVE_EVERY", 0.0)
    monkeypatch.setattr(old_wal, "KEEPALIVE_EVERY", 0.0)


@settings(SETTINGS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.usefixtures("keepalive_at_once")
def test_the_source_yields_what_the_old_loop_yielded(data: Any) -> None:
    rels = data.draw(relations())
    payloads = [rel_payload(1, rels[1]), rel_payload(2, rels[2])]
    for i in range(data.draw(st.integers(1, 5))):
        payloads += data.draw(transaction(rels, 1000 + 100 * i, 7 + i))
    sizes = data.draw(st.lists(st.integers(1, 8), max_size=10))
    chunk_rows = data.draw(st.integers(1, 4))
    keep = data.draw(st.booleans())
    expected = run_source(old_wal.WalSource, old_wal, payloads, sizes, chunk_rows, keep)
    assert run_source(WalSource, wal_module, payloads, sizes, chunk_rows, keep) == expected


# --- the copy stream ------------------------------------------------------------------------------

@st.composite
def copy_messages(draw: Any) -> list[bytes]:
    out = []
    end = 100
    for _ in range(draw(st.integers(0, 12))):
        end = max(10, end + draw(st.integers(-20, 50)))  # an LSN: start = end - 10 never below 0
        pick = draw(st.integers(0, 9))
        if pick < 6:
            out.append(xlogdata(end - 10, end, draw(st.binary(max_size=6))))
        elif pick < 8:
            out.append(keepalive(end, draw(st.booleans())))
        else:
            out.append(draw(st.sampled_from([b"w" + b"\0" * 10, b"k\0", b"?"])))  # short or unknown
    return out


def drain(read: Callable[[], list[bytes]]) -> list[Any]:
    got: list[Any] = []
    for _ in range(40):
        try:
            batch = read()
        except psycopg2.OperationalError as exc:
            got.append(("error", str(exc)))
            break
        if not batch:
            break
        got.extend(batch)
    return got


@SETTINGS
@given(messages=copy_messages(), limit=st.integers(1, 5), confirmed=st.integers(0, 200))
def test_read_batch_hands_over_what_read_did(messages: list[bytes], limit: int, confirmed: int) -> None:
    lib_old, lib_new = FakeLibpq(), FakeLibpq()
    lib_old.incoming, lib_new.incoming = list(messages), list(messages)
    old, new = copy_stream(lib_old, confirmed), copy_stream(lib_new, confirmed)

    def one() -> list[bytes]:
        msg = old.read()
        return [msg.payload] if msg is not None else []
    expected = drain(one)
    assert drain(lambda: new.read_batch(limit)) == expected
    assert [m[:25] for m in lib_new.sent] == [m[:25] for m in lib_old.sent]  # positions; the clock differs
    assert (new.wal_end, new.wait_asked_at is None, new.confirmed) == \
        (old.wal_end, old.wait_asked_at is None, old.confirmed)


def test_read_batch_takes_every_buffered_message_in_one_call() -> None:
    lib = FakeLibpq()
    lib.incoming = [xlogdata(1, 10, b"a"), keepalive(20, False), xlogdata(10, 15, b"b"), xlogdata(15, 18, b"c")]
    s = copy_stream(lib, 0)
    assert s.read_batch() == [b"a", b"b", b"c"] and s.wal_end == 20 and s.io_time > 0
    assert s.read_batch() == []


def test_an_error_after_data_comes_after_that_data() -> None:
    lib = FakeLibpq()
    lib.incoming = [xlogdata(1, 10, b"a"), b"?"]
    s = copy_stream(lib, 0)
    assert s.read_batch() == [b"a"]
    with pytest.raises(psycopg2.OperationalError, match="unrecognized replication message type"):
        s.read_batch()



@st.composite
def update_pairs(draw: Any, cols: list[tuple[str, int, bool]]) -> tuple[bytes, list[bool]]:
    """An 'U' message with an 'O' old tuple whose new tuple repeats some of its values byte for byte (what an
    UPDATE of a few columns of a REPLICA IDENTITY FULL table sends) -- and which of them it repeats."""
    old = [draw(value_of(t)) for _, t, _ in cols]
    same = draw(st.lists(st.booleans(), min_size=len(cols), max_size=len(cols)))
    new = [o if s else draw(value_of(t)) for o, s, (_, t, _) in zip(old, same, cols)]
    return b"U" + struct.pack(">I", 1) + b"O" + tup(*old) + b"N" + tup(*new), same


@SETTINGS
@given(data=st.data())
def test_an_update_s_repeated_values_are_decoded_once_and_alike(data: Any) -> None:
    """`read_pair` (the 'O' form): the same rows or error as the old decoder, and a new value whose bytes are
    the old one's is the old value object itself."""
    wide = data.draw(st.integers(0, 3)) == 0  # a relation past UNROLL_COLUMNS: the loop path
    if wide:
        cols = [(f"c{i}", data.draw(st.sampled_from(TYPES)), i == 0) for i in range(pgoutput.UNROLL_COLUMNS + 2)]
    else:
        cols = data.draw(relations())[1]
    old, new = old_pgoutput.PgOutputDecoder(), PgOutputDecoder()
    for dec in (old, new):
        dec.decode(rel_payload(1, cols))
    payload, same = data.draw(update_pairs(cols))
    if data.draw(st.booleans()):
        payload += data.draw(st.sampled_from([b"\x00", b"N", b"junk"]))  # trailing bytes: decode's error
    expected = outcome(lambda: old.decode(payload))
    assert outcome(lambda: new.row(payload)) == expected
    if expected[0] == "row":  # `update_full` builds the instance RowChange's __init__ would
        got = new.row(payload)
        made = RowChange(got.table, got.op, got.before, got.after)
        assert type(got) is RowChange and list(vars(got).items()) == list(vars(made).items())
        _FULL_ROWS.append(len(cols))
    try:  # the generated reader itself; what it leaves (a date beyond Python's, junk) `decode` reads
        before, after, _ = new._plans[1].read_pair(payload, 6)
    except Exception:
        return
    if not wide:
        for (name, _, _), s in zip(cols, same):
            if s and before[name] is not None and before[name] is not UNCHANGED:
                assert after[name] is before[name], name


_FULL_ROWS: list[int] = []


def test_the_update_differential_met_rows_of_both_readers() -> None:
    # (after the test above) whole 'U' 'O' messages decoded, narrow and past UNROLL_COLUMNS
    assert any(n <= pgoutput.UNROLL_COLUMNS for n in _FULL_ROWS) and any(n > pgoutput.UNROLL_COLUMNS for n in _FULL_ROWS)


def test_an_update_s_changed_value_is_converted_from_its_own_bytes() -> None:
    """By example: equal text in another column, an unchanged column beside changed ones of every inlined
    type, and the values that the inlined converters leave to `decode` (infinity, BC, no offset)."""
    cols = [("id", 23, True), ("n", 1700, False), ("ts", 1184, False), ("d", 1082, False), ("t", 1083, False),
            ("ts0", 1114, False), ("note", 25, False)]
    dec, ref = PgOutputDecoder(), old_pgoutput.PgOutputDecoder()
    for d in (dec, ref):
        d.decode(rel_payload(1, cols))
    old = [b"1", b"1.50", b"2026-12-07 06:21:02.12+00", b"2026-12-07", b"10:00:00", b"2026-12-07 06:00:00", b"x"]
    for new in (
        [b"1", b"1.5", b"2026-12-07 06:21:02.12+00", b"2026-12-08", b"10:00:00", b"2026-12-07 06:00:00", b"1.50"],
        [b"1", b"1.50", b"infinity", b"0044-03-15 BC", b"24:00:00", b"-infinity", b"x"],
        [b"1", b"NaN", b"2026-12-07 06:21:02", b"2026-12-07", b"10:00:00", b"2026-12-07 06:00:00", None],
        [b"1", b"1.50", b"2026-12-07 06:21:02.12+02", b"2026-12-07", b"10:00:00.5", b"2026-12-07 06:00:00", UNCHANGED],
    ):
        payload = b"U" + struct.pack(">I", 1) + b"O" + tup(*old) + b"N" + tup(*new)
        assert outcome(lambda: dec.row(payload)) == outcome(lambda: ref.decode(payload))
    change = dec.row(b"U" + struct.pack(">I", 1) + b"O" + tup(*old) + b"N" + tup(*[old[0], b"1.5", *old[2:]]))
    assert change.after is not None and change.before is not None
    assert change.after["n"] == change.before["n"] and change.after["n"] is not change.before["n"]
    assert str(change.after["n"]) == "1.5" and str(change.before["n"]) == "1.50"  # each from its own bytes
    assert all(change.after[c] is change.before[c] for c in ("id", "ts", "d", "t", "ts0", "note"))
    assert change.after["ts"].tzinfo is timezone.utc
