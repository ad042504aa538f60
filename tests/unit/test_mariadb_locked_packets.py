"""appliers/mariadb `_LockedRows._read_rowdata_packet` (row packets read through mypackets.PacketReader)
against PyMySQL's own `MySQLResult._read_rowdata_packet`, on the same bytes: the same rows, the same
result and connection state, the same exception; and bytes after the result's EOF close the connection.

tests/integration/test_mariadb_read_rows.py does the same on a real server."""
from __future__ import annotations

import struct
from typing import Any, Optional

import pytest
from hypothesis import given, settings, strategies as st
from pymysql import err
from pymysql.connections import MySQLResult
from pymysql.constants import CR

from replicator.appliers.mariadb import _LockedRows
from tests.unit.test_binlogpackets import ERROR, connection, packet

EOF = b"\xfe\x00\x00\x22\x00"  # no warnings, server_status AUTOCOMMIT | NO_INDEX_USED


def _lenenc(value: Optional[bytes]) -> bytes:
    if value is None:
        return b"\xfb"
    n = len(value)
    if n < 251:
        head = bytes([n])
    elif n < 1 << 16:
        head = b"\xfc" + struct.pack("<H", n)
    else:
        head = b"\xfd" + struct.pack("<I", n)[:3]
    return head + value


def _stream(rows: list[list[Optional[bytes]]], end: bytes, extra: bytes, seq: int) -> bytes:
    out = b"".join(packet(b"".join(_lenenc(v) for v in row), seq + i) for i, row in enumerate(rows))
    return out + (packet(end, seq + len(rows)) if end else b"") + extra


def _read(cls: type, data: bytes, pieces: list[int], fail: Optional[OSError], ncols: int) -> tuple[Any, ...]:
    conn = connection(data, pieces, fail, 3)
    result = cls(conn)
    result.converters = [("utf8", None)] * ncols
    try:
        result._read_rowdata_packet()
        end: Any = None
    except Exception as exc:  # noqa: BLE001 - the exception is what is compared
        end = (type(exc), exc.args)
    rows = getattr(result, "rows", None)
    return (rows, result.affected_rows, result.warning_count, result.has_next, result.connection is None, end,
            conn._next_seq_id, conn._sock is None, conn._sock and conn._sock.timeouts)


# valid UTF-8 (a row that does not decode is test_a_row_that_fails_to_parse_closes_the_connection's)
values = (st.none() | st.sampled_from([0, 1, 250, 251, 300, 70000]).map(lambda n: b"v" * n)
          | st.text(max_size=8).map(str.encode))


@settings(deadline=None)  # a 70000-byte value delivered two bytes a time is slow, not wrong
@given(ncols=st.integers(1, 4), data=st.data(), ending=st.sampled_from(["eof", "error", "cut", "oserror"]),
       pieces=st.lists(st.integers(1, 70000), max_size=4))
def test_the_same_as_pymysql(ncols: int, data: Any, ending: str, pieces: list[int]) -> None:
    rows = data.draw(st.lists(st.lists(values, min_size=ncols, max_size=ncols), max_size=12))
    end = {"eof": EOF, "error": ERROR, "cut": b"", "oserror": b""}[ending]
    fail = OSError("reset") if ending == "oserror" else None
    raw = _stream(rows, end, b"", 3)
    theirs = _read(MySQLResult, raw, pieces, fail, ncols)
    ours = _read(_LockedRows, raw, pieces, fail, ncols)
    assert ours == theirs
    if ending == "eof":
        assert ours[0] is not None and len(ours[0]) == len(rows) and ours[5] is None


@pytest.mark.parametrize("extra", [b"\x00", packet(EOF, 5)])
def test_bytes_after_the_result_close_the_connection(extra: bytes) -> None:
    """A further packet after the EOF (a second result, say) is nobody's: the connection is closed and
    the read fails as a lost connection (retried by the applier), never silently dropped."""
    raw = _stream([[b"a"], [None]], EOF, extra, 3)
    conn = connection(raw, [], None, 3)
    result = _LockedRows(conn)
    result.converters = [("utf8", None)]
    with pytest.raises(err.OperationalError) as raised:
        result._read_rowdata_packet()
    assert raised.value.args[0] == CR.CR_COMMANDS_OUT_OF_SYNC and "bytes after" in raised.value.args[1]
    assert conn._sock is None  # closed


def test_a_row_that_fails_to_parse_closes_the_connection() -> None:
    """The rest of a result read half-way is in our buffer: the connection cannot be used again."""
    raw = _stream([[b"\xff\xfe"], [b"b"]], EOF, b"", 3)
    conn = connection(raw, [], None, 3)
    result = _LockedRows(conn)
    result.converters = [("utf8", None)]
    with pytest.raises(UnicodeDecodeError):
        result._read_rowdata_packet()
    assert conn._sock is None
