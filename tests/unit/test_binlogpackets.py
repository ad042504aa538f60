"""mypackets: PacketReader against PyMySQL's own Connection._read_packet, on the same bytes.

Each case is a byte stream of MySQL packets (hypothesis: sizes across the 64 KiB buffer, OK/EOF/error
packets, a wrong or zero sequence number, a stream cut short or failing with an OSError, the socket
delivering it in arbitrary pieces). Both readers read it until they raise; they must return the same
packets and end with the same exception, the same next sequence number, the same socket timeouts and the
connection closed alike.
"""
from __future__ import annotations

import io
import socket
import struct
from typing import Any, Optional

import pymysql
from hypothesis import given, settings, strategies as st
from pymysql.connections import Connection

from replicator.mypackets import CHUNK, MAX_PACKET_LEN, PacketReader, packet as made_packet, usable


class Raw(io.RawIOBase):
    """A socket's bytes in the given pieces, then an OSError (if `fail`) or the end of the stream."""

    def __init__(self, data: bytes, pieces: list[int], fail: Optional[OSError]) -> None:
        self.data, self.pos, self.pieces, self.fail, self.calls = data, 0, pieces or [1 << 30], fail, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.pos >= len(self.data):
            if self.fail is not None:
                raise self.fail
            return 0
        n = min(len(b), self.pieces[self.calls % len(self.pieces)], len(self.data) - self.pos)
        self.calls += 1
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


class Sock:
    def __init__(self) -> None:
        self.timeouts: list[Any] = []
        self.closed = False

    def settimeout(self, value: Any) -> None:
        self.timeouts.append(value)

    def close(self) -> None:
        self.closed = True


def connection(data: bytes, pieces: list[int], fail: Optional[OSError], seq: int) -> Any:
    conn = Connection.__new__(Connection)
    conn._sock = Sock()
    conn._rfile = io.BufferedReader(Raw(data, pieces, fail), 16384)  # PyMySQL's makefile("rb") buffer
    conn._next_seq_id = seq
    conn._read_timeout, conn._current_timeout = 30, None
    conn._result = None
    conn.encoding = "utf8"
    return conn


def packet(payload: bytes, seq: int) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq % 256]) + payload


def run(read: Any, conn: Any) -> tuple[list[tuple[bytes, int]], Any]:
    got = []
    sock = conn._sock
    try:
        for _ in range(1000):
            p = read()
            assert type(p) is pymysql.protocol.MysqlPacket
            got.append((p._data, p._position))
        raise AssertionError("too many packets")
    except Exception as exc:  # noqa: BLE001 - the exception is what is compared
        end = (type(exc), exc.args)
    return got, (end, conn._next_seq_id, sock.timeouts, sock.closed, conn._sock is None, conn._rfile is None)


def same(data: bytes, pieces: list[int], fail: Optional[OSError], seq: int = 1) -> list[tuple[bytes, int]]:
    theirs = connection(data, pieces, fail, seq)
    ours = connection(data, pieces, fail, seq)
    assert usable(ours)
    expected = run(theirs._read_packet, theirs)
    got = run(PacketReader(ours).read, ours)
    assert got[1] == expected[1]
    assert got[0] == expected[0]
    return got[0]


ERROR = b"\xff" + struct.pack("<H", 1236) + b"#HY000" + b"Could not find first log file name in binary log index file"


@st.composite
def streams(draw: Any) -> tuple[bytes, list[int], Optional[OSError], int]:
    seq = draw(st.integers(0, 255))
    out = b""
    n = seq
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "big", "eof", "error", "empty", "badseq"]))
        if kind == "ok":
            payload = b"\x00" + draw(st.binary(max_size=300))
        elif kind == "big":
            payload = b"\x00" + bytes(draw(st.integers(CHUNK - 40, 3 * CHUNK)))
        elif kind == "eof":
            payload = b"\xfe" + draw(st.binary(max_size=8))
        elif kind == "error":
            payload = ERROR
        elif kind == "empty":
            payload = b""
        else:
            out += packet(b"\x00abc", draw(st.sampled_from([0, n + 2])))
            continue
        out += packet(payload, n)
        n += 1
    if draw(st.booleans()):
        out = out[:draw(st.integers(0, len(out)))]  # the connection lost mid-packet
    pieces = draw(st.lists(st.integers(1, 70000), max_size=5))
    fail = draw(st.sampled_from([None, socket.timeout("timed out"), ConnectionResetError(104, "reset")]))
    return out, pieces, fail, seq


@settings(max_examples=400, deadline=None)
@given(streams())
def test_same_packets_and_errors_as_pymysql(case: tuple[bytes, list[int], Optional[OSError], int]) -> None:
    same(*case)


@settings(max_examples=200, deadline=None)
@given(streams())
def test_read_data_is_the_packets_bytes(case: tuple[bytes, list[int], Optional[OSError], int]) -> None:
    """`read_data` (the binlog reader's lean events, the locked read) reads what `read` reads, raises what
    it raises and leaves the connection alike: its bytes made into a packet are PyMySQL's packet."""
    data, pieces, fail, seq = case
    theirs = connection(data, pieces, fail, seq)
    ours = connection(data, pieces, fail, seq)
    reader = PacketReader(ours)
    expected = run(theirs._read_packet, theirs)
    got = run(lambda: made_packet(reader.read_data()), ours)
    assert got == expected


def test_a_packet_of_16_mib_is_continued_by_the_next() -> None:
    long = b"\x00" + bytes(range(256)) * (MAX_PACKET_LEN // 256) + b"x" * (MAX_PACKET_LEN % 256 - 1)
    assert len(long) == MAX_PACKET_LEN
    data = (packet(long, 1) + packet(b"tail", 2) + packet(b"\x00next", 3)
            + packet(long, 4) + packet(b"", 5) + packet(b"\x00last", 6))
    got = same(data, [100000, 7], None)
    assert [len(d) for d, _ in got] == [MAX_PACKET_LEN + 4, 5, MAX_PACKET_LEN, 5]


def test_many_packets_are_read_with_few_socket_reads() -> None:
    """The point of it: a socket read per buffer of packets, not two buffered reads per packet."""
    data = b"".join(packet(b"\x00" + bytes(40), k + 1) for k in range(1000))
    conn = connection(data, [], None, 1)
    reader = PacketReader(conn)
    for _ in range(1000):
        assert reader.read()._data == b"\x00" + bytes(40)
    assert conn._rfile.raw.calls <= len(data) // CHUNK + 2


def test_a_connection_it_cannot_read_is_read_by_pymysql() -> None:
    """FastBinLogStreamReader reads a connection PacketReader cannot (an older PyMySQL's attributes) through
    PyMySQL's own _read_packet, and makes a new reader when the stream connection is replaced (reconnect)."""
    from replicator.sources.binlogfast import FastBinLogStreamReader

    data = packet(b"\x00one", 1) + packet(b"\x00two", 2)
    reader = FastBinLogStreamReader(connection_settings={}, server_id=5, enable_logging=False)
    reader._stream_connection = connection(data, [], None, 1)
    ours = reader._packet_reader()
    assert isinstance(ours, PacketReader) and ours.read()._data == b"\x00one"
    old = connection(data, [], None, 1)
    del old._current_timeout  # as a PyMySQL before 1.1
    assert not usable(old)
    old._read_packet = lambda: "pymysql's packet"
    reader._stream_connection = old
    theirs = reader._packet_reader()
    assert not isinstance(theirs, PacketReader) and theirs.conn is old and theirs.read() == "pymysql's packet"
