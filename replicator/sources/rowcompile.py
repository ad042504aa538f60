"""Compiling a binlog table map into a straight-line decoder of its row images (one generated function
per event kind, one code block per column): the code generation of sources/rowdecode.py."""
from __future__ import annotations

import logging
import struct
from typing import Any, Callable, Optional, Sequence

from pymysqlreplication.constants import FIELD_TYPE

from replicator.sources.mycharset import exact_encoding
from replicator.sources.rowvalues import (_BASE_NS, _S8, _Unsupported, _set_decoder, _string_decode, _struct,
                                          fixed_binary_length)


log = logging.getLogger(__name__)


WRITE, UPDATE, DELETE = "write", "update", "delete"
# binlog event type codes: v1 (MariaDB) and v2 (MySQL) row events; PARTIAL_UPDATE_ROWS_EVENT (39) is not here
_EVENT_KINDS = {23: WRITE, 30: WRITE, 24: UPDATE, 31: UPDATE, 25: DELETE, 32: DELETE}


_MAX_TABLES = 4096  # cache bounds; a daemon sees a new table id after every ALTER / table-cache flush


_DEC_SIZES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes for 0..9 leftover decimal digits


def _uint_le(size: int) -> str:
    """Expression for an unsigned little-endian int of `size` bytes at buf[p]."""
    if size == 1:
        return "buf[p]"
    if size == 2:
        return "_H(buf, p)[0]"
    if size == 4:
        return "_I(buf, p)[0]"
    if size == 8:
        return "_Q(buf, p)[0]"
    return f"_from(buf[p:p + {size}], 'little')"


def _fsp_width(fsp: Any) -> int:
    if not isinstance(fsp, int) or not 0 <= fsp <= 6:
        raise _Unsupported(f"fsp {fsp!r}")
    return (fsp + 1) // 2


def _fsp_scale(fsp: int, var: str) -> list[str]:
    """Turn the signed fraction just read into microseconds, as RowsEvent.__read_fsp does."""
    lines = []
    if fsp % 2:
        lines.append(f"{var} = _int({var} / 10)")  # float division, truncation toward zero: as the library
    if fsp < 6:
        lines.append(f"{var} = {var} * {10 ** (6 - fsp)}")
    return lines


def _fsp_lines(fsp: Any, var: str) -> list[str]:
    """Read the fractional seconds of a TIME2 into `var`, as RowsEvent.__read_fsp (a signed big-endian int)."""
    width = _fsp_width(fsp)
    if width == 0:
        return [f"{var} = 0"]
    expr = {1: "_S8[buf[p]]", 2: "_bh(buf, p)[0]", 3: "_from(buf[p:p + 3], 'big', signed=True)"}[width]
    return [f"{var} = {expr}", f"p += {width}"] + _fsp_scale(fsp, var)


def _split_fsp(fsp: int, width: int, var: str) -> list[str]:
    """x holds an integer part followed by `width` fraction bytes: move the signed fraction into `var`."""
    bits = 8 * width
    return [f"{var} = x & {(1 << bits) - 1}",
            f"if {var} & {1 << (bits - 1)}: {var} -= {1 << bits}",
            f"x >>= {bits}"] + _fsp_scale(fsp, var)


def _decimal_lines(i: int, precision: Any, decimals: Any, ns: dict[str, Any]) -> list[str]:
    """NEWDECIMAL, as RowsEvent.__read_new_decimal: Decimal(int).scaleb(), or, for anything a server does
    not write, the library's very string built in one f-string."""
    if not isinstance(precision, int) or not isinstance(decimals, int) or precision < 1 or decimals < 0 \
            or decimals > precision or precision > 100:
        raise _Unsupported(f"DECIMAL({precision!r},{decimals!r})")
    integral = precision - decimals
    uncomp_integral, comp_integral = divmod(integral, 9)
    uncomp_fractional, comp_fractional = divmod(decimals, 9)
    # groups: (size in bytes, format spec); the struct reads 3-byte groups as signed byte + unsigned short
    groups: list[tuple[int, str, bool]] = []  # (size, spec, before_point)
    if _DEC_SIZES[comp_integral]:
        groups.append((_DEC_SIZES[comp_integral], "", True))
    groups += [(4, ":09d", True)] * uncomp_integral
    groups += [(4, ":09d", False)] * uncomp_fractional
    if _DEC_SIZES[comp_fractional]:
        groups.append((_DEC_SIZES[comp_fractional], f":0{comp_fractional}d", False))
    if not groups:
        raise _Unsupported("DECIMAL without digits")
    fmt, exprs, idx = ">", [], 0
    for n, (size, spec, _) in enumerate(groups):
        first = "e" if n == 0 else None
        if size == 3:
            fmt += "bH"
            hi = first or f"t[{idx}]"
            exprs.append(f"({hi} << 16 | t[{idx + 1}])")
            idx += 2
        else:
            fmt += {1: "b", 2: "h", 4: "i"}[size]
            exprs.append(first or f"t[{idx}]")
            idx += 1
    total = struct.calcsize(fmt)
    half = 1 << (8 * struct.calcsize(fmt[1]) - 1)  # value of the sign bit in the first struct element
    ns[f"_dec{i}"] = _struct(fmt)
    digits = [{1: 2, 2: 4, 3: 6, 4: 9}[size] if spec == "" else int(spec[2:-1]) for size, spec, _ in groups]
    # the library's string, built in one f-string: the exact path
    parts = ["{'-' if s else ''}"]
    point_done = False
    for k, ((size, spec, before), expr) in enumerate(zip(groups, exprs)):
        if not before and not point_done:
            parts.append(".")
            point_done = True
        parts.append("{" + f"a{k}" + spec + "}")
    if not point_done:
        parts.append(".")
    fstring = "".join(parts)
    # the fast path: the same digits as one integer, when every group has at most its number of digits (always,
    # for what a server writes). The first group is never negative (the sign was taken off) and, when before
    # the point, may have any length: the library's string does not pad it.
    horner = "a0"
    for k in range(1, len(groups)):
        horner = f"({horner} * {10 ** digits[k]} + a{k})"
    checked = [k for k in range(len(groups)) if k or not groups[0][2]]
    checks = " and ".join(f"0 <= a{k} < {10 ** digits[k]}" for k in checked) or "True"
    make = f"_scaleb(_Decimal(-n if s else n), {-decimals})" if decimals else "_Decimal(-n if s else n)"
    lines = [
        f"t = _dec{i}(buf, p)",
        f"p += {total}",
        "e = t[0]",
        # the high bit of the first byte is the sign (set: non-negative); the library flips it, then reads
        # every group signed and XORs it with -1 for a negative number
        "if e < 0:",
        f"    s = 0; e += {half}",
        "else:",
        f"    s = -1; e -= {half}",
    ]
    lines += [f"a{k} = {expr} ^ s" for k, expr in enumerate(exprs)]
    lines += [
        f"n = {horner} if {checks} else -1",
        "if n > 0 or n == 0 and not s:",  # not a negative zero ('-0.00' keeps its sign as a string)
        f"    v{i} = {make}",
        "else:",
        f"    v{i} = _Decimal(f{fstring!r})",
    ]
    return lines


def _column_lines(i: int, col: Any, opts: dict[str, Any], ns: dict[str, Any]) -> tuple[list[str], bool]:
    """Code that decodes column i (not NULL) into v{i}; and whether it can count a zero date."""
    t = col.type
    unsigned = bool(col.unsigned)
    v = f"v{i}"
    T = FIELD_TYPE
    if t == T.TINY:
        return ([f"{v} = buf[p]" if unsigned else f"{v} = _S8[buf[p]]", "p += 1"], False)
    if t == T.SHORT:
        return ([f"{v} = {'_H' if unsigned else '_h'}(buf, p)[0]", "p += 2"], False)
    if t == T.INT24:
        return ([f"{v} = _from(buf[p:p + 3], 'little'{'' if unsigned else ', signed=True'})", "p += 3"], False)
    if t == T.LONG:
        return ([f"{v} = {'_I' if unsigned else '_i'}(buf, p)[0]", "p += 4"], False)
    if t == T.LONGLONG:
        return ([f"{v} = {'_Q' if unsigned else '_q'}(buf, p)[0]", "p += 8"], False)
    if t == T.FLOAT:
        return ([f"{v} = _f(buf, p)[0]", "p += 4"], False)
    if t == T.DOUBLE:
        return ([f"{v} = _d(buf, p)[0]", "p += 8"], False)
    if t == T.YEAR:
        if opts["exact"]:  # YEAR 0000 is stored as 0: the library's 1900 + 0 is a year no YEAR holds
            return ([f"{v} = buf[p] + 1900 if buf[p] else 0", "p += 1"], False)
        return ([f"{v} = buf[p] + 1900", "p += 1"], False)
    if t in (T.VARCHAR, T.STRING, T.BLOB):
        if t == T.BLOB:
            size = col.length_size
            if size not in (1, 2, 3, 4):
                raise _Unsupported(f"BLOB length size {size!r}")
        else:
            max_length = col.max_length
            if not isinstance(max_length, int):
                raise _Unsupported(f"max_length {max_length!r}")
            size = 2 if max_length > 255 else 1
        encoding = _string_decode(col, opts["errors"])
        if opts["exact"]:  # a latin1 byte Python's cp1252 leaves undefined: MariaDB's character, not an error
            encoding = exact_encoding(encoding)
        raw = f"buf[p + {size}:e]"
        pad = fixed_binary_length(col) if opts["exact"] and t == T.STRING else None
        if pad is not None:  # BINARY(n): the value is n bytes, trailing zero bytes included, never ''
            value = f"{raw}.ljust({pad}, b'\\x00')"
        elif encoding is None:
            # the library's b"".decode("binary") succeeds (an empty input never looks the codec up): an empty
            # BINARY/VARBINARY/BLOB value comes back as '' (str), any other as bytes
            value = f"({raw} if e != p + {size} else '')"
        else:
            errors = "" if opts["errors"] == "strict" else f", {opts['errors']!r}"
            value = f"{raw}.decode({encoding!r}{errors})"
        return ([f"e = p + {size} + {_uint_le(size)}", f"{v} = {value}", "p = e"], False)
    if t == T.NEWDECIMAL:
        return (_decimal_lines(i, col.precision, col.decimals, ns), False)
    if t == T.DATE:
        return ([
            f"{v} = _DATES.get(buf[p:p + 3])",
            f"if {v} is None:",
            "    x = buf[p] | buf[p + 1] << 8 | buf[p + 2] << 16",
            "    y = x >> 9 & 0x7FFF; mo = x >> 5 & 15; d = x & 31",
            "    if y and mo and d:",
            "        try:",
            f"            {v} = _date(y, mo, d)",
            "        except ValueError:",  # a day past the month's end (ALLOW_INVALID_DATES): named, never raised
            f"            {v} = None; z += 1",
            "        else:",
            f"            if len(_DATES) < 200000: _DATES[buf[p:p + 3]] = {v}",
            "    else:",
            "        z += 1",  # zero date, or a zero month/day: None
            "p += 3",
        ], True)
    if t == T.DATETIME2:
        width = _fsp_width(col.fsp)
        total = 5 + width
        lines = ["x = _bQ(buf, p)[0]" if total == 8 else f"x = _from(buf[p:p + {total}], 'big')",
                 f"p += {total}"]
        args = "ym // 13, ym % 13, x >> 17 & 31, x >> 12 & 31, x >> 6 & 63, x & 63"
        if width == 0:
            lines += [
                "ym = x >> 22 & 0x1FFFF",
                "try:",
                f"    {v} = _dt({args})",
                "except ValueError:",
                f"    {v} = None; z += 1",
            ]
            return (lines, True)
        lines += _split_fsp(col.fsp, width, "us")
        lines += [
            "ym = x >> 22 & 0x1FFFF",
            "if us > 999999:",  # the library replaces the microsecond after its try: the ValueError escapes
            "    try:",
            f"        {v} = _dt({args})",
            "    except ValueError:",
            f"        {v} = None; z += 1",
            "    else:",
            f"        {v} = {v}.replace(microsecond=us)",
            "else:",
            "    try:",
            f"        {v} = _dt({args}, us if us > 0 else 0)",
            "    except ValueError:",
            f"        {v} = None; z += 1",
        ]
        return (lines, True)
    if t == T.TIMESTAMP2:
        width = _fsp_width(col.fsp)
        tz = ", _UTC" if opts["utc"] else ""
        fields = "ymd[0], ymd[1], ymd[2], r // 3600, r // 60 % 60, r % 60"
        # '0000-00-00 00:00:00' is stored as 0: the library gives 1970-01-01 00:00:00 (no fraction added)
        zero = [f"if x == 0{'' if width == 0 else ' and us <= 0'}:", f"    {v} = None; z += 1", "else:"] \
            if opts["zero_ts"] else []
        ind = "    " if zero else ""
        if width == 0:
            value = "_fromtimestamp(x, _UTC)" if opts["utc"] else "_utcfromtimestamp(x)"
            return (["x = _bi(buf, p)[0]", "p += 4"] + zero + [ind + f"{v} = {value}"], bool(zero))
        lines = [f"x = _from(buf[p:p + {4 + width}], 'big', signed=True)", f"p += {4 + width}"]
        lines += _split_fsp(col.fsp, width, "us")
        lines += zero + [ind + line for line in [
            "if us > 999999:",
            f"    {v} = _utcfromtimestamp(x).replace(microsecond=us{', tzinfo=_UTC' if opts['utc'] else ''})",
            "else:",
            "    d, r = divmod(x, 86400)",  # utcfromtimestamp(x).replace(microsecond=us), faster
            "    ymd = _DAYS[d]",
            f"    {v} = _dt({fields}, us if us > 0 else 0{tz})",
        ]]
        return (lines, bool(zero))
    if t == T.TIME2:
        lines = ["x = _from(buf[p:p + 3], 'big', signed=True)", "p += 3"] + _fsp_lines(col.fsp, "us")
        lines.append(f"{v} = _exact_time(_time2(x, us))" if opts["exact"] else f"{v} = _time2(x, us)")
        return (lines, False)
    if t == T.DATETIME:
        # a day past the month's end raises in the library: here None, counted and named like a zero date
        return (["try:", f"    {v} = _old_datetime(_Q(buf, p)[0])", "except ValueError:", f"    {v} = None",
                 "p += 8", f"if {v} is None: z += 1"], True)
    if t == T.TIME:
        return ([f"{v} = _old_time(_from(buf[p:p + 3], 'little'))", "p += 3"], False)
    if t == T.TIMESTAMP:
        value = "_fromtimestamp(x, _UTC)" if opts["utc"] else "_utcfromtimestamp(x)"
        if opts["zero_ts"]:
            return (["x = _I(buf, p)[0]", "p += 4", "if x == 0:", f"    {v} = None; z += 1", "else:",
                     f"    {v} = {value}"], True)
        return (["x = _I(buf, p)[0]", "p += 4", f"{v} = {value}"], False)
    if t == T.ENUM:
        size = col.size
        if size not in (1, 2):
            raise _Unsupported(f"ENUM size {size!r}")
        if col.enum_values:
            ns[f"_enum{i}"] = tuple(col.enum_values)
            return ([f"{v} = _enum{i}[{_uint_le(size)}]", f"p += {size}"], False)
        return ([f"{v} = None", f"p += {size}"], False)
    if t == T.SET:
        size = col.size
        if size not in range(1, 9):
            raise _Unsupported(f"SET size {size!r}")
        if col.set_values:
            ns[f"_set{i}"] = _set_decoder(list(col.set_values), opts["sets_as_text"])
            return ([f"{v} = _set{i}({_uint_le(size)})", f"p += {size}"], False)
        # no member names: the library gives None (NONE_SOURCE.EMPTY_SET), which binlog.py turns into ''
        return ([f"{v} = {'' if opts['sets_as_text'] == 'definition' else None!r}", f"p += {size}"], False)
    if t == T.BIT:
        bits, nbytes = col.bits, col.bytes
        if not isinstance(bits, int) or not 1 <= bits <= 64 or nbytes != (bits + 7) // 8:
            raise _Unsupported(f"BIT bits={bits!r} bytes={nbytes!r}")
        return ([f"{v} = _format(_from(buf[p:p + {nbytes}], 'big') & {(1 << bits) - 1}, '0{bits}b')",
                 f"p += {nbytes}"], False)
    if t == T.JSON:
        size = col.length_size
        if size not in (1, 2, 3, 4):
            raise _Unsupported(f"JSON length size {size!r}")
        return ([
            f"e = p + {size} + {_uint_le(size)}",
            f"if e == p + {size}:",
            f"    {v} = None",
            "else:",
            f"    {v} = _parse_json(buf[p + {size}], buf[p + {size + 1}:e])",
            "p = e",
        ], False)
    if t == T.GEOMETRY:
        raise _Unsupported("GEOMETRY")
    raise _Unsupported(f"column type {t!r}")


# Column types whose value an UPDATE's after image takes from its before image when the column's bytes are
# the same in both (the generated code is a pure function of those bytes and the options, so it would decode
# an equal value): text and binary strings, DECIMAL and the temporal types, dearer to decode than two slices
# compared. Their values are immutable (str, bytes, Decimal, date, datetime, timedelta), so one object shared
# by both images cannot be changed through either. Not the integers (one struct call, cheaper than the
# comparison), not FLOAT/DOUBLE (a NaN shared would be `is`-equal to itself where two decoded NaNs are not),
# not ENUM, SET (a set is mutable), BIT or JSON (a dict or list is mutable).
_SHARED_TYPES = frozenset({FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB, FIELD_TYPE.NEWDECIMAL,
                           FIELD_TYPE.DATE, FIELD_TYPE.DATETIME2, FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIME2,
                           FIELD_TYPE.DATETIME, FIELD_TYPE.TIME, FIELD_TYPE.TIMESTAMP})


def _fixed_width(col: Any) -> Optional[int]:
    """The bytes a not-NULL value of a _SHARED_TYPES column takes, when the type fixes it (None: a string,
    whose length prefix says). Called after _column_lines accepted the column's metadata."""
    t = col.type
    T = FIELD_TYPE
    if t == T.NEWDECIMAL:
        integral, decimals = int(col.precision) - int(col.decimals), int(col.decimals)
        return (_DEC_SIZES[integral % 9] + 4 * (integral // 9) + 4 * (decimals // 9) + _DEC_SIZES[decimals % 9])
    if t == T.DATETIME2:
        return 5 + _fsp_width(col.fsp)
    if t == T.TIMESTAMP2:
        return 4 + _fsp_width(col.fsp)
    if t == T.TIME2:
        return 3 + _fsp_width(col.fsp)
    return {T.DATE: 3, T.DATETIME: 8, T.TIME: 3, T.TIMESTAMP: 4}.get(t)


def _image_lines(columns: Sequence[Any], opts: dict[str, Any], ns: dict[str, Any], image: str = "",
                 share: bool = False) -> list[str]:
    """Code that decodes one row image at buf[p:] into v0..v{n-1}, advancing p and counting zero dates in z.

    With `share`, an UPDATE's two images: the before image ("before") records where each column of a
    _SHARED_TYPES type starts and, for a string, ends (q{i}, r{i}; `_fixed_width` gives the others' width);
    the after image ("after"), for such a column not NULL, keeps the before image's value (still in v{i})
    when that value is not None and the after image holds the same bytes there (the length prefix of a
    string included: equal bytes from q{i} to r{i} are the whole field), skipping them. Only a value that
    is not None: None from a column that is not NULL is a zero date (counted in z: decoding again counts
    it again), and one that raised never gets here."""
    n = len(columns)
    nbytes = (n + 7) // 8
    lines = [f"n{k} = buf[p + {k}]" for k in range(nbytes)]
    lines.append(f"p += {nbytes}")
    for i, col in enumerate(columns):
        body, _ = _column_lines(i, col, opts, ns)
        if opts.get("mark"):  # RowDecoder's second look at an event with zero dates: mark where they are
            mark = f"; v{i} = _ZM({_zero_text(col)})"
            body = [line + mark if "z += 1" in line else line for line in body]
        shared = share and col.type in _SHARED_TYPES
        lines.append(f"if n{i >> 3} & {1 << (i & 7)}:")
        lines.append(f"    v{i} = None")
        width = _fixed_width(col) if shared else None
        if shared and image == "after":
            if width is None:
                lines.append(f"elif v{i} is not None and buf[p:p + r{i} - q{i}] == buf[q{i}:r{i}]:")
                lines.append(f"    p += r{i} - q{i}")
            else:  # the width is known: no end recorded, no subtraction
                lines.append(f"elif v{i} is not None and buf[p:p + {width}] == buf[q{i}:q{i} + {width}]:")
                lines.append(f"    p += {width}")
        lines.append("else:")
        if shared and image == "before":
            body = [f"q{i} = p"] + body + ([f"r{i} = p"] if width is None else [])
        lines += ["    " + line for line in body]
    return lines


class TableDecoder:
    """Decoders of the rows body of one table map: ``write``, ``update``, ``delete``, each
    ``(body: bytes) -> (pairs, zero_dates, end_offset)``."""

    def __init__(self, ncolumns: int, write: Callable[..., Any], update: Callable[..., Any],
                 delete: Callable[..., Any], source: str):
        self.ncolumns = ncolumns
        self.full_mask = (1 << ncolumns) - 1
        self.bitmap_len = (ncolumns + 7) // 8
        self.kinds = {WRITE: write, UPDATE: update, DELETE: delete}
        self.source = source  # the generated code, for debugging
        # the last columns-present bitmap found to hold every column (binlog_row_image FULL): the next
        # event's is compared with it, instead of being converted to an int again
        self.present = b"\xff" * self.bitmap_len if ncolumns % 8 == 0 else None
        self.columns: tuple[Any, ...] = ()  # what _compile compiled (marked() compiles them again)
        self.opts: dict[str, Any] = {}
        self.share = True

    def full_bitmap(self, bitmap: Any) -> bool:
        """Whether a columns-present bitmap holds every column (remembered in ``present`` when it does)."""
        if len(bitmap) != self.bitmap_len or int.from_bytes(bitmap, "little") & self.full_mask != self.full_mask:
            return False
        self.present = bitmap
        return True

    def decode_body(self, kind: str, body: bytes) -> tuple[list[Any], int]:
        """Decode a whole rows body; raises ValueError if it does not end exactly at the end of ``body``."""
        pairs, zero, end = self.kinds[kind](body)
        if end != len(body):
            raise ValueError(f"rows body of {len(body)} bytes decoded to offset {end}")
        return pairs, zero


def unsupported_reason(columns: Sequence[Any]) -> Optional[str]:
    """Why these columns cannot be compiled, or None if they can."""
    try:
        _compile(columns, _options())
    except _Unsupported as exc:
        return str(exc)
    return None


def _options(ignore_decode_errors: bool = False, utc_timestamps: bool = False, sets_as_text: bool | str = False,
             zero_timestamps_as_none: bool = False, exact_values: bool = False) -> dict[str, Any]:
    if sets_as_text not in (False, True, "sorted", "definition"):
        raise ValueError(f"sets_as_text must be False, True, 'sorted' or 'definition', not {sets_as_text!r}")
    return {"errors": "ignore" if ignore_decode_errors else "strict", "utc": bool(utc_timestamps),
            "sets_as_text": "sorted" if sets_as_text is True else sets_as_text or None,
            "zero_ts": bool(zero_timestamps_as_none), "exact": bool(exact_values)}


def compile_table(columns: Sequence[Any], *, ignore_decode_errors: bool = False, utc_timestamps: bool = False,
                  sets_as_text: bool | str = False, zero_timestamps_as_none: bool = False,
                  exact_values: bool = False, decode_errors: Optional[str] = None,
                  share_unchanged: bool = True) -> Optional[TableDecoder]:
    """Compile a table map's columns (pymysqlreplication Column objects) into a TableDecoder, or None when
    any column cannot be decoded exactly as mysql-replication does (the caller then uses ``event.rows``).

    utc_timestamps: TIMESTAMP values come back tz-aware (UTC) instead of naive.
    sets_as_text: SET values come back as text instead of a set: "definition" gives the members in
        definition order, '' for the empty set (what MariaDB shows, and what replicator.sources.binlog
        makes of the library's sets); True or "sorted" gives them sorted, None for the empty set (what
        binlog.py did before).
    zero_timestamps_as_none: a zero TIMESTAMP (stored as 0; the library gives 1970-01-01 00:00:00) comes
        back as None and is counted as a zero date.
    exact_values: the values the library alters come back exact: a BINARY(n) (INET6, UUID) keeps its
        trailing zero bytes (padded to n, see ``fixed_binary_length``), a negative TIME(n) with a fraction
        keeps the sign on the whole value (``exact_time``), YEAR 0000 is 0 (not 1900), and a latin1 text is
        decoded as MariaDB reads it (``mycharset``: cp1252 has no character for five of its bytes).
    decode_errors: the error handler of text decoding instead of "strict" ("ignore" with
        ignore_decode_errors); RowDecoder's "surrogateescape" finds the row and column of a byte the
        character set leaves undefined (``RowDecoder.undecodable``).
    share_unchanged: an UPDATE's after image takes the before image's value (the same object) of a column
        of text, DECIMAL or a temporal type whose bytes are the same in both images, instead of decoding
        them again (equal values either way; False: the full decode, for the tests to compare with).
    """
    opts = _options(ignore_decode_errors, utc_timestamps, sets_as_text, zero_timestamps_as_none, exact_values)
    if decode_errors is not None:
        opts["errors"] = decode_errors
    try:
        return _compile(columns, opts, share_unchanged)
    except _Unsupported as exc:
        log.debug("row decoder: falling back to mysql-replication: %s", exc)
        return None


def _compile(columns: Sequence[Any], opts: dict[str, Any], share: bool = True) -> TableDecoder:
    """share: an UPDATE's after image takes the before image's value of a column whose bytes are the same
    (_image_lines); False decodes both images in full (the reference the tests compare with)."""
    n = len(columns)
    if n == 0:
        raise _Unsupported("no columns")
    names = []
    for i, col in enumerate(columns):
        name = col.name
        if not isinstance(name, str) or not name:
            raise _Unsupported(f"column {i} has no name (binlog_row_metadata is not FULL)")
        names.append(name)
    ns = dict(_BASE_NS)
    ns["_ZM"] = ZeroMark
    image = _image_lines(columns, opts, ns)
    images2 = (_image_lines(columns, opts, ns, "before", share), _image_lines(columns, opts, ns, "after", share))
    # keys are str literals (repr of a str always is one); duplicates behave like values[name] = ...
    row = "{" + ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names)) + "}"
    src: list[str] = []

    def loop(fname: str, body_tail: list[str], images: int) -> None:
        src.append(f"def {fname}(buf):")
        src.append("    out = []; append = out.append; z = 0; p = 0; end = len(buf)")
        src.append("    while p < end:")
        for k in range(images):
            src.extend("        " + line for line in (image if images == 1 else images2[k]))
            if images == 2 and k == 0:
                src.append(f"        before = {row}")
        src.extend("        " + line for line in body_tail)
        src.append("    return out, z, p")

    loop("write", [f"append((None, {row}))"], 1)
    loop("update", [f"append((before, {row}))"], 2)
    loop("delete", [f"append(({row}, None))"], 1)
    source = "\n".join(src) + "\n"
    code = compile(source, "<rowdecode>", "exec")
    exec(code, ns)  # noqa: S102 - our own generated code; column names only appear as repr() literals
    dec = TableDecoder(n, ns["write"], ns["update"], ns["delete"], source)
    dec.columns, dec.opts, dec.share = tuple(columns), opts, share  # for marked() (zero dates' positions)
    return dec


class ZeroMark:
    """What a decoder compiled by `marked` gives for a zero date instead of None: its text as MariaDB shows it
    ('2024-00-15'; '' where the decoder does not keep the parts). Never leaves rowdecode."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"ZeroMark({self.text!r})"


def _zero_text(col: Any) -> str:
    """The expression, in a column's generated code where it counts a zero date, of the value's text."""
    t = col.type
    if t == FIELD_TYPE.DATE:
        return "'%04d-%02d-%02d' % (y, mo, d)"
    if t == FIELD_TYPE.DATETIME2:
        return "'%04d-%02d-%02d %02d:%02d:%02d' % (ym // 13, ym % 13, x >> 17 & 31, x >> 12 & 31, x >> 6 & 63, x & 63)"
    if t == FIELD_TYPE.DATETIME:  # the pre-5.6 format: its 8 bytes, just read
        return "_old_datetime_text(_Q(buf, p - 8)[0])"
    if t in (FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2):
        return "'0000-00-00 00:00:00'"
    return "''"


def marked(dec: TableDecoder) -> TableDecoder:
    """`dec` compiled again with a ZeroMark for each zero date (where `dec` gives None and counts one): run only
    on an event whose decoding counted zero dates, to find their rows, columns and texts. Every other value is
    the same."""
    return _compile(dec.columns, {**dec.opts, "mark": True}, dec.share)


def _signature(columns: Sequence[Any]) -> tuple[Any, ...]:
    """Everything _compile looks at, per column."""
    sig = []
    for c in columns:
        g = c.__dict__.get
        ev, sv = g("enum_values"), g("set_values")
        sig.append((c.name, c.type, bool(g("unsigned")), g("max_length"), g("length_size"), g("precision"),
                    g("decimals"), g("fsp"), g("size"), g("bits"), g("bytes"), g("character_set_name"),
                    tuple(ev) if ev is not None else None, tuple(sv) if sv is not None else None))
    return tuple(sig)
