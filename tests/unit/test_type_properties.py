"""Property-based round trips of the type contract (Hypothesis), in process: each value is encoded as the
source server writes it (a binlog row image, pgoutput's text), decoded by replicator's decoder, and
converted by the target applier's converter; what comes out must be the value that went in, or a
ValueError (a row error naming table, key and column, tests/unit/test_applier_runs.py).

MariaDB -> PostgreSQL: TIME(n) (the sign of negative values with a fraction), BINARY(n) (trailing zero
bytes), INET6 into inet. PostgreSQL -> MariaDB: interval into TIME, arrays into JSON, real into FLOAT,
dates MariaDB cannot hold.
"""
from __future__ import annotations

import ipaddress
import json
import re
import struct
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysqlreplication.constants import FIELD_TYPE as T

from replicator.appliers.mariadb import _bits, _date, _datetime, _json, _time
from replicator.appliers.postgres import _inet, _jsonb, _time_of_day
from replicator.sources.pgoutput import converter_for
from replicator.sources.rowdecode import RowDecoder
from tests.unit.test_rowdecode import col, fake_event, pack_time2

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIME_MAX_US = (838 * 3600 + 59 * 60 + 59) * 10 ** 6 + 999_999
DECODER = RowDecoder(exact_values=True, utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True)


# ------------------------------------------------------------------------------------------------ MariaDB -> PostgreSQL

@SETTINGS
@given(fsp=st.integers(0, 6), us=st.integers(-TIME_MAX_US, TIME_MAX_US))
def test_time_decodes_to_the_value_written(fsp: int, us: int) -> None:
    us -= us % (10 ** (6 - fsp)) if us >= 0 else -((-us) % (10 ** (6 - fsp)))  # what TIME(fsp) holds
    pairs, _ = DECODER.decode(fake_event("write", [col(T.TIME2, "t", fsp=fsp)], b"\x00" + pack_time2(fsp, us)))
    assert pairs == [(None, {"t": timedelta(microseconds=us)})]


@SETTINGS
@given(n=st.integers(1, 255), data=st.data())
def test_binary_keeps_its_length_and_trailing_zero_bytes(n: int, data: st.DataObject) -> None:
    value = data.draw(st.binary(min_size=n, max_size=n) | st.binary(max_size=n).map(lambda b: b.ljust(n, b"\x00")))
    stored = value.rstrip(b"\x00")  # what the server writes into the binlog
    columns = [col(T.STRING, "b", max_length=n, character_set_name="binary")]
    body = b"\x00" + bytes([len(stored)]) + stored
    pairs, _ = DECODER.decode(fake_event("write", columns, body))
    assert pairs == [(None, {"b": value})]


@SETTINGS
@given(address=st.ip_addresses(v=6) | st.ip_addresses(v=4))
def test_inet6_bytes_become_the_same_postgresql_address(address: ipaddress._BaseAddress) -> None:
    assert ipaddress.ip_address(_inet(address.packed)) == address


@SETTINGS
@given(us=st.integers(-10 ** 12, 10 ** 12))
def test_a_time_of_day_or_a_named_error(us: int) -> None:
    value = timedelta(microseconds=us)
    if timedelta(0) <= value < timedelta(days=1):
        got = _time_of_day(value)
        assert timedelta(hours=got.hour, minutes=got.minute, seconds=got.second, microseconds=got.microsecond) == value
    elif value != timedelta(days=1):
        try:
            _time_of_day(value)
        except ValueError as exc:
            assert "not a time of day" in str(exc)
        else:
            raise AssertionError(f"{value} was accepted")


# ------------------------------------------------------------------------------------------------ PostgreSQL -> MariaDB

def iso_interval(days: int, us: int) -> str:
    """PostgreSQL's IntervalStyle iso_8601 output of `days` days and `us` microseconds of time (the time
    part's components carry its sign, as interval_out writes them)."""
    out = "P" + (f"{days}D" if days else "")
    if us or not days:
        sign = "-" if us < 0 else ""
        seconds, frac = divmod(abs(us), 10 ** 6)
        h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
        out += "T" + (f"{sign}{h}H" if h else "") + (f"{sign}{m}M" if m else "")
        if s or frac or not (h or m):
            out += f"{sign}{s}" + (f".{frac:06d}".rstrip("0") if frac else "") + "S"
    return out


@SETTINGS
@given(days=st.integers(-40, 40), us=st.integers(-86_400 * 10 ** 6 * 2, 86_400 * 10 ** 6 * 2))
def test_an_interval_becomes_the_same_time_or_a_named_error(days: int, us: int) -> None:
    text = iso_interval(days, us)
    want = timedelta(days=days, microseconds=us)
    assert converter_for(1186)(text.encode()) == text  # the stream carries the interval's text
    if abs(want) <= timedelta(microseconds=TIME_MAX_US):
        assert _time(text) == want, text
    else:
        try:
            _time(text)
        except ValueError as exc:
            assert "outside MariaDB's TIME range" in str(exc)
        else:
            raise AssertionError(f"{text} was accepted")


def pg_array_text(value: list, element: callable) -> str:
    return "{" + ",".join(pg_array_text(v, element) if isinstance(v, list) else element(v) for v in value) + "}"


def pg_text_element(v: str | None) -> str:
    """array_out's quoting of one text element."""
    if v is None:
        return "NULL"
    if v == "" or v.upper() == "NULL" or re.search(r'[{},"\\\s]', v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


def rectangular(elements: st.SearchStrategy) -> st.SearchStrategy:
    """A one- or two-dimensional array (PostgreSQL arrays are rectangular)."""
    return st.lists(elements, max_size=8) | st.integers(1, 4).flatmap(
        lambda width: st.lists(st.lists(elements, min_size=width, max_size=width), min_size=1, max_size=4))


@SETTINGS
@given(value=rectangular(st.none() | st.integers(-2 ** 63, 2 ** 63 - 1)))
def test_an_integer_array_becomes_the_same_json_array(value: list) -> None:
    text = pg_array_text(value, lambda v: "NULL" if v is None else str(v))
    got = converter_for(1016)(text.encode())
    assert got == text and json.loads(_json(got)) == value


@SETTINGS
@given(value=rectangular(st.none() | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))))
def test_a_text_array_becomes_the_same_json_array(value: list) -> None:
    text = pg_array_text(value, pg_text_element)
    assert json.loads(_json(converter_for(1009)(text.encode()))) == value


@SETTINGS
@given(value=st.lists(st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=None), max_size=8))
def test_a_numeric_array_keeps_every_digit_in_json(value: list) -> None:
    text = pg_array_text(value, lambda v: "NULL" if v is None else str(v))
    doc = json.loads(_json(converter_for(1231)(text.encode())), parse_float=Decimal, parse_int=Decimal)
    assert doc == value and [str(d) for d in doc if d is not None] == [str(Decimal(str(v))) for v in value
                                                                        if v is not None]


@SETTINGS
@given(bits=st.integers(0, 2 ** 32 - 1))
def test_a_real_arrives_as_the_float32_it_is(bits: int) -> None:
    value = struct.unpack("<f", struct.pack("<I", bits))[0]
    if value != value or value in (float("inf"), float("-inf")):
        return
    for text in (repr(value), "%.9g" % value):  # any text that reads back to the same float32
        got = converter_for(700)(text.encode())
        assert struct.pack("<f", got) == struct.pack("<f", value) and got == value


@SETTINGS
@given(year=st.integers(10000, 294276), tail=st.sampled_from(["", " 12:00:00", " 23:59:59.999999"]))
def test_a_date_past_9999_is_carried_as_text_and_refused_by_mariadb(year: int, tail: str) -> None:
    text = f"{year}-01-31{tail}"
    value = converter_for(1114 if tail else 1082)(text.encode())
    assert value == text
    for conv in (_date, _datetime):
        try:
            conv(value)
        except ValueError as exc:
            assert "beyond MariaDB's date range" in str(exc)
        else:
            raise AssertionError(f"{text} was accepted")


@given(st.integers(1, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2 ** n - 1))))
def test_a_bit_string_becomes_the_number_a_mariadb_bit_stores(case: tuple[int, int]) -> None:
    """PostgreSQL sends bit(n) as its digits ('00000101'); a MariaDB BIT stores that string's bytes unless it
    gets the number (the integer the digits spell, leading zeros included)."""
    n, value = case
    assert _bits(format(value, f"0{n}b")) == value
    assert _bits("") == "" and _bits("10a") == "10a" and _bits(5) == 5 and _bits(None) is None


# jsonb holds no NUL and no surrogate without its pair: both refused, naming the cause (see below)
NO_NUL = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(NO_NUL, max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(NO_NUL, max_size=3), inner,
                                                                                max_size=3),
                    max_leaves=12))
def test_jsonb_takes_every_document_without_duplicate_keys_as_it_is(doc: object) -> None:
    text = json.dumps(doc)
    assert _jsonb(text) == text


@pytest.mark.parametrize("doc, said", [({"\ud800": None}, "surrogate escape without its pair"),
                                       (["a\udfffb"], "surrogate escape without its pair"),
                                       ({"k": "a\x00"}, "\\u0000")])
def test_jsonb_refuses_text_it_cannot_hold_saying_why(doc: object, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        _jsonb(json.dumps(doc))


def test_jsonb_refuses_a_duplicate_key_at_any_depth() -> None:
    for text in ('{"a": 1, "a": 2}', '[{"x": {"a": 1, "b": 2, "a": 1}}]', '{"\\u0061": 1, "a": 2}'):
        try:
            _jsonb(text)
        except ValueError as exc:
            assert "twice: jsonb keeps the last, MariaDB reads the first" in str(exc)
        else:
            raise AssertionError(text)
    assert _jsonb('{"a": {"a": 1}}') == '{"a": {"a": 1}}' and _jsonb("1e400") == "1e400"
    assert _jsonb("[" * 5000 + "]" * 5000).startswith("[")  # deeper than Python parses: PostgreSQL decides


def test_enum_and_set_members_are_taken_exactly() -> None:
    """MariaDB finds an ENUM / SET member by the column's collation: 'A', 'a ' and 'e' became 'a' and 'é'
    without a word under utf8mb4_general_ci. The applier lets only exact members through."""
    from replicator.appliers.mariadb import _members_only, members
    assert members("enum('a','b''c','é',' x')") == ("a", "b'c", "é", " x")
    enum = _members_only("enum", "enum('a','b c','é')")
    assert enum("a") == "a" and enum("b c") == "b c" and enum(None) is None
    for wrong in ("A", "a ", "e", "B C", ""):
        try:
            enum(wrong)
        except ValueError as exc:
            assert f"{wrong!r} is not a member of enum('a','b c','é')" in str(exc)
        else:
            raise AssertionError(wrong)
    set_ = _members_only("set", "set('x','y')")
    assert set_("") == "" and set_("y,x") == "y,x" and set_("x") == "x"
    for wrong in ("X", "x,Y", "x,", "z"):
        try:
            set_(wrong)
        except ValueError:
            pass
        else:
            raise AssertionError(wrong)


def test_jsonb_refuses_what_postgresql_would_refuse_without_naming_the_column() -> None:
    """PostgreSQL's 'value overflows numeric format' and 'unsupported Unicode escape sequence' name no column:
    the converter refuses such a document first, so the row error names it."""
    for text, said in (("1e131072", "beyond the range of jsonb's numeric"), ('[1, {"a": 1e-16384}]', "beyond"),
                       ('"\\u0000"', "\\u0000"), ('{"a\\u0000": 1}', "\\u0000"), ('["\\ud800"]', "surrogate"),
                       ('"\\udc00\\ud800"', "surrogate")):
        try:
            _jsonb(text)
        except ValueError as exc:
            assert said in str(exc), (text, str(exc))
        else:
            raise AssertionError(text)
    for text in ("1e131071", "1e-16383", '"\\ud83d\\ude00"', '"\\\\u0000"', "-0", "1" * 5000):
        assert _jsonb(text) == text


@given(st.integers(-3000, 3000) | st.decimals(0, 2200, places=1) | st.integers(0, 2200).map(str))
def test_a_year_is_taken_only_as_mariadb_stores_it(value: object) -> None:
    """MariaDB stores a YEAR of 1..69 as 2001..2069, 70..99 as 1970..1999 and rounds a fraction, without a
    word: refused by the applier; the values it stores as they are pass (the rest MariaDB refuses itself)."""
    from replicator.appliers.mariadb import _year
    n = Decimal(str(value))
    try:
        got = _year(value)
    except ValueError as exc:
        assert "no year MariaDB's YEAR holds as it is" in str(exc)
        assert 0 < n < 100 or n != n.to_integral_value()
    else:
        assert not (0 < n < 100) and n == n.to_integral_value()
        assert got == (int(value) if isinstance(value, str) else value)
