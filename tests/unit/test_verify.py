"""verify: normalisation of both sides' values, row digests and bisecting, report lines (no servers)."""
from __future__ import annotations

import argparse
import functools
import itertools
import threading
import time
import tracemalloc
import uuid
import weakref
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from replicator import compare as C
from replicator.compare import (ColumnInfo, Rule, canonical_by, key_canonical, row_agrees, rule_for, show, show_key,
                                values_equal)
from replicator.config import Account, Batching, Config, Connection, Secret, Verify
from replicator.errors import ReplicatorError
from replicator.mapping.model import load_mappings
from replicator.verify.repair import format_repair
from replicator.verify.command import (DIFFERS, EXTRA, FAILED, MISSING, Difference, PeriodicVerifier, Report, Verifier,
                               add_arguments, format_difference, stable)

BERLIN_SUMMER = timezone(timedelta(hours=2))


def rule(kind: str, **kw) -> Rule:
    return Rule("c", kind, **kw)


def same(kind: str, a, b, **kw) -> bool:
    """Equal by the authority, and (where the test says so) with equal digests too."""
    return values_equal(rule(kind, **kw), a, b)


def same_digest(kind: str, a, b, **kw) -> bool:
    r = rule(kind, **kw)
    return canonical_by(r, a) == canonical_by(r, b)


# ---------------------------------------------------------------- numbers


def test_decimal_by_value_not_by_scale() -> None:
    assert same(C.DECIMAL, Decimal("1.50"), Decimal("1.5"))
    assert same_digest(C.DECIMAL, Decimal("1.50"), Decimal("1.5"))
    assert same_digest(C.DECIMAL, Decimal("100"), 100)
    assert not same(C.DECIMAL, Decimal("1.5"), Decimal("1.51"))


def test_decimal_rounded_to_the_target_scale_like_the_server() -> None:
    # numeric(14,4) into DECIMAL(12,2) (lossy: allow): the server rounds half away from zero
    assert same_digest(C.DECIMAL, Decimal("12.3450"), Decimal("12.35"), scale=2)
    assert same_digest(C.DECIMAL, Decimal("-12.345"), Decimal("-12.35"), scale=2)
    assert not same(C.DECIMAL, Decimal("12.3449"), Decimal("12.35"), scale=2)
    # a float written into a decimal column: its noise may fall on either side of a rounding boundary
    assert same(C.DECIMAL, 1.005, Decimal("1.00"), scale=2)
    assert not same(C.DECIMAL, 1.005, Decimal("1.03"), scale=2)


def test_a_mariadb_double_with_places_compares_at_its_places() -> None:
    # Akaunting's double(15,4): Twenty's 1234567 micros, shifted, are 1.234567 and stored as 1.2346; verify
    # reported that row as differing forever, and a conflict check took the stored value for another edit
    amount = rule_for(ColumnInfo("amount", "double", "mariadb", scale=4), None, "amount")
    assert (amount.kind, amount.scale) == (C.DECIMAL, 4)
    assert values_equal(amount, Decimal("1.234567"), 1.2346)
    assert not values_equal(amount, Decimal("1.2350"), 1.2346)
    plain = rule_for(ColumnInfo("v", "double", "mariadb"), None, "v")
    assert plain.kind == C.FLOAT64 and not values_equal(plain, Decimal("1.234567"), 1.2346)


def test_integers_from_decimals_and_unsigned() -> None:
    assert same_digest(C.INT, Decimal("18446744073709551615"), 18446744073709551615, scale=0)
    assert same_digest(C.INT, 5, Decimal("5"), scale=0)
    assert not same(C.INT, 5, 6, scale=0)


def test_bool_and_zero_one() -> None:
    assert same_digest(C.BOOL, True, 1)
    assert same_digest(C.BOOL, False, 0)
    assert same_digest(C.INT, True, 1, scale=0)  # a boolean into TINYINT(1)
    assert same_digest(C.BOOL, "t", True)
    assert not same(C.BOOL, True, 0)
    assert not same(C.BOOL, 2, True)


def test_float32_noise_is_equal_only_where_single_precision_is_involved() -> None:
    noisy = 1.100000023841858  # MariaDB FLOAT 1.1 from the binlog
    assert same(C.FLOAT32, noisy, 1.1)
    assert same_digest(C.FLOAT32, noisy, 1.1)
    assert not same(C.FLOAT64, noisy, 1.1)
    assert not same(C.FLOAT32, 1.1, 1.1001)
    assert same(C.FLOAT32, 0.0, -0.0) and same_digest(C.FLOAT32, 0.0, -0.0)
    assert same(C.FLOAT64, float("nan"), float("nan"))
    assert not same(C.FLOAT64, float("nan"), 1.0)
    assert same(C.FLOAT64, Decimal("0.1"), 0.1)  # numeric into double precision
    assert same(C.FLOAT64, float("inf"), float("inf")) and not same(C.FLOAT64, float("inf"), float("-inf"))


def test_floats_compare_exactly_one_unit_in_the_last_place_is_a_difference() -> None:
    """verify called a double changed by one ulp (and a float32 by one of its own) equal: a relative tolerance
    of 1e-12 (1e-6). Drivers read floats exactly, so none is needed (tests/integration/test_type_values.py)."""
    import math
    import struct
    for x in (0.1, 1.7976931348623157e308, 5e-324, -2.0 ** 31, 1e-310, 123456.789):
        assert same(C.FLOAT64, x, x) and same(C.FLOAT64, repr(x), x)
        assert not same(C.FLOAT64, x, math.nextafter(x, 0.0)) and not same_digest(C.FLOAT64, x, math.nextafter(x, 0.0))
    for x in (0.1, 3.4028234663852886e38, 1.401298464324817e-45, 16777216.0):
        f = struct.unpack("<f", struct.pack("<f", x))[0]
        g = struct.unpack("<f", struct.pack("<I", struct.unpack("<I", struct.pack("<f", f))[0] ^ 1))[0]
        assert same(C.FLOAT32, f, x) and same(C.FLOAT32, repr(f), f)  # any text of the same float32
        assert not same(C.FLOAT32, f, g) and not same_digest(C.FLOAT32, f, g)
    assert not same(C.FLOAT32, 1e300, float("inf"))  # beyond float32 equals nothing else


def test_rule_from_types_single_precision_on_either_side() -> None:
    import math
    import struct
    pg_real = ColumnInfo("c", "real", "postgresql")
    my_float = ColumnInfo("c", "float", "mariadb")
    my_double = ColumnInfo("c", "double", "mariadb")
    pg_double = ColumnInfo("c", "double precision", "postgresql")
    assert rule_for(pg_real, my_double, "c").kind == C.FLOAT32  # a float32 target: compared as the float32
    assert rule_for(my_float, pg_double, "c").kind == C.FLOAT32
    # a double holding a copied float32 (MariaDB FLOAT into double precision, real into DOUBLE) is compared as
    # the double it is: the source's float32 widened (what every reader gives) must be there exactly
    assert rule_for(pg_double, my_float, "c").kind == C.FLOAT64
    assert rule_for(my_double, pg_real, "c").kind == C.FLOAT64
    for x in (0.1, 1.1, 3.4028234663852886e38, 1.401298464324817e-45, 16777216.0):
        carried = struct.unpack("<f", struct.pack("<f", x))[0]  # the float32's exact value
        for target, source in ((pg_double, my_float), (my_double, pg_real)):
            r = rule_for(target, source, "c")
            assert values_equal(r, carried, carried)
            assert not values_equal(r, carried, math.nextafter(carried, 0.0))  # one double ulp: not a float32
            assert not row_agrees([r])({"c": carried}, {"c": math.nextafter(carried, math.inf)})
    assert rule_for(pg_double, None, "c").kind == C.FLOAT64  # transformed: the source type says nothing
    assert rule_for(ColumnInfo("c", "decimal", "mariadb", scale=2), None, "c").scale == 2
    assert rule_for(ColumnInfo("c", "bigint", "postgresql", scale=0), None, "c").scale == 0
    assert rule_for(None, None, "c").kind == C.OTHER


# ---------------------------------------------------------------- times


def test_aware_and_naive_datetimes_naive_is_utc() -> None:
    aware = datetime(2024, 3, 10, 9, 30, tzinfo=BERLIN_SUMMER)
    assert same_digest(C.TIMESTAMP, aware, datetime(2024, 3, 10, 7, 30))
    assert same_digest(C.TIMESTAMP, aware, datetime(2024, 3, 10, 7, 30, tzinfo=timezone.utc))
    assert not same(C.TIMESTAMP, aware, datetime(2024, 3, 10, 9, 30))  # local time read as UTC: wrong


def test_fractional_seconds_within_the_target_precision() -> None:
    written = datetime(2024, 1, 1, 23, 59, 59, 999600)
    assert same(C.TIMESTAMP, written, datetime(2024, 1, 1, 23, 59, 59, 999000), precision=3)  # truncated
    assert same(C.TIMESTAMP, written, datetime(2024, 1, 2, 0, 0, 0), precision=0)  # rounded, across midnight
    assert not same(C.TIMESTAMP, written, datetime(2024, 1, 1, 23, 59, 58), precision=0)
    assert not same(C.TIMESTAMP, written, datetime(2024, 1, 1, 23, 59, 59, 999000))  # precision 6: exact
    assert same(C.TIME, dtime(12, 0, 0, 400000), timedelta(hours=12), precision=0)


def test_time_and_timedelta_dates_and_datetimes() -> None:
    assert same_digest(C.TIME, dtime(12, 34, 56, 789012), timedelta(hours=12, minutes=34, seconds=56,
                                                                    microseconds=789012))
    assert not same(C.TIME, dtime(12, 34, 56), timedelta(hours=12, minutes=34, seconds=57))
    assert same_digest(C.TIMESTAMP, date(2024, 5, 6), datetime(2024, 5, 6))
    assert same_digest(C.DATE, datetime(2024, 5, 6, 7, 8), date(2024, 5, 6))
    assert same_digest(C.DATE, "2024-05-06", date(2024, 5, 6))


# ---------------------------------------------------------------- text, bytes, uuid, json, set


def test_bytes_and_memoryview_and_fixed_binary_padding() -> None:
    assert same_digest(C.BYTES, memoryview(b"\x00\x01"), b"\x00\x01")
    assert same_digest(C.BYTES, bytearray(b"ab"), b"ab")
    assert not same(C.BYTES, b"\x00\x01", b"\x00\x01\x00")
    assert same_digest(C.BINARY, b"\x01\x02\x00\x00", b"\x01\x02")  # BINARY(n) pads with zero bytes


def test_uuid_as_uuid_text_and_bytes() -> None:
    u = uuid.UUID("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e100")
    assert same_digest(C.UUID, u, str(u))
    assert same_digest(C.UUID, u, str(u).upper())
    assert same_digest(C.UUID, u, u.bytes)
    assert same_digest(C.UUID, u, u.bytes.rstrip(b"\0"))  # the binlog strips trailing zero bytes
    assert same_digest(C.TEXT, u, str(u))  # a uuid into CHAR(36)
    assert not same(C.UUID, u, uuid.uuid4())


def test_json_text_and_parsed_objects() -> None:
    text = '{"b": [1, 2.50, null, true], "a": {"k": "v"}}'
    assert same_digest(C.JSON, text, {"a": {"k": "v"}, "b": [1, 2.5, None, True]})
    assert same_digest(C.JSON, text, '{"a":{"k":"v"},"b":[1,2.5,null,true]}')  # jsonb re-formats
    assert same_digest(C.JSON, b'{"a": 1}', {"a": 1})
    assert not same(C.JSON, '{"a": true}', '{"a": 1}')  # true is not 1 in JSON
    assert not same(C.JSON, '{"a": null}', None)  # JSON null is not SQL NULL
    assert not same(C.JSON, "[1, 2]", "[2, 1]")
    assert rule_for(ColumnInfo("c", "longtext", "mariadb"), ColumnInfo("c", "jsonb", "postgresql"), "c").kind == C.JSON


def test_set_as_python_set_and_as_comma_text() -> None:
    assert same_digest(C.SET, "red,blue", {"blue", "red"})
    assert same_digest(C.SET, "", set())
    assert not same(C.SET, "", None)
    assert not same(C.SET, "red", {"red", "blue"})
    assert rule_for(ColumnInfo("c", "text", "postgresql"), ColumnInfo("c", "set", "mariadb"), "c").kind == C.SET


def test_fixed_width_text_ignores_trailing_spaces_varying_text_does_not() -> None:
    assert same_digest(C.CHAR, "ab   ", "ab")
    assert not same(C.TEXT, "ab ", "ab")
    assert not same(C.TEXT, "", None)
    assert same_digest(C.TEXT, b"caf\xc3\xa9", "café")


def test_keys_follow_the_target_collation() -> None:
    ci = rule_for(ColumnInfo("k", "varchar", "mariadb", collation="utf8mb4_general_ci"), None, "k")
    nopad = rule_for(ColumnInfo("k", "varchar", "mariadb", collation="utf8mb4_nopad_bin"), None, "k")
    pg = rule_for(ColumnInfo("k", "text", "postgresql", collation="C"), None, "k")
    assert ci.case_insensitive and ci.pad_space
    assert key_canonical([ci], ["ABC  "]) == key_canonical([ci], ["abc"])
    assert key_canonical([ci], ["Müller"]) == key_canonical([ci], ["muller"])
    assert key_canonical([nopad], ["abc "]) != key_canonical([nopad], ["abc"])
    assert key_canonical([pg], ["ABC"]) != key_canonical([pg], ["abc"])
    assert key_canonical([rule_for(ColumnInfo("i", "integer", "postgresql"), None, "i")], [Decimal("7")]) == (7,)


# ---------------------------------------------------------------- report lines


def diff(**kw) -> Difference:
    base = dict(mapping="items", stream="crm_to_erp", table="erp.items", kind=DIFFERS, source_side="crm",
                source_key=(3,), target_key=(3,))
    base.update(kw)
    return Difference(**base)


def test_report_lines_name_mapping_direction_table_key_and_values() -> None:
    d = diff(columns=(("name", "Bob", "Bobby"), ("qty", Decimal("3.50"), None)))
    assert format_difference(d) == "items crm_to_erp erp.items key=(3,): differs: name: 'Bob' -> 'Bobby'; qty: 3.50 -> NULL"
    assert format_difference(diff(kind=MISSING, target_key=(5,))) == "items crm_to_erp erp.items key=(5,): missing in target"
    assert format_difference(diff(kind=EXTRA, target_key=(999,))) == "items crm_to_erp erp.items key=(999,): extra in target"
    assert (format_difference(diff(kind=FAILED, note="field x: bad date")) ==
            "items crm_to_erp erp.items key=(3,): cannot be mapped: field x: bad date")


def test_crosswalk_rows_show_both_keys() -> None:
    d = diff(crosswalk=True, source_key=(3,), target_key=(17,), columns=(("amount", Decimal("1"), Decimal("2")),))
    assert format_difference(d) == "items crm_to_erp erp.items key=(17,) (crm key (3,)): differs: amount: 1 -> 2"
    assert (format_difference(diff(crosswalk=True, kind=MISSING, target_key=None)) ==
            "items crm_to_erp erp.items crm key=(3,): missing in target")


def test_repair_lines_say_what_changed() -> None:
    d = diff(columns=(("name", "Bob", "Bobby"),))
    assert format_repair(d) == "repaired items crm_to_erp erp.items key=(3,): name 'Bobby' -> 'Bob'"
    assert format_repair(diff(kind=MISSING, target_key=(5,))) == "inserted items crm_to_erp erp.items key=(5,)"
    assert format_repair(diff(kind=EXTRA, target_key=(9,))) == "deleted items crm_to_erp erp.items key=(9,)"


def test_values_are_shown_readably() -> None:
    assert show(None) == "NULL"
    assert show("it's") == '"it\'s"'
    assert show(b"\x00\xff") == "0x00ff"
    assert show(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert show(True) == "true"
    assert show("x" * 200).endswith("…") and len(show("x" * 200)) == 80
    assert show_key(("a", 2)) == "('a', 2)"


# ---------------------------------------------------------------- re-checks keep only stable differences


def ident(d: Difference) -> tuple:
    return (d.kind == EXTRA, d.source_key)


def test_a_column_whose_source_value_changed_meanwhile_is_not_reported() -> None:
    first = diff(columns=(("name", "a", "x"), ("qty", 1, 9)), stamp=(("name", "a"), ("qty", 1)))
    # the source changed qty meanwhile (a busy row): only the stable column remains
    again = diff(columns=(("name", "a", "x"), ("qty", 2, 1)), stamp=(("name", "a"), ("qty", 2)))
    (kept,) = stable([first], [again], ident)
    assert kept.columns == (("name", "a", "x"),)
    moving = diff(columns=(("qty", 3, 2),), stamp=(("qty", 3),))
    assert stable([again], [moving], ident) == []


def test_rows_that_agree_or_change_kind_are_dropped_stable_ones_kept() -> None:
    missing = diff(kind=MISSING, stamp=("row",))
    assert stable([missing], [], ident) == []  # agrees now
    assert stable([missing], [diff(kind=MISSING, stamp=("row",))], ident) == [missing]
    assert stable([missing], [diff(kind=MISSING, stamp=("changed",))], ident) == []
    assert stable([missing], [diff(columns=(("a", 1, 2),), stamp=(("a", 1),))], ident) == []


# ---------------------------------------------------------------- command line and daemon thread


def test_arguments() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--mapping", "a", "--mapping", "b", "--repair"])
    assert args.mapping == ["a", "b"] and args.repair
    args = p.parse_args([])
    assert args.mapping is None and not args.repair


def _config(every: float) -> Config:
    acct = Account("u", Secret(""))
    conns = (Connection("crm", "postgresql", "127.0.0.1", 1, "crm", acct, acct),
             Connection("erp", "mariadb", "127.0.0.1", 1, "erp", acct, acct))
    return Config(Path("x.yaml"), conns, Path("."), Batching(), verify=Verify(every_seconds=every))


def test_periodic_verification_disabled_returns_at_once() -> None:
    started = time.monotonic()
    PeriodicVerifier(_config(0), holder=None, stop=threading.Event()).run()
    assert time.monotonic() - started < 1


def test_periodic_verification_survives_a_failing_run(caplog) -> None:
    class Holder:
        calls = 0

        def current(self):
            Holder.calls += 1
            raise ConnectionError("server gone")

    stop = threading.Event()
    pv = PeriodicVerifier(_config(0.05), Holder(), stop)
    t = threading.Thread(target=pv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while Holder.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    t.join(2)
    assert not t.is_alive()
    assert Holder.calls >= 2  # the first failure did not end the loop
    assert "verification failed" in caplog.text


# ---------------------------------------------------------------- fast paths agree with the reference


@pytest.mark.parametrize("r", [
    Rule("c", C.INT, scale=0), Rule("c", C.DECIMAL, scale=2), Rule("c", C.DECIMAL, scale=0), Rule("c", C.DECIMAL),
    Rule("c", C.TEXT), Rule("c", C.CHAR), Rule("c", C.TIMESTAMP, precision=6), Rule("c", C.TIMESTAMP, precision=0),
    Rule("c", C.DATE), Rule("c", C.OTHER), Rule("c", C.FLOAT32), Rule("c", C.UUID), Rule("c", C.JSON),
])
def test_canonicalizer_gives_the_reference_canonical_forms(r: Rule) -> None:
    values = [None, 0, 7, -1, True, Decimal("1.50"), Decimal("-2.345"), Decimal("NaN"), 1.25, "x ", "",
              datetime(2024, 1, 1, 1, 2, 3, 456789), datetime(2024, 1, 1, tzinfo=BERLIN_SUMMER), date(2024, 1, 1),
              b"\x01", uuid.UUID(int=5), '{"a": 1}']
    fast = C.canonicalizer(r)
    for v in values:
        assert fast(v) == canonical_by(r, v), (r, v)
    keys = C.key_canonicalizer([Rule("i", C.INT, scale=0), Rule("j", C.INT, scale=0)])
    assert keys((1, Decimal("2"))) == key_canonical([Rule("i", C.INT, scale=0)] * 2, (1, Decimal("2"))) == (1, 2)


def test_key_probes_take_the_stream_form_of_binary_and_uuid_keys() -> None:
    u = uuid.UUID("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e100")
    my_uuid = Rule("k", C.UUID, dialect="mariadb")
    my_binary = Rule("k", C.BINARY, dialect="mariadb")
    assert C.stream_value(my_uuid, str(u)) == u.bytes.rstrip(b"\0")
    assert C.stream_value(my_uuid, u) == u.bytes.rstrip(b"\0")
    assert C.stream_value(my_uuid, str(uuid.UUID(int=0))) == ""
    assert C.stream_value(my_binary, b"ab\0\0") == b"ab"
    assert C.stream_value(Rule("k", C.BYTES, dialect="mariadb"), b"") == ""
    assert C.stream_value(Rule("k", C.UUID, dialect="postgresql"), u) is u  # PostgreSQL takes the UUID itself
    assert C.stream_value(my_uuid, C.stream_value(my_uuid, u)) == u.bytes.rstrip(b"\0")  # idempotent
    assert same_digest(C.UUID, "", uuid.UUID(int=0))  # an all-zero UUID reads as ''


# ---------------------------------------------------------------- memory: bounded by the chunk, not the table


class Row(dict):
    """A row handed out by a fake scanner; the rows alive are counted through weak references."""

    __slots__ = ("__weakref__",)


class Tracker:
    def __init__(self) -> None:
        self.alive: dict[int, weakref.ref] = {}  # id -> weak reference, dropped when the row is freed
        self.peak = 0

    def made(self, rows: list) -> list:
        for r in rows:
            self.alive[id(r)] = weakref.ref(r, lambda _ref, k=id(r): self.alive.pop(k, None))
        self.peak = max(self.peak, len(self.alive))
        return rows


class FakeTable:
    """A table of `n` generated rows (never stored); the target lacks some, has some more, differs in one."""

    def __init__(self, key: str, n: int, target: bool, lost: range = range(0)):
        self.key, self.n, self.target, self.lost = key, n, target, lost  # lost: ids the target lacks too
        self.gone, self.more = ({7, n // 2}, {n + 5}) if target else (set(), set())

    def has(self, i: int) -> bool:
        return 1 <= i <= self.n and i not in self.gone and not (self.target and i in self.lost) or i in self.more

    def value(self, i: int) -> Any:
        return i if self.key == "id" else f"k{i:08d}"

    def ident(self, value: Any) -> int:
        return value if self.key == "id" else int(value[1:])

    def row(self, i: int) -> Row:
        name = "changed" if self.target and i == 13 else f"item {i}"
        return Row({self.key: self.value(i), "name": name, "qty": Decimal(i % 100) / 4})


class FakeScanner:
    def __init__(self, table: FakeTable, tracker: Tracker):
        self.t, self.tracker = table, tracker
        self.key = (table.key,)

    def chunk(self, after: tuple | None, limit: int) -> list:
        start = 1 if after is None else self.t.ident(after[0]) + 1
        ids = itertools.islice((i for i in range(start, self.t.n + 6) if self.t.has(i)), limit)
        return self.tracker.made([self.t.row(i) for i in ids])

    def by_keys(self, keys: list) -> list:
        ids = sorted(i for i in {self.t.ident(k[0]) for k in keys} if self.t.has(i))
        return self.tracker.made([self.t.row(i) for i in ids])

    def key_of(self, row: dict) -> tuple:
        return (row[self.t.key],)


class FakeSide:
    """A verify session (verify_side.Side) over generated tables: no server."""

    def __init__(self, conn: Connection, tables: dict, tracker: Tracker):
        self.conn, self.tables, self.tracker = conn, tables, tracker
        self.key = next(iter(tables.values())).key

    def scanner(self, table, key) -> FakeScanner:
        return FakeScanner(self.tables[table.name], self.tracker)

    def info(self, table) -> dict:
        types = {"id": "integer", "code": "character varying", "name": "text", "qty": "numeric"}
        if self.conn.kind == "mariadb":
            types = {"id": "int", "code": "varchar", "name": "varchar", "qty": "decimal"}
        return {c: C.ColumnInfo(c, types[c], self.conn.kind, scale=2 if c == "qty" else None,
                                collation="utf8mb4_bin" if c == "code" and self.conn.kind == "mariadb" else None)
                for c in (self.key, "name", "qty")}

    def converted(self, table, values: dict, key=None) -> dict:
        return dict(values)

    def converter(self, table, columns):
        return lambda values, key=None: dict(values)

    def stream_applied(self, stream: str) -> bool:
        return False  # no daemon: re-checks compare again at once

    def close(self) -> None:
        pass


def fake_setup(tmp_path: Path, key: str, n: int, chunk: int, lost: range = range(0)) -> tuple[Config, Any, Tracker]:
    """A configuration and mapping `items` (crm_to_erp) over fake sessions: (config, open_side, tracker)."""
    (tmp_path / "maps").mkdir(exist_ok=True)
    (tmp_path / "maps" / "items.yaml").write_text(
        "mappings:\n  items:\n    direction: crm_to_erp\n"
        f"    crm: {{table: items, key: [{key}]}}\n    erp: {{table: items, key: [{key}]}}\n"
        f"    fields: {{{key}: ~, name: ~, qty: ~}}\n")
    acct = Account("u", Secret(""))
    conns = (Connection("crm", "postgresql", "h", 1, "crm", acct, acct),
             Connection("erp", "mariadb", "h", 1, "erp", acct, acct))
    config = Config(tmp_path / "x.yaml", conns, tmp_path / "maps", Batching(),
                    verify=Verify(every_seconds=1, chunk_rows=chunk, recheck_seconds=0))
    tracker = Tracker()
    tables = {"crm": {"items": FakeTable(key, n, target=False)}, "erp": {"items": FakeTable(key, n, True, lost)}}
    return config, lambda conn: FakeSide(conn, tables[conn.name], tracker), tracker


def run_fake_verification(tmp_path: Path, key: str, n: int, chunk: int, lost: range = range(0),
                          max_listed: int | None = None) -> tuple[Report, Tracker]:
    config, open_side, tracker = fake_setup(tmp_path, key, n, chunk, lost)
    verifier = Verifier(config, load_mappings(config), max_listed=max_listed, open_side=open_side)
    try:
        return verifier.run(), tracker
    finally:
        verifier.close()


@pytest.mark.parametrize("key", ["id", "code"])  # integer keys: both tables side by side; text keys: by lookup
def test_a_verification_keeps_a_few_chunks_of_rows_alive_not_the_table(tmp_path: Path, key: str) -> None:
    n, chunk = 20_000, 100
    report, tracker = run_fake_verification(tmp_path, key, n, chunk)
    value = (lambda i: i) if key == "id" else (lambda i: f"k{i:08d}")
    assert sorted((d.kind, d.source_key or d.target_key) for d in report.differences) == sorted([
        (MISSING, (value(7),)), (MISSING, (value(n // 2),)), (EXTRA, (value(n + 5),)), (DIFFERS, (value(13),))])
    assert report.stats["items"].rows == n
    # a source chunk, a target chunk (or a lookup) and the chunk being read: never the table
    assert tracker.peak <= 3 * chunk, tracker.peak


def test_a_run_with_a_limit_lists_that_many_differences_and_counts_the_rest(tmp_path: Path) -> None:
    # the target lost half the table: the daemon's runs keep 100 differences, not 10,000
    report, _tracker = run_fake_verification(tmp_path, "id", 20_000, 100, lost=range(5_000, 15_000), max_listed=100)
    assert len(report.differences) == 100
    assert report.unlisted == {"erp.items": 10_003 - 100}  # 10,000 lost, 7 and 13 differ, 20,005 extra
    assert report.stats["items"].differing == 10_003
    assert "erp.items: 9903 more differing rows, not listed or re-checked" in report.lines()
    report, _tracker = run_fake_verification(tmp_path, "id", 2_000, 100, lost=range(500, 1_500))
    assert len(report.differences) == 1_003 and report.unlisted == {}  # the command line lists everything


def test_the_daemon_exports_the_rows_it_did_not_list_too(tmp_path: Path, monkeypatch, caplog) -> None:
    from replicator import metrics
    from replicator.verify import periodic as verify_periodic
    from replicator.stream.pipeline import MappingHolder

    config, open_side, _tracker = fake_setup(tmp_path, "id", 5_000, 100, lost=range(1_000, 3_000))
    monkeypatch.setattr(verify_periodic, "MAX_LISTED", 50)
    monkeypatch.setattr(verify_periodic, "Verifier", functools.partial(Verifier, open_side=open_side))
    report = PeriodicVerifier(config, MappingHolder(load_mappings(config)), threading.Event()).run_once()
    assert report is not None and len(report.differences) == 50
    assert metrics.verify_rows_differing.labels("erp.items")._value.get() == 2_003
    assert "1953 more differing rows of erp.items not listed" in caplog.text


def test_the_memory_a_verification_needs_does_not_grow_with_the_table(tmp_path: Path) -> None:
    peaks = {}
    for n in (2_000, 20_000):
        tracemalloc.start()
        try:
            run_fake_verification(tmp_path, "id", n, chunk=100)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # a whole-table key set, or a digest per chunk kept to the end, would grow ten-fold here
    assert peaks[20_000] < 1.5 * peaks[2_000], peaks


# ---------------------------------------------------------------- the fast row comparison never says more


TRICKY = [None, 0, 1, True, False, 2, -1, -2, 1.0, -0.0, 0.0, float("nan"), Decimal("1"), Decimal("1.00"),
          Decimal("NaN"), Decimal("1.005"), "1", "true", "ab", "ab ", "", b"ab", b"ab\0", {"a": True}, {"a": 1},
          [1, 2], [2, 1], datetime(2024, 1, 1, 10, tzinfo=BERLIN_SUMMER), datetime(2024, 1, 1, 8, tzinfo=timezone.utc),
          datetime(2024, 1, 1, 8), date(2024, 1, 1), timedelta(hours=1), dtime(1), uuid.UUID(int=5),
          str(uuid.UUID(int=5)), frozenset({"a", "b"}), "a,b", "b,a"]


@pytest.mark.parametrize("kind", [C.INT, C.DECIMAL, C.FLOAT32, C.FLOAT64, C.BOOL, C.TEXT, C.CHAR, C.JSON, C.SET,
                                  C.BYTES, C.BINARY, C.UUID, C.TIMESTAMP, C.DATE, C.TIME, C.OTHER])
def test_row_agreement_is_canonical_equality_of_every_column(kind: str) -> None:
    r = Rule("c", kind, scale=2 if kind == C.DECIMAL else (0 if kind == C.INT else None),
             precision=3 if kind in (C.TIMESTAMP, C.TIME) else None)
    agrees = C.row_agrees([r, Rule("d", C.TEXT)])
    for a in TRICKY:
        for b in TRICKY:
            same_forms = canonical_by(r, a) == canonical_by(r, b)
            assert agrees({"c": a, "d": "x"}, {"c": b, "d": "x"}) == same_forms, (kind, a, b)
            if same_forms:
                assert values_equal(r, a, b), (kind, a, b)
    assert not agrees({"c": 1, "d": "x"}, {"c": 1, "d": "y"})
    assert not agrees({"c": 1, "d": "x"}, {"c": 1})  # a column the target lacks
    assert C.row_agrees([])({"a": 1}, {"a": 2})  # nothing compared


def test_rows_out_of_key_order_stop_the_comparison_instead_of_misreporting(tmp_path: Path, monkeypatch) -> None:
    shuffled = FakeScanner.chunk

    def chunk(self, after, limit):
        rows = shuffled(self, after, limit)
        return rows[::-1] if self.t.target else rows  # a target that sorts its keys differently
    monkeypatch.setattr(FakeScanner, "chunk", chunk)
    with pytest.raises(ReplicatorError, match="ascending order"):
        run_fake_verification(tmp_path, "id", 1000, chunk=100)


# ---------------------------------------------------------------- the type contract's conversions agree


def test_a_mariadb_time_agrees_with_its_postgresql_interval_and_time_of_day() -> None:
    from datetime import timedelta

    interval = rule_for(ColumnInfo("c", "interval", "postgresql", precision=6), None, "c")
    for td, text in [(timedelta(days=-35, hours=1, microseconds=1), "P-35DT1H0.000001S"),
                     (-timedelta(hours=12, minutes=34, seconds=56, microseconds=789000), "P-1DT11H25M3.211S"),
                     (-timedelta(hours=12, minutes=34, seconds=56, microseconds=789000), "PT-12H-34M-56.789S"),
                     (timedelta(0), "PT0S")]:
        assert values_equal(interval, td, text), text
    assert not values_equal(interval, timedelta(seconds=-1), "PT1S")
    time_rule = rule_for(ColumnInfo("c", "time", "mariadb", precision=6), None, "c")
    assert values_equal(time_rule, "24:00:00", timedelta(days=1))
    assert not values_equal(time_rule, "24:00:00", timedelta(0))


def test_an_inet6_agrees_with_its_postgresql_inet() -> None:
    inet = rule_for(ColumnInfo("c", "inet", "postgresql"), None, "c")
    assert values_equal(inet, "::ffff:102:304", "::ffff:1.2.3.4")
    assert values_equal(inet, b"\x00" * 15 + b"\x01", "::1")
    assert values_equal(inet, "10.0.0.0/8", "10.0.0.0/8") and not values_equal(inet, "10.0.0.0/8", "10.0.0.0")
    assert not values_equal(inet, "::1", "::2")


def test_an_inet6_agrees_with_the_cidr_of_one_address() -> None:
    """A cidr shows the address an INET6 / INET4 carried into it with the whole prefix (::1/128, 1.2.3.4/32):
    the same address, not a difference for verify or the conflict check."""
    cidr = rule_for(ColumnInfo("c", "cidr", "postgresql"), None, "c")
    assert values_equal(cidr, b"\x00" * 15 + b"\x01", "::1/128")
    assert values_equal(cidr, b"\x01\x02\x03\x04", "1.2.3.4/32")
    assert not values_equal(cidr, b"\x01\x02\x03\x00", "1.2.3.0/24")
    assert not values_equal(cidr, "::1/127", "::1/128")


def test_bit_strings_agree_with_the_number_they_spell() -> None:
    """A PostgreSQL boolean or bit(n) into a MariaDB BIT (verify read true -> '1' as a difference), and back."""
    bit = rule_for(ColumnInfo("c", "bit", "mariadb"), None, "c")
    assert values_equal(bit, True, "1") and values_equal(bit, False, "0")
    assert values_equal(bit, "00000101", "101") and values_equal(bit, "00000101", b"\x05")
    assert not values_equal(bit, "00000101", "00000100") and not values_equal(bit, True, "0")
    pg = rule_for(ColumnInfo("c", "bit", "postgresql"), None, "c")
    assert values_equal(pg, "10101", "10101") and not values_equal(pg, "10101", "10100")


def test_an_insert_only_field_is_not_compared_once_the_row_exists(tmp_path: Path) -> None:
    # docs/walkthrough-odoo-erpnext.md: `customer_rank: {erp: ~, constant: 1, insert_only: true}` is set when
    # replicator creates the partner; a partner Odoo made itself keeps its own rank, which is no difference
    # (and `verify --repair` must not overwrite it). Target row 13 has another name; rows 7 and 10 000 are
    # missing and still reported.
    config, open_side, _tracker = fake_setup(tmp_path, "id", 20_000, 100)
    (tmp_path / "maps" / "items.yaml").write_text(
        "mappings:\n  items:\n    direction: crm_to_erp\n"
        "    crm: {table: items, key: [id]}\n    erp: {table: items, key: [id]}\n"
        "    fields: {id: ~, name: {insert_only: true}, qty: ~}\n")
    verifier = Verifier(config, load_mappings(config), open_side=open_side)
    try:
        report = verifier.run()
    finally:
        verifier.close()
    assert sorted((d.kind, d.source_key or d.target_key) for d in report.differences) == sorted([
        (MISSING, (7,)), (MISSING, (10_000,)), (EXTRA, (20_005,))])


def test_a_constant_of_a_two_way_mapping_is_not_compared(tmp_path: Path) -> None:
    # docs/walkthrough-espocrm-tryton.md: `write_uid: {espocrm: ~, constant: 0}` on EspoCRM accounts <-> Tryton
    # parties. A two-way update never writes a constant (it never changes), so every party Tryton created or
    # edited holds Tryton's user, and verify reported each one as `write_uid: 0 -> NULL` (repair wrote 0).
    # A one-way flow writes its constants on every update: compared there.
    from replicator.verify.flow import compared_columns
    from tests.unit.mapsets import make_config

    (tmp_path / "maps").mkdir()
    config = make_config(tmp_path)
    (tmp_path / "maps" / "m.yaml").write_text(
        "mappings:\n  customers:\n    direction: both\n"
        "    crm: {table: account, key: [id]}\n    erp: {table: party, key: [id]}\n    link: {crosswalk: true}\n"
        "    fields:\n      name: ~\n      write_uid: {crm: ~, constant: 0}\n      modified_at: {erp: ~, now: true}\n"
        "      type: {erp: ~, constant: Customer, insert_only: true}\n"
        "  products:\n    direction: crm_to_erp\n"
        "    crm: {table: product, key: [id]}\n    erp: {table: template, key: [id]}\n    link: {crosswalk: true}\n"
        "    fields:\n      name: ~\n      write_uid: {crm: ~, constant: 0}\n")
    mset = load_mappings(config)
    customers, products = mset.by_name["customers"], mset.by_name["products"]
    assert compared_columns(customers.flow("crm")) == ["name"]
    assert compared_columns(customers.flow("erp")) == ["name"]
    assert compared_columns(products.flow("crm")) == ["name", "write_uid"]


def test_a_copied_decimal_or_time_is_compared_with_the_source_value_not_at_the_target_scale() -> None:
    """A target narrowed behind replicator's back rounded 1.2345 to 1.23: at the target's scale that is equal,
    to the source value it is not. check refuses such a pair unless the field is lossy, so exact is right."""
    target, source = ColumnInfo("c", "decimal", "mariadb", 2), ColumnInfo("c", "numeric", "postgresql", 4)
    at_scale = rule_for(target, source, "c")
    assert values_equal(at_scale, Decimal("1.2345"), Decimal("1.23"))
    exact = C.exact_rule(at_scale, target, source)
    assert not values_equal(exact, Decimal("1.2345"), Decimal("1.23"))
    assert values_equal(exact, Decimal("1.2300"), Decimal("1.23")) and values_equal(exact, 2, Decimal("2.00"))
    ttime, stime = ColumnInfo("t", "datetime", "mariadb", None, 0), ColumnInfo("t", "timestamp without time zone",
                                                                              "postgresql", None, 6)
    seen = datetime(2026, 1, 2, 3, 4, 5, 654321)
    rule = rule_for(ttime, stime, "t")
    assert values_equal(rule, seen, seen.replace(microsecond=0))
    assert not values_equal(C.exact_rule(rule, ttime, stime), seen, seen.replace(microsecond=0))
    # a float source, and a MariaDB DOUBLE(M,D) (compared as a decimal), keep the target's rounding
    fsource = ColumnInfo("c", "double precision", "postgresql")
    assert C.exact_rule(rule_for(target, fsource, "c"), target, fsource).scale == 2
    double = ColumnInfo("c", "double", "mariadb", 4)
    assert C.exact_rule(rule_for(double, source, "c"), double, source).scale == 4
