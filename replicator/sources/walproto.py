"""The replication protocol's CopyData messages, read and answered by us instead of by psycopg2.

Why not `ReplicationCursor.read_message()`: psycopg2 answers the server's keepalives itself and,
once every data message it handed out has been acknowledged with `send_feedback`, it moves the
flush position it reports up to the keepalive's WAL end ("smart feedback", psycopg2 >= 2.8.3; in
pq_read_replication_message). While the target hangs and PostgreSQL writes WAL that publishes
nothing, that confirms the slot past the target's checkpoint; the next start then sees a slot ahead
of the checkpoint, which is also what lost changes look like, and has to stop (exit 79).

So psycopg2 still opens the connection and runs START_REPLICATION, and this module reads and writes
the CopyData messages through libpq itself, on the PGconn psycopg2 exposes (`pgconn_ptr`). The only
flush position the server ever hears is the one given to `confirm`, which the pipeline calls only
after the target committed that position: the slot can never be ahead of the target's checkpoint
because of us.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import time
from typing import Any, NamedTuple

import psycopg2

from replicator.errors import FatalError

_PG_EPOCH = 946684800  # 2000-01-01 in Unix seconds: the protocol's timestamps count from there
_PGRES_FATAL_ERROR = 7
_XLOGDATA_HEADER = 1 + 8 + 8 + 8  # 'w', data start, WAL end, send time
_WAL_END = struct.Struct("!Q")
# data messages taken from libpq's buffer per read_batch: bounds the list (the buffer itself is
# bounded by what one PQconsumeInput took from the socket) and how long a stop waits
BATCH_LIMIT = 256
_lib: Any = None


class XLogData(NamedTuple):
    data_start: int
    wal_end: int
    payload: bytes


def _libpq() -> Any:
    """The libpq psycopg2 itself runs on (psycopg2-binary bundles its own): one PGconn, one library."""
    global _lib
    if _lib is not None:
        return _lib
    loaded: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                name = line.rsplit(None, 1)[-1]
                if "/libpq" in name and ".so" in name and name not in loaded:
                    loaded.append(name)
    except OSError:
        pass
    # psycopg2-binary's own copy lives next to the package (site-packages/psycopg2_binary.libs)
    site = os.path.dirname(os.path.dirname(os.path.abspath(psycopg2.__file__)))
    own = [p for p in loaded if p.startswith(site + os.sep)]
    path = own[0] if own else loaded[0] if len(loaded) == 1 else None
    if path is None and not loaded:
        path = ctypes.util.find_library("pq")
    if path is None:
        raise FatalError("cannot tell which libpq library psycopg2 uses (needed to read the WAL stream): "
                         + (", ".join(loaded) if loaded else "none found"))
    lib = ctypes.CDLL(path)
    vp, i, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    for name, args, res in (
        ("PQconsumeInput", [vp], i), ("PQgetCopyData", [vp, ctypes.POINTER(vp), i], i),
        ("PQfreemem", [vp], None), ("PQputCopyData", [vp, cp, i], i), ("PQflush", [vp], i),
        ("PQerrorMessage", [vp], cp), ("PQgetResult", [vp], vp), ("PQresultStatus", [vp], i),
        ("PQresultErrorMessage", [vp], cp), ("PQclear", [vp], None), ("PQsocket", [vp], i),
    ):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _lib = lib
    return lib


def _per_message(lib: Any) -> tuple[Any, Any, Any]:
    """The three C calls `read_batch` makes per message -- PQgetCopyData, ctypes' string_at, PQfreemem --
    without ctypes' per-argument conversion: function pointers of their own with no `argtypes` (each
    argument is already a ctypes pointer or a small int, passed as it is; PQgetCopyData's int result is
    ctypes' default `restype`), and string_at's C function without the Python function around it.
    Measured 0.55 -> 0.34 us a libpq call, 0.42 -> 0.33 for string_at: ~0.5 us a row in the reader.
    A library without item access (the tests' fake) keeps its own attributes."""
    string_at = getattr(ctypes, "_string_at", ctypes.string_at)  # string_at's own C function (CPython)
    if not isinstance(lib, ctypes.CDLL):
        return lib.PQgetCopyData, lib.PQfreemem, string_at
    get, free = lib["PQgetCopyData"], lib["PQfreemem"]  # new function objects: `lib`'s keep their argtypes
    get.restype, free.restype = ctypes.c_int, None
    return get, free, string_at


class CopyStream:
    """A started logical replication stream: data messages out, our own feedback in.

    Use from one thread only (the reader's), like the psycopg2 connection underneath.
    """

    def __init__(self, db: Any, confirmed: int, status_interval: float = 5.0):
        self._lib = _libpq()
        self._db = db
        self._pg = ctypes.c_void_p(db.pgconn_ptr)
        if self._lib.PQsocket(self._pg) != db.fileno():
            raise FatalError("the libpq found in this process is not the one psycopg2 uses")
        self.status_interval = status_interval
        self.wal_end = 0  # the server's WAL end as of the last message (data or keepalive)
        self.io_time = time.time()  # when the last message arrived (Unix time)
        # the flush position we report: the checkpoint we started from, then only `confirm` moves it
        self.confirmed = confirmed
        # a keepalive asked for a reply while the WAL end was ahead of what we confirm: a server in
        # shutdown waits for us to confirm its WAL end; the caller decides how long to let it wait
        self.wait_asked_at: float | None = None
        self._asked_end = 0
        self._feedback_at = 0.0
        self._buf = ctypes.c_void_p()  # one out-parameter for every PQgetCopyData call
        self._buf_ref = ctypes.byref(self._buf)
        self._get, self._free, self._string_at = _per_message(self._lib)
        self._deferred: psycopg2.OperationalError | None = None  # see read_batch

    def fileno(self) -> int:
        return int(self._db.fileno())

    def read(self) -> XLogData | None:
        """The next data message, or None when none is buffered (then wait on `fileno`)."""
        if time.monotonic() - self._feedback_at >= self.status_interval:
            self._feedback(reply=False)
        lib, pg, buf = self._lib, self._pg, self._buf
        consumed = False
        while True:
            n = lib.PQgetCopyData(pg, self._buf_ref, 1)
            if n == 0:
                if consumed:
                    return None
                # libpq's socket is non-blocking: this takes what has arrived and never waits
                if not lib.PQconsumeInput(pg):
                    raise psycopg2.OperationalError(self._error())
                consumed = True
                continue
            if n == -2:
                raise psycopg2.OperationalError(self._error())
            if n == -1:
                raise psycopg2.OperationalError(self._end_of_copy())
            try:
                data = ctypes.string_at(buf, n)
            finally:
                lib.PQfreemem(buf)
            consumed = True
            self.io_time = time.time()
            kind = data[:1]
            if kind == b"w":
                if n < _XLOGDATA_HEADER:
                    raise psycopg2.OperationalError("replication data message header too small")
                start, end = struct.unpack_from("!QQ", data, 1)
                self.wal_end = max(self.wal_end, end)
                return XLogData(start, end, data[_XLOGDATA_HEADER:])
            self._keepalive(data, n)

    def read_batch(self, limit: int = BATCH_LIMIT) -> list[bytes]:
        """The payloads of every data message libpq holds now (at most `limit`), in order; [] when none
        is buffered (then wait on `fileno`). What `read` does message by message, with the per-message
        clock reads, header tuple and attribute writes done once per batch: the reader thread's
        per-transaction cost (issue 14). Keepalives are answered as `read` answers them. An error met
        after some data messages is raised by the next call, after those were handed over, as a
        sequence of `read` calls would."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            raise deferred
        if time.monotonic() - self._feedback_at >= self.status_interval:
            self._feedback(reply=False)
        lib, pg, buf, ref = self._lib, self._pg, self._buf, self._buf_ref
        get, free, string_at, unpack = self._get, self._free, self._string_at, _WAL_END.unpack_from
        out: list[bytes] = []
        consumed = seen = False
        wal_end = self.wal_end
        try:
            while len(out) < limit:
                n = get(pg, ref, 1)
                if n == 0:
                    if consumed:
                        break
                    # libpq's socket is non-blocking: this takes what has arrived and never waits
                    if not lib.PQconsumeInput(pg):
                        raise psycopg2.OperationalError(self._error())
                    consumed = True
                    continue
                if n == -2:
                    raise psycopg2.OperationalError(self._error())
                if n == -1:
                    raise psycopg2.OperationalError(self._end_of_copy())
                try:
                    data = string_at(buf, n)
                finally:
                    free(buf)
                seen = True
                if data[0] == 0x77:  # 'w'
                    if n < _XLOGDATA_HEADER:
                        raise psycopg2.OperationalError("replication data message header too small")
                    end = unpack(data, 9)[0]
                    if end > wal_end:
                        wal_end = end
                    out.append(data[_XLOGDATA_HEADER:])
                    continue
                self.wal_end = wal_end  # a keepalive's reply and checks see the WAL end so far
                self._keepalive(data, n)
                wal_end = self.wal_end
        except psycopg2.OperationalError as exc:
            if not out:
                raise
            self._deferred = exc
        finally:
            if seen:
                self.io_time = time.time()
                self.wal_end = max(self.wal_end, wal_end)  # a keepalive that then failed may have moved it
        return out

    def _keepalive(self, data: bytes, n: int) -> None:
        """A primary keepalive ('k'): note the server's WAL end, answer it when it asks; or an error."""
        if data[:1] != b"k":
            raise psycopg2.OperationalError(f"unrecognized replication message type {data[:1]!r}")
        if n < 18:
            raise psycopg2.OperationalError("replication keepalive message too small")
        end = struct.unpack_from("!Q", data, 1)[0]
        self.wal_end = max(self.wal_end, end)
        if data[17]:
            if end > self.confirmed and self.wait_asked_at is None:
                self.wait_asked_at, self._asked_end = time.monotonic(), end
            self._feedback(reply=False)

    def confirm(self, flush_lsn: int) -> None:
        """Report `flush_lsn` (committed in the target) as flushed, now. Never moves backwards."""
        if flush_lsn > self.confirmed:
            self.confirmed = flush_lsn
        self._feedback(reply=False)

    def _feedback(self, reply: bool) -> None:
        pos = self.confirmed
        if self.wait_asked_at is not None and pos >= self._asked_end:
            self.wait_asked_at = None
        now = int((time.time() - _PG_EPOCH) * 1_000_000)
        # write, flush and apply are all the committed position: nothing else is ever reported
        msg = b"r" + struct.pack("!QQQqB", pos, pos, pos, now, 1 if reply else 0)
        if self._lib.PQputCopyData(self._pg, msg, len(msg)) <= 0 or self._lib.PQflush(self._pg) != 0:
            raise psycopg2.OperationalError(self._error())
        self._feedback_at = time.monotonic()

    def _error(self) -> str:
        text = self._lib.PQerrorMessage(self._pg) or b""
        return text.decode("utf-8", "replace").strip() or "replication connection lost"

    def _end_of_copy(self) -> str:
        """The server ended the stream: its error if it sent one."""
        text = ""
        res = self._lib.PQgetResult(self._pg)
        for _ in range(8):  # a result or two, then NULL; bounded whatever the server sends
            if not res:
                break
            if self._lib.PQresultStatus(res) == _PGRES_FATAL_ERROR and not text:
                text = (self._lib.PQresultErrorMessage(res) or b"").decode("utf-8", "replace").strip()
            self._lib.PQclear(res)
            res = self._lib.PQgetResult(self._pg)
        if res:
            self._lib.PQclear(res)
        return text or "the server ended the replication stream"
