"""sources/binlogfast: a rows event built from the constants remembered for its table id (_rows_consts) is the
event built from scratch, whatever changed between two events: the table map of the id (an ALTER TABLE re-maps
it), the reader's table_map after a rotate, the format description, the server kind, the filters' verdict.

No server: the reader's state is set by hand and `_rows` is given packets made here (header, post-header,
columns-present bitmaps, a few row bytes); the reader that remembers and one that forgets before every event
must give equal events (attributes and the wrapper's) or the same refusal.
"""
from __future__ import annotations

import random
import struct
from typing import Any

from hypothesis import event as outcome, given, settings, strategies as st
from pymysqlreplication.constants.BINLOG import (DELETE_ROWS_EVENT_V1, UPDATE_ROWS_EVENT_V2, WRITE_ROWS_EVENT_V1,
                                                 WRITE_ROWS_EVENT_V2)
from pymysql.protocol import MysqlPacket
from pymysqlreplication.row_event import UpdateRowsEvent
from pymysqlreplication.table import Table

from replicator.sources import binlogfast
from replicator.sources.binlogfast import FastBinLogStreamReader
from replicator.sources.rowdecode import RowDecoder
from tests.unit.test_rowdecode import WILD, assert_same, columns_all, encode_image, encoder

TYPES = [WRITE_ROWS_EVENT_V2, UPDATE_ROWS_EVENT_V2, WRITE_ROWS_EVENT_V1, DELETE_ROWS_EVENT_V1]


class Ctl:
    charset = "utf8mb4"

    def __init__(self, dbms: str) -> None:
        self.dbms = dbms

    def _get_dbms(self) -> str:
        return self.dbms


class Packet:
    def __init__(self, data: bytes) -> None:
        self._data, self._position = data, 0


def reader(ctl: Ctl) -> FastBinLogStreamReader:
    r = FastBinLogStreamReader(connection_settings={}, server_id=1, enable_logging=False,
                               only_tables=["t1", "t2", "t3"], only_schemas=["erp"])
    assert r._fast
    r._ctl_connection = ctl
    r.dbms = "mariadb"
    return r


def packet(event_type: int, table_id: int, ncols: int, ts: int) -> tuple[Packet, bytes]:
    v2 = event_type in (WRITE_ROWS_EVENT_V2, UPDATE_ROWS_EVENT_V2)
    blen = (ncols + 7) // 8
    bitmaps = b"\xff" * blen * (2 if event_type == UPDATE_ROWS_EVENT_V2 else 1)
    body = (table_id.to_bytes(6, "little") + struct.pack("<H", 1) + (struct.pack("<H", 2) if v2 else b"")
            + bytes([ncols]) + bitmaps + b"\x00\x01\x02")
    data = b"\x00" + struct.pack("<IBIIIH", ts, event_type, 7, 19 + len(body), 1000 + ts, 0) + body
    return Packet(data), data


def build(r: FastBinLogStreamReader, event_type: int, table_id: int, ncols: int, ts: int) -> Any:
    pkt, data = packet(event_type, table_id, ncols, ts)
    spec = binlogfast._ROWS_TYPES[event_type]
    ts_, et, sid, esize, lpos, flags = binlogfast._HEADER(data, 1)
    event = r._rows(spec, pkt, data, len(data), ts_, et, sid, esize, lpos, flags)
    if event is None or event is binlogfast._DROPPED:
        return event, pkt._position
    wrapper = {k: v for k, v in vars(event.packet).items() if k not in ("event", "packet")}
    attrs = {k: v for k, v in vars(event).items() if k != "packet"}
    # the reader's own objects, not equal copies of them
    attrs["table_map"] = attrs["table_map"] is r.table_map
    attrs["_ctl_connection"] = attrs["_ctl_connection"] is r._ctl_connection
    return attrs, wrapper, event.packet.event is event, pkt._position


EVENT = st.tuples(st.just("event"), st.sampled_from(TYPES), st.integers(1, 2), st.integers(0, 3))
MAP = st.tuples(st.just("map"), st.integers(1, 2), st.sampled_from(["t1", "t2", "other"]), st.integers(1, 20))
STEP = st.one_of(
    EVENT, EVENT, EVENT, MAP, MAP,
    *(st.tuples(st.just(what)) for what in ("rotate", "format", "dbms", "ctl", "version")))


@settings(max_examples=500, deadline=None)
@given(st.lists(STEP, max_size=30))
def test_remembered_rows_constants_build_the_same_event(steps: list[tuple[Any, ...]]) -> None:
    ctl = Ctl("mariadb")
    remembering, forgetting = reader(ctl), reader(ctl)
    for table_id in (1, 2):
        remembering.table_map[table_id] = forgetting.table_map[table_id] = Table(
            table_id, "erp", f"t{table_id}", [object()] * 3, primary_key="id")
    ts = 1_700_000_000
    for step in steps:
        ts += 1
        if step[0] == "event":
            _, event_type, table_id, extra = step
            table = remembering.table_map.get(table_id)
            ncols = len(table.columns) if table is not None else 1
            forgetting._rows_consts.clear()
            assert build(remembering, event_type, table_id, ncols, ts) == build(forgetting, event_type, table_id,
                                                                                  ncols, ts)
            continue
        # the same change to both readers' state, with the same new objects (events compare equal)
        if step[0] == "map":  # a table map (re)registers the id: a new Table, as a parse makes
            new_table = Table(step[1], "erp", step[2], [object()] * step[3], primary_key="id")
        elif step[0] == "ctl":  # a new control connection
            ctl = Ctl(ctl.dbms)
        lengths = [8] * 40
        for r in (remembering, forgetting):
            if step[0] == "map":
                r.table_map[step[1]] = new_table
            elif step[0] == "rotate":
                r.table_map = dict(r.table_map)
            elif step[0] == "format":
                r._BinLogStreamReader__post_header_lengths = lengths
            elif step[0] == "ctl":
                r._ctl_connection = ctl
            elif step[0] == "dbms":
                r.dbms = "mysql" if r.dbms == "mariadb" else "mariadb"
            else:
                r.mysql_version = (10, 11, ts % 7)


def test_an_id_re_mapped_by_alter_table_gets_its_new_table() -> None:
    """ALTER TABLE between two transactions: the same table id, a new table map (here: another column count)."""
    ctl = Ctl("mariadb")
    remembering, forgetting = reader(ctl), reader(ctl)
    for ts, ncols in ((1, 3), (2, 3), (3, 4), (4, 4)):
        if ts in (1, 3):
            table = Table(5, "erp", "t1", [object()] * ncols, primary_key="id")
            remembering.table_map[5] = forgetting.table_map[5] = table
        forgetting._rows_consts.clear()
        got = build(remembering, UPDATE_ROWS_EVENT_V2, 5, ncols, ts)
        assert got == build(forgetting, UPDATE_ROWS_EVENT_V2, 5, ncols, ts)
        assert got[0]["columns"] is table.columns and got[0]["number_of_columns"] == ncols


# --- the table-map shortcut in fetchone (the same bytes as the id's last registered map) ---

class Packets:
    """The stream connection's packets, as PacketReader gives them."""

    def __init__(self, conn: Any, packets: list[Packet]) -> None:
        self.conn, self.packets = conn, packets

    def read(self) -> Packet:
        return self.packets.pop(0)

    def read_data(self) -> bytes:
        data: bytes = self.packets.pop(0)._data
        return data


def stream_reader(ctl: Ctl) -> FastBinLogStreamReader:
    from pymysqlreplication.event import MariadbGtidEvent, XidEvent
    r = FastBinLogStreamReader(connection_settings={}, server_id=1, enable_logging=False,
                               only_events=[MariadbGtidEvent, XidEvent])
    assert r._fast and not r._table_map_events
    r._ctl_connection = ctl
    r.dbms = "mariadb"
    r._BinLogStreamReader__connected_stream = True
    r._BinLogStreamReader__connected_ctl = True  # type: ignore[attr-defined]
    r._stream_connection = object()
    return r


def table_map_packet(table_id: int, variant: int, ts: int) -> Packet:
    from pymysqlreplication.constants.BINLOG import TABLE_MAP_EVENT
    body = table_id.to_bytes(6, "little") + b"\x00\x00\x03erp\x00\x02t1\x00" + bytes([variant]) * (3 + variant % 2)
    return Packet(b"\x00" + struct.pack("<IBIIIH", ts, TABLE_MAP_EVENT, 7, 19 + len(body), 100 + ts, 0) + body
                  + b"\x01\x02\x03\x04")  # the packet goes on after the event (a checksum): part of the key


def xid_packet(ts: int) -> Packet:
    from pymysqlreplication.constants.BINLOG import XID_EVENT
    return Packet(b"\x00" + struct.pack("<IBIIIH", ts, XID_EVENT, 7, 27, 200 + ts, 0) + struct.pack("<Q", ts))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 2), st.booleans(), st.booleans()), max_size=30))
def test_a_repeated_table_map_registers_what_the_cache_does(steps: list[tuple[int, int, bool, bool]]) -> None:
    """fetchone's shortcut for a table map with the same bytes as its id's last one registers the same table and
    consumes as much as _table_map's cache hit: a reader that forgets its shortcuts before every event agrees,
    whatever the sequence of ids and re-maps (an ALTER TABLE: the same id, other bytes, another table)."""
    ctl = Ctl("mariadb")
    readers = stream_reader(ctl), stream_reader(ctl)
    tables: dict[tuple[int, int], Table] = {}
    for ts, (table_id, variant, lean, rotate) in enumerate(steps, 1):
        tables.setdefault((table_id, variant), Table(table_id, "erp", "t1", [object()], primary_key="id"))
        seen = []
        for n, r in enumerate(readers):
            pkt = table_map_packet(table_id, variant, ts)
            for (tid, var), table in tables.items():  # what parsing each map once left in the cache
                p = table_map_packet(tid, var, ts)
                body_len = struct.unpack_from("<I", p._data, 10)[0] - 19
                key = (p._data[20:20 + body_len], len(p._data) - 20 - body_len)
                r._table_maps_format = (r._BinLogStreamReader__post_header_lengths, r.mysql_version)
                r._table_maps[key] = ({"table_id": tid, "table_obj": table}, body_len)
            if n == 1:
                r._last_table_maps.clear()
            if rotate:  # the library's rotate with a timestamp: a new, empty table_map
                r.table_map = {}
            r._packets = Packets(r._stream_connection, [pkt, xid_packet(ts)])
            event = r.fetchone(lean)
            seen.append((event if lean else type(event).__name__, pkt._position, r.log_pos, r.fast_events,
                         dict(r.table_map)))
        assert seen[0] == seen[1]
        assert seen[0][4][table_id] is tables[(table_id, variant)]
    assert readers[0].fast_events == 2 * len(steps)


# --- fetchone(lean=True)'s rows: LEAN_ROWS tuples against the event and RowDecoder.decode -----------------------

ALL_COLUMNS = columns_all()  # every column type the decoder knows, with its metadata (tests/unit/test_rowdecode)
ALL_ENCODERS = [encoder(c) for c in ALL_COLUMNS]
ROWS_TYPES = sorted(binlogfast._ROWS_TYPES)
BINLOG_OPTIONS = dict(utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True,
                      exact_values=True)  # BinlogSource's


def rows_packet(event_type: int, table_id: int, ncols: int, bitmap: bytes, body: bytes,
                checksum: bool) -> tuple[Any, bytes]:
    v2 = binlogfast._ROWS_TYPES[event_type][2]
    bitmaps = bitmap * (2 if binlogfast._ROWS_TYPES[event_type][0] is UpdateRowsEvent else 1)
    rest = (table_id.to_bytes(6, "little") + struct.pack("<H", 1) + (struct.pack("<H", 2) if v2 else b"")
            + bytes([ncols]) + bitmaps + body + (b"\x01\x02\x03\x04" if checksum else b""))
    data = b"\x00" + struct.pack("<IBIIIH", 1_700_000_000, event_type, 7, 19 + len(rest), 5000, 0) + rest
    return MysqlPacket(data, "utf8"), data  # PyMySQL's: what decode() reads the body from


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2 ** 32), event_type=st.sampled_from(ROWS_TYPES), width=st.integers(1, 14),
       null_rate=st.sampled_from([0.0, 0.3, 0.9]), wild=st.booleans(),
       damage=st.sampled_from(["none", "none", "none", "truncate", "extra", "bitmap", "ncols"]),
       checksum=st.booleans(), ignore_errors=st.booleans(), paused=st.sampled_from([False, False, False, True]))
def test_lean_rows_are_what_the_event_path_decodes(seed: int, event_type: int, width: int, null_rate: float,
                                                   wild: bool, damage: str, checksum: bool, ignore_errors: bool,
                                                   paused: bool) -> None:
    """A rows event of random columns and values (odd ones the library rejects, damaged bodies, partial bitmaps
    included): _rows(lean=True) gives a LEAN_ROWS tuple exactly when RowDecoder.decode takes the event built the
    usual way, with the same pairs (value classes included), zero-date count, packet position and counts;
    paused (an echo whose rows the caller drops), dropped; otherwise the very event the usual way builds,
    untouched."""
    rnd = random.Random(seed)
    picked = rnd.sample(range(len(ALL_COLUMNS)), width)
    columns = [ALL_COLUMNS[i] for i in picked]
    cls = binlogfast._ROWS_TYPES[event_type][0]
    images = rnd.randint(1, 3) * (2 if cls is UpdateRowsEvent else 1)
    WILD["on"] = wild
    try:
        body = b"".join(encode_image(rnd, columns, [ALL_ENCODERS[i] for i in picked], null_rate)
                        for _ in range(images))
    finally:
        WILD["on"] = False
    bitmap = b"\xff" * ((width + 7) // 8)
    ncols = width
    if damage == "truncate":
        body = body[:-rnd.randint(1, min(3, len(body)))]
    elif damage == "extra":
        body += b"\x00"
    elif damage == "bitmap":
        bit = rnd.randrange(width)
        bitmap = (int.from_bytes(bitmap, "little") & ~(1 << bit)).to_bytes(len(bitmap), "little")
    elif damage == "ncols" and width < 250:
        ncols = width + 1  # a column count the table map does not have (bitmaps of the same length, mostly)
    table = Table(5, "erp", "t1", columns, primary_key="id")
    ctl = Ctl("mariadb")
    lean_reader, event_reader = reader(ctl), reader(ctl)
    lean_decoder, event_decoder = RowDecoder(**BINLOG_OPTIONS), RowDecoder(**BINLOG_OPTIONS)
    for r in (lean_reader, event_reader):
        r.table_map[5] = table
        r._BinLogStreamReader__use_checksum = checksum
        r._BinLogStreamReader__ignore_decode_errors = ignore_errors
    lean_reader.row_decoder = lean_decoder
    lean_reader.lean_rows_wanted = lambda schema, name, cols: ("handle", schema, name, cols is table.columns)
    lean_reader.lean_rows_paused = paused
    spec = binlogfast._ROWS_TYPES[event_type]
    lean_pkt, data = rows_packet(event_type, 5, ncols, bitmap, body, checksum)
    event_pkt, _ = rows_packet(event_type, 5, ncols, bitmap, body, checksum)
    header = binlogfast._HEADER(data, 1)
    got = lean_reader._rows(spec, lean_pkt, data, len(data), *header, lean=True)
    event = event_reader._rows(spec, event_pkt, data, len(data), *header)
    assert event is not None and event is not binlogfast._DROPPED
    expected = event_decoder.decode(event)
    outcome("lean" if got.__class__ is tuple else "paused" if paused else
            f"declined: {(event_decoder.last_fallback or '').split(':')[0]}")
    if paused:
        # the caller drops a paused (echo) transaction's rows unread: dropped, nothing built, nothing decoded
        assert got is binlogfast._DROPPED
        assert lean_reader.lean_rows == 0 and lean_decoder.decoded_events == 0 and lean_decoder.fallback_events == 0
        return
    if got.__class__ is tuple:
        assert expected is not None, f"the lean path took what decode() refused: {event_decoder.last_fallback}"
        assert got[:3] == (binlogfast.LEAN_ROWS, ("handle", "erp", "t1", True), cls)
        assert_same(got[3], expected[0], "pairs")
        assert got[4] == expected[1]
        assert lean_pkt._position == event_pkt._position == len(data) - (4 if checksum else 0)
        assert lean_reader.lean_rows == 1 and lean_decoder.decoded_events == event_decoder.decoded_events == 1
        assert lean_decoder.fallback_events == 0
        return
    # declined: the event the usual way, nothing consumed, and decode() on it does what it did on the other
    assert expected is None, "the lean path declined an event decode() takes"
    assert lean_reader.lean_rows == 0 and lean_decoder.decoded_events == 0 and lean_decoder.fallback_events == 0
    assert {k: v for k, v in vars(got).items() if k != "packet"} == \
           {k: v for k, v in vars(event).items() if k != "packet"}
    again = lean_decoder.decode(got)
    assert (again is None) is (expected is None) and lean_decoder.last_fallback == event_decoder.last_fallback
    if expected is not None:
        assert_same(again[0], expected[0], "pairs")
        assert again[1] == expected[1]
    assert lean_pkt._position == event_pkt._position
