"""The type contract of docs/types.md, against the real servers and the real daemon.

The two pair tables of docs/types.md ("MariaDB -> PostgreSQL", "PostgreSQL -> MariaDB") are read from
the document itself, and every row must have its edge values here (and every case here a row there):
so the table, `replicator check` and what arrives cannot drift apart.

1. `replicator check` on one wide table per direction (one column per documented pair) gives each pair
   the verdict the document states: fit, warning or refused.
2. The daemon carries every pair that is not refused; each edge value (minimum, maximum, zero, negative
   zero, fractional extremes, trailing zero bytes, empty, NULL, large text) arrives exactly, compared
   as Python values after the driver's own reading.
   `replicator verify` then finds both sides in agreement.
3. Values a target cannot hold are refused as a row error naming table, key and column, and nothing
   else of their transaction is applied.
"""
from __future__ import annotations

import ipaddress
import json
import math
import re
import struct
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration.harness import write_mappings, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "types.md"
UTC = timezone.utc


def f32(v: float) -> float:
    return struct.unpack("<f", struct.pack("<f", v))[0]


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and for floats the same sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (a != a and b != b)
    if isinstance(a, Decimal):
        return a == b and a.as_tuple().exponent == b.as_tuple().exponent
    if isinstance(a, (list, dict)):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    return a == b


def _bytes(v: Any) -> Any:
    return bytes(v) if isinstance(v, (memoryview, bytearray)) else v


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, (str, bytes)) else v


def _addr(v: Any) -> Any:
    return ipaddress.ip_address(v) if isinstance(v, str) else v


def _uuid(v: Any) -> Any:
    return uuid.UUID(v) if isinstance(v, str) else uuid.UUID(bytes=v) if isinstance(v, bytes) else v


def _rstrip(v: Any) -> Any:
    return v.rstrip(" ") if isinstance(v, str) else v


def _int(v: Any) -> Any:
    return int(v) if isinstance(v, int) else v


@dataclass
class Case:
    way: str  # "m2p" (MariaDB source) or "p2m" (PostgreSQL source)
    my: str  # MariaDB column type
    pg: str  # PostgreSQL column type
    values: list[tuple[Any, Any]] = field(default_factory=list)  # (written on the source, read on the target)
    read: Callable[[Any], Any] = _bytes  # the target driver's value -> comparable

    @property
    def key(self) -> tuple[str, str, str]:
        return self.way, self.my, self.pg


BIG_TEXT = ("Grüße 👋🏽 漢字 'q' \"d\" \\ %s %% \t\n" * 40000)[:1_000_000]  # about 1.1 MB of UTF-8
TEXT_MAX = "é" * 32767 + "x"  # 65535 bytes: the most a MariaDB TEXT holds
DEC_MAX = Decimal("9" * 35 + "." + "9" * 30)
DEC_MIN = Decimal("-" + "9" * 35 + "." + "9" * 30)  # not -DEC_MAX: that rounds to the context's 28 digits
TINY_F = 1.401298464324817e-45  # the smallest float32 (denormal)

# a PostgreSQL interval and its ISO 8601 text (intervalstyle iso_8601, every replicator session's): the
# last two are each field at its end of the range, the second the longest text there is (56 characters,
# casts.INTERVAL_TEXT_WIDTH)
INTERVAL_TEXTS = [
    ("1 year 2 mons -3 days 04:05:06.789", "P1Y2M-3DT4H5M6.789S"), ("-00:00:00.000001", "PT-0.000001S"),
    ("0", "PT0S"), ("25 hours", "PT25H"), ("-1 day 00:00:01.5", "P-1DT1.5S"),
    ("178956970 years 7 mons 2147483647 days 2562047788:00:54.775807",
     "P178956970Y7M2147483647DT2562047788H54.775807S"),
    ("-178956969 years -11 mons -2147483648 days -2562047787:59:59.999999",
     "P-178956969Y-11M-2147483648DT-2562047787H-59M-59.999999S"),
]

M2P = [
    Case("m2p", "TINYINT", "smallint", [(-128, -128), (127, 127), (0, 0)]),
    Case("m2p", "SMALLINT", "smallint", [(-32768, -32768), (32767, 32767), (0, 0)]),
    Case("m2p", "MEDIUMINT", "integer", [(-8388608, -8388608), (8388607, 8388607)]),
    Case("m2p", "INT", "integer", [(-2 ** 31, -2 ** 31), (2 ** 31 - 1, 2 ** 31 - 1), (0, 0)]),
    Case("m2p", "BIGINT", "bigint", [(-2 ** 63, -2 ** 63), (2 ** 63 - 1, 2 ** 63 - 1), (0, 0)]),
    Case("m2p", "INT UNSIGNED", "bigint", [(0, 0), (2 ** 32 - 1, 2 ** 32 - 1)]),
    Case("m2p", "BIGINT UNSIGNED", "numeric(20,0)", [(0, Decimal(0)), (2 ** 64 - 1, Decimal(2 ** 64 - 1))]),
    Case("m2p", "BIGINT UNSIGNED", "bigint", [(2 ** 63 - 1, 2 ** 63 - 1), (0, 0)]),
    Case("m2p", "DECIMAL(65,30)", "numeric(65,30)",
         [(DEC_MAX, DEC_MAX), (DEC_MIN, DEC_MIN), (Decimal("-0." + "0" * 29 + "1"), Decimal("-0." + "0" * 29 + "1")),
          (Decimal(0), Decimal("0." + "0" * 30))]),
    Case("m2p", "FLOAT", "real",
         [(3.4028234663852886e38, 3.4028234663852886e38), (-3.4028234663852886e38, -3.4028234663852886e38),
          (1.1754943508222875e-38, 1.1754943508222875e-38), (TINY_F, TINY_F), (0.0, 0.0),
          (0.1, f32(0.1))], read=lambda v: f32(v) if isinstance(v, float) else v),
    Case("m2p", "DOUBLE", "double precision",
         [(1.7976931348623157e308, 1.7976931348623157e308), (-1.7976931348623157e308, -1.7976931348623157e308),
          (5e-324, 5e-324), (2.2250738585072014e-308, 2.2250738585072014e-308), (0.0, 0.0), (0.1, 0.1)]),
    Case("m2p", "VARCHAR(255)", "varchar(255)",
         [("", ""), ("é😀" * 127 + "x", "é😀" * 127 + "x"), ("q' \"d\" \\ %s", "q' \"d\" \\ %s")]),
    Case("m2p", "CHAR(10)", "char(10)", [("", ""), ("a", "a"), ("abc de", "abc de")], read=_rstrip),
    Case("m2p", "TEXT", "text", [(TEXT_MAX, TEXT_MAX), ("", "")]),
    Case("m2p", "LONGTEXT", "text", [(BIG_TEXT, BIG_TEXT), ("", "")]),
    Case("m2p", "ENUM('a','b c','é')", "text", [("a", "a"), ("b c", "b c"), ("é", "é")]),
    Case("m2p", "SET('x','y','z')", "text", [("", ""), ("z,x", "x,z"), ("x,y,z", "x,y,z")]),
    Case("m2p", "BOOLEAN", "boolean", [(0, False), (1, True)]),
    Case("m2p", "DATE", "date", [(date(1000, 1, 1), date(1000, 1, 1)), (date(9999, 12, 31), date(9999, 12, 31)),
                                 (date(2024, 2, 29), date(2024, 2, 29))]),
    Case("m2p", "DATETIME(6)", "timestamp(6)",
         [(datetime(1000, 1, 1), datetime(1000, 1, 1)),
          (datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(9999, 12, 31, 23, 59, 59, 999999)),
          (datetime(2024, 2, 29, 12, 0, 0, 1), datetime(2024, 2, 29, 12, 0, 0, 1))]),
    Case("m2p", "TIMESTAMP(6)", "timestamptz(6)",
         [(datetime(1970, 1, 1, 0, 0, 1), datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
          (datetime(2038, 1, 19, 3, 14, 7, 999999), datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC))],
         read=lambda v: v.astimezone(UTC) if isinstance(v, datetime) else v),
    Case("m2p", "TIME(6)", "interval",
         [(timedelta(hours=-838, minutes=-59, seconds=-59, microseconds=-999999),) * 2,
          (timedelta(hours=838, minutes=59, seconds=59, microseconds=999999),) * 2,
          (timedelta(microseconds=-1),) * 2, (timedelta(0),) * 2,
          (-timedelta(hours=12, minutes=34, seconds=56, microseconds=789000),) * 2]),
    Case("m2p", "TIME(3)", "interval",
         [(-timedelta(hours=12, minutes=34, seconds=56, microseconds=789000),) * 2, (timedelta(milliseconds=-1),) * 2,
          (timedelta(milliseconds=-999),) * 2]),
    Case("m2p", "LONGTEXT", "interval"),  # refused: PostgreSQL rounds and normalises interval text silently
    Case("m2p", "TIME(6)", "time(6)",
         [(timedelta(0), time(0)), (timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
                                    time(23, 59, 59, 999999))]),
    Case("m2p", "JSON", "jsonb",
         [('{"a": [1, 2.5, null, true], "é": "😀"}', {"a": [1, 2.5, None, True], "é": "😀"}), ("[]", []),
          ("{}", {}), ('"x"', "x")]),  # psycopg2 parses jsonb itself
    Case("m2p", "BLOB", "bytea", [(b"", b""), (bytes(range(256)), bytes(range(256))), (b"\x00" * 10, b"\x00" * 10)]),
    Case("m2p", "VARBINARY(16)", "bytea", [(b"", b""), (b"\x00", b"\x00"), (b"a\x00\x00", b"a\x00\x00")]),
    Case("m2p", "BINARY(16)", "bytea",
         [(b"\x01" * 14 + b"\x00\x00", b"\x01" * 14 + b"\x00\x00"), (b"\x00" * 16, b"\x00" * 16),
          (b"\xff" * 16, b"\xff" * 16)]),
    Case("m2p", "BINARY(16)", "uuid",
         [(b"\x0f" * 15 + b"\x00", uuid.UUID(bytes=b"\x0f" * 15 + b"\x00")), (b"\x00" * 16, uuid.UUID(int=0))],
         read=_uuid),
    Case("m2p", "UUID", "uuid",
         [(str(u), u) for u in (uuid.UUID("1b4e28ba-2fa1-4d2e-883f-0016d3cca427"), uuid.UUID(int=0),
                                uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffff00"))], read=_uuid),
    Case("m2p", "INET6", "inet",
         [(a, ipaddress.ip_address(a)) for a in ("::", "::1", "ffff::", "::ffff:1.2.3.4", "2001:db8::ff00:42:8329")],
         read=_addr),
]

P2M = [
    Case("p2m", "SMALLINT", "smallint", [(-32768, -32768), (32767, 32767), (0, 0)]),
    Case("p2m", "INT", "integer", [(-2 ** 31, -2 ** 31), (2 ** 31 - 1, 2 ** 31 - 1)]),
    Case("p2m", "BIGINT", "bigint", [(-2 ** 63, -2 ** 63), (2 ** 63 - 1, 2 ** 63 - 1), (0, 0)]),
    Case("p2m", "TINYINT", "smallint", [(-128, -128), (127, 127)]),
    Case("p2m", "DECIMAL(65,30)", "numeric(65,30)",
         [(DEC_MAX, DEC_MAX), (DEC_MIN, DEC_MIN), (Decimal("-0." + "0" * 29 + "1"),) * 2,
          (Decimal(0), Decimal("0." + "0" * 30))]),
    Case("p2m", "DECIMAL(10,2)", "numeric(14,2)", [(Decimal("99999999.99"),) * 2, (Decimal("-99999999.99"),) * 2,
                                                   (Decimal("0.00"),) * 2]),
    Case("p2m", "DECIMAL(65,30)", "numeric"),
    Case("p2m", "FLOAT", "real", [(3.4028234663852886e38, 3.4028234663852886e38), (-0.0, 0.0), (TINY_F, TINY_F),
                                  (0.1, f32(0.1))], read=lambda v: f32(v) if isinstance(v, float) else v),
    Case("p2m", "DOUBLE", "double precision",
         [(1.7976931348623157e308, 1.7976931348623157e308), (5e-324, 5e-324), (-0.0, 0.0), (0.1, 0.1)]),
    Case("p2m", "VARCHAR(255)", "varchar(255)", [("", ""), ("é😀" * 127 + "x",) * 2, ("q' \"d\" \\ %s",) * 2]),
    Case("p2m", "CHAR(10)", "char(10)", [("", ""), ("a", "a"), ("abc de", "abc de")], read=_rstrip),
    Case("p2m", "LONGTEXT", "text", [(BIG_TEXT, BIG_TEXT), ("", "")]),
    Case("p2m", "ENUM('a','b c','é')", "mood", [("a", "a"), ("b c", "b c"), ("é", "é")]),
    Case("p2m", "BOOLEAN", "boolean", [(True, 1), (False, 0)]),
    Case("p2m", "DATE", "date", [(date(1000, 1, 1),) * 2, (date(9999, 12, 31),) * 2]),
    Case("p2m", "DATETIME(6)", "timestamp(6)",
         [(datetime(1000, 1, 1),) * 2, (datetime(9999, 12, 31, 23, 59, 59, 999999),) * 2]),
    Case("p2m", "DATETIME(6)", "timestamptz(6)",
         [(datetime(2024, 2, 29, 23, 30, tzinfo=timezone(timedelta(hours=-8))), datetime(2024, 3, 1, 7, 30)),
          (datetime(1000, 1, 1, tzinfo=UTC), datetime(1000, 1, 1))]),
    Case("p2m", "TIMESTAMP(6)", "timestamptz(6)",
         [(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), datetime(1970, 1, 1, 0, 0, 1)),
          (datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC), datetime(2038, 1, 19, 3, 14, 7, 999999))]),
    Case("p2m", "TIME(6)", "time(6)", [(time(0), timedelta(0)), (time(23, 59, 59, 999999),
                                                                 timedelta(hours=23, minutes=59, seconds=59,
                                                                           microseconds=999999)),
                                       ("24:00:00", timedelta(hours=24))]),
    Case("p2m", "VARCHAR(56)", "interval", [(v, t) for v, t in INTERVAL_TEXTS]),
    Case("p2m", "TIME(6)", "interval",
         [("-838:59:59.999999", -timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)),
          ("838:59:59.999999", timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)),
          ("-00:00:00.000001", timedelta(microseconds=-1)), ("0", timedelta(0)),
          ("1 day 02:03:04.5", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
          ("1 day -02:00:00", timedelta(hours=22)),
          ("-12:34:56.789", -timedelta(hours=12, minutes=34, seconds=56, microseconds=789000))]),
    Case("p2m", "JSON", "jsonb", [('{"a": [1, 2.5, null, true], "é": "😀"}', {"a": [1, 2.5, None, True], "é": "😀"}),
                                  ("[]", []), ("{}", {})], read=_json),
    Case("p2m", "JSON", "integer[]", [("{1,2,NULL}", [1, 2, None]), ("{}", []), ("{{1,2},{3,4}}", [[1, 2], [3, 4]]),
                                      ("{-2147483648,2147483647}", [-2 ** 31, 2 ** 31 - 1])], read=_json),
    Case("p2m", "JSON", "text[]", [('{"a b","c\\"d",NULL,"",é}', ["a b", 'c"d', None, "", "é"])], read=_json),
    Case("p2m", "JSON", "numeric[]", [("{1.50,-0,1e-30}", [1.5, 0, 1e-30])], read=_json),
    Case("p2m", "LONGBLOB", "bytea", [(b"", b""), (bytes(range(256)),) * 2, (b"\x00\x00",) * 2]),
    Case("p2m", "VARBINARY(16)", "bytea", [(b"", b""), (b"a\x00",) * 2]),
    Case("p2m", "BINARY(16)", "bytea"),
    Case("p2m", "UUID", "uuid", [(u, u) for u in (uuid.UUID("1b4e28ba-2fa1-4d2e-883f-0016d3cca427"),
                                                  uuid.UUID(int=0))], read=_uuid),
    Case("p2m", "BINARY(16)", "uuid", [(uuid.UUID("1b4e28ba-2fa1-4d2e-883f-0016d3cca400"),) * 2], read=_uuid),
    Case("p2m", "INET6", "inet"),
    Case("p2m", "INT", "integer GENERATED ALWAYS AS (id * 2) STORED"),
]

CASES = M2P + P2M


# ------------------------------------------------------------------------------------------------ the document

def doc_pairs() -> dict[tuple[str, str, str], str]:
    """{(way, MariaDB type, PostgreSQL type): verdict} from the two pair tables of docs/types.md."""
    text = DOC.read_text(encoding="utf-8")
    out: dict[tuple[str, str, str], str] = {}
    for way, heading in (("m2p", "## MariaDB → PostgreSQL"), ("p2m", "## PostgreSQL → MariaDB")):
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 4 or not cells[0].startswith("`"):
                continue
            src, dst, verdict = cells[0].strip("`"), cells[1].strip("`"), cells[2]
            my, pg = (src, dst) if way == "m2p" else (dst, src)
            out[(way, my, pg)] = verdict
    return out


def test_every_documented_pair_is_tested_and_every_tested_pair_documented() -> None:
    documented = doc_pairs()
    tested = {c.key for c in CASES}
    assert set(documented) - tested == set(), "documented but not tested"
    assert tested - set(documented) == set(), "tested but not documented"
    assert set(documented.values()) <= {"fit", "warning", "refused"}
    for c in CASES:
        assert bool(c.values) == (documented[c.key] != "refused"), f"{c.key}: edge values iff not refused"


# ------------------------------------------------------------------------------------------------ the servers

PG_ENUM = "CREATE TYPE mood AS ENUM ('a', 'b c', 'é')"


def ddl(cases: list[Case], side: str) -> str:
    cols = ", ".join(f"c{i} {c.my if side == 'my' else c.pg}" for i, c in enumerate(cases))
    return f"CREATE TABLE {{}} (id int PRIMARY KEY, {cols})"


def mapping(name: str, cases: list[Case], way: str) -> str:
    fields = "\n".join(f"      c{i}: ~" for i in range(len(cases)))
    direction = "erp_to_crm" if way == "m2p" else "crm_to_erp"
    return (f"  {name}:\n    direction: {direction}\n    crm: {{table: {name}, key: [id]}}\n"
            f"    erp: {{table: {name}, key: [id]}}\n    fields:\n      id: ~\n{fields}\n")


def verdicts(output: str, name: str, n: int) -> dict[int, str]:
    """Per column cN of mapping `name`: refused / warning / fit, from `replicator check`'s output."""
    out = {i: "fit" for i in range(n)}
    for line in output.splitlines():
        m = re.match(r"\[(FAIL|warn)\] \w+: .*?: mappings\." + name + r"\.fields\.c(\d+)[:.]", line)
        if m and "allows zero dates" not in line:  # the server's sql_mode, not the pair's cast (test_types.py)
            i = int(m.group(2))
            out[i] = "refused" if m.group(1) == "FAIL" or out[i] == "refused" else "warning"
    return out


@pytest.fixture
def contract_pair(make_pair):
    pg_sql = ";\n".join([PG_ENUM, ddl(M2P, "pg").format("m2p"), ddl(P2M, "pg").format("p2m")])
    my_sql = ";\n".join([ddl(M2P, "my").format("m2p"), ddl(P2M, "my").format("p2m")])
    pair = make_pair(pg_sql, my_sql, "mappings:\n" + mapping("m2p", M2P, "m2p") + mapping("p2m", P2M, "p2m"),
                     setup=False)
    yield pair
    pair.stop()


def test_check_verdicts_round_trips_and_named_errors(contract_pair) -> None:
    pair = contract_pair
    documented = doc_pairs()
    # 1. `replicator check` gives each pair the documented verdict, and counts the warnings
    result = pair.cli("check", check=False)
    out = result.stdout + result.stderr
    got = {**{("m2p",) + c.key[1:]: v for c, v in zip(M2P, verdicts(out, "m2p", len(M2P)).values())},
           **{("p2m",) + c.key[1:]: v for c, v in zip(P2M, verdicts(out, "p2m", len(P2M)).values())}}
    wrong = {k: (got[k], documented[k]) for k in got if got[k] != documented[k]}
    assert wrong == {}, f"(check says, docs/types.md says):\n{wrong}\n{out}"
    warned = sum(1 for v in got.values() if v == "warning")
    summary = re.search(r"(\d+) warnings", out)
    assert summary and int(summary.group(1)) >= warned, out  # each warned pair is counted in the summary
    assert result.returncode != 0  # some pairs are refused by design

    # 2. without the refused pairs, the daemon starts and every edge value arrives exactly
    live_m2p = [(i, c) for i, c in enumerate(M2P) if c.values]
    live_p2m = [(i, c) for i, c in enumerate(P2M) if c.values]
    body = "mappings:\n"
    for name, live, way in (("m2p", live_m2p, "m2p"), ("p2m", live_p2m, "p2m")):
        fields = "\n".join(f"      c{i}: ~" for i, _ in live)
        direction = "erp_to_crm" if way == "m2p" else "crm_to_erp"
        body += (f"  {name}:\n    direction: {direction}\n    crm: {{table: {name}, key: [id]}}\n"
                 f"    erp: {{table: {name}, key: [id]}}\n    fields:\n      id: ~\n{fields}\n")
    write_mappings(pair, body)

    # rows written before the first run are copied by the initial sync (the table scanners), rows
    # written while the daemon runs come through the binlog / WAL decoders: both paths, same values
    rows_m2p, rows_p2m = rows_of(live_m2p), rows_of(live_p2m)
    synced_m2p, synced_p2m = ({k + 1000: v for k, v in rows.items()} for rows in (rows_m2p, rows_p2m))
    write_rows(pair, live_m2p, synced_m2p, live_p2m, synced_p2m)
    pair.setup()
    pair.start()
    wait_until(lambda: "sync of m2p done" in pair.log() and "sync of p2m done" in pair.log(), 60, "the first sync")
    write_rows(pair, live_m2p, rows_m2p, live_p2m, rows_p2m)
    rows_m2p.update(synced_m2p)
    rows_p2m.update(synced_p2m)

    def arrived() -> bool:
        assert pair.proc.poll() is None, f"the daemon stopped:\n{pair.log()[-4000:]}"
        return (pair.pg_query("SELECT count(*) FROM m2p")[0][0] == len(rows_m2p)
                and pair.my_query("SELECT count(*) FROM p2m")[0][0] == len(rows_p2m))
    wait_until(arrived, 60, "every row on the other side")
    problems = compare(pair.pg_query(f"SELECT id, {', '.join(f'c{i}' for i, _ in live_m2p)} FROM m2p"),
                       live_m2p, rows_m2p, "MariaDB -> PostgreSQL")
    # a FLOAT's text has 6 digits: read the stored float32 exactly
    exprs = ", ".join(f"CAST(c{i} AS DOUBLE)" if c.my == "FLOAT" else f"c{i}" for i, c in live_p2m)
    problems += compare(pair.my_query(f"SELECT id, {exprs} FROM p2m"), live_p2m, rows_p2m, "PostgreSQL -> MariaDB")
    assert problems == [], "\n".join(problems)
    assert pair.metric("replicator_errors_total") == 0
    log = pair.log()  # the rows written before the first run were copied by the sync, not streamed
    assert f"sync of m2p done: {len(synced_m2p)} rows" in log and f"sync of p2m done: {len(synced_p2m)} rows" in log, \
        [line for line in log.splitlines() if "sync" in line]

    # `verify` compares both sides through the mappings and agrees
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0 and "the sides agree" in verify.stdout, verify.stdout[-6000:] + verify.stderr

    # 3. a valid PostgreSQL value MariaDB cannot hold stops its row, named; its transaction is not applied
    (date_col,) = [i for i, c in live_p2m if c.pg == "date"]
    conn = pair.pg.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO p2m (id) VALUES (900)")
        cur.execute(f"INSERT INTO p2m (id, c{date_col}) VALUES (901, 'infinity')")
    conn.commit()
    conn.close()
    assert pair.wait_exit(60) != 0
    stopped = [line for line in pair.log().splitlines() if "stopped on" in line]
    assert stopped and f"{pair.maria.dbname}.p2m, key (901,), column c{date_col}: " in stopped[-1], pair.log()
    assert "'infinity' is beyond MariaDB's date range" in stopped[-1]
    assert pair.my_query("SELECT count(*) FROM p2m WHERE id IN (900, 901)") == [(0,)]


def write_rows(pair: Any, live_m2p: list, rows_m2p: dict, live_p2m: list, rows_p2m: dict) -> None:
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cols = ", ".join(f"c{i}" for i, _ in live_m2p)
            for key, row in rows_m2p.items():
                cur.execute(f"INSERT INTO m2p (id, {cols}) VALUES (%s{', %s' * len(live_m2p)})",
                            [key] + [w for w, _ in row])
    finally:
        conn.close()
    conn = pair.pg.connect()
    try:
        with conn.cursor() as cur:
            cols = ", ".join(f"c{i}" for i, _ in live_p2m)
            for key, row in rows_p2m.items():
                cur.execute(f"INSERT INTO p2m (id, {cols}) VALUES (%s{', %s' * len(live_p2m)})",
                            [key] + [pg_param(w) for w, _ in row])
    finally:
        conn.close()


def rows_of(live: list[tuple[int, Case]]) -> dict[int, list[tuple[Any, Any]]]:
    """Row k holds the k-th edge value of every column (NULL where a column has fewer); one row of NULLs."""
    depth = max(len(c.values) for _, c in live)
    rows = {k + 1: [c.values[k] if k < len(c.values) else (None, None) for _, c in live] for k in range(depth)}
    rows[depth + 1] = [(None, None)] * len(live)
    return rows


def pg_param(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def compare(got: list[tuple], live: list[tuple[int, Case]], rows: dict[int, list], what: str) -> list[str]:
    by_key = {r[0]: r[1:] for r in got}
    out = []
    for key, row in rows.items():
        if key not in by_key:
            out.append(f"{what}: row {key} missing")
            continue
        for (i, c), (written, want), value in zip(live, row, by_key[key]):
            have = c.read(value) if value is not None else None
            if not same(have, want):
                out.append(f"{what}: {c.my} / {c.pg} row {key}: wrote {written!r:.80}, read {have!r:.80}, "
                           f"want {want!r:.80}")
    return out


# ------------------------------------------------------------------------------------------------ named errors

# (target column type, the source value's text as pgoutput sends it, its type oid, what the error says)
PG_VALUES_MARIADB_REFUSES = [
    ("DOUBLE", b"Infinity", 701, "cannot be stored in a MariaDB DOUBLE"),
    ("DOUBLE", b"-Infinity", 701, "cannot be stored in a MariaDB DOUBLE"),
    ("DOUBLE", b"NaN", 701, "cannot be stored in a MariaDB DOUBLE"),
    ("FLOAT", b"NaN", 700, "cannot be stored in a MariaDB DOUBLE/FLOAT"),
    ("DECIMAL(10,2)", b"NaN", 1700, "cannot be stored in a MariaDB DECIMAL"),
    ("DATE", b"infinity", 1082, "beyond MariaDB's date range"),
    ("DATE", b"-infinity", 1082, "beyond MariaDB's date range"),
    ("DATE", b"0044-03-15 BC", 1082, "beyond MariaDB's date range"),
    ("DATETIME(6)", b"294276-12-31 23:59:59.999999", 1114, "beyond MariaDB's date range"),
    ("DATETIME(6)", b"infinity", 1184, "beyond MariaDB's date range"),
    ("TIME(6)", b"P35D", 1186, "outside MariaDB's TIME range"),
    ("TIME(6)", b"PT-839H", 1186, "outside MariaDB's TIME range"),
    ("TIME(6)", b"P1M", 1186, "years or months"),
    ("JSON", b"{1.5,NaN}", 1022, "no JSON equivalent"),
    ("YEAR", b"47", 21, "no year MariaDB's YEAR holds as it is"),  # stored as 2047 without a word
]


def test_values_mariadb_cannot_hold_are_row_errors_naming_table_key_and_column(maria_db) -> None:
    """Each value as the WAL decoder gives it, through the real MariaDB applier: a RowError naming
    table, key and column, and nothing written."""
    from replicator.appliers.mariadb import MariaDBApplier
    from replicator.changes import Op, TableRef, TargetChange
    from replicator.config import Account, Connection, Secret
    from replicator.errors import RowError
    from replicator.sources.pgoutput import converter_for

    cols = ", ".join(f"c{i} {t}" for i, (t, _, _, _) in enumerate(PG_VALUES_MARIADB_REFUSES))
    conn = maria_db.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `we``ird` (id INT PRIMARY KEY, {cols})")
    acc = Account(maria_db.user, Secret(maria_db.password))
    applier = MariaDBApplier(Connection("erp", "mariadb", maria_db.host, maria_db.port, maria_db.dbname, acc, acc,
                                        server_id=4242), "crm_to_erp")
    applier.connect()
    table = TableRef(maria_db.dbname, "we`ird")
    try:
        applier.load_types([table])
        for i, (_, text, oid, said) in enumerate(PG_VALUES_MARIADB_REFUSES):
            value = converter_for(oid)(text)
            change = TargetChange(table, Op.INSERT, ("id",), (i,), {"id": i, f"c{i}": value})
            with pytest.raises(RowError) as info:
                applier.apply([change])
            err = info.value
            assert (err.table, err.key, err.column) == (f"{maria_db.dbname}.we`ird", (i,), f"c{i}"), str(err)
            assert said in str(err), str(err)
            applier.rollback()
    finally:
        applier.close()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM `we``ird`")
        assert cur.fetchall()[0][0] == 0
    conn.close()


# (target column type, the value as the binlog decoder gives it, what the error says)
MARIADB_VALUES_POSTGRESQL_REFUSES = [
    ("time(6)", timedelta(hours=25), "not a time of day"),
    ("time(6)", timedelta(microseconds=-1), "not a time of day"),
    ("inet", b"\x01\x02\x03\x04\x05", "not an IPv4 (4) or IPv6 (16) address"),
    ("text", "a\x00b", "NUL character"),
    ("text", b"\xff", "can't decode"),
    ("smallint", 70000, "out of range for PostgreSQL smallint"),
    ("jsonb", '{"a": 1, "b": {"a": 1}, "a": 2}', "has the key 'a' twice"),
    ("jsonb", "[1e131072]", "beyond the range of jsonb's numeric"),  # PostgreSQL's error named no column
    ("jsonb", '{"a": "\\u0000"}', "\\u0000"),
]


def test_values_postgresql_cannot_hold_are_row_errors_naming_table_key_and_column(pg_db) -> None:
    from replicator.appliers.postgres import PostgresApplier
    from replicator.changes import Op, TableRef, TargetChange
    from replicator.config import Account, Connection, Secret
    from replicator.errors import RowError

    cols = ", ".join(f"c{i} {t}" for i, (t, _, _) in enumerate(MARIADB_VALUES_POSTGRESQL_REFUSES))
    conn = pg_db.connect()
    with conn.cursor() as cur:
        cur.execute(f'CREATE TABLE "we""ird é" (id int PRIMARY KEY, {cols})')
    acc = Account(pg_db.user, Secret(pg_db.password))
    applier = PostgresApplier(Connection("crm", "postgresql", pg_db.host, pg_db.port, pg_db.dbname, acc, acc,
                                         sslmode="disable", slot=pg_db.dbname, publication="p"), "erp_to_crm")
    applier.connect()
    table = TableRef("public", 'we"ird é')
    try:
        applier.load_types([table])
        for i, (_, value, said) in enumerate(MARIADB_VALUES_POSTGRESQL_REFUSES):
            change = TargetChange(table, Op.INSERT, ("id",), (i,), {"id": i, f"c{i}": value})
            with pytest.raises(RowError) as info:
                applier.apply([change])
            err = info.value
            assert (err.table, err.key, err.column) == ('public.we"ird é', (i,), f"c{i}"), str(err)
            assert said in str(err), str(err)
            applier.rollback()
    finally:
        applier.close()
    with conn.cursor() as cur:
        cur.execute('SELECT count(*) FROM "we""ird é"')
        assert cur.fetchall()[0][0] == 0
    conn.close()


def test_an_intervals_iso_text_is_its_longest_and_reads_back_as_the_same_interval(pg_db) -> None:
    """What an interval -> text field writes (docs/types.md, "Intervals"): PostgreSQL's ISO 8601 text, at most
    casts.INTERVAL_TEXT_WIDTH characters, which PostgreSQL reads back as the same interval -- shown alike in
    another style, so months, days and microseconds each came back, not only an equal total. Text it did
    not write is not read exactly (why text -> interval is refused)."""
    from replicator.mapping.check.casts import INTERVAL_TEXT_WIDTH
    conn = pg_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET intervalstyle = iso_8601")
            for value, iso in INTERVAL_TEXTS:
                cur.execute("SELECT %s::interval::text", (value,))
                assert cur.fetchone()[0] == iso
                assert len(iso) <= INTERVAL_TEXT_WIDTH
                cur.execute("SET intervalstyle = postgres_verbose")
                cur.execute("SELECT %s::interval::text, %s::interval::text", (iso, value))
                back, original = cur.fetchone()
                assert back == original, (iso, back, original)
                cur.execute("SET intervalstyle = iso_8601")
            assert max(len(iso) for _, iso in INTERVAL_TEXTS) == INTERVAL_TEXT_WIDTH
            for text, read in (("0.0000005 seconds", "PT0S"), ("0.3333333 months", "P9DT23H59M59.9136S"),
                               ("1 day", "P1D")):
                cur.execute("SELECT %s::interval::text", (text,))
                assert cur.fetchone()[0] == read
    finally:
        conn.close()
