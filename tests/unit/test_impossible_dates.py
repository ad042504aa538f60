"""Impossible dates (a day past its month's end, 2024-02-30, which MariaDB stores under sql_mode
ALLOW_INVALID_DATES; docs/types.md "Zero dates"): every reader reads one as None and names its column and text as
it names a zero date (the fast decoder, its marked twin, mysql-replication's readers as binlog.py's fallback wraps
them, the table scanner's converters), and the router refuses it in any column a mapping carries -- also one whose
field says `zero_date: null`, which is for zero dates only. Never a bare ValueError, never a silent NULL."""
from __future__ import annotations

import struct
from datetime import date, datetime

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from replicator.changes import Op, RowChange, impossible_date, zero_dated
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.router import route, route_all, route_flow, target_values
from replicator.sources import libraryrows
from replicator.sources.rowcompile import compile_table
from replicator.sources.rowdecode import RowDecoder
from replicator.sources.scanmariadb import _date, _datetime2, _old_datetime
from tests.unit.mapsets import config  # noqa: F401 (the fixture)
from tests.unit.test_rowdecode import col, fake_event, library_pairs
from tests.unit.test_zero_dates import ERP, ROW, mset_of

OPTS = dict(utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True, exact_values=True)


@pytest.mark.parametrize("text, impossible", [
    ("2024-02-30", True), ("2023-02-29 10:00:00", True), ("2024-04-31", True), ("2024-06-31 00:00:00.5", True),
    ("0000-00-00", False), ("2024-00-15", False), ("2024-11-00", False), ("0000-01-15", False),
    ("0000-00-00 00:00:00", False), ("", False), (None, False), ("garbage", False),
])
def test_an_impossible_date_is_told_from_a_zero_date_by_its_text(text: str | None, impossible: bool) -> None:
    assert impossible_date(text) is impossible


# ---------------------------------------------------------------- the decoders

def _date_bytes(y: int, m: int, d: int) -> bytes:
    return (d | m << 5 | y << 9).to_bytes(3, "little")


def _datetime2_bytes(y: int, mo: int, d: int, h: int, mi: int, s: int) -> bytes:
    ym = y * 13 + mo
    x = 1 << 39 | ym << 22 | d << 17 | h << 12 | mi << 6 | s
    return x.to_bytes(5, "big")


def _old_datetime_bytes(y: int, mo: int, d: int, h: int, mi: int, s: int) -> bytes:
    return struct.pack("<Q", ((y * 100 + mo) * 100 + d) * 1000000 + h * 10000 + mi * 100 + s)


COLUMNS = [col(FIELD_TYPE.LONG, "id"), col(FIELD_TYPE.DATE, "d"), col(FIELD_TYPE.DATETIME2, "dt", fsp=0),
           col(FIELD_TYPE.DATETIME, "old")]


def _image(i: int, d: bytes, dt: bytes, old: bytes) -> bytes:
    return b"\x00" + struct.pack("<i", i) + d + dt + old


BODY = (_image(1, _date_bytes(2024, 2, 29), _datetime2_bytes(2024, 2, 29, 23, 59, 59),
               _old_datetime_bytes(2024, 2, 29, 1, 2, 3))
        + _image(2, _date_bytes(2024, 2, 30), _datetime2_bytes(2023, 2, 29, 10, 0, 0),
                 _old_datetime_bytes(2024, 4, 31, 1, 2, 3))
        + _image(3, _date_bytes(2024, 0, 15), _datetime2_bytes(2024, 6, 30, 0, 0, 0),
                 _old_datetime_bytes(2024, 6, 30, 0, 0, 0)))


def _check_images(pairs: list) -> None:
    first, second, third = (after for _, after in pairs)
    assert first == {"id": 1, "d": date(2024, 2, 29), "dt": datetime(2024, 2, 29, 23, 59, 59),
                     "old": datetime(2024, 2, 29, 1, 2, 3)} and type(first) is dict
    assert second == {"id": 2, "d": None, "dt": None, "old": None}
    assert second.zero_dates == ("d", "dt", "old")
    assert second.zero_texts == {"d": "2024-02-30", "dt": "2023-02-29 10:00:00", "old": "2024-04-31 01:02:03"}
    assert third.zero_dates == ("d",) and third.zero_texts == {"d": "2024-00-15"}


def test_the_fast_decoder_reads_an_impossible_date_as_none_and_names_it() -> None:
    got = RowDecoder(**OPTS).decode(fake_event("write", COLUMNS, BODY))
    assert got is not None, "the decoder fell back (the library would raise ValueError)"
    pairs, zero = got
    assert zero == 4
    _check_images(pairs)


def test_the_lean_path_too() -> None:
    rd = RowDecoder(**OPTS)
    dec = compile_table(COLUMNS, **OPTS)
    assert dec is not None
    got = rd.decode_lean(dec, "write", 4, b"\xff", None, BODY)
    assert got is not None and got[1] == 4
    _check_images(got[0])


def test_the_cache_of_dates_never_keeps_an_impossible_one() -> None:
    dec = compile_table(COLUMNS, **OPTS)
    assert dec is not None
    for _ in range(2):  # the second pass reads the real dates from the cache
        pairs, zero = dec.decode_body("write", BODY)
        assert zero == 4 and [a["d"] for _, a in pairs] == [date(2024, 2, 29), None, None]


def test_the_library_path_as_binlog_wraps_it_reads_it_as_none_and_keeps_its_text() -> None:
    bare = fake_event("write", COLUMNS, BODY)
    with pytest.raises(ValueError, match="day is out of range"):  # what stopped the direction, nameless
        library_pairs(bare)
    ev = fake_event("write", COLUMNS, BODY)
    texts = libraryrows.watch_zero_dates(ev)
    assert texts is not None
    rows = ev.rows
    assert [r["values"]["d"] for r in rows] == [date(2024, 2, 29), None, None]
    assert [r["values"]["old"] for r in rows] == [datetime(2024, 2, 29, 1, 2, 3), None, datetime(2024, 6, 30)]
    assert list(texts) == ["2024-02-30", "2023-02-29 10:00:00", "2024-04-31 01:02:03", "2024-00-15"]


def test_the_table_scanner_reads_one_as_none_as_the_stream_does() -> None:
    assert _date("2024-02-30") is None and _date("0000-00-00") is None and _date(date(2024, 2, 29))
    assert _old_datetime("2024-04-31 01:02:03") is None and _datetime2("2023-02-29 10:00:00.5") is None
    with pytest.raises(ValueError, match="is not a date"):
        _date("yesterday")


# ---------------------------------------------------------------- the router: a row error whatever zero_date says

def test_an_impossible_date_is_refused_also_where_the_field_says_zero_date_null(config: Config) -> None:
    mset = mset_of(config)  # `created` has zero_date: null
    change = RowChange(ERP, Op.INSERT, None, zero_dated(dict(ROW), ("created",), {"created": "2024-02-30"}))
    flow = mset.mappings[0].flows[0]
    for call in (lambda: route(mset, "erp", change), lambda: route_all(mset, "erp", [change]),
                 lambda: route_flow(flow, change, stream=True), lambda: route_flow(flow, change),
                 lambda: target_values(flow, change, change.after)):
        with pytest.raises(RowError) as info:
            call()
        assert (info.value.table, info.value.key, info.value.column) == ("erpdb.deals", (7,), "created")
        assert "field created: the value '2024-02-30' is an impossible date" in str(info.value)
        assert "zero_date: null does not carry it" in str(info.value)
    # its zero date is still carried as NULL
    zero = RowChange(ERP, Op.INSERT, None, zero_dated(dict(ROW), ("created",), {"created": "0000-00-00"}))
    assert [tc.values.get("created", "absent") for tc in route_all(mset, "erp", [zero])] == [None]


def test_an_impossible_date_in_a_refused_column_says_what_it_is(config: Config) -> None:
    mset = mset_of(config)
    change = RowChange(ERP, Op.INSERT, None, zero_dated(dict(ROW), ("closed",), {"closed": "2023-02-29 10:00:00"}))
    with pytest.raises(RowError, match=r"column closed: mapping deals, field closed: the value '2023-02-29 10:00:00' "
                                       r"is an impossible date"):
        route(mset, "erp", change)


def test_not_refused_where_no_field_carries_it_or_the_filter_leaves_the_row_out(config: Config) -> None:
    mset = mset_of(config)
    other = RowChange(ERP, Op.INSERT, None, zero_dated(dict(ROW), ("other",), {"other": "2024-02-30"}))
    skipped = RowChange(ERP, Op.INSERT, None,
                        zero_dated({**ROW, "kind": "skip"}, ("created",), {"created": "2024-02-30"}))
    assert [tc.key for tc in route_all(mset, "erp", [other, skipped])] == [(7,)]


def test_explain_says_it(config: Config) -> None:
    from replicator.mapping.explain.explanation import explain
    out = explain(mset_of(config), "deals", "erp", zero_dated(dict(ROW), ("created",), {"created": "2024-02-30"}))
    rules = {c["field"]: c["rules"] for c in out["columns"]}
    assert any("'2024-02-30' is an impossible date" in r for r in rules["created"]), rules["created"]


def test_a_queued_row_keeps_its_impossible_date_so_a_retry_refuses_it_again(config: Config) -> None:
    from replicator.codec import dumps_change, loads_change
    change = RowChange(ERP, Op.INSERT, None, zero_dated(dict(ROW), ("created",), {"created": "2024-02-30"}))
    back = loads_change(dumps_change(change))
    assert back.after.zero_texts == {"created": "2024-02-30"}
    with pytest.raises(RowError, match="column created: .* '2024-02-30' is an impossible date"):
        route_flow(mset_of(config).mappings[0].flows[0], back)
