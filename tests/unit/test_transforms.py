"""transforms: field transforms, value maps and row filters compiled from YAML; errors name file:line:key."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from replicator.errors import ConfigError, Where
from replicator.mapping.transforms import (
    TransformError,
    compile_chain,
    compile_predicate,
    compile_value_map,
)
from replicator.yamlfile import load_text

F = "maps/customers.yaml"
W = Where(F, 7, "fields.name.transform")
UTC = timezone.utc
SIDES = ("crm", "erp")


def run(items: list[Any], value: Any, row: dict[str, Any] | None = None) -> Any:
    fn = compile_chain(items, W)
    assert fn is not None
    return fn(value, row or {})


def fails(items: list[Any], value: Any, row: dict[str, Any] | None = None) -> str:
    with pytest.raises(TransformError) as info:
        run(items, value, row)
    return str(info.value)


def field_yaml(body: str) -> str:
    """A field whose body starts on line 3 of the file (line 1: `fields:`, line 2: `name:`)."""
    return "fields:\n  name:\n" + "".join(f"    {line}\n" for line in body.splitlines())


def chain_error(body: str) -> ConfigError:
    """Compile `transform:` (line 3) from YAML; return the ConfigError."""
    field = load_text(field_yaml(body), F)["fields"]["name"]
    with pytest.raises(ConfigError) as info:
        compile_chain(field["transform"], field.where("fields.name", "transform"))
    return info.value


# ---------------------------------------------------------------- chains: shape


def test_empty_spec_compiles_to_none() -> None:
    assert compile_chain(None, W) is None
    assert compile_chain([], W) is None


def test_chain_applies_in_order() -> None:
    assert run(["trim", "upper", {"truncate": 3}], "  abcdef ") == "ABC"
    assert run(["trim", "null_if_empty"], "   ") is None
    assert run(["null_if_empty", "empty_if_null"], "") == ""


def test_yaml_chain_compiles() -> None:
    field = load_text(field_yaml("transform: [trim, {truncate: 2}, lower]"), F)["fields"]["name"]
    fn = compile_chain(field["transform"], field.where("fields.name", "transform"))
    assert fn is not None and fn(" ABC ", {}) == "ab"


# ---------------------------------------------------------------- text transforms


@pytest.mark.parametrize("name, value, expected", [
    ("trim", "  a b \t\n", "a b"), ("lower", "ÄbC", "äbc"), ("upper", "straße", "STRASSE"),
])
def test_text_transforms(name: str, value: str, expected: str) -> None:
    assert run([name], value) == expected
    assert run([name], None) is None


@pytest.mark.parametrize("name", ["trim", "lower", "upper"])
def test_text_transforms_refuse_other_types_naming_transform_and_type(name: str) -> None:
    message = fails([name], 42, {"secret": "hunter2"})
    assert name in message and "int" in message and "hunter2" not in message


def test_null_if_empty() -> None:
    assert run(["null_if_empty"], "") is None
    assert run(["null_if_empty"], " ") == " "
    assert run(["null_if_empty"], 0) == 0
    assert run(["null_if_empty"], None) is None


def test_empty_if_null() -> None:
    assert run(["empty_if_null"], None) == ""
    assert run(["empty_if_null"], "x") == "x"
    assert run(["empty_if_null"], 0) == 0


def test_truncate() -> None:
    assert run([{"truncate": 3}], "abcdef") == "abc"
    assert run([{"truncate": 10}], "abc") == "abc"
    assert run([{"truncate": 3}], None) is None
    assert "truncate" in fails([{"truncate": 3}], 12345)


# ---------------------------------------------------------------- round


@pytest.mark.parametrize("value, places, expected", [
    (Decimal("2.345"), 2, Decimal("2.34")),   # half-even: 4 stays
    (Decimal("2.355"), 2, Decimal("2.36")),   # half-even: 5 -> 6
    (Decimal("2.5"), 0, Decimal("2")),
    (Decimal("3.5"), 0, Decimal("4")),
    (Decimal("-2.345"), 2, Decimal("-2.34")),
    (Decimal("1.1"), 3, Decimal("1.100")),
    (Decimal("0.1") + Decimal("0.2"), 1, Decimal("0.3")),
])
def test_round_decimal_is_exact_half_even(value: Decimal, places: int, expected: Decimal) -> None:
    result = run([{"round": places}], value)
    assert isinstance(result, Decimal)
    assert result == expected and str(result) == str(expected)


def test_round_keeps_big_decimals_exact() -> None:
    big = Decimal("12345678901234567890123456789.125")
    assert str(run([{"round": 2}], big)) == "12345678901234567890123456789.12"
    assert run([{"round": 2}], Decimal("1E+30")) == Decimal("1E+30")


def test_round_float_int_none_and_specials() -> None:
    assert run([{"round": 2}], 2.675) == 2.68  # rounds the decimal as written, not the binary 2.67499..
    assert run([{"round": 2}], 2.665) == 2.66
    assert isinstance(run([{"round": 1}], 1.25), float) and run([{"round": 1}], 1.25) == 1.2
    assert run([{"round": 2}], 7) == 7
    assert run([{"round": 2}], None) is None
    assert run([{"round": 2}], Decimal("NaN")).is_nan()
    assert run([{"round": 2}], float("inf")) == float("inf")


@pytest.mark.parametrize("value", ["1.5", True, date(2024, 1, 1)])
def test_round_refuses_non_numbers(value: Any) -> None:
    message = fails([{"round": 2}], value)
    assert "round" in message and type(value).__name__ in message


# ---------------------------------------------------------------- shift


def test_shift_moves_the_decimal_point_exactly() -> None:
    # Twenty's amountAmountMicros: 1234567 micros are 1.234567 (a bigint or a numeric), and back
    assert run([{"shift": -6}], 1234567) == Decimal("1.234567") and str(run([{"shift": -6}], 1234567)) == "1.234567"
    assert run([{"shift": -6}], Decimal("250000000000")) == Decimal("250000")
    assert run([{"shift": 6}], Decimal("1.234567")) == 1234567
    assert run([{"shift": 6}], 2500.1234) == Decimal("2500123400")  # a DOUBLE as written, not 2500123399.99..
    big = Decimal("123456789012345678901234567890.123456")
    assert run([{"shift": -6}], big) == Decimal("123456789012345678901234.567890123456")  # never rounded
    assert run([{"shift": -6}], None) is None


@pytest.mark.parametrize("value", ["1.5", True, float("nan"), Decimal("Infinity")])
def test_shift_refuses_what_is_not_a_finite_number(value: Any) -> None:
    assert "shift" in fails([{"shift": -6}], value)


def test_shift_needs_a_whole_number() -> None:
    with pytest.raises(ConfigError) as info:
        compile_chain([{"shift": 0.5}], Where("m.yaml", 3, "f.transform"))
    assert "shift needs a whole number" in str(info.value)


# ---------------------------------------------------------------- concat, split


def test_concat_reads_source_row_and_skips_null() -> None:
    spec = [{"concat": {"fields": ["first_name", "last_name"], "sep": " "}}]
    row = {"first_name": "Ada", "last_name": "Lovelace", "id": 1}
    assert run(spec, "ignored", row) == "Ada Lovelace"
    assert run(spec, None, row) == "Ada Lovelace"  # None input does not short-circuit concat
    assert run(spec, "x", {"first_name": None, "last_name": "Lovelace"}) == "Lovelace"
    assert run(spec, "x", {"first_name": None, "last_name": None}) is None
    assert run([{"concat": {"fields": ["a", "b"]}}], None, {"a": 1, "b": Decimal("2.50")}) == "12.50"


def test_concat_refuses_missing_column_and_bytes() -> None:
    spec = [{"concat": {"fields": ["first_name", "last_name"], "sep": " "}}]
    message = fails(spec, None, {"first_name": "Ada", "email": "ada@example.com"})
    assert "concat" in message and "last_name" in message and "ada@example.com" not in message
    assert "bytes" in fails(spec, None, {"first_name": b"Ada", "last_name": "L"})


def test_split() -> None:
    assert run([{"split": {"sep": " ", "index": 0}}], "Ada King Lovelace") == "Ada"
    assert run([{"split": {"sep": " ", "index": 2}}], "Ada King Lovelace") == "Lovelace"
    assert run([{"split": {"sep": " ", "index": -1}}], "Ada King Lovelace") == "Lovelace"
    assert run([{"split": {"sep": " ", "index": 5}}], "Ada King Lovelace") is None
    assert run([{"split": {"sep": " ", "index": -5}}], "Ada") is None
    assert run([{"split": {"sep": ","}}], "a,b") == "a"  # index defaults to 0
    assert run([{"split": {"sep": " ", "index": 0}}], None) is None
    assert "split" in fails([{"split": {"sep": " "}}], 5)
    # parts: the last part keeps the rest of the text; a text with fewer parts gives NULL for the missing ones
    assert run([{"split": {"sep": " ", "index": 0, "parts": 2}}], "Wile E. Coyote") == "Wile"
    assert run([{"split": {"sep": " ", "index": 1, "parts": 2}}], "Wile E. Coyote") == "E. Coyote"
    assert run([{"split": {"sep": " ", "index": -1, "parts": 2}}], "Wile E. Coyote") == "E. Coyote"
    assert run([{"split": {"sep": " ", "index": 1, "parts": 2}}], "Cher") is None


def test_json_get_takes_one_member_of_a_json_object() -> None:
    # Odoo 16+: product_template.name is jsonb {"en_US": ..., "fr_FR": ...}; psycopg2 gives a dict (sync),
    # the stream may give the document's text
    spec = [{"json_get": "en_US"}]
    names = {"en_US": "Office Chair", "fr_FR": "Chaise de bureau"}
    assert run(spec, names) == "Office Chair"
    assert run(spec, '{"en_US": "Office Chair", "fr_FR": "Chaise de bureau"}') == "Office Chair"
    assert run(spec, b'{"en_US": "Caf\xc3\xa9"}') == "Caf\u00e9"
    assert run(spec, {"en_US": 5}) == 5
    assert run(spec, {"en_US": None}) is None  # a member that is null is NULL
    assert run(spec, None) is None
    assert run([{"json_get": "en_US"}, "upper"], names) == "OFFICE CHAIR"


def test_json_get_refuses_what_it_would_alter_naming_transform_not_value() -> None:
    spec = [{"json_get": "en_US"}]
    message = fails(spec, {"fr_FR": "Chaise secrète"})  # never NULL for a name that exists in another language
    assert "json_get" in message and "'en_US'" in message and "'fr_FR'" in message and "secrète" not in message
    assert "not JSON" in fails(spec, "Office Chair secret") and "secret" not in fails(spec, "Office Chair secret")
    assert "list" in fails(spec, ["en_US"])
    assert "dict" in fails(spec, {"en_US": {"nested": 1}})
    assert "json_get" in str(chain_error("transform: [{json_get: [en_US]}]"))


# ---------------------------------------------------------------- dates


def test_date_format() -> None:
    spec = [{"date_format": "%d.%m.%Y"}]
    assert run(spec, date(2024, 3, 9)) == "09.03.2024"
    assert run(spec, datetime(2024, 3, 9, 23, 59)) == "09.03.2024"
    assert run([{"date_format": "%H:%M"}], time(7, 5)) == "07:05"
    assert run(spec, None) is None
    message = fails(spec, "2024-03-09")
    assert "date_format" in message and "str" in message


def test_parse_date_and_datetime() -> None:
    assert run([{"parse_date": "%d.%m.%Y"}], "24.12.2023") == date(2023, 12, 24)
    assert type(run([{"parse_date": "%d.%m.%Y"}], "24.12.2023")) is date
    parsed = run([{"parse_datetime": "%Y-%m-%d %H:%M"}], "2024-07-01 08:30")
    assert parsed == datetime(2024, 7, 1, 8, 30) and parsed.tzinfo is None
    assert run([{"parse_date": "%d.%m.%Y"}], None) is None


def test_parse_mismatch_names_transform_not_value() -> None:
    message = fails([{"parse_date": "%d.%m.%Y"}], "2023-12-24-secret")
    assert "parse_date" in message and "%d.%m.%Y" in message and "secret" not in message
    assert "parse_datetime" in fails([{"parse_datetime": "%Y"}], "20x4")
    assert "int" in fails([{"parse_date": "%Y"}], 2024)


BERLIN = "Europe/Berlin"


@pytest.mark.parametrize("local, utc", [
    (datetime(2024, 1, 15, 12, 0), datetime(2024, 1, 15, 11, 0, tzinfo=UTC)),   # CET, +01:00
    (datetime(2024, 7, 15, 12, 0), datetime(2024, 7, 15, 10, 0, tzinfo=UTC)),   # CEST, +02:00
    (datetime(2024, 3, 31, 1, 59), datetime(2024, 3, 31, 0, 59, tzinfo=UTC)),   # just before spring-forward
    (datetime(2024, 3, 31, 3, 0), datetime(2024, 3, 31, 1, 0, tzinfo=UTC)),     # just after
    (datetime(2024, 3, 31, 2, 30), datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),   # in the gap: offset before
    (datetime(2024, 10, 27, 2, 30), datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # ambiguous: first (summer)
])
def test_timezone_reads_naive_as_local_and_returns_aware_utc(local: datetime, utc: datetime) -> None:
    result = run([{"timezone": BERLIN}], local)
    assert result == utc and result.utcoffset() == timedelta(0) and result.tzinfo is UTC


def test_timezone_converts_aware_and_passes_none() -> None:
    aware = datetime(2024, 7, 15, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    assert run([{"timezone": BERLIN}], aware) == datetime(2024, 7, 15, 7, 0, tzinfo=UTC)
    assert run([{"timezone": BERLIN}], aware).tzinfo is UTC
    assert run([{"timezone": BERLIN}], None) is None
    message = fails([{"timezone": BERLIN}], date(2024, 1, 1))
    assert "timezone" in message and "date" in message


@pytest.mark.parametrize("utc, local", [
    (datetime(2024, 1, 15, 11, 0, tzinfo=UTC), datetime(2024, 1, 15, 12, 0)),
    (datetime(2024, 7, 15, 10, 0, tzinfo=UTC), datetime(2024, 7, 15, 12, 0)),
    (datetime(2024, 10, 27, 0, 30, tzinfo=UTC), datetime(2024, 10, 27, 2, 30)),
    (datetime(2024, 10, 27, 1, 30, tzinfo=UTC), datetime(2024, 10, 27, 2, 30)),
    (datetime(2024, 7, 15, 10, 0), datetime(2024, 7, 15, 12, 0)),  # naive is taken as UTC
])
def test_to_timezone_gives_naive_local_time(utc: datetime, local: datetime) -> None:
    result = run([{"to_timezone": BERLIN}], utc)
    assert result == local and result.tzinfo is None


def test_to_timezone_converts_other_offsets_and_round_trips() -> None:
    aware = datetime(2024, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert run([{"to_timezone": BERLIN}], aware) == datetime(2024, 1, 15, 18, 0)
    local = datetime(2024, 7, 15, 9, 15)
    assert run([{"timezone": BERLIN}, {"to_timezone": BERLIN}], local) == local
    assert run([{"to_timezone": "UTC"}], None) is None
    assert "to_timezone" in fails([{"to_timezone": BERLIN}], "2024-01-01")


# ---------------------------------------------------------------- chains: config errors name file:line:key


def test_unknown_transform_names_line_key_and_lists_known() -> None:
    err = chain_error("transform:\n  - trim\n  - frobnicate\n")
    assert err.where == Where(F, 5, "fields.name.transform[1]")
    text = str(err)
    assert text.startswith(f"{F}:5: fields.name.transform[1]: unknown transform 'frobnicate'")
    assert "known transforms: trim, lower, upper" in text and "{round: ...}" in text and "to_timezone" in text


def test_unknown_mapping_transform() -> None:
    err = chain_error("transform:\n  - {eval: '1+1'}\n")
    assert err.where == Where(F, 4, "fields.name.transform[0]")
    assert "unknown transform 'eval'" in str(err) and "known transforms" in str(err)


@pytest.mark.parametrize("body, line, key, words", [
    ("transform:\n  - {round: -1}\n", 4, "fields.name.transform[0].round", "round needs a whole number >= 0"),
    ("transform:\n  - {round: two}\n", 4, "fields.name.transform[0].round", "str 'two'"),
    ("transform:\n  - {round: true}\n", 4, "fields.name.transform[0].round", "round needs"),
    ("transform:\n  - {round: 1.5}\n", 4, "fields.name.transform[0].round", "float 1.5"),
    ("transform:\n  - trim\n  - {truncate: 0}\n", 5, "fields.name.transform[1].truncate", "truncate needs"),
    ("transform:\n  - round\n", 4, "fields.name.transform[0]", "round needs an argument"),
    ("transform:\n  - trim:\n", 4, "fields.name.transform[0]", "trim takes no argument"),
    ("transform:\n  - {round: 2, truncate: 3}\n", 4, "fields.name.transform[0]", "keys round, truncate"),
    ("transform:\n  - [trim]\n", 4, "fields.name.transform[0]", "got a list"),
    ("transform: trim\n", 3, "fields.name.transform", "expected a list of transforms"),
    ("transform:\n  - concat: {sep: ' '}\n", 4, "fields.name.transform[0].concat", "concat needs 'fields'"),
    ("transform:\n  - concat: [a, b]\n", 4, "fields.name.transform[0].concat", "needs a mapping"),
    ("transform:\n  - concat:\n      fields: first\n", 5, "fields.name.transform[0].concat.fields",
     "non-empty list of column names"),
    ("transform:\n  - concat:\n      fields: [a]\n      sep: 1\n", 6, "fields.name.transform[0].concat.sep",
     "sep must be text"),
    ("transform:\n  - concat:\n      fields: [a]\n      glue: ' '\n", 6, "fields.name.transform[0].concat.glue",
     "unknown key 'glue'"),
    ("transform:\n  - split: {index: 0}\n", 4, "fields.name.transform[0].split", "split needs 'sep'"),
    ("transform:\n  - split:\n      sep: ''\n", 5, "fields.name.transform[0].split.sep", "non-empty text"),
    ("transform:\n  - split:\n      sep: ' '\n      index: first\n", 6, "fields.name.transform[0].split.index",
     "whole number"),
    ("transform:\n  - split:\n      sep: ' '\n      parts: 1\n", 6, "fields.name.transform[0].split.parts",
     "split parts needs a whole number >= 2"),
    ("transform:\n  - split:\n      sep: ' '\n      index: 2\n      parts: 2\n", 6,
     "fields.name.transform[0].split.index", "split index must lie in -2..1 for parts 2"),
    ("transform:\n  - split:\n      sep: ' '\n      max: 2\n", 6, "fields.name.transform[0].split.max",
     "known: sep, index, parts"),
    ("transform:\n  - {date_format: 5}\n", 4, "fields.name.transform[0].date_format", "non-empty text"),
    ("transform:\n  - {parse_date: '%d.%Q'}\n", 4, "fields.name.transform[0].parse_date", "bad directive"),
    ("transform:\n  - {parse_datetime: ''}\n", 4, "fields.name.transform[0].parse_datetime", "non-empty text"),
    ("transform:\n  - {timezone: Mars/Olympus}\n", 4, "fields.name.transform[0].timezone",
     "unknown time zone 'Mars/Olympus'"),
    ("transform:\n  - {to_timezone: ../etc/passwd}\n", 4, "fields.name.transform[0].to_timezone",
     "unknown time zone"),
    ("transform:\n  - {timezone: [Europe/Berlin]}\n", 4, "fields.name.transform[0].timezone", "non-empty text"),
])
def test_config_errors_name_file_line_and_key(body: str, line: int, key: str, words: str) -> None:
    err = chain_error(body)
    assert err.where == Where(F, line, key)
    assert str(err).startswith(f"{F}:{line}: {key}: ")
    assert words in str(err)


def test_unknown_time_zone_hints_iana_name() -> None:
    assert "an IANA name like Europe/Berlin or UTC" in str(chain_error("transform:\n  - {timezone: Berlin}\n"))


def test_plain_list_errors_fall_back_to_the_given_where() -> None:
    with pytest.raises(ConfigError) as info:
        compile_chain(["trim", "nope"], W)
    assert info.value.where == Where(F, 7, "fields.name.transform[1]")


# ---------------------------------------------------------------- value maps


STATUS_YAML = """\
fields:
  status:
    map:
      - {crm: active, erp: A}
      - {crm: inactive, erp: I}
      - {crm: blocked, erp: B}
"""


def value_map(text: str, unmapped: Any = None) -> dict[tuple[str, str], Any]:
    fields = load_text(text, F)["fields"]
    field = fields["status"]
    return compile_value_map(field.get("map"), SIDES, field.get("unmapped", unmapped),
                             fields.where("fields", "status"))


def map_error(text: str, unmapped: Any = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        value_map(text, unmapped)
    return info.value


def test_value_map_both_directions_and_null() -> None:
    maps = value_map(STATUS_YAML)
    assert set(maps) == {("crm", "erp"), ("erp", "crm")}
    assert maps[("crm", "erp")]("inactive") == "I"
    assert maps[("erp", "crm")]("B") == "blocked"
    assert maps[("crm", "erp")](None) is None
    assert maps[("erp", "crm")](None) is None


def test_unmapped_error_is_default_and_names_the_value() -> None:
    for unmapped in (None, "error"):
        fn = value_map(STATUS_YAML, unmapped)[("crm", "erp")]
        with pytest.raises(TransformError) as info:
            fn("deleted")
        assert "'deleted'" in str(info.value) and "crm->erp" in str(info.value) and "str" in str(info.value)


def test_unmapped_pass_and_default() -> None:
    assert value_map(STATUS_YAML, "pass")[("crm", "erp")]("deleted") == "deleted"
    maps = value_map(STATUS_YAML + "    unmapped: {default: X}\n")
    assert maps[("crm", "erp")]("deleted") == "X"
    assert maps[("erp", "crm")]("Z") == "X"
    assert maps[("erp", "crm")]("A") == "active"
    assert maps[("erp", "crm")](None) is None  # NULL maps to NULL even with a default
    assert value_map(STATUS_YAML + "    unmapped: {default: ~}\n")[("crm", "erp")]("deleted") is None


def test_value_listed_twice_omits_only_that_direction() -> None:
    maps = value_map(STATUS_YAML + "      - {crm: suspended, erp: B}\n")
    assert set(maps) == {("crm", "erp")}  # erp B is ambiguous: erp->crm cannot be decided
    assert maps[("crm", "erp")]("suspended") == "B"
    assert maps[("crm", "erp")]("blocked") == "B"
    maps = value_map(STATUS_YAML + "      - {crm: active, erp: X}\n")
    assert set(maps) == {("erp", "crm")}
    assert maps[("erp", "crm")]("X") == "active"


def test_numerically_equal_values_are_the_same_value() -> None:
    text = "fields:\n  status:\n    map:\n      - {crm: a, erp: 1}\n      - {crm: b, erp: 1.0}\n"
    assert set(value_map(text)) == {("crm", "erp")}


def test_text_matches_numbers_and_booleans_by_str() -> None:
    text = ("fields:\n  status:\n    map:\n      - {crm: active, erp: 1}\n      - {crm: inactive, erp: 0}\n"
            "      - {crm: '7', erp: 70}\n")
    maps = value_map(text)
    to_crm, to_erp = maps[("erp", "crm")], maps[("crm", "erp")]
    assert to_crm(1) == "active"
    assert to_crm("1") == "active"  # binlog/pgoutput may deliver text
    assert to_crm(Decimal("0")) == "inactive"
    assert to_erp(7) == 70  # and the other way round: a number matches the text key '7'
    with pytest.raises(TransformError):
        to_crm("01")  # str() equality, not numeric parsing
    with pytest.raises(TransformError):
        to_crm(b"1")


def test_booleans_match_booleans_then_zero_and_one() -> None:
    text = "fields:\n  status:\n    map:\n      - {crm: true, erp: Y}\n      - {crm: false, erp: N}\n"
    maps = value_map(text)
    assert maps[("crm", "erp")](True) == "Y"
    assert maps[("crm", "erp")](0) == "N"  # MariaDB tinyint(1)
    assert maps[("crm", "erp")]("True") == "Y"
    assert maps[("erp", "crm")]("N") is False
    with pytest.raises(TransformError):
        maps[("crm", "erp")](2)


def test_boolean_and_number_keys_are_distinct_and_exact_match_wins() -> None:
    text = "fields:\n  status:\n    map:\n      - {crm: true, erp: T}\n      - {crm: 1, erp: One}\n"
    maps = value_map(text)
    assert set(maps) == {("crm", "erp"), ("erp", "crm")}
    assert maps[("crm", "erp")](True) == "T"
    assert maps[("crm", "erp")](1) == "One"
    assert maps[("erp", "crm")]("T") is True


def test_unhashable_value_is_unmapped_not_a_crash() -> None:
    with pytest.raises(TransformError):
        value_map(STATUS_YAML)[("crm", "erp")](["active"])


@pytest.mark.parametrize("text, line, key, words", [
    ("fields:\n  status:\n    map: []\n", 3, "fields.status.map", "non-empty list of pairs"),
    ("fields:\n  status:\n    map: {crm: a, erp: A}\n", 3, "fields.status.map", "got a mapping"),
    ("fields:\n  status:\n    map:\n      - {crm: a, erp: A}\n      - {crm: b}\n", 5, "fields.status.map[1]",
     "exactly the keys crm and erp, got keys crm"),
    ("fields:\n  status:\n    map:\n      - {crm: a, erp: A, pim: x}\n", 4, "fields.status.map[0]",
     "got keys crm, erp, pim"),
    ("fields:\n  status:\n    map:\n      - a\n", 4, "fields.status.map[0]", "got str 'a'"),
    ("fields:\n  status:\n    map:\n      - crm: a\n        erp: ~\n", 5, "fields.status.map[0].erp",
     "NULL always maps to NULL"),
    ("fields:\n  status:\n    map:\n      - {crm: [a], erp: A}\n", 4, "fields.status.map[0].crm", "got a list"),
    ("fields:\n  status:\n    map:\n      - {crm: a, erp: A}\n    unmapped: ignore\n", 2, "fields.status.unmapped",
     "unmapped must be error, pass or {default: value}"),
    ("fields:\n  status:\n    map:\n      - {crm: a, erp: A}\n    unmapped:\n      value: x\n", 6,
     "fields.status.unmapped", "got a mapping"),
    ("fields:\n  status:\n    map:\n      - {crm: a, erp: A}\n    unmapped:\n      default: [x]\n", 6,
     "fields.status.unmapped.default", "got a list"),
])
def test_value_map_config_errors(text: str, line: int, key: str, words: str) -> None:
    err = map_error(text)
    assert err.where == Where(F, line, key)
    assert str(err).startswith(f"{F}:{line}: {key}: ")
    assert words in str(err)


def test_value_map_from_plain_lists() -> None:
    maps = compile_value_map([{"crm": "a", "erp": "A"}], SIDES, "pass", Where(F, 9, "fields.status"))
    assert maps[("erp", "crm")]("A") == "a" and maps[("erp", "crm")]("Q") == "Q"
    with pytest.raises(ConfigError) as info:
        compile_value_map([{"crm": "a"}], SIDES, None, Where(F, 9, "fields.status"))
    assert info.value.where == Where(F, 9, "fields.status.map[0]")


# ---------------------------------------------------------------- predicates


def predicate(text: str) -> Any:
    doc = load_text("filter:\n  crm_to_erp: " + text + "\n", F)
    return compile_predicate(doc["filter"]["crm_to_erp"], doc["filter"].where("filter", "crm_to_erp"))


def pred_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        predicate(text)
    return info.value


def test_empty_filter_is_none() -> None:
    assert compile_predicate(None, W) is None
    assert compile_predicate({}, W) is None


def test_eq_and_bare_scalar() -> None:
    for spec in ("{status: {eq: won}}", "{status: won}"):
        p = predicate(spec)
        assert p({"status": "won"}) and not p({"status": "lost"}) and not p({"status": None})
    p = predicate("{deleted: {eq: false}}")
    assert p({"deleted": False}) and p({"deleted": 0}) and not p({"deleted": 1}) and not p({"deleted": None})
    p = predicate("{level: 1}")
    assert p({"level": 1}) and p({"level": "1"}) and p({"level": Decimal("1.0")}) and not p({"level": 2})


def test_ne() -> None:
    p = predicate("{status: {ne: lost}}")
    assert p({"status": "won"}) and not p({"status": "lost"})
    assert p({"status": None})  # ne is the negation of eq
    assert not p({"other": "won"})  # missing column


def test_in_and_not_in() -> None:
    p = predicate("{status: {in: [confirmed, won]}}")
    assert p({"status": "won"}) and p({"status": "confirmed"}) and not p({"status": "lost"})
    assert not p({"status": None})
    q = predicate("{status: {not_in: [confirmed, won]}}")
    assert q({"status": "lost"}) and not q({"status": "won"}) and q({"status": None})
    assert predicate("{code: {in: [1, 2]}}")({"code": "2"})


def test_is_null() -> None:
    p = predicate("{deleted_at: {is_null: true}}")
    assert p({"deleted_at": None}) and not p({"deleted_at": datetime(2024, 1, 1)})
    q = predicate("{deleted_at: {is_null: false}}")
    assert q({"deleted_at": datetime(2024, 1, 1)}) and not q({"deleted_at": None})
    assert not p({}) and not q({})  # missing column is not NULL: it is unknown


@pytest.mark.parametrize("op, bound, true_for, false_for", [
    ("gt", "10", [11, Decimal("10.01"), 10.5], [10, 9, None]),
    ("ge", "10", [10, Decimal("10"), 11], [9.99, None]),
    ("lt", "10", [9, Decimal("9.99")], [10, 11, None]),
    ("le", "10", [10, 9], [Decimal("10.000001"), None]),
    ("ge", "2024-01-01", [date(2024, 1, 1), datetime(2024, 1, 1, 0, 0), datetime(2024, 6, 1, 8)],
     [date(2023, 12, 31), datetime(2023, 12, 31, 23, 59)]),
    ("lt", "m", ["a", "lz"], ["m", "z"]),
])
def test_ordering_ops(op: str, bound: str, true_for: list[Any], false_for: list[Any]) -> None:
    p = predicate(f"{{v: {{{op}: {bound}}}}}")
    for value in true_for:
        assert p({"v": value}), value
    for value in false_for:
        assert not p({"v": value}), value


def test_date_bound_against_aware_timestamp() -> None:
    p = predicate("{v: {ge: 2024-01-01}}")
    assert p({"v": datetime(2024, 1, 1, 0, 0, tzinfo=UTC)})
    assert not p({"v": datetime(2023, 12, 31, 23, 0, tzinfo=UTC)})


def test_incomparable_types_are_false_not_errors() -> None:
    p = predicate("{v: {gt: 10}}")
    assert not p({"v": "11"}) and not p({"v": date(2024, 1, 1)}) and not p({"v": [11]})
    assert not p({"v": Decimal("sNaN")})
    aware = predicate("{v: {gt: 2024-01-01 10:00:00}}")  # YAML gives a naive datetime
    assert not aware({"v": datetime(2024, 6, 1, tzinfo=UTC)})
    assert not predicate("{v: {eq: 1}}")({"v": Decimal("sNaN")})


def test_all_conditions_must_hold_and_ops_combine() -> None:
    p = predicate("{status: {in: [won]}, amount: {gt: 0, le: 100}}")
    assert p({"status": "won", "amount": 50})
    assert not p({"status": "won", "amount": 0})
    assert not p({"status": "won", "amount": 101})
    assert not p({"status": "lost", "amount": 50})


@pytest.mark.parametrize("spec", [
    "{c: {eq: 1}}", "{c: {ne: 1}}", "{c: {in: [1]}}", "{c: {not_in: [1]}}", "{c: {is_null: true}}",
    "{c: {is_null: false}}", "{c: {gt: 1}}", "{c: {ge: 1}}", "{c: {lt: 1}}", "{c: {le: 1}}", "{c: 1}",
])
def test_missing_column_is_false_for_every_op(spec: str) -> None:
    assert predicate(spec)({"other": 1}) is False


def test_multi_line_filter_yaml() -> None:
    doc = load_text("filter:\n  crm_to_erp:\n    status: {in: [confirmed, won]}\n    deleted: {eq: false}\n", F)
    p = compile_predicate(doc["filter"]["crm_to_erp"], doc["filter"].where("filter", "crm_to_erp"))
    assert p is not None and p({"status": "won", "deleted": False}) and not p({"status": "won", "deleted": True})


@pytest.mark.parametrize("text, key, words", [
    ("{status: {like: 'a%'}}", "filter.crm_to_erp.status.like",
     "unknown filter operator 'like' (fix: known: eq, ne, in, not_in, is_null, gt, ge, lt, le)"),
    ("{status: {in: won}}", "filter.crm_to_erp.status.in", "in needs a non-empty list, got str 'won'"),
    ("{status: {not_in: []}}", "filter.crm_to_erp.status.not_in", "not_in needs a non-empty list"),
    ("{status: {in: [a, ~]}}", "filter.crm_to_erp.status.in[1]", "is_null: true"),
    ("{status: {is_null: yes please}}", "filter.crm_to_erp.status.is_null", "is_null needs true or false"),
    ("{status: {gt: true}}", "filter.crm_to_erp.status.gt", "gt needs text, a number or a date"),
    ("{status: {lt: [1]}}", "filter.crm_to_erp.status.lt", "got a list"),
    ("{status: {eq: ~}}", "filter.crm_to_erp.status.eq", "use {is_null: true} for NULL"),
    ("{status: {eq: {a: 1}}}", "filter.crm_to_erp.status.eq", "got a mapping"),
    ("{status: [a, b]}", "filter.crm_to_erp.status", "(fix: {in: [a, b]})"),
    ("{status: ~}", "filter.crm_to_erp.status", "(fix: {is_null: true})"),
    ("{status: {}}", "filter.crm_to_erp.status", "got a mapping"),
    ("[status]", "filter.crm_to_erp", "a filter is a mapping"),
])
def test_predicate_config_errors(text: str, key: str, words: str) -> None:
    err = pred_error(text)
    assert err.where == Where(F, 2, key)
    assert str(err).startswith(f"{F}:2: {key}: ")
    assert words in str(err)


def test_predicate_error_lines_in_block_yaml() -> None:
    doc = load_text("filter:\n  crm_to_erp:\n    status:\n      in:\n        - won\n        - ~\n"
                    "    amount:\n      between: [1, 2]\n", F)
    with pytest.raises(ConfigError) as info:
        compile_predicate(doc["filter"]["crm_to_erp"], doc["filter"].where("filter", "crm_to_erp"))
    assert info.value.where == Where(F, 6, "filter.crm_to_erp.status.in[1]")
    doc["filter"]["crm_to_erp"]["status"]["in"].pop()
    with pytest.raises(ConfigError) as info:
        compile_predicate(doc["filter"]["crm_to_erp"], doc["filter"].where("filter", "crm_to_erp"))
    assert info.value.where == Where(F, 8, "filter.crm_to_erp.amount.between")
