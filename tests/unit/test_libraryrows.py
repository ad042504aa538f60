"""A table the fast decoder leaves to mysql-replication (a GEOMETRY column) whose text holds a byte its
character set leaves undefined (latin1 0x81: no character of Python's cp1252): the library's rows are
read again with the byte kept, so the stop names the key and a quarantined table's row is queued as
`undecodable` like the fast decoder's own (tests/integration/test_type_edges.py runs both on MariaDB)."""
from __future__ import annotations

import struct
from typing import Any

import pytest
from pymysqlreplication.constants import FIELD_TYPE as T

from replicator.changes import Op, RowChange, TableRef, UndecodedRowChange
from replicator.config import Account, Connection, Secret
from replicator.errors import DecodeError
from replicator.loopguard import LoopGuard
from replicator.sources import libraryrows
from replicator.sources.binlog import BinlogSource
from replicator.changes import BinlogPosition
from tests.unit.test_rowdecode import col, fake_event

COLUMNS = [col(T.LONG, "id", is_primary=True), col(T.VARCHAR, "v", max_length=10, character_set_name="latin1"),
           col(T.GEOMETRY, "g", length_size=4, character_set_name="binary")]
TABLE = TableRef("db", "t")


def row(key: int, text: bytes) -> bytes:
    """One image: the NULL bitmap (g is NULL), id, v."""
    return b"\x04" + struct.pack("<i", key) + bytes([len(text)]) + text


BODY = row(1, b"one") + row(2, b"b\x81") + row(3, b"three")


def source(quarantine: bool) -> BinlogSource:
    acc = Account("u", Secret(""))
    conn = Connection("erp", "mariadb", "h", 3306, "db", acc, acc)
    return BinlogSource(conn, "erp_to_crm", [TABLE], LoopGuard("replicator", "erp_to_crm"), BinlogPosition("f", 4), 100,
                        quarantine_undecodable=frozenset({TABLE}) if quarantine else frozenset())


def test_the_library_cannot_read_it_and_the_reread_keeps_the_byte() -> None:
    ev = fake_event("write", COLUMNS, BODY)
    at = libraryrows.mark(ev)
    with pytest.raises(UnicodeDecodeError):
        ev.rows  # noqa: B018 - the library's own read fails in the middle of the event
    rows = libraryrows.reread(ev, at)
    assert rows is not None
    assert [r["values"]["v"] for r in rows] == ["one", b"b\x81".decode("cp1252", "surrogateescape"), "three"]
    assert ev.packet.read_bytes == len(BODY)  # read to the end once more, as a good event is


def test_a_packet_read_before_the_mark_is_not_reread() -> None:
    ev = fake_event("write", COLUMNS, BODY)
    ev.packet.read(1)
    ev.packet.unread(b"\x04")  # something sits in the library's unread buffer: no clean start to return to
    assert libraryrows.mark(ev) is None and libraryrows.reread(ev, None) is None


def test_a_quarantined_table_hands_the_row_on_as_undecodable_with_its_key() -> None:
    changes: list[Any] = source(quarantine=True)._changes(fake_event("write", COLUMNS, BODY), TABLE)
    good1, bad, good3 = changes
    assert good1 == RowChange(TABLE, Op.INSERT, None, {"id": 1, "v": "one", "g": None})
    assert good3 == RowChange(TABLE, Op.INSERT, None, {"id": 3, "v": "three", "g": None})
    assert isinstance(bad, UndecodedRowChange) and bad.column == "v"
    assert bad.after == {"id": 2, "v": "b\ufffd", "g": None}  # never written: the byte shown replaced
    assert bad.reason.startswith("table db.t, key (2,), column v: a value is not text of its character set "
                                 "latin1 (byte b'\\x81'"), bad.reason


def test_otherwise_the_stop_names_table_key_and_column() -> None:
    with pytest.raises(DecodeError) as info:
        source(quarantine=False)._changes(fake_event("write", COLUMNS, BODY), TABLE)
    assert str(info.value).startswith("table db.t, key (2,), column v: a value is not text of its character set "
                                      "latin1 (byte b'\\x81'"), str(info.value)
    assert "on_error: quarantine" in str(info.value)


def test_an_update_whose_old_image_holds_the_byte_goes_through_without_it() -> None:
    """The DBA's correction of the row: its old image cannot be read, its new one can."""
    body = row(2, b"b\x81") + row(2, b"b?")
    [change] = source(quarantine=True)._changes(fake_event("update", COLUMNS, body), TABLE)
    assert type(change) is RowChange and change.op is Op.UPDATE
    assert change.before == {"id": 2, "g": None} and change.after == {"id": 2, "v": "b?", "g": None}


# a table the library decodes (GEOMETRY) whose ENUM index lies past its members: the library's reader raises
# IndexError in the middle of the event (its enum_values are [""] + the members, as its table map makes them)
ENUMS = [col(T.LONG, "id", is_primary=True), col(T.DATE, "d"), col(T.ENUM, "e", size=1, enum_values=["", "a", "b"]),
         col(T.GEOMETRY, "g", length_size=4, character_set_name="binary")]


def enum_row(key: int, day: int, index: int) -> bytes:
    """One image of ENUMS: the NULL bitmap (g is NULL), id, d (2024-02-day), e."""
    return b"\x08" + struct.pack("<i", key) + (2024 << 9 | 2 << 5 | day).to_bytes(3, "little") + bytes([index])


def test_a_value_the_library_cannot_read_names_table_key_and_column() -> None:
    # the first row's 2024-02-30 is read as the first reading read it (an impossible date, never the failure)
    body = enum_row(1, 30, 1) + enum_row(2, 1, 7) + enum_row(3, 1, 2)
    with pytest.raises(DecodeError) as info:
        source(quarantine=False)._changes(fake_event("write", ENUMS, body), TABLE)
    assert str(info.value).startswith("table db.t, key (2,), column e: mysql-replication cannot decode a value of "
                                      "this rows event (IndexError: list index out of range)"), str(info.value)


def test_an_update_whose_new_image_cannot_be_read_is_named_by_its_old_images_key() -> None:
    columns = [ENUMS[2], ENUMS[1], ENUMS[0], ENUMS[3]]  # e before the key: the failing image holds no key yet

    def image(key: int, index: int) -> bytes:
        return b"\x08" + bytes([index]) + (2024 << 9 | 2 << 5 | 1).to_bytes(3, "little") + struct.pack("<i", key)

    with pytest.raises(DecodeError, match=r"^table db\.t, key \(5,\), column e: mysql-replication cannot decode"):
        source(quarantine=False)._changes(fake_event("update", columns, image(5, 1) + image(5, 9)), TABLE)
    with pytest.raises(DecodeError, match=r"^table db\.t, column e: mysql-replication cannot decode"):  # no key read
        source(quarantine=False)._changes(fake_event("write", columns, image(6, 9)), TABLE)
