"""The WAL source's own replication protocol handling (sources/walproto.py): the server hears only the
flush positions we confirm, never the WAL end of a keepalive, whatever psycopg2 would have done.

libpq is replaced by a fake that hands out prepared CopyData messages and records what is sent.
"""
from __future__ import annotations

import ctypes
import struct
from typing import Any

import psycopg2
import pytest

from replicator.changes import LSN, TableRef
from replicator.config import Account, Connection, Secret
from replicator.loopguard import LoopGuard
from replicator.sources.wal import WalSource
from replicator.sources import walproto
from replicator.sources.walproto import CopyStream


class FakeLibpq:
    """Just enough of libpq for CopyStream: a queue of incoming CopyData messages, a list of sent ones."""

    def __init__(self) -> None:
        self.incoming: list[bytes] = []
        self.sent: list[bytes] = []
        self._keep: list[Any] = []  # buffers handed out must outlive string_at

    def PQgetCopyData(self, _pg: Any, buf_ref: Any, _async: int) -> int:
        if not self.incoming:
            return 0
        data = self.incoming.pop(0)
        buf = ctypes.create_string_buffer(data, len(data))
        self._keep.append(buf)
        buf_ref._obj.value = ctypes.addressof(buf)
        return len(data)

    def PQconsumeInput(self, _pg: Any) -> int:
        return 1

    def PQfreemem(self, _buf: Any) -> None:
        pass

    def PQputCopyData(self, _pg: Any, msg: bytes, n: int) -> int:
        self.sent.append(bytes(msg[:n]))
        return 1

    def PQflush(self, _pg: Any) -> int:
        return 0

    def PQerrorMessage(self, _pg: Any) -> bytes:
        return b"connection lost"


def stream(lib: FakeLibpq, confirmed: int) -> CopyStream:
    s = CopyStream.__new__(CopyStream)
    s._lib, s._db, s._pg = lib, None, ctypes.c_void_p()
    s.status_interval = 1e9  # only the feedback the test causes
    s.wal_end, s.io_time, s.confirmed = 0, 0.0, confirmed
    s.wait_asked_at, s._asked_end, s._feedback_at = None, 0, float("inf")
    s._buf = ctypes.c_void_p()
    s._buf_ref = ctypes.byref(s._buf)
    s._deferred = None
    s._get, s._free, s._string_at = walproto._per_message(lib)
    return s


def keepalive(wal_end: int, reply: bool) -> bytes:
    return b"k" + struct.pack("!QqB", wal_end, 0, 1 if reply else 0)


def xlogdata(start: int, end: int, payload: bytes) -> bytes:
    return b"w" + struct.pack("!QQq", start, end, 0) + payload


def flushed(msg: bytes) -> tuple[int, int, int, bool]:
    """(write, flush, apply, reply requested) of a standby status update."""
    assert msg[:1] == b"r" and len(msg) == 34
    write, flush, apply_, _ts, reply = struct.unpack("!QQQqB", msg[1:])
    return write, flush, apply_, bool(reply)


def test_a_keepalive_reply_reports_the_confirmed_position_not_the_wal_end() -> None:
    lib = FakeLibpq()
    s = stream(lib, confirmed=1000)
    lib.incoming = [keepalive(5000, reply=True)]
    assert s.read() is None  # keepalives are answered, never returned
    assert [flushed(m) for m in lib.sent] == [(1000, 1000, 1000, False)]
    assert s.wal_end == 5000 and s.confirmed == 1000


def test_data_messages_come_back_with_their_positions_and_move_nothing() -> None:
    lib = FakeLibpq()
    s = stream(lib, confirmed=1000)
    lib.incoming = [xlogdata(1200, 1300, b"Bpayload")]
    msg = s.read()
    assert msg is not None and (msg.data_start, msg.wal_end, msg.payload) == (1200, 1300, b"Bpayload")
    assert lib.sent == [] and s.confirmed == 1000


def test_confirm_sends_at_once_and_never_moves_backwards() -> None:
    lib = FakeLibpq()
    s = stream(lib, confirmed=1000)
    s.confirm(3000)
    s.confirm(2000)
    assert [flushed(m)[1] for m in lib.sent] == [3000, 3000]


def test_a_server_waiting_for_its_wal_end_is_noticed_until_we_confirm_it() -> None:
    lib = FakeLibpq()
    s = stream(lib, confirmed=1000)
    lib.incoming = [keepalive(5000, reply=True)]
    s.read()
    assert s.wait_asked_at is not None  # a shutting-down server waits for 5000
    s.confirm(4000)
    assert s.wait_asked_at is not None
    lib.incoming = [keepalive(6000, reply=False)]  # the WAL end moves on; what was asked for stays 5000
    s.read()
    s.confirm(5000)
    assert s.wait_asked_at is None


def test_an_unknown_message_is_an_error() -> None:
    lib = FakeLibpq()
    s = stream(lib, confirmed=0)
    lib.incoming = [b"z123"]
    with pytest.raises(psycopg2.OperationalError, match="unrecognized"):
        s.read()


def test_wal_stream_errors_name_the_capture_account() -> None:
    conn = Connection("crm", "postgresql", "pg.example.org", 5433, "crm",
                      apply=Account("repl_apply", Secret("a")), capture=Account("repl_capture", Secret("c")))
    source = WalSource(conn, "crm_to_erp", [TableRef("public", "t")], LoopGuard("replicator", "erp_to_crm"),
                       LSN(0), 100)
    text = str(source._classify(psycopg2.OperationalError("server closed the connection unexpectedly")))
    assert "repl_capture@pg.example.org:5433/crm" in text and "repl_apply" not in text


def test_the_per_message_calls_of_the_real_libpq_take_the_arguments_as_they_are() -> None:
    """`_per_message` on psycopg2's own libpq: PQgetCopyData without argtypes still reads the pointer
    arguments right (a NULL connection answers -2 and clears the out-parameter, as libpq documents),
    PQfreemem takes the c_void_p, string_at copies the bytes at an address."""
    get, free, string_at = walproto._per_message(walproto._libpq())
    buf = ctypes.c_void_p(12345)
    assert get(ctypes.c_void_p(), ctypes.byref(buf), 1) == -2
    assert buf.value is None
    free(buf)  # NULL: a no-op
    data = ctypes.create_string_buffer(b"w\x00abc", 5)
    assert string_at(ctypes.c_void_p(ctypes.addressof(data)), 5) == b"w\x00abc"
