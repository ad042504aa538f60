"""Decoder for PostgreSQL's built-in `pgoutput` logical replication plugin, protocol version 1.

Pure: one `msg.payload` (bytes) in, one dataclass out; no I/O. Feed every payload of the stream in
order: row messages refer to tables by OID, resolved through the cache that 'R' messages fill.
Values arrive as text formatted by the walsender session's settings, so the replication connection
must pin them: `options='-c timezone=UTC -c datestyle=ISO -c bytea_output=hex -c client_encoding=UTF8'`
(all but timezone are the usual defaults). A value in any other format raises DecodeError rather
than being guessed at.

Format: https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
"""
from __future__ import annotations

import binascii
import struct
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Union

from replicator.changes import LSN, UNCHANGED, Op, RowChange, TableRef, new_row_change
from replicator.errors import DecodeError

__all__ = [
    "BEGIN_LAYOUT", "BEGIN_SIZE", "COMMIT_LAYOUT", "COMMIT_SIZE",
    "Begin", "Column", "Commit", "Message", "Origin", "PgOutputDecoder", "PgOutputEvent",
    "PgArray", "Relation", "Truncate", "TypeInfo", "converter_for",
]

Converter = Callable[[bytes], Any]

PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)

_BEGIN = struct.Struct(">QqI")  # final lsn, commit time, xid
_COMMIT = struct.Struct(">BQQq")  # flags, commit lsn, end lsn, commit time
# The WAL reader unpacks the two fixed-size messages of every transaction itself (no Begin/Commit
# object, no call): a payload of exactly this size, first byte 'B' / 'C', is that message; any other
# goes through `decode`, which raises its error.
BEGIN_LAYOUT, BEGIN_SIZE = _BEGIN, 1 + _BEGIN.size
COMMIT_LAYOUT, COMMIT_SIZE = _COMMIT, 1 + _COMMIT.size
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_MSG_HEAD = struct.Struct(">BQ")  # flags, lsn
_REL_TAIL = struct.Struct(">BH")  # replica identity, column count
_COL_TYPE = struct.Struct(">Ii")  # type oid, type modifier (-1 = none)
_TRUNC_HEAD = struct.Struct(">IB")  # relation count, options (1 = CASCADE, 2 = RESTART IDENTITY)
_STREAM_TYPES = frozenset(b"SEcA")


@dataclass(frozen=True)
class Begin:
    final_lsn: LSN
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: LSN
    end_lsn: LSN  # where to resume after this transaction: ack this one
    commit_time: datetime


@dataclass(frozen=True)
class Origin:
    lsn: LSN
    name: str


@dataclass(frozen=True)
class Message:
    transactional: bool
    lsn: LSN
    prefix: str
    content: bytes


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    table: TableRef
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class TypeInfo:
    """A non-built-in type used by a following Relation; only its name is of interest."""

    oid: int
    schema: str
    name: str


@dataclass(frozen=True)
class Truncate:
    tables: tuple[TableRef, ...]
    cascade: bool
    restart_identity: bool


PgOutputEvent = Union[Begin, Commit, Origin, Message, Relation, RowChange, Truncate, TypeInfo]


def _pg_time(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


def _timestamptz(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("timestamptz without a UTC offset")
    return value


def _bytea(raw: bytes) -> bytes:
    if raw[:2] != b"\\x":
        raise ValueError("bytea not in hex format (bytea_output must be 'hex')")
    return binascii.a2b_hex(raw[2:])


def _ascii_then(parse: Callable[[str], Any]) -> Converter:
    return lambda raw: parse(raw.decode())


_TEXT: Converter = bytes.decode  # UTF-8, as pinned by client_encoding (the walsender converts)


def _or_beyond(parse: Callable[[str], Any]) -> Converter:
    """A date/time value Python cannot hold but PostgreSQL does ('infinity', '-infinity', BC, a year past
    9999, the time 24:00:00) stays its text: it is a valid source value, and the target decides
    (MariaDB's applier refuses it as a row error naming table, key and column). Anything else that
    does not parse stays an error. `parse` takes the text: decoding it here, not in a second wrapper,
    is one Python call per value less (a UnicodeDecodeError is a ValueError, as it was before)."""
    def conv(raw: bytes) -> Any:
        try:
            return parse(raw.decode())
        except ValueError:
            if raw in (b"infinity", b"-infinity") or raw.endswith(b" BC") or raw[:5].isdigit() \
                    or raw.startswith(b"24:00:00"):  # a time: 24:00:00 is the end of a day there
                return raw.decode()
            raise
    return conv


class PgArray(str):
    """A PostgreSQL array value: its text ('{1,2,NULL}'), exactly as pgoutput sent it, so a text target
    stores what PostgreSQL shows; `json_items()` gives its elements for a JSON target ([1, 2, null])."""

    __slots__ = ("element",)
    element: Callable[[str], Any]

    def __new__(cls, text: str, element: Callable[[str], Any]) -> "PgArray":
        self = super().__new__(cls, text)
        self.element = element
        return self

    def __getnewargs__(self) -> tuple[str, Callable[[str], Any]]:  # type: ignore[override]  # copy and pickle keep the type
        return str(self), self.element

    def json_items(self) -> list[Any]:
        items, pos = _parse_array(str(self), 0, self.element)
        if pos != len(self):
            raise ValueError(f"malformed array literal {str(self)[:40]!r}")
        return items


def _parse_array(text: str, pos: int, element: Callable[[str], Any]) -> tuple[list[Any], int]:
    """One '{...}' of an array's text output (nested for more dimensions) from `pos`; NULL is None."""
    if text.startswith("[", pos):  # explicit bounds '[0:1]={...}': the elements only
        pos = text.index("=", pos) + 1
    if not text.startswith("{", pos):
        raise ValueError(f"malformed array literal {text[:40]!r}")
    pos += 1
    out: list[Any] = []
    if text.startswith("}", pos):
        return out, pos + 1
    while True:
        if text.startswith("{", pos):
            sub, pos = _parse_array(text, pos, element)
            out.append(sub)
        elif text.startswith('"', pos):
            chars, pos = [], pos + 1
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos])
                pos += 1
            out.append(element("".join(chars)))
            pos += 1
        else:
            end = pos
            while text[end] not in ",}":
                end += 1
            word = text[pos:end]
            out.append(None if word == "NULL" else element(word))
            pos = end
        if text[pos] == "}":
            return out, pos + 1
        pos += 1  # ','


_F4 = struct.Struct("<f")


def _float4(raw: bytes) -> float:
    """A real as the float32 it is: its shortest text read as a double can exceed float32 (3.4028235e+38
    is more than FLT_MAX) and a MariaDB FLOAT would refuse it as out of range."""
    value: float = _F4.unpack(_F4.pack(float(raw)))[0]
    return value


def _pg_bool(text: str) -> bool:
    return {"t": True, "f": False}[text]


def _pg_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} has no JSON equivalent")
    return value


def _array(element: Callable[[str], Any]) -> Converter:
    return lambda raw: PgArray(raw.decode(), element)


# array type OIDs whose elements have a JSON equivalent
_ARRAYS: dict[int, Callable[[str], Any]] = {
    1000: _pg_bool, 1005: int, 1007: int, 1016: int,  # bool[], int2[], int4[], int8[]
    1021: _pg_float, 1022: _pg_float, 1231: Decimal,  # float4[], float8[], numeric[]
    1009: str, 1015: str, 1014: str, 2951: str,  # text[], varchar[], bpchar[], uuid[]
}

_CONVERTERS: dict[int, Converter] = {
    16: {b"t": True, b"f": False}.__getitem__,  # bool
    17: _bytea,
    20: int, 21: int, 23: int, 26: int,  # int8, int2, int4, oid: int() parses ASCII bytes directly
    700: _float4, 701: float,  # float() takes bytes and 'NaN' / 'Infinity' / '-Infinity'
    1700: _ascii_then(Decimal),  # exact, whatever the context precision; NaN and +-Infinity too
    # date/time: 'infinity' and BC values have no Python equivalent, so fromisoformat rejects them
    1082: _or_beyond(date.fromisoformat),
    1083: _or_beyond(time.fromisoformat),
    1114: _or_beyond(datetime.fromisoformat),
    1184: _or_beyond(_timestamptz),
    2950: _ascii_then(uuid.UUID),
    **{oid: _array(element) for oid, element in _ARRAYS.items()},
}


def converter_for(type_oid: int) -> Converter:
    """Text-to-Python converter for a type OID; unknown types (json, inet, interval...) stay str, arrays of
    the types in _ARRAYS are a PgArray (a str)."""
    return _CONVERTERS.get(type_oid, _TEXT)


@dataclass(frozen=True)
class _Plan:
    """A Relation compiled for the hot path: (name, converter) pairs in wire order, and the relation's tuple
    readers for `PgOutputDecoder.row` (see _tuple_reader): `read`, one tuple; `read_pair`, an UPDATE's old
    ('O', REPLICA IDENTITY FULL) and new tuples together."""

    relation: Relation
    fields: tuple[tuple[str, Converter], ...]
    key_names: tuple[str, ...]
    read: Callable[[bytes, int], tuple[dict[str, Any], int]]
    read_pair: Callable[[bytes, int], tuple[dict[str, Any], dict[str, Any], int]]
    # an 'U' message with an 'O' tuple whole, from its 'O' (`pos` 6): the RowChange, or None where it does not
    # end with the new tuple (`row` then asks `decode`)
    update_full: Callable[[bytes, int], RowChange | None]


def _compile(relation: Relation) -> _Plan:
    fields = tuple((c.name, converter_for(c.type_oid)) for c in relation.columns)
    return _Plan(relation, fields, tuple(c.name for c in relation.columns if c.is_key), _tuple_reader(fields),
                 _pair_reader(fields), _pair_reader(fields, relation.table))


# wider relations keep the loop (_fast_tuple): one generated function per relation stays small
UNROLL_COLUMNS = 64

# The converters the generated readers write out as an expression of the value's bytes `{}` instead of a
# call of the converter: its Python frame (two for timestamptz: _or_beyond's and _timestamptz's) is most
# of such a value's cost. Only the usual form is read here: whatever raises -- 'infinity', a BC date, a
# timestamptz without an offset -- sends the message to `decode`, whose converter then keeps the text or
# names the column (`row`'s contract). The names are bound in the generated function's namespace.
_INLINE: dict[Converter, str] = {
    _CONVERTERS[1700]: "_Decimal({}.decode())",
    _CONVERTERS[1082]: "_date({}.decode())",
    _CONVERTERS[1083]: "_time({}.decode())",
    _CONVERTERS[1114]: "_datetime({}.decode())",
    _CONVERTERS[1184]: "_datetime({}.decode())",  # and the offset test: _AWARE
}
_AWARE = _CONVERTERS[1184]

_GENERATED_NAMES: dict[str, Any] = {
    "_unpack": _U32.unpack_from, "_unchanged": UNCHANGED, "_error": DecodeError, "_Decimal": Decimal,
    "_date": date.fromisoformat, "_time": time.fromisoformat, "_datetime": datetime.fromisoformat,
}


def _convert_lines(i: int, conv: Converter, var: str, raw: str, indent: str) -> list[str]:
    """`var` = column `i`'s value converted from the bytes expression `raw`."""
    template = _INLINE.get(conv)
    if template is None:
        return [f"{indent}{var} = _c{i}({raw})"]
    lines = [f"{indent}{var} = {template.format(raw)}"]
    if conv is _AWARE:
        lines += [f"{indent}if {var}.tzinfo is None:", f"{indent}    raise _error('timestamptz without a UTC offset')"]
    return lines


def _value_lines(i: int, conv: Converter, var: str, raw: str | None = None) -> list[str]:
    """Straight-line code that reads column `i`'s value at `pos` into `var` and moves `pos` past it. With
    `raw`, that variable keeps a 't' value's bytes (None for a 'n' or 'u' value)."""
    if raw is None:
        read = _convert_lines(i, conv, var, "buf[pos + 5 : end]", "        ")
    else:
        read = [f"        {raw} = buf[pos + 5 : end]", *_convert_lines(i, conv, var, raw, "        ")]
    return [
        "    kind = buf[pos]",
        "    if kind == 0x74:",
        "        end = pos + 5 + _unpack(buf, pos + 1)[0]",
        *read,
        "        pos = end",
        *_null_unchanged_lines(var, raw),
    ]


def _null_unchanged_lines(var: str, raw: str | None = None) -> list[str]:
    """The branches of a value's reader after its 't' branch: NULL ('n'), an unchanged TOAST value ('u'), and
    the error for any other kind. With `raw`, that variable is None on both."""
    return [
        "    elif kind == 0x6E:",
        f"        {var} = None",
        *([] if raw is None else [f"        {raw} = None"]),
        "        pos += 1",
        "    elif kind == 0x75:",
        f"        {var} = _unchanged",
        *([] if raw is None else [f"        {raw} = None"]),
        "        pos += 1",
        "    else:",
        "        raise _error('value kind')",
    ]


def _reuse_lines(i: int, conv: Converter, var: str, raw: str, old: str) -> list[str]:
    """`_value_lines` for the new tuple of an UPDATE whose old tuple was read into `old`, its bytes in `raw`:
    a value whose bytes are the old value's is that same object, not converted again (a deterministic
    conversion of equal bytes gives an equal value)."""
    return [
        "    kind = buf[pos]",
        "    if kind == 0x74:",
        "        end = pos + 5 + _unpack(buf, pos + 1)[0]",
        "        _r = buf[pos + 5 : end]",
        f"        if _r == {raw}:",
        f"            {var} = {old}",
        "        else:",
        *_convert_lines(i, conv, var, "_r", "            "),
        "        pos = end",
        *_null_unchanged_lines(var),
    ]


def _generate(fields: tuple[tuple[str, Converter], ...], lines: list[str], name: str,
              names: dict[str, Any] | None = None) -> Any:
    namespace: dict[str, Any] = dict(_GENERATED_NAMES)
    namespace.update(names or {})
    namespace.update({f"_c{i}": conv for i, (_, conv) in enumerate(fields)})
    exec(compile("\n".join(lines), "<pgoutput tuple reader>", "exec"), namespace)
    return namespace[name]


def _head(fields: tuple[tuple[str, Converter], ...], name: str) -> list[str]:
    n = len(fields)
    return [
        f"def {name}(buf, pos, _unpack=_unpack, _unchanged=_unchanged, _error=_error, _Decimal=_Decimal, "
        "_date=_date, _time=_time, _datetime=_datetime" + "".join(f", _c{i}=_c{i}" for i in range(n)) + "):",
        f"    if buf[pos] != {n >> 8} or buf[pos + 1] != {n & 0xFF}:",
        "        raise _error('column count')",
        "    pos += 2",
    ]


def _row_display(fields: tuple[tuple[str, Converter], ...], prefix: str) -> str:
    return "{" + ", ".join(f"{name!r}: {prefix}{i}" for i, (name, _) in enumerate(fields)) + "}"


def _tuple_reader(fields: tuple[tuple[str, Converter], ...]) -> Callable[[bytes, int], tuple[dict[str, Any], int]]:
    """`_fast_tuple` unrolled for one relation: straight-line code per column, the converters bound as
    default arguments (the usual ones written out as expressions: _INLINE), the row built as one dict
    display. Half the bytecode of the loop per column (no tuple unpacking of the field, no loop, no dict
    store by a variable name); the same contract: any exception sends `row` to `decode`, which names what
    is wrong. Column names enter the source only as repr() string literals and converters only as
    arguments, never as code."""
    if len(fields) > UNROLL_COLUMNS:
        return lambda buf, pos: _fast_tuple(buf, pos, fields)
    lines = _head(fields, "read")
    for i, (_, conv) in enumerate(fields):
        lines += _value_lines(i, conv, f"_v{i}")
    lines.append(f"    return {_row_display(fields, '_v')}, pos")
    read: Callable[[bytes, int], tuple[dict[str, Any], int]] = _generate(fields, lines, "read")
    return read


# RowChange's instance dict filled in the generated update reader, as changes.new_row_change does (only while
# that is not RowChange itself: a plain frozen dataclass of those four fields)
_FILL_CHANGE = new_row_change is not RowChange


def _pair_reader(fields: tuple[tuple[str, Converter], ...], table: TableRef | None = None) -> Any:
    """An UPDATE's 'O' old tuple (from `pos`, past the 'O') and its 'N' new tuple in one generated function:
    a new value whose bytes equal the old one's is the old value object itself, converted once (an UPDATE
    changes a few columns of many: their conversions, and later `new is old` in the router's comparison,
    are what this saves). The same rows as two `read` calls (tests/unit/test_wal_differential.py).
    With `table`: the whole message's reader (`_Plan.update_full`), the RowChange of `table` built in it
    where the new tuple ends the message, else None: what `row` did with `read_pair`'s rows, without the
    tuple handed back, `new_row_change`'s call and `row`'s tests around them."""
    if len(fields) > UNROLL_COLUMNS:
        def pair(buf: bytes, pos: int) -> tuple[dict[str, Any], dict[str, Any], int]:
            before, pos = _fast_tuple(buf, pos, fields)
            if buf[pos] != 0x4E:
                raise DecodeError("marker")
            after, pos = _fast_tuple(buf, pos + 1, fields)
            return before, after, pos
        if table is None:
            return pair

        def whole(buf: bytes, pos: int) -> RowChange | None:
            before, after, pos = pair(buf, pos)
            return new_row_change(table, Op.UPDATE, before, after) if pos == len(buf) else None
        return whole
    name = "read_pair" if table is None else "update_full"
    lines = _head(fields, name)
    if table is not None:
        lines[0] = lines[0][:-2] + (", _fill=_fill, _RowChange=_RowChange, _table=_table, _UPDATE=_UPDATE, "
                                    "_new_change=_new_change):")
    for i, (_, conv) in enumerate(fields):
        lines += _value_lines(i, conv, f"_o{i}", raw=f"_r{i}")
    n = len(fields)
    lines += [
        "    if buf[pos] != 0x4E:",
        "        raise _error('marker')",
        f"    if buf[pos + 1] != {n >> 8} or buf[pos + 2] != {n & 0xFF}:",
        "        raise _error('column count')",
        "    pos += 3",
    ]
    for i, (_, conv) in enumerate(fields):
        lines += _reuse_lines(i, conv, f"_n{i}", f"_r{i}", f"_o{i}")
    if table is None:
        lines.append(f"    return {_row_display(fields, '_o')}, {_row_display(fields, '_n')}, pos")
    else:
        lines += ["    if pos != len(buf):",
                  "        return None"]
        if _FILL_CHANGE:
            lines += ["    _change = _fill(_RowChange)",
                      "    _d = _change.__dict__",
                      "    _d['table'] = _table",
                      "    _d['op'] = _UPDATE",
                      f"    _d['before'] = {_row_display(fields, '_o')}",
                      f"    _d['after'] = {_row_display(fields, '_n')}",
                      "    return _change"]
        else:
            lines.append(f"    return _new_change(_table, _UPDATE, {_row_display(fields, '_o')}, "
                         f"{_row_display(fields, '_n')})")
    return _generate(fields, lines, name, {"_fill": object.__new__, "_RowChange": RowChange, "_table": table,
                                            "_UPDATE": Op.UPDATE, "_new_change": new_row_change})


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(0, pos)
    if end < 0:
        raise DecodeError(f"unterminated string at offset {pos}")
    return buf[pos:end].decode(), end + 1


class PgOutputDecoder:
    """Stateful only through the relation cache (OID -> Relation), replaced by each 'R' message."""

    def __init__(self) -> None:
        self._plans: dict[int, _Plan] = {}

    @property
    def relations(self) -> Mapping[int, Relation]:
        return {oid: plan.relation for oid, plan in self._plans.items()}

    def decode(self, payload: bytes | bytearray | memoryview) -> PgOutputEvent:
        buf = payload if type(payload) is bytes else bytes(payload)
        if not buf:
            raise DecodeError("pgoutput: empty message")
        kind = buf[0]
        handler = self._handlers.get(kind)
        if handler is None:
            if kind in _STREAM_TYPES:
                raise DecodeError(f"pgoutput {chr(kind)!r} message: streaming is not used with proto_version 1")
            raise DecodeError(f"pgoutput: unknown message type {chr(kind)!r} (0x{kind:02x}) at offset 0")
        try:
            event, pos = handler(self, buf)
        except DecodeError as exc:
            raise DecodeError(f"pgoutput {chr(kind)!r} message: {exc}") from None
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise DecodeError(f"pgoutput {chr(kind)!r} message truncated or malformed: {exc}") from exc
        if pos != len(buf):
            raise DecodeError(
                f"pgoutput {chr(kind)!r} message: {len(buf) - pos} unexpected trailing bytes at offset {pos}"
            )
        return event

    def row(self, buf: bytes) -> RowChange:
        """An 'I', 'U' or 'D' message (the caller checked its first byte) as `decode` gives it, in fewer
        Python calls: the reader's per-row path. Only a well-formed message is decoded here; on anything
        else -- an unknown relation, a wrong marker, a bad value, trailing bytes -- `decode` runs on the
        same bytes and raises its own error, so the errors are `decode`'s word for word (the cache is not
        touched by row messages: decoding twice is safe)."""
        if type(buf) is not bytes:
            buf = bytes(buf)
        try:
            plan = self._plans[_U32.unpack_from(buf, 1)[0]]
            kind = buf[0]
            if kind == 0x55 and buf[5] == 0x4F:  # 'U' with 'O' (REPLICA IDENTITY FULL): a two-way table's update
                change = plan.update_full(buf, 6)
                if change is not None:
                    return change
                raise DecodeError("trailing bytes")  # (to `decode`, below)
            read = plan.read
            if kind == 0x49:  # 'I'
                if buf[5] == 0x4E:  # 'N'
                    after, pos = read(buf, 6)
                    if pos == len(buf):
                        return new_row_change(plan.relation.table, Op.INSERT, None, after)
            elif kind == 0x55:  # 'U'
                marker = buf[5]
                if marker == 0x4E:
                    after, pos = read(buf, 6)
                    if pos == len(buf):
                        return new_row_change(plan.relation.table, Op.UPDATE, None, after)
                elif marker == 0x4B:  # 'K'
                    before, pos = read(buf, 6)
                    before = {name: before[name] for name in plan.key_names}
                    if buf[pos] == 0x4E:
                        after, pos = read(buf, pos + 1)
                        if pos == len(buf):
                            return new_row_change(plan.relation.table, Op.UPDATE, before, after)
            elif kind == 0x44:  # 'D'
                marker = buf[5]
                if marker == 0x4F or marker == 0x4B:
                    before, pos = read(buf, 6)
                    if pos == len(buf):
                        if marker == 0x4B:
                            before = {name: before[name] for name in plan.key_names}
                        return new_row_change(plan.relation.table, Op.DELETE, before, None)
        except Exception:
            pass
        event = self.decode(buf)  # raises the error; returns only if this method missed a valid form
        assert isinstance(event, RowChange), event
        return event

    def _begin(self, buf: bytes) -> tuple[Begin, int]:
        lsn, ts, xid = _BEGIN.unpack_from(buf, 1)
        return Begin(LSN(lsn), _pg_time(ts), xid), 1 + _BEGIN.size

    def _commit(self, buf: bytes) -> tuple[Commit, int]:
        _flags, lsn, end_lsn, ts = _COMMIT.unpack_from(buf, 1)
        return Commit(LSN(lsn), LSN(end_lsn), _pg_time(ts)), 1 + _COMMIT.size

    def _origin(self, buf: bytes) -> tuple[Origin, int]:
        (lsn,) = _U64.unpack_from(buf, 1)
        name, pos = _cstring(buf, 9)
        return Origin(LSN(lsn), name), pos

    def _message(self, buf: bytes) -> tuple[Message, int]:
        flags, lsn = _MSG_HEAD.unpack_from(buf, 1)
        prefix, pos = _cstring(buf, 1 + _MSG_HEAD.size)
        (size,) = _U32.unpack_from(buf, pos)
        pos += 4
        if pos + size > len(buf):
            raise DecodeError(f"content of {size} bytes at offset {pos} runs past the end ({len(buf)})")
        return Message(bool(flags & 1), LSN(lsn), prefix, buf[pos : pos + size]), pos + size

    def _relation(self, buf: bytes) -> tuple[Relation, int]:
        (oid,) = _U32.unpack_from(buf, 1)
        schema, pos = _cstring(buf, 5)
        name, pos = _cstring(buf, pos)
        ident, ncols = _REL_TAIL.unpack_from(buf, pos)
        pos += _REL_TAIL.size
        columns = []
        for _ in range(ncols):
            flags = buf[pos]
            col_name, pos = _cstring(buf, pos + 1)
            type_oid, typmod = _COL_TYPE.unpack_from(buf, pos)
            pos += _COL_TYPE.size
            columns.append(Column(col_name, type_oid, typmod, bool(flags & 1)))
        # pgoutput sends '' for pg_catalog to save bytes
        relation = Relation(oid, TableRef(schema or "pg_catalog", name), chr(ident), tuple(columns))
        self._plans[oid] = _compile(relation)
        return relation, pos

    def _type(self, buf: bytes) -> tuple[TypeInfo, int]:
        (oid,) = _U32.unpack_from(buf, 1)
        schema, pos = _cstring(buf, 5)
        name, pos = _cstring(buf, pos)
        return TypeInfo(oid, schema or "pg_catalog", name), pos

    def _plan(self, buf: bytes, pos: int = 1) -> _Plan:
        (oid,) = _U32.unpack_from(buf, pos)
        plan = self._plans.get(oid)
        if plan is None:
            raise DecodeError(f"relation oid {oid} not in cache (no 'R' message seen for it)")
        return plan

    def _insert(self, buf: bytes) -> tuple[RowChange, int]:
        plan = self._plan(buf)
        _expect(buf, 5, b"N")
        after, pos = _tuple(buf, 6, plan)
        return RowChange(plan.relation.table, Op.INSERT, None, after), pos

    def _update(self, buf: bytes) -> tuple[RowChange, int]:
        plan = self._plan(buf)
        before: dict[str, Any] | None = None
        pos = 5
        marker = buf[pos]
        if marker == 0x4B or marker == 0x4F:  # 'K' or 'O'
            before, pos = _old_tuple(buf, pos, plan)
        _expect(buf, pos, b"N")
        after, pos = _tuple(buf, pos + 1, plan)
        return RowChange(plan.relation.table, Op.UPDATE, before, after), pos

    def _delete(self, buf: bytes) -> tuple[RowChange, int]:
        plan = self._plan(buf)
        before, pos = _old_tuple(buf, 5, plan)
        return RowChange(plan.relation.table, Op.DELETE, before, None), pos

    def _truncate(self, buf: bytes) -> tuple[Truncate, int]:
        count, options = _TRUNC_HEAD.unpack_from(buf, 1)
        pos = 1 + _TRUNC_HEAD.size
        tables = tuple(self._plan(buf, pos + 4 * i).relation.table for i in range(count))
        return Truncate(tables, bool(options & 1), bool(options & 2)), pos + 4 * count

    _handlers: dict[int, Callable[[PgOutputDecoder, bytes], tuple[PgOutputEvent, int]]] = {
        ord("B"): _begin, ord("C"): _commit, ord("O"): _origin, ord("M"): _message,
        ord("R"): _relation, ord("Y"): _type, ord("I"): _insert, ord("U"): _update,
        ord("D"): _delete, ord("T"): _truncate,
    }


def _expect(buf: bytes, pos: int, marker: bytes) -> None:
    if buf[pos : pos + 1] != marker:
        raise DecodeError(f"expected {marker.decode()!r} at offset {pos}, got {buf[pos : pos + 1]!r}")


def _old_tuple(buf: bytes, pos: int, plan: _Plan) -> tuple[dict[str, Any], int]:
    marker = buf[pos : pos + 1]
    if marker == b"O":
        return _tuple(buf, pos + 1, plan)
    if marker != b"K":
        raise DecodeError(f"expected 'K' or 'O' at offset {pos}, got {marker!r}")
    row, pos = _tuple(buf, pos + 1, plan)
    # A 'K' tuple carries every column, non-key ones as 'n': keeping those would fake NULLs
    return {name: row[name] for name in plan.key_names}, pos


def _tuple(buf: bytes, pos: int, plan: _Plan) -> tuple[dict[str, Any], int]:
    (ncols,) = _U16.unpack_from(buf, pos)
    if ncols != len(plan.fields):
        rel = plan.relation
        raise DecodeError(
            f"tuple at offset {pos} has {ncols} columns, relation {rel.table} (oid {rel.oid}) has {len(plan.fields)}"
        )
    pos += 2
    size = len(buf)
    unpack = _U32.unpack_from  # unsigned: a corrupt length then fails the bounds check
    row: dict[str, Any] = {}
    failed: tuple[str, bytes, int, Exception] | None = None
    for name, conv in plan.fields:
        if pos >= size:
            raise DecodeError(f"truncated tuple at offset {pos}, column {name!r}")
        kind = buf[pos]
        if kind == 0x74:  # 't'
            end = pos + 5 + unpack(buf, pos + 1)[0]
            if end > size:
                raise DecodeError(f"truncated value at offset {pos}, column {name!r}")
            raw = buf[pos + 5 : end]
            try:
                row[name] = conv(raw)
            except Exception as exc:  # read on: the key columns, maybe later in the tuple, name the row
                if failed is None:
                    failed = (name, raw, pos, exc)
                row[name] = None
            pos = end
        elif kind == 0x6E:  # 'n'
            row[name] = None
            pos += 1
        elif kind == 0x75:  # 'u': unchanged TOAST, the value was not sent
            row[name] = UNCHANGED
            pos += 1
        else:
            raise DecodeError(f"unsupported tuple value kind {chr(kind)!r} at offset {pos}, column {name!r}")
    if failed is not None:
        name, raw, at, cause = failed
        key = tuple(row.get(k) for k in plan.key_names) if name not in plan.key_names else None
        raise _conversion_error(plan, name, raw, at, cause, key) from cause
    return row, pos


def _fast_tuple(buf: bytes, pos: int, fields: tuple[tuple[str, Converter], ...]) -> tuple[dict[str, Any], int]:
    """`_tuple` for `PgOutputDecoder.row`, without the checks that name what is wrong: any exception
    sends `row` to `decode`, whose `_tuple` then names it. It cannot return another row than `_tuple`: a
    value running past the end leaves `pos` past it, which `row` refuses (pos != len(buf)) or the next
    column's `buf[pos]` raises on; a value that does not convert raises here as it does there."""
    if _U16.unpack_from(buf, pos)[0] != len(fields):
        raise DecodeError("column count")
    pos += 2
    unpack = _U32.unpack_from
    row: dict[str, Any] = {}
    for name, conv in fields:
        kind = buf[pos]
        if kind == 0x74:  # 't'
            end = pos + 5 + unpack(buf, pos + 1)[0]
            row[name] = conv(buf[pos + 5 : end])
            pos = end
        elif kind == 0x6E:  # 'n'
            row[name] = None
            pos += 1
        elif kind == 0x75:  # 'u': unchanged TOAST, the value was not sent
            row[name] = UNCHANGED
            pos += 1
        else:
            raise DecodeError("value kind")
    return row, pos


def _conversion_error(plan: _Plan, name: str, raw: bytes, pos: int, exc: Exception,
                      key: tuple[Any, ...] | None = None) -> DecodeError:
    """Names table, key (when the key columns decoded) and column, as a RowError does."""
    rel = plan.relation
    type_oid = next(c.type_oid for c in rel.columns if c.name == name)
    shown = raw if len(raw) <= 40 else raw[:40] + b"..."
    if raw.endswith(b" BC") or raw.lstrip(b"-") == b"infinity":
        exc = ValueError("infinite and BC dates have no Python equivalent")
    where = f"table {rel.table}, " + (f"key {key!r}, " if key and any(k is not None for k in key) else "") + \
        f"column {name}: "
    return DecodeError(
        f"{where}cannot convert value at offset {pos} for {rel.table}.{name} (relation oid {rel.oid},"
        f" type oid {type_oid}): {shown!r}: {exc}"
    )
