"""The converters' fast paths for the usual value (an exact str, int or datetime tested by class first,
without isinstance calls) against the functions they replaced, copied here: the same value, class and
error for any value; and the COPY / SQL literal encoders' int.__repr__ against the _int they replaced."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

from hypothesis import given
from hypothesis import strategies as st

from replicator.appliers import mariadb, pgcopy, postgres
from replicator.appliers.postgres import _CONVERTERS as PG


class Text(str):
    pass


class Int(int):
    pass


class Moment(datetime):
    pass


def ref_text(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8")
    if isinstance(value, (set, frozenset)):
        return ",".join(sorted(value))
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text contains a NUL character, which PostgreSQL cannot store")
    return value


def ref_timestamptz(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def ref_int_range(name: str, bits: int) -> Callable[[Any], Any]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def conv(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and not lo <= value <= hi:
            raise ValueError(f"{value} is out of range for PostgreSQL {name} ({lo}..{hi})")
        return value
    return conv


def ref_my_datetime(value: Any) -> Any:
    mariadb._beyond(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


zones = st.one_of(st.none(), st.just(timezone.utc),
                  st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))))
moments = st.builds(lambda d, z, f: d.replace(tzinfo=z, fold=f), st.datetimes(min_value=datetime(1, 1, 2),
                                                                           max_value=datetime(9999, 12, 30)),
                    zones, st.integers(0, 1))
texts = st.text(alphabet=st.sampled_from(["a", "\x00", "é", "\\", "\t"]), max_size=4)
ints = st.one_of(st.integers(-(1 << 64), 1 << 64), st.sampled_from([(1 << 31) - 1, 1 << 31, -(1 << 31),
                                                                    -(1 << 31) - 1, (1 << 63) - 1, 1 << 63]))
values = st.one_of(
    texts, texts.map(Text), ints, ints.map(Int), st.booleans(), moments, moments.map(
        lambda d: Moment(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.tzinfo, fold=d.fold)),
    st.builds(date, st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28)),
    texts.map(str.encode), st.frozensets(st.sampled_from(["a", "b"])), st.decimals(allow_nan=True),
    st.floats(), st.none(), st.sampled_from(["infinity", "-infinity", "2000-01-01 BC", "12345-01-01"]))


def outcome(fn: Callable[[Any], Any], v: Any) -> Any:
    try:
        got = fn(v)
    except Exception as exc:  # the same error, class and words
        return ("error", type(exc), str(exc))
    return (got.__class__, got.tzinfo if isinstance(got, datetime) else None,
            got.fold if isinstance(got, datetime) else None, got)


@given(v=values)
def test_the_fast_converters_give_what_the_old_ones_gave(v: Any) -> None:
    assert outcome(postgres._text, v) == outcome(ref_text, v)
    assert outcome(postgres._timestamptz, v) == outcome(ref_timestamptz, v)
    for name, bits in (("smallint", 16), ("integer", 32), ("bigint", 64)):
        assert outcome(PG[name], v) == outcome(ref_int_range(name, bits), v)
    assert outcome(mariadb._datetime, v) == outcome(ref_my_datetime, v)


@given(v=ints)
def test_integers_are_encoded_as_before(v: int) -> None:
    for data_type in ("bigint", "integer", "numeric", "text", "character varying"):
        assert pgcopy._column(data_type)[int](v) == str(int.__repr__(v))
    assert pgcopy._column("bigint").get(Int) is None  # (by exact class: a subclass has no encoder, as before)
