"""The MariaDB applier's locked read decodes DATETIME/TIMESTAMP text exactly as PyMySQL does."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import example, given, strategies as st
from pymysql import converters

from replicator.appliers.mariadb import datetime_text


def _outcome(text: str, fn: Any) -> tuple[Any, ...]:
    """What a decoder makes of `text`: its value and type, or the class of what it raises (PyMySQL's own
    function raises on some text no server sends, '2' say: the same error then)."""
    try:
        value = fn(text)
    except Exception as exc:
        return ("raises", type(exc))
    return (type(value), value)


def _same(text: str) -> bool:
    return _outcome(text, datetime_text) == _outcome(text, converters.convert_datetime)


moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))


@given(moment=moments, digits=st.integers(0, 6))
def test_the_text_mariadb_sends_decodes_as_pymysql_does(moment: datetime, digits: int) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06}"[:digits]
    assert _same(text)


# every position of a 26-character DATETIME(6) text, each from characters that matter to one of the parsers
_CHARS = "0123456789-: .T+Z,W\u0663"
_TEMPLATE = "2026-01-31 23:59:59.123456"


@given(changes=st.lists(st.tuples(st.integers(0, 27), st.sampled_from(list(_CHARS) + [""])), max_size=4),
       cut=st.integers(0, 30))
@example(changes=[], cut=19)
@example(changes=[(0, "0"), (1, "0"), (2, "0"), (3, "0")], cut=19)  # year 0: PyMySQL keeps the text
@example(changes=[(5, "0"), (6, "0"), (8, "0"), (9, "0")], cut=19)  # a zero date
@example(changes=[(10, "T")], cut=26)
@example(changes=[(11, "2"), (12, "4")], cut=19)  # 24:59:59
@example(changes=[(8, "3"), (9, "1"), (5, "0"), (6, "2")], cut=19)  # 31 February
def test_any_text_decodes_as_pymysql_does(changes: list[tuple[int, str]], cut: int) -> None:
    chars = list(_TEMPLATE)
    for pos, c in changes:
        if pos < len(chars):
            chars[pos] = c
    text = "".join(chars)[:cut]
    assert _same(text)


@given(text=st.text(alphabet=_CHARS, max_size=30))
def test_random_text_decodes_as_pymysql_does(text: str) -> None:
    assert _same(text)


def test_the_usual_forms_take_the_fast_path(monkeypatch: Any) -> None:
    """The point of datetime_text: PyMySQL's function is not called for what MariaDB sends."""
    calls: list[str] = []
    monkeypatch.setattr(converters, "convert_datetime", lambda t: calls.append(t))
    assert datetime_text("2026-01-31 23:59:59") == datetime(2026, 1, 31, 23, 59, 59)
    assert datetime_text("2026-01-31 23:59:59.5") == datetime(2026, 1, 31, 23, 59, 59, 500000)
    assert datetime_text("2026-01-31 23:59:59.000123") == datetime(2026, 1, 31, 23, 59, 59, 123)
    assert calls == []
    datetime_text("0000-00-00 00:00:00")
    assert calls == ["0000-00-00 00:00:00"]
