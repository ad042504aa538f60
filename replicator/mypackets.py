"""A PyMySQL connection's packets (the binlog dump's, the locked read's rows), read with fewer calls than PyMySQL's.

PyMySQL's ``Connection._read_packet`` reads every packet in two buffered reads (the 4-byte header, then the
body), each through ``_read_bytes``, then builds a ``MysqlPacket`` and asks it whether it is an error: eleven
function calls a packet, and a single-row binlog transaction is four packets (GTID, table map, rows, Xid).
``PacketReader.read`` takes the same packets out of a buffer it fills with one ``read1`` of up to 64 KiB (all
the packets the server has sent so far, usually), in one call, and is otherwise PyMySQL's ``_read_packet``:

- the same ``MysqlPacket`` (PyMySQL's class, ``_data`` and ``_position`` set as its constructor sets them);
- the same read timeout (set on the socket when PyMySQL's would be) and sequence numbers (``_next_seq_id``
  checked and advanced; a wrong one raises PyMySQL's errors, after closing the connection as it does);
- packets of 16 MiB - 1 bytes continued by the next one, joined;
- an error packet raised through ``MysqlPacket.raise_for_error``, as PyMySQL does;
- a lost connection (an ``OSError``, or the end of the stream before a whole packet) closes the connection
  and raises ``OperationalError(2013, "Lost connection to MySQL server during query...")``, the error
  mysql-replication's reader and ours act on.

Two readers use it, each where the bytes buffered ahead can be nobody else's: the replication connection after
the dump started (sources/binlogfast.py: nothing else reads from it then), and the MariaDB applier's locked
read (appliers/mariadb.py ``_LockedRows``: the row packets and the EOF of one result, after which the server
sends nothing until the next command; it checks the buffer is empty then and closes the connection if not).
A connection whose PyMySQL lacks the attributes used here is read through its own ``_read_packet``.
"""
from __future__ import annotations

import struct
from typing import Any

from pymysql import err
from pymysql.constants import CR
from pymysql.protocol import MysqlPacket

_HEADER = struct.Struct("<HBB").unpack_from  # as PyMySQL: length (low 16 bits, high 8 bits), sequence number
MAX_PACKET_LEN = 2 ** 24 - 1  # a packet this long is continued by the next one
CHUNK = 65536  # bytes asked of the socket at a time (more when a packet needs more)
_NEEDED = ("_rfile", "_sock", "_next_seq_id", "_read_timeout", "_current_timeout", "_force_close", "_result",
           "encoding")
_new = object.__new__


def packet(data: bytes) -> Any:
    """PyMySQL's ``MysqlPacket(data, encoding)`` as its constructor leaves it, without the call's overhead."""
    made: Any = _new(MysqlPacket)
    made._data = data
    made._position = 0
    return made


def usable(conn: Any) -> bool:
    """Whether ``PacketReader`` can read this PyMySQL connection (else: its own ``_read_packet``)."""
    return all(hasattr(conn, name) for name in _NEEDED) and getattr(conn, "_rfile", None) is not None


class PacketReader:
    """PyMySQL's ``conn._read_packet()`` for one connection, buffered. Not thread-safe; one per connection."""

    __slots__ = ("conn", "_buf", "_pos")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._buf = b""
        self._pos = 0

    def read(self) -> Any:  # a MysqlPacket
        return packet(self.read_data())

    def read_data(self) -> bytes:
        """`read()`'s packet's bytes (its ``_data``), for a reader that needs no ``MysqlPacket`` (the binlog
        reader's lean events): the same reads, checks and errors, an error packet raised as ``read()`` does."""
        conn = self.conn
        # as PyMySQL: the socket's timeout is set only when it changed (settimeout releases the GIL)
        if conn._current_timeout != conn._read_timeout:
            conn._sock.settimeout(conn._read_timeout)
            conn._current_timeout = conn._read_timeout
        buf, pos = self._buf, self._pos
        parts: list[bytes] | None = None
        while True:
            if len(buf) - pos < 4:
                buf, pos = self._fill(buf, pos, 4)
            low, high, number = _HEADER(buf, pos)
            if number != conn._next_seq_id:
                self._buf, self._pos = b"", 0
                conn._force_close()
                if number == 0:  # MariaDB sends an error packet with sequence number 0 when it shuts down
                    raise err.OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
                raise err.InternalError(f"Packet sequence number wrong - got {number} expected {conn._next_seq_id}")
            conn._next_seq_id = (number + 1) % 256
            size = low + (high << 16)
            start = pos + 4
            if len(buf) - start < size:
                buf, start = self._fill(buf, start, size)
            pos = start + size
            data = buf[start:pos]
            if size < MAX_PACKET_LEN and parts is None:
                break
            if parts is None:
                parts = []
            parts.append(data)
            if size < MAX_PACKET_LEN:
                data = b"".join(parts)
                break
        self._buf, self._pos = buf, pos
        if data[0] == 0xFF:  # packet.is_error_packet() (an empty packet raises IndexError there too)
            result = conn._result
            if result is not None and result.unbuffered_active is True:
                result.unbuffered_active = False
            packet(data).raise_for_error()
        return data

    def _fill(self, buf: bytes, pos: int, need: int) -> tuple[bytes, int]:
        """(the unread bytes from pos on, followed by more from the socket: at least `need` in all, 0)."""
        parts = [buf[pos:]] if pos < len(buf) else []
        have = len(buf) - pos
        rfile = self.conn._rfile
        while have < need:
            try:
                chunk = rfile.read1(max(need - have, CHUNK))
            except OSError as exc:  # as PyMySQL's _read_bytes (EINTR is retried inside read1: PEP 475)
                self._lost()
                raise err.OperationalError(CR.CR_SERVER_LOST,
                                           f"Lost connection to MySQL server during query ({exc})")
            except BaseException:
                self._lost()
                raise
            if not chunk:
                self._lost()
                raise err.OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
            parts.append(chunk)
            have += len(chunk)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), 0

    def _lost(self) -> None:
        self._buf, self._pos = b"", 0
        self.conn._force_close()
