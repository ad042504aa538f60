"""A byte a single-byte MariaDB character set leaves undefined (cp1250 0x81), found by the fast decoder:
the rows of its event as binlog.py hands them on when the table's mappings quarantine, and the message
when they do not (tests/integration/test_type_edges.py runs both against MariaDB)."""
from __future__ import annotations

from types import SimpleNamespace

from replicator.changes import Op, RowChange, TableRef, UndecodedRowChange
from replicator.sources.binlog import undecodable_message, undecoded_changes
from replicator.sources.rowdecode import Undecodable, escaped_columns

T = TableRef("erp", "g")
COLUMNS = [SimpleNamespace(name="id", is_primary=True, character_set_name=None),
           SimpleNamespace(name="v", is_primary=False, character_set_name="cp1250")]
BAD = b"b\x81".decode("cp1250", "surrogateescape")


def test_a_new_image_with_the_byte_is_an_undecoded_change_and_an_old_one_loses_the_column() -> None:
    pairs = ((None, {"id": 1, "v": "one"}), (None, {"id": 2, "v": BAD}))
    found = Undecodable("erp", "g", {"id": 2, "v": BAD}, "v", b"\x81", pairs)
    good, bad = undecoded_changes(T, Op.INSERT, COLUMNS, found)
    assert good == RowChange(T, Op.INSERT, None, {"id": 1, "v": "one"}) and type(good) is RowChange
    assert isinstance(bad, UndecodedRowChange) and bad.column == "v" and bad.after == {"id": 2, "v": "b\ufffd"}
    assert bad.reason.startswith("table erp.g, key (2,), column v: a value is not text of its character set cp1250 "
                                 "(byte b'\\x81'") and "on_error" not in bad.reason
    # the DBA's correction: its old image holds the byte, its new one does not
    fix = Undecodable("erp", "g", {"id": 2, "v": BAD}, "v", b"\x81", (({"id": 2, "v": BAD}, {"id": 2, "v": "b?"}),))
    assert undecoded_changes(T, Op.UPDATE, COLUMNS, fix) == [RowChange(T, Op.UPDATE, {"id": 2}, {"id": 2, "v": "b?"})]


def test_the_stop_message_names_table_key_column_and_the_way_out() -> None:
    found = Undecodable("erp", "g", {"id": 2, "v": BAD}, "v", b"\x81", ())
    assert undecodable_message(T, COLUMNS, found) == (
        "table erp.g, key (2,), column v: a value is not text of its character set cp1250 (byte b'\\x81', which "
        "that character set leaves undefined: MariaDB shows it as '?'); the binlog keeps this row as it is: with "
        "`on_error: quarantine` for its mapping the row is queued instead and the stream goes on (docs/types.md)")
    assert escaped_columns({"id": 2, "v": BAD, "w": "fine"}) == ["v"]
