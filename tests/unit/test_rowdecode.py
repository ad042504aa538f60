"""replicator.sources.rowdecode against mysql-replication's own decoder, on synthetic row events.

The events are real pymysqlreplication Write/Update/DeleteRowsEvent objects (built without a server) whose
packet holds a rows body we encode here: mostly valid encodings of random values, sometimes random bytes of
the right width (invalid dates, odd fractions, bad UTF-8, out-of-range ENUM indexes...). For every body the
library and the compiled decoder must give identical values (same types, same Decimal digits, same float
bits) and the same zero-date count, or the library must raise and the decoder must then leave the packet
untouched so that ``event.rows`` raises the same way.
"""
from __future__ import annotations

import datetime as dt
import random
import struct
from decimal import Decimal
from typing import Any, Callable, Optional

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication.column import Column
from pymysqlreplication.constants import FIELD_TYPE as T
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from pymysqlreplication.table import Table

from replicator.changes import ZeroDatedRow, zero_dated
from replicator.sources.rowdecode import RowDecoder, compile_table, unsupported_reason
from replicator.sources import libraryrows

ZERO = {NONE_SOURCE.OUT_OF_DATE_RANGE, NONE_SOURCE.OUT_OF_DATETIME_RANGE, NONE_SOURCE.OUT_OF_DATETIME2_RANGE}
KINDS = {"write": (WriteRowsEvent, 30), "update": (UpdateRowsEvent, 31), "delete": (DeleteRowsEvent, 32),
         "write_v1": (WriteRowsEvent, 23), "update_v1": (UpdateRowsEvent, 24), "delete_v1": (DeleteRowsEvent, 25)}


# --- fake events ----------------------------------------------------------------------------------------------

def col(type_: int, name: str, **meta: Any) -> Column:
    base = dict(type=type_, name=name, unsigned=False, is_primary=False, charset_id=None, character_set_name=None,
                collation_name=None, enum_values=None, set_values=None, visibility=False)
    base.update(meta)
    return Column(**base)


def fake_event(kind: str, columns: list[Column], body: bytes, *, ignore_decode_errors: bool = False,
               bitmap: Optional[bytes] = None) -> Any:
    cls, event_type = KINDS[kind]
    wrapper = BinLogPacketWrapper.__new__(BinLogPacketWrapper)
    wrapper.packet = MysqlPacket(body + b"\x01\x02\x03\x04", "utf8")  # + a 4-byte checksum, not part of the rows
    wrapper.read_bytes = 0
    wrapper._BinLogPacketWrapper__data_buffer = b""
    ev = cls.__new__(cls)
    ev.packet = wrapper
    ev.event_size = len(body)
    ev.event_type = event_type
    ev.table_id = 77
    table = Table(77, "db", "t", columns)
    ev.table_map = {77: table}
    ev.columns = table.columns
    ev.schema, ev.table = "db", "t"
    ev.number_of_columns = len(columns)
    full = bitmap if bitmap is not None else b"\xff" * ((len(columns) + 7) // 8)
    ev.columns_present_bitmap = full
    ev.columns_present_bitmap2 = full
    ev.complete = True
    ev._processed = True
    ev._ignore_decode_errors = ignore_decode_errors
    ev._ctl_connection = None
    ev._RowsEvent__rows = None
    ev._RowsEvent__none_sources = {}
    ev._RowsEvent__use_column_name_cache = False
    ev._RowsEvent__enable_logging = False
    return ev


def _zero_named(values: dict, sources: dict) -> dict:
    """The library's image as RowDecoder gives it: a ZeroDatedRow naming the columns it read as zero dates."""
    return zero_dated(values, [c for c, s in sources.items() if s in ZERO])


def library_pairs(ev: Any) -> tuple[list, int]:
    pairs, zero = [], 0
    for r in ev.rows:
        if "values" in r:
            image = _zero_named(r["values"], r["none_sources"])
            pair = (None, image) if isinstance(ev, WriteRowsEvent) else (image, None)
            zero += sum(1 for s in r["none_sources"].values() if s in ZERO)
        else:
            pair = (_zero_named(r["before_values"], r["before_none_sources"]),
                    _zero_named(r["after_values"], r["after_none_sources"]))
            zero += sum(1 for s in r["before_none_sources"].values() if s in ZERO)
            zero += sum(1 for s in r["after_none_sources"].values() if s in ZERO)
        pairs.append(pair)
    return pairs, zero


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal, same type, and for floats/Decimals/datetimes identical in every detail; a row image holding zero
    dates (ZeroDatedRow) names the same columns."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, ZeroDatedRow):
        assert a.zero_dates == b.zero_dates, f"{where}: zero dates in {a.zero_dates} != {b.zero_dates}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, Decimal):
        assert a.as_tuple() == b.as_tuple(), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, dt.datetime):
        assert a == b and a.tzinfo is b.tzinfo and a.fold == b.fold, f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# --- encoders: one value of a column as binlog bytes -------------------------------------------------------------

WILD = {"on": False}  # when on, encoders sometimes emit values the library rejects or decodes oddly


def wild(rnd: random.Random, p: float) -> bool:
    return WILD["on"] and rnd.random() < p


def enc_decimal(rnd: random.Random, precision: int, scale: int) -> bytes:
    sizes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    integral = precision - scale
    digits_i = "".join(rnd.choice("0123456789") for _ in range(integral)) if rnd.random() < 0.8 else "9" * integral
    digits_f = "".join(rnd.choice("0123456789") for _ in range(scale))
    if rnd.random() < 0.1:
        digits_i, digits_f = "0" * integral, "0" * scale
    out = b""
    lead = integral % 9
    if lead:
        out += int(digits_i[:lead]).to_bytes(sizes[lead], "big")
    for k in range(lead, integral, 9):
        out += int(digits_i[k:k + 9]).to_bytes(4, "big")
    for k in range(0, scale - scale % 9, 9):
        out += int(digits_f[k:k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(digits_f[scale - scale % 9:]).to_bytes(sizes[scale % 9], "big")
    if rnd.random() < 0.5:  # negative: every byte inverted
        out = bytes(b ^ 0xFF for b in out)
    return bytes([out[0] ^ 0x80]) + out[1:]


def enc_fsp(rnd: random.Random, fsp: int, us: int) -> bytes:
    if fsp in (1, 2):
        return (us // 10000).to_bytes(1, "big")
    if fsp in (3, 4):
        return (us // 100).to_bytes(2, "big")
    if fsp in (5, 6):
        return us.to_bytes(3, "big")
    return b""


def fsp_width(fsp: int) -> int:
    return (fsp + 1) // 2


def rand_us(rnd: random.Random, fsp: int) -> int:
    us = rnd.randrange(1000000)
    return us - us % (10 ** (6 - fsp)) if fsp else 0


def rand_text(rnd: random.Random, n: int) -> str:
    alphabet = "abcxyzABC 0123456789éèüßñÆ€£¥©–“”😀🎉中文字한국어"
    return "".join(rnd.choice(alphabet) for _ in range(n))


def enc_len(n: int, size: int) -> bytes:
    return n.to_bytes(size, "little")


def encoder(c: Column) -> Callable[[random.Random], bytes]:
    """A function producing one random, mostly valid, encoded value of column c."""
    t = c.type

    def fixed(width: int) -> Callable[[random.Random], bytes]:
        return lambda rnd: rnd.randbytes(width)

    if t in (T.TINY, T.YEAR):
        return fixed(1)
    if t == T.SHORT:
        return fixed(2)
    if t in (T.INT24, T.TIME):
        return fixed(3)
    if t in (T.LONG, T.TIMESTAMP):
        return fixed(4)
    if t == T.LONGLONG:
        return fixed(8)
    if t == T.FLOAT:
        return lambda rnd: struct.pack("<f", rnd.uniform(-1e6, 1e6)) if rnd.random() < 0.9 else rnd.randbytes(4)
    if t == T.DOUBLE:
        return lambda rnd: struct.pack("<d", rnd.uniform(-1e300, 1e300)) if rnd.random() < 0.9 else rnd.randbytes(8)
    if t in (T.VARCHAR, T.STRING, T.BLOB, T.JSON):
        if t in (T.BLOB, T.JSON):
            size = c.length_size
            limit = min(300, (1 << (8 * size)) - 1)
        else:
            size = 2 if c.max_length > 255 else 1
            limit = min(c.max_length, 300)

        def string(rnd: random.Random) -> bytes:
            if t == T.JSON:
                data = rnd.choice([b"", b"\x04\x01", b"\x04\x02", b"\x04\x00", b"\x05\xff\x7f", b"\x06\x01\x02",
                                   b"\x07\x01\x02\x03\x84", b"\x0a" + rnd.randbytes(8), b"\x0b" + struct.pack("<d", 2.5),
                                   b"\x0c\x03abc", b"\x0c\x04\xc3\xa9\xc3\xa9"])
                if wild(rnd, 0.3):
                    data = rnd.randbytes(rnd.randrange(1, 6))
                return enc_len(len(data), size) + data
            if wild(rnd, 0.05):
                data = rnd.randbytes(rnd.randrange(0, 20))  # may be invalid in the column's charset
            else:
                text = rand_text(rnd, rnd.randrange(0, 40))
                enc = {"cp1252": "cp1252"}.get(c.character_set_name, "utf-8")
                data = text.encode(enc, "replace")
                while len(data) > limit:  # shorten by characters, not bytes
                    text = text[:-1]
                    data = text.encode(enc, "replace")
            data = data[:limit]
            if size > 2 and rnd.random() < 0.05:
                data = b"x" * 70000  # a length that needs the third byte
            return enc_len(len(data), size) + data
        return string
    if t == T.NEWDECIMAL:
        return lambda rnd: (rnd.randbytes(len(enc_decimal(rnd, c.precision, c.decimals))) if wild(rnd, 0.1)
                            else enc_decimal(rnd, c.precision, c.decimals))
    if t == T.DATE:
        def date(rnd: random.Random) -> bytes:
            r = rnd.random()
            if r < 0.1:
                return b"\x00\x00\x00"
            if wild(rnd, 0.2):
                return rnd.randbytes(3)
            y, m, d = rnd.randrange(0, 10000), rnd.randrange(0, 13), rnd.randrange(0, 29)
            if rnd.random() < 0.7:
                y, m, d = rnd.randrange(1, 10000), rnd.randrange(1, 13), rnd.randrange(1, 29)
            return (y << 9 | m << 5 | d).to_bytes(3, "little")
        return date
    if t == T.DATETIME:
        def old_datetime(rnd: random.Random) -> bytes:
            r = rnd.random()
            if r < 0.1:
                return bytes(8)
            if wild(rnd, 0.1):
                return rnd.randbytes(8)
            v = (rnd.randrange(0, 10000) * 10000000000 + rnd.randrange(0, 13) * 100000000
                 + rnd.randrange(0, 29) * 1000000 + rnd.randrange(24) * 10000 + rnd.randrange(60) * 100
                 + rnd.randrange(60))
            return v.to_bytes(8, "little")
        return old_datetime
    if t == T.DATETIME2:
        def datetime2(rnd: random.Random) -> bytes:
            if wild(rnd, 0.2):
                return rnd.randbytes(5 + fsp_width(c.fsp))
            if rnd.random() < 0.1:
                return b"\x80\x00\x00\x00\x00" + bytes(fsp_width(c.fsp))  # 0000-00-00 00:00:00
            y, m, d = rnd.randrange(0, 10000), rnd.randrange(0, 13), rnd.randrange(0, 32)
            if rnd.random() < 0.8:
                y, m, d = rnd.randrange(1, 10000), rnd.randrange(1, 13), rnd.randrange(1, 29)
            x = (y * 13 + m) << 22 | d << 17 | rnd.randrange(24) << 12 | rnd.randrange(60) << 6 | rnd.randrange(60)
            return (x | 1 << 39).to_bytes(5, "big") + enc_fsp(rnd, c.fsp, rand_us(rnd, c.fsp))
        return datetime2
    if t == T.TIMESTAMP2:
        def timestamp2(rnd: random.Random) -> bytes:
            if wild(rnd, 0.2):
                return rnd.randbytes(4 + fsp_width(c.fsp))
            sec = rnd.choice([0, 1, 2 ** 31 - 1, rnd.randrange(0, 2 ** 31)])
            return sec.to_bytes(4, "big") + enc_fsp(rnd, c.fsp, rand_us(rnd, c.fsp))
        return timestamp2
    if t == T.TIME2:
        def time2(rnd: random.Random) -> bytes:
            if wild(rnd, 0.2):
                return rnd.randbytes(3 + fsp_width(c.fsp))
            hms = rnd.randrange(839) << 12 | rnd.randrange(60) << 6 | rnd.randrange(60)
            frac = enc_fsp(rnd, c.fsp, rand_us(rnd, c.fsp))
            if rnd.random() < 0.6:
                return (0x800000 + hms).to_bytes(3, "big") + frac
            # negative, as MySQL packs it: the integer part borrows one when there is a fraction
            f = int.from_bytes(frac, "big") if frac else 0
            if f:
                return (0x800000 - hms - 1).to_bytes(3, "big") + ((1 << (8 * len(frac))) - f).to_bytes(len(frac), "big")
            return (0x800000 - hms).to_bytes(3, "big") + frac
        return time2
    if t == T.ENUM:
        def enum(rnd: random.Random) -> bytes:
            n = len(c.enum_values or [""]) + (1 if wild(rnd, 0.1) else 0)  # sometimes out of range
            return rnd.randrange(n).to_bytes(c.size, "little")
        return enum
    if t == T.SET:
        def set_(rnd: random.Random) -> bytes:
            n = len(c.set_values or [])
            mask = rnd.getrandbits(n) if n else 0
            if rnd.random() < 0.1:
                mask = 0
            return mask.to_bytes(c.size, "little")
        return set_
    if t == T.BIT:
        return fixed(c.bytes)
    raise AssertionError(f"no encoder for type {t}")


def columns_all() -> list[Column]:
    cs: list[Column] = []
    n = iter(range(1000))

    def add(t: int, **meta: Any) -> None:
        cs.append(col(t, f"c{next(n)}_{t}", **meta))

    for t in (T.TINY, T.SHORT, T.INT24, T.LONG, T.LONGLONG):
        add(t)
        add(t, unsigned=True)
    add(T.FLOAT, size=4)
    add(T.DOUBLE, size=8)
    add(T.YEAR)
    for charset in ("utf8", "cp1252", "binary", None, "swe7", "koi8r"):
        add(T.VARCHAR, max_length=40, character_set_name=charset)
        add(T.VARCHAR, max_length=400, character_set_name=charset)
    add(T.STRING, max_length=20, character_set_name="utf8")
    add(T.STRING, max_length=400, character_set_name="utf8")
    add(T.STRING, max_length=16, character_set_name="binary")
    for size in (1, 2, 3, 4):
        add(T.BLOB, length_size=size, character_set_name="binary")
        add(T.BLOB, length_size=size, character_set_name="utf8")
    for p, s in ((10, 2), (65, 30), (5, 0), (18, 9), (9, 9), (1, 0), (38, 0), (30, 5), (4, 2), (65, 0),
                 (12, 12), (2, 1), (19, 0), (20, 10), (3, 3), (27, 18)):
        add(T.NEWDECIMAL, precision=p, decimals=s)
    add(T.DATE)
    add(T.DATETIME)
    add(T.TIME)
    add(T.TIMESTAMP)
    for fsp in range(7):
        add(T.DATETIME2, fsp=fsp)
        add(T.TIMESTAMP2, fsp=fsp)
        add(T.TIME2, fsp=fsp)
    add(T.ENUM, size=1, enum_values=["", "a", "b", "c"])
    add(T.ENUM, size=2, enum_values=[""] + [f"v{k}" for k in range(300)])
    add(T.ENUM, size=1, enum_values=None)
    for size in range(1, 9):
        add(T.SET, size=size, set_values=[f"s{k}" for k in range(min(8 * size, 64) - (size % 3))])
    add(T.SET, size=1, set_values=None)
    for bits in (1, 5, 8, 12, 16, 63, 64):
        add(T.BIT, bits=bits, bytes=(bits + 7) // 8)
    add(T.JSON, length_size=4)
    return cs


def encode_image(rnd: random.Random, columns: list[Column], encoders: list[Callable], null_rate: float) -> bytes:
    nulls = 0
    values = b""
    for i, enc in enumerate(encoders):
        if rnd.random() < null_rate:
            nulls |= 1 << i
        else:
            values += enc(rnd)
    return nulls.to_bytes((len(columns) + 7) // 8, "little") + values


def check_body(kind: str, columns: list[Column], body: bytes, decoder: Optional[RowDecoder] = None,
               **opts: Any) -> str:
    """Compare library and decoder on one body: 'same' or 'raised' (both refused it). The library is read as
    binlog.py's fallback reads it, with its date readers watched (libraryrows.watch_zero_dates): a DATE or old
    DATETIME past its month's end is None there, as in the decoder, where the bare library raises ValueError."""
    lib_ev = fake_event(kind, columns, body, ignore_decode_errors=opts.get("ignore_decode_errors", False))
    assert libraryrows.watch_zero_dates(lib_ev) is not None
    try:
        expected = library_pairs(lib_ev)
        lib_error: Optional[BaseException] = None
    except Exception as exc:  # noqa: BLE001 - any failure must be reproduced, not masked
        lib_error = exc
    ev = fake_event(kind, columns, body, ignore_decode_errors=opts.get("ignore_decode_errors", False))
    got = (decoder or RowDecoder()).decode(ev)
    if lib_error is None:
        assert got is not None, "decoder refused a body the library decodes"
        assert_same(got[0], expected[0], kind)
        assert got[1] == expected[1]
        assert ev.packet.read_bytes == ev.event_size
        return "same"
    assert got is None, f"library raised {lib_error!r} but the decoder returned {got!r}"
    libraryrows.watch_zero_dates(ev)  # as binlog.py's fallback reads it
    with pytest.raises(type(lib_error)):  # the packet was restored: the fallback fails exactly the same way
        ev.rows
    return "raised"


# --- tests -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, bodies", [("write", 80), ("update", 80), ("delete", 80), ("write_v1", 15),
                                         ("update_v1", 15), ("delete_v1", 15)])
def test_random_bodies_match_library(kind: str, bodies: int) -> None:
    """All types in one table (135 columns), several rows a body, NULL-free to NULL-heavy rows."""
    rnd = random.Random(f"rowdecode-{kind}")
    columns = columns_all()
    encoders = [encoder(c) for c in columns]
    decoder = RowDecoder()
    outcomes = {"same": 0, "raised": 0}
    images = 2 if kind.startswith("update") else 1
    for _ in range(bodies):
        WILD["on"] = rnd.random() < 0.3
        body = b"".join(encode_image(rnd, columns, encoders, rnd.choice([0.0, 0.2, 0.6]))
                        for _ in range(rnd.randrange(1, 4) * images))
        outcomes[check_body(kind, columns, body, decoder)] += 1
    WILD["on"] = False
    assert outcomes["same"] >= bodies // 2 and outcomes["raised"] >= 1, outcomes


@pytest.mark.parametrize("seed", range(6))
def test_one_type_tables_match_library(seed: int) -> None:
    """Small tables (one or a few columns, shuffled): every type gets bodies that decode."""
    rnd = random.Random(seed)
    cs = columns_all()
    rnd.shuffle(cs)
    for start in range(0, len(cs), 3):
        columns = cs[start:start + 3]
        encoders = [encoder(c) for c in columns]
        decoder = RowDecoder()
        same = 0
        for _ in range(25):
            WILD["on"] = rnd.random() < 0.5
            kind = rnd.choice(["write", "update", "delete"])
            images = 2 if kind == "update" else 1
            body = b"".join(encode_image(rnd, columns, encoders, 0.15) for _ in range(rnd.randrange(1, 6) * images))
            same += check_body(kind, columns, body, decoder) == "same"
        WILD["on"] = False
        assert same > 0, [c.data for c in columns]


def test_ignore_decode_errors_matches_library() -> None:
    columns = [col(T.VARCHAR, "a", max_length=40, character_set_name="utf8"),
               col(T.VARCHAR, "b", max_length=40, character_set_name="cp1252")]
    body = b"\x00" + b"\x03a\xffb" + b"\x02\x81x"
    assert check_body("write", columns, body) == "raised"
    assert check_body("write", columns, body, ignore_decode_errors=True) == "same"


def test_edge_values_by_hand() -> None:
    columns = [col(T.LONGLONG, "u", unsigned=True), col(T.LONGLONG, "s"), col(T.TINY, "t"),
               col(T.NEWDECIMAL, "d", precision=65, decimals=30), col(T.DATE, "da"),
               col(T.DATETIME2, "dt", fsp=6), col(T.SET, "st", size=1, set_values=["x", "y"]),
               col(T.BIT, "b", bits=8, bytes=1), col(T.VARCHAR, "v", max_length=400, character_set_name="utf8")]
    dec = decimal_bytes("-12345678901234567890123456789012345.123456789012345678901234567890", 65, 30)
    row = (b"\x00\x00" + b"\xff" * 8 + (-(2 ** 63)).to_bytes(8, "little", signed=True) + b"\x80" + dec
           + b"\x00\x00\x00" + b"\x80\x00\x00\x00\x00" + b"\x00\x00\x00" + b"\x00" + b"\xa5"
           + len("😀".encode()).to_bytes(2, "little") + "😀".encode())
    ev = fake_event("write", columns, row)
    pairs, zero = RowDecoder().decode(ev)
    assert pairs == [(None, {"u": 2 ** 64 - 1, "s": -(2 ** 63), "t": -128,
                             "d": Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
                             "da": None, "dt": None, "st": None, "b": "10100101", "v": "😀"})]
    assert zero == 2
    assert check_body("write", columns, row) == "same"


def decimal_bytes(text: str, precision: int, scale: int) -> bytes:
    sizes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    neg = text.startswith("-")
    ip, fp = text.lstrip("-").split(".")
    integral = precision - scale
    ip = ip.rjust(integral, "0")
    fp = fp.ljust(scale, "0")
    out = b""
    lead = integral % 9
    if lead:
        out += int(ip[:lead]).to_bytes(sizes[lead], "big")
    for k in range(lead, integral, 9):
        out += int(ip[k:k + 9]).to_bytes(4, "big")
    for k in range(0, scale - scale % 9, 9):
        out += int(fp[k:k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(fp[scale - scale % 9:]).to_bytes(sizes[scale % 9], "big")
    if neg:
        out = bytes(b ^ 0xFF for b in out)
    return bytes([out[0] ^ 0x80]) + out[1:]


EPOCH = dt.datetime(1970, 1, 1)


def converted_library_pairs(ev: Any, sets: str, zero_timestamps: bool) -> tuple[list, int]:
    """The library's rows with the conversions replicator.sources.binlog applies: TIMESTAMP as UTC-aware
    (zero TIMESTAMP as None, counted, when zero_timestamps), SET as text ('sorted': members sorted, None
    for the empty set; 'definition': definition order, '' for the empty set)."""
    from replicator.sources.binlog import _utc

    rows = ev.rows
    pairs, zero = library_pairs(ev)
    zeroed: dict[int, list[str]] = {}  # by id() of an image: the zero TIMESTAMPs made None
    for r, pair in zip(rows, pairs):
        sources = [r.get("before_none_sources", r.get("none_sources")), r.get("after_none_sources")]
        for values, src in zip([v for v in pair if v is not None], [s for s in sources if s is not None]):
            for c in ev.columns:
                v = values[c.name]
                if c.type in (T.TIMESTAMP, T.TIMESTAMP2):
                    if zero_timestamps and v == EPOCH and v.microsecond == 0:
                        values[c.name] = None
                        zero += 1
                        zeroed.setdefault(id(values), []).append(c.name)
                    else:
                        values[c.name] = _utc(v)
                elif c.type == T.SET:
                    if sets == "sorted":
                        values[c.name] = None if v is None else ",".join(sorted(v))
                    elif v is not None:
                        values[c.name] = ",".join(m for m in (c.set_values or ()) if m in v)
                    elif src.get(c.name) == NONE_SOURCE.EMPTY_SET:
                        values[c.name] = ""

    def named(image: Any) -> Any:  # the zero TIMESTAMPs named too, in column order
        if image is None or id(image) not in zeroed:
            return image
        zero_cols = set(getattr(image, "zero_dates", ())) | set(zeroed[id(image)])
        return zero_dated(dict(image), [c.name for c in ev.columns if c.name in zero_cols])
    return [(named(before), named(after)) for before, after in pairs], zero


@pytest.mark.parametrize("sets, zero_timestamps", [("sorted", False), ("definition", True),
                                                   ("sorted", True), ("definition", False)])
def test_converted_values_match_binlog_source(sets: str, zero_timestamps: bool) -> None:
    """utc_timestamps / sets_as_text / zero_timestamps_as_none give what replicator.sources.binlog makes
    (or is to make) of the library's values."""
    rnd = random.Random(5)
    columns = [col(T.TIMESTAMP2, "ts", fsp=3), col(T.TIMESTAMP, "ts0"), col(T.TIMESTAMP2, "ts6", fsp=6),
               col(T.SET, "s", size=2, set_values=[f"m{k}" for k in range(12)]), col(T.DATETIME2, "dt", fsp=0),
               col(T.TIMESTAMP2, "ts_0", fsp=0), col(T.SET, "s2", size=1, set_values=["z", "a", "m"]),
               col(T.SET, "nometa", size=1, set_values=None), col(T.DATE, "d"),
               col(T.SET, "latin1", size=1, set_values=["", "", "x"])]  # names the library could not decode
    encoders = [encoder(c) for c in columns]
    decoder = RowDecoder(utc_timestamps=True, sets_as_text=True if sets == "sorted" else sets,
                         zero_timestamps_as_none=zero_timestamps)
    compared = zeros = 0
    for _ in range(200):
        kind = rnd.choice(["write", "update", "delete"])
        body = b"".join(encode_image(rnd, columns, encoders, 0.2) for _ in range(2 if kind == "update" else 1))
        try:
            expected, zero = converted_library_pairs(fake_event(kind, columns, body), sets, zero_timestamps)
        except ValueError:
            continue
        got = decoder.decode(fake_event(kind, columns, body))
        assert got is not None
        assert_same(got[0], expected, "converted")
        assert got[1] == zero
        compared += 1
        zeros += zero
    assert compared > 150 and zeros > 20


@pytest.mark.parametrize("column", [
    col(T.GEOMETRY, "g", length_size=4, character_set_name="binary"),
    col(T.VAR_STRING, "vs", max_length=10),
    col(T.DECIMAL, "old_decimal"),
    col(T.NULL, "n"),
    col(T.LONG, None),
    col(T.LONG, ""),
])
def test_unsupported_columns_fall_back(column: Column) -> None:
    columns = [col(T.LONG, "id"), column]
    assert compile_table(columns) is None
    assert unsupported_reason(columns)
    ev = fake_event("write", columns, b"\x02" + b"\x01\x00\x00\x00")  # column 2 NULL
    decoder = RowDecoder()
    assert decoder.decode(ev) is None
    assert decoder.last_fallback and decoder.last_fallback.startswith("db.t: "), decoder.last_fallback
    assert ev.packet.read_bytes == 0  # untouched: event.rows still works
    if column.name:
        assert ev.rows[0]["values"]["id"] == 1


def test_partial_row_image_falls_back() -> None:
    columns = [col(T.LONG, "id"), col(T.LONG, "x")]
    ev = fake_event("update", columns, b"\x00" + b"\x01\x00\x00\x00" + b"\x00" + b"\x01\x00\x00\x00",
                    bitmap=b"\x01")
    assert RowDecoder().decode(ev) is None
    assert ev.packet.read_bytes == 0
    assert ev.rows[0]["after_values"]["id"] == 1


@pytest.mark.parametrize("ncolumns", [2, 8, 9])
def test_remembered_full_bitmap_never_admits_a_partial_one(ncolumns: int) -> None:
    """The decoder remembers the last columns-present bitmap that held every column: one decoder, events whose
    bitmaps are full (with any padding bits) or partial (either image of an UPDATE), in any order, decodes
    exactly the full ones, each as the library does."""
    columns = [col(T.LONG, f"c{k}") for k in range(ncolumns)]
    blen = (ncolumns + 7) // 8
    image = bytes(blen) + b"".join(struct.pack("<i", k) for k in range(ncolumns))
    full = (1 << ncolumns) - 1
    bitmaps = [(full | pad).to_bytes(blen, "little") for pad in (0, (0xFF << ncolumns) & (1 << 8 * blen) - 1)]
    partial = [(full & ~(1 << k)).to_bytes(blen, "little") for k in (0, ncolumns - 1)]
    decoder = RowDecoder()
    rnd = random.Random(ncolumns)
    for _ in range(60):
        kind = rnd.choice(["write", "update", "delete"])
        first, second = rnd.choice(bitmaps + partial), rnd.choice(bitmaps + partial)
        ev = fake_event(kind, columns, image * (2 if kind == "update" else 1), bitmap=first)
        if kind == "update":
            ev.columns_present_bitmap2 = second
        got = decoder.decode(ev)
        if first in partial or (kind == "update" and second in partial):
            assert got is None and ev.packet.read_bytes == 0
        else:
            assert got is not None
            assert_same(got[0], library_pairs(fake_event(kind, columns, image * (2 if kind == "update" else 1)))[0])


def test_truncated_body_falls_back() -> None:
    columns = [col(T.LONG, "id"), col(T.VARCHAR, "v", max_length=40, character_set_name="utf8")]
    body = b"\x00" + b"\x01\x00\x00\x00" + b"\x05ab"  # claims 5 bytes, has 2
    ev = fake_event("write", columns, body)
    assert RowDecoder().decode(ev) is None
    assert ev.packet.read_bytes == 0


def test_partial_update_event_type_falls_back() -> None:
    columns = [col(T.LONG, "id")]
    ev = fake_event("update", columns, b"\x00\x01\x00\x00\x00\x00\x02\x00\x00\x00")
    ev.event_type = 39  # PARTIAL_UPDATE_ROWS_EVENT (MySQL 8 only)
    assert RowDecoder().decode(ev) is None
    assert ev.packet.read_bytes == 0


def test_compiled_decoder_is_cached_per_table_map() -> None:
    columns = [col(T.LONG, "id"), col(T.VARCHAR, "v", max_length=40, character_set_name="utf8")]
    decoder = RowDecoder()
    body = b"\x00\x01\x00\x00\x00\x02hi"
    first = decoder.decoder_for(fake_event("write", columns, body))
    again = decoder.decoder_for(fake_event("write", columns, body))  # new Table object, same signature
    assert first is again
    changed = [col(T.LONG, "id"), col(T.VARCHAR, "v", max_length=40, character_set_name="cp1252")]
    assert decoder.decoder_for(fake_event("write", changed, body)) is not first


def test_generated_source_has_no_column_names_as_code() -> None:
    evil = "x'): import os  #"
    columns = [col(T.LONG, evil), col(T.LONG, "ok")]
    dec = compile_table(columns)
    assert dec is not None
    pairs, zero = dec.decode_body("write", b"\x00" + b"\x01\x00\x00\x00" + b"\x02\x00\x00\x00")
    assert pairs == [(None, {evil: 1, "ok": 2})]


@pytest.mark.parametrize("precision, scale", [(4, 2), (5, 5), (10, 2), (12, 12), (18, 9), (19, 0), (65, 30),
                                              (1, 0), (9, 0), (10, 10), (27, 18)])
def test_decimal_fast_path_and_odd_encodings(precision: int, scale: int) -> None:
    """Negative zero and groups holding more digits than they should take the library's string path."""
    columns = [col(T.NEWDECIMAL, "d", precision=precision, decimals=scale)]
    rnd = random.Random(precision * 100 + scale)
    size = len(enc_decimal(rnd, precision, scale))
    zero = decimal_bytes("0." + "0" * scale if scale else "0.", precision, scale)
    negative_zero = bytes(b ^ 0xFF for b in bytes([zero[0] ^ 0x80]) + zero[1:])
    negative_zero = bytes([negative_zero[0] ^ 0x80]) + negative_zero[1:]
    images = [zero, negative_zero] + [enc_decimal(rnd, precision, scale) for _ in range(50)]
    for _ in range(50):  # every group at its maximum raw value, or random bytes: digits beyond the group's
        raw = bytearray(rnd.randbytes(size) if rnd.random() < 0.5 else b"\x7f" + b"\xff" * (size - 1))
        raw[0] |= 0x80 if rnd.random() < 0.5 else 0
        images.append(bytes(raw))
    for image in images:
        assert check_body("write", columns, b"\x00" + image) in ("same", "raised")
    assert check_body("write", columns, b"".join(b"\x00" + image for image in images[:20])) == "same"


# --- exact_values: the two values the library alters ------------------------------------------------------------

def pack_time2(fsp: int, total_us: int) -> bytes:
    """A TIME(fsp) value as MariaDB writes it (my_time_packed_to_binary): the signed packed value
    sign * (hms << 24 | microseconds), cut to the fraction bytes of fsp, plus the offset."""
    neg, a = total_us < 0, abs(total_us)
    seconds, us = divmod(a, 1_000_000)
    hms = (seconds // 3600) << 12 | (seconds // 60 % 60) << 6 | seconds % 60
    width = fsp_width(fsp)
    unit = {0: 1_000_000, 1: 10_000, 2: 100, 3: 1}[width]
    packed = (hms << (8 * width)) + (us // unit if width else 0)
    packed = -packed if neg else packed
    return (packed + (0x800000 << (8 * width))).to_bytes(3 + width, "big")


@pytest.mark.parametrize("fsp", [0, 1, 2, 3, 4, 5, 6])
def test_exact_values_keep_negative_time_fractions(fsp: int) -> None:
    rnd = random.Random(fsp)
    unit = 10 ** (6 - fsp)
    values = [0, -unit if fsp else -1_000_000, -(45296 * 10 ** 6 + 789_000 // unit * unit),
              -(838 * 3600 + 59 * 60 + 59) * 10 ** 6 - (999_999 // unit * unit if fsp else 0),
              (838 * 3600 + 59 * 60 + 59) * 10 ** 6 + (999_999 // unit * unit if fsp else 0)]
    values += [rnd.randrange(-838 * 3600 * 10 ** 6, 838 * 3600 * 10 ** 6) // unit * unit for _ in range(200)]
    columns = [col(T.TIME2, "t", fsp=fsp)]
    exact = RowDecoder(exact_values=True)
    from replicator.sources.binlog import BinlogSource, exact_columns
    src = BinlogSource.__new__(BinlogSource)
    src.direction = "rowdecode-unit"
    fix = ((), (), exact_columns(columns))
    for v in values:
        body = b"\x00" + pack_time2(fsp, v)  # null bitmap, value
        want = dt.timedelta(microseconds=v)
        assert exact.decode(fake_event("write", columns, body))[0] == [(None, {"t": want})], v
        library = fake_event("write", columns, body).rows[0]
        assert src._row(dict(library["values"]), library, "none_sources", fix, "t") == {"t": want}, v
    # the library's own reading stays what it was (the differential tests compare against it)
    lib = fake_event("write", columns, b"\x00" + pack_time2(fsp, -(45296 * 10 ** 6 + 789_000))).rows[0]["values"]["t"]
    if fsp >= 3:
        assert lib == dt.timedelta(seconds=-45296, microseconds=-211_000)


def test_exact_values_keep_binary_trailing_zero_bytes() -> None:
    columns = [col(T.STRING, "b", max_length=16, character_set_name="binary"),
               col(T.STRING, "c", max_length=8, character_set_name="utf8"),
               col(T.VARCHAR, "vb", max_length=16, character_set_name="binary")]
    cases = [b"\x01" * 14 + b"\x00\x00", b"\x00" * 16, b"\xff" * 16, b"ab\x00cd" + b"\x00" * 11]
    exact = RowDecoder(exact_values=True)
    from replicator.sources.binlog import BinlogSource, exact_columns
    src = BinlogSource.__new__(BinlogSource)
    src.direction = "rowdecode-unit"
    fix = ((), (), exact_columns(columns))
    assert fix[2] == ((("b", 16),), (), ())
    for value in cases:
        stored = value.rstrip(b"\x00")  # the server writes BINARY(n) without its trailing zero bytes
        body = b"\x00" + bytes([len(stored)]) + stored + b"\x02hi" + b"\x02\x00\x00"  # null bitmap first
        got = exact.decode(fake_event("write", columns, body))[0]
        assert got == [(None, {"b": value, "c": "hi", "vb": b"\x00\x00"})], value
        library = fake_event("write", columns, body).rows[0]
        assert library["values"]["b"] == (stored or "")  # what the library alone gives
        assert src._row(dict(library["values"]), library, "none_sources", fix, "t")["b"] == value


# --- the peers' table (bench/peers.py), hypothesis-drawn -----------------------------------------------------

PEERS_COLUMNS = [col(T.LONG, "id"), col(T.VARCHAR, "name", max_length=256, character_set_name="utf8mb4"),
                 col(T.NEWDECIMAL, "amount", precision=12, decimals=2), col(T.DATETIME2, "created_at", fsp=0),
                 col(T.BLOB, "note", length_size=2, character_set_name="utf8mb4"), col(T.LONG, "qty"),
                 col(T.VARCHAR, "category", max_length=128, character_set_name="utf8mb4"),
                 col(T.DATETIME2, "updated_at", fsp=0)]
# DATETIME bytes (fsp 0): valid ones, the zero date, a zero month, 31 February, month 13 -- a small pool, so the
# same bytes come back in many rows and images (an UPDATE's unchanged column, NOW() in every row)
DATETIME_POOL = [((y * 13 + m) << 22 | d << 17 | h << 12 | mi << 6 | s | 1 << 39).to_bytes(5, "big")
                 for y, m, d, h, mi, s in [(2024, 1, 1, 0, 0, 0), (2024, 1, 1, 0, 0, 1), (9999, 12, 31, 23, 59, 59),
                                           (1, 1, 1, 0, 0, 0), (0, 0, 0, 0, 0, 0), (2024, 0, 5, 1, 2, 3),
                                           (2023, 2, 31, 1, 2, 3), (2024, 13, 1, 0, 0, 0)]]


def peers_image(draw: Any, st: Any) -> bytes:
    nulls = draw(st.integers(0, 255))
    parts = [struct.pack("<i", draw(st.integers(-2 ** 31, 2 ** 31 - 1))),
             enc_len(len(name := draw(st.text(max_size=20)).encode()), 2) + name,
             decimal_bytes(f"{draw(st.decimals(-10 ** 10 + 1, 10 ** 10 - 1, places=2)):.2f}", 12, 2),
             draw(st.sampled_from(DATETIME_POOL)),
             enc_len(len(note := draw(st.text(max_size=200)).encode()), 2) + note,
             struct.pack("<i", draw(st.integers(-2 ** 31, 2 ** 31 - 1))),
             enc_len(len(cat := draw(st.sampled_from(["alpha", "upd", ""])).encode()), 1) + cat,
             draw(st.sampled_from(DATETIME_POOL))]
    return bytes([nulls]) + b"".join(p for i, p in enumerate(parts) if not nulls >> i & 1)


def test_peers_table_with_repeated_values_matches_library() -> None:
    """Hypothesis-drawn rows of the peers' table, DATETIMEs from a small pool (valid, zero and invalid dates):
    the decoder equals the library on every body, also when the same decoder decodes it again (the
    DATE values it remembers), and a zero or invalid date is counted every time it occurs."""
    from hypothesis import given, settings, strategies as st

    @st.composite
    def bodies(draw: Any) -> tuple[str, bytes]:
        kind = draw(st.sampled_from(["write", "update", "delete"]))
        rows = draw(st.integers(1, 6)) * (2 if kind == "update" else 1)
        return kind, b"".join(peers_image(draw, st) for _ in range(rows))

    decoder = RowDecoder()

    @settings(max_examples=300, deadline=None)
    @given(bodies())
    def check(drawn: tuple[str, bytes]) -> None:
        kind, body = drawn
        for _ in range(2):
            check_body(kind, PEERS_COLUMNS, body, decoder)

    check()


def test_exact_values_keep_year_0000() -> None:
    """YEAR 0000 is stored as 0, which the library reads as 1900 + 0: a year no YEAR column holds
    (1901..2155 and 0000), so it arrived as 1900. The exact path and binlog.py's correction give 0."""
    columns = [col(T.YEAR, "y")]
    exact = RowDecoder(exact_values=True)
    from replicator.sources.binlog import BinlogSource, exact_columns
    src = BinlogSource.__new__(BinlogSource)
    src.direction = "rowdecode-unit"
    fix = ((), (), exact_columns(columns))
    assert fix[2] == ((), (), ("y",))
    for stored, want in ((0, 0), (1, 1901), (124, 2024), (255, 2155)):
        body = b"\x00" + bytes([stored])
        assert exact.decode(fake_event("write", columns, body))[0] == [(None, {"y": want})]
        library = fake_event("write", columns, body).rows[0]
        assert library["values"]["y"] == stored + 1900  # what the library alone gives
        assert src._row(dict(library["values"]), library, "none_sources", fix, "t") == {"y": want}
    assert RowDecoder().decode(fake_event("write", columns, b"\x00\x00"))[0] == [(None, {"y": 1900})]
