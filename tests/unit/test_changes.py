"""changes: positions (LSN, BinlogPosition) order correctly and survive a JSON round trip."""
from __future__ import annotations

import json
import pickle

import pytest

from replicator.changes import (UNCHANGED, LSN, BinlogPosition, Keepalive, SourceMessage, TableRef, Transaction,
                               Watermark, position_from_json)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/16B3748", 0x16B3748),
        ("1/0", 1 << 32),
        ("16/B374D848", (0x16 << 32) | 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    ],
)
def test_lsn_parse_and_str_round_trip(text: str, value: int) -> None:
    lsn = LSN.parse(text)
    assert lsn.value == value
    assert str(lsn) == text
    assert LSN.parse(str(lsn)) == lsn


def test_lsn_parse_accepts_lower_case_and_leading_zeros() -> None:
    assert LSN.parse("0/0000abcd") == LSN(0xABCD)
    assert str(LSN.parse("0/0000abcd")) == "0/ABCD"


def test_lsn_ordering_is_numeric_not_textual() -> None:
    assert LSN.parse("0/FFFFFFFF") < LSN.parse("1/0")
    assert LSN.parse("0/9") < LSN.parse("0/10")
    assert LSN.parse("9/0") < LSN.parse("A/0") < LSN.parse("10/0")
    assert sorted([LSN.parse("2/1"), LSN.parse("0/2"), LSN.parse("1/FFFFFFFF")]) == [
        LSN.parse("0/2"), LSN.parse("1/FFFFFFFF"), LSN.parse("2/1")]
    assert max(LSN(5), LSN(2**64 - 1)) == LSN(2**64 - 1)


@pytest.mark.parametrize("text", ["0/0", "3/A0", "FFFFFFFF/FFFFFFFF"])
def test_lsn_json_round_trip(text: str) -> None:
    lsn = LSN.parse(text)
    assert json.loads(lsn.to_json()) == {"lsn": text}
    back = position_from_json(lsn.to_json())
    assert back == lsn and type(back) is LSN


def test_binlog_position_ordering() -> None:
    a = BinlogPosition("mariadb-bin.000009", 900)
    b = BinlogPosition("mariadb-bin.000010", 4)
    c = BinlogPosition("mariadb-bin.000010", 5000)
    assert a < b < c
    assert sorted([c, a, b]) == [a, b, c]
    # the GTID is informative only: the same file and offset are the same position
    assert BinlogPosition("f.000001", 4, "0-1-1") == BinlogPosition("f.000001", 4, "0-1-2")
    assert not BinlogPosition("f.000001", 4, "0-1-9") < BinlogPosition("f.000001", 4, "0-1-1")


@pytest.mark.parametrize("gtid", [None, "0-1-42", "1-2-3,0-1-42"])
def test_binlog_json_round_trip(gtid: str | None) -> None:
    pos = BinlogPosition("mariadb-bin.000123", 2**40, gtid)
    assert json.loads(pos.to_json()) == {"file": "mariadb-bin.000123", "pos": 2**40, "gtid": gtid}
    back = position_from_json(pos.to_json())
    assert type(back) is BinlogPosition
    assert (back.file, back.pos, back.gtid) == (pos.file, pos.pos, gtid)


def test_binlog_json_without_gtid_and_with_text_pos() -> None:
    assert position_from_json('{"file": "b.000001", "pos": "77"}') == BinlogPosition("b.000001", 77)


def test_binlog_str() -> None:
    assert str(BinlogPosition("b.000001", 4)) == "b.000001:4"
    assert str(BinlogPosition("b.000001", 4, "0-1-5")) == "b.000001:4 (gtid 0-1-5)"


def test_table_ref() -> None:
    assert TableRef.parse("sales.orders", "public") == TableRef("sales", "orders")
    assert TableRef.parse("orders", "public") == TableRef("public", "orders")
    assert str(TableRef("erp", "items")) == "erp.items"
    assert sorted([TableRef("b", "a"), TableRef("a", "z")]) == [TableRef("a", "z"), TableRef("b", "a")]


def test_unchanged_is_a_singleton_even_through_pickle() -> None:
    assert repr(UNCHANGED) == "UNCHANGED"
    assert UNCHANGED is not None
    assert pickle.loads(pickle.dumps(UNCHANGED)) is UNCHANGED
    assert type(UNCHANGED)() is UNCHANGED


def test_a_watermark_from_its_row_and_a_missing_field_is_empty_not_none() -> None:
    assert Watermark.from_row({"stream": "crm_to_erp", "kind": "high", "mark": "ab12"}) == \
        Watermark("crm_to_erp", "high", "ab12")
    assert Watermark.from_row({"stream": "crm_to_erp"}) == Watermark("crm_to_erp", "", "")  # finds no chunk


def test_a_source_message_is_a_transaction_or_a_keepalive() -> None:
    from typing import get_args

    assert set(get_args(SourceMessage)) == {Transaction, Keepalive}
    txn = Transaction("1", LSN(5), None, ())
    assert txn.watermarks == () and txn.final and not txn.echo
    assert Keepalive(LSN(9)).position == LSN(9)


def test_final_transaction_is_the_transaction_the_constructor_makes() -> None:
    """The sources' per-transaction yield, built without Transaction.__init__: equal, the same fields in the
    same order, frozen, and pickled alike."""
    from datetime import datetime, timezone

    from replicator.changes import Op, RowChange, Watermark, final_transaction
    rows = (RowChange(TableRef("s", "t"), Op.INSERT, None, {"id": 1}),)
    marks = (Watermark.from_row({"stream": "s1", "kind": "chunk", "mark": "high"}),)
    for args in [("7", LSN(5), datetime(2026, 1, 1, tzinfo=timezone.utc), rows, False, ()),
                 ("x", BinlogPosition("b.000001", 4, "0-1-2"), None, (), True, marks)]:
        made = final_transaction(*args)  # type: ignore[arg-type]
        txid, position, commit_time, changes, echo, watermarks = args
        made_by_init = Transaction(txid, position, commit_time, changes, final=True, echo=echo,  # type: ignore[arg-type]
                                   watermarks=watermarks)  # type: ignore[arg-type]
        assert type(made) is Transaction and made == made_by_init
        assert list(vars(made).items()) == list(vars(made_by_init).items())
        with pytest.raises(AttributeError):
            made.final = False  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(made)) == made_by_init


def test_binlog_position_is_the_position_the_constructor_makes() -> None:
    """The binlog reader's per-transaction position, built without BinlogPosition.__init__: equal, hashed
    alike, the same fields in the same order, frozen, ordered and pickled alike."""
    from replicator.changes import binlog_position
    for args in [("mysql-bin.000001", 4, "0-1-2"), ("b.1000000", 2 ** 40, None), ("x", 0, "")]:
        made, by_init = binlog_position(*args), BinlogPosition(*args)
        assert type(made) is BinlogPosition and made == by_init and hash(made) == hash(by_init)
        assert list(vars(made).items()) == list(vars(by_init).items()) and repr(made) == repr(by_init)
        assert not made < by_init and not by_init < made
        with pytest.raises(AttributeError):
            made.pos = 5  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(made)) == by_init
    assert binlog_position("b.000001", 4, "0-1-2") < binlog_position("b.000001", 5, None)
