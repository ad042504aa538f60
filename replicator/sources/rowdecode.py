"""Fast decoding of binlog row images (Write/Update/DeleteRowsEvent), used instead of mysql-replication's
``event.rows``.

mysql-replication decodes every column with several method calls, ``struct.unpack`` on freshly read slices
and a long ``if`` chain on the column type: about 75 us a row, the bottleneck of the MariaDB source. Here a
table map is compiled once into straight-line Python (one generated function per event kind, one code block
per column, no type dispatch at run time) that walks the raw rows body, a ``bytes`` object, with an integer
offset.

Values are identical to what mysql-replication 1.0.17 returns, quirks included -- but for an impossible DATE
or pre-5.6 DATETIME (2024-02-30, stored under ALLOW_INVALID_DATES), which the library raises ValueError for and
which comes back as None here, counted and named like a zero date (binlog.py wraps the library's readers so
that its fallback does the same, libraryrows.watch_zero_dates): zero dates as None, SET
as a Python set and an empty SET as None, BIT as a string of bits, TIMESTAMP as a naive UTC datetime (a zero
TIMESTAMP as 1970-01-01 00:00:00), FLOAT with float32 noise, the odd decoding of negative TIME2 values
with a fraction, strings decoded with the column's character set and kept as bytes when Python does not
know it (binary columns) -- except an empty binary value, which the library gives as '' (str). The caller
may ask for the conversions our binlog source applies to those values anyway (``utc_timestamps``,
``sets_as_text``, ``zero_timestamps_as_none``, ``exact_values``: see :func:`compile_table`), saving a pass
over every row.

Whatever is not decoded here exactly the way the library does it makes :meth:`RowDecoder.decode` return
None *before* the event's packet is touched, so the caller falls back to ``event.rows``: GEOMETRY, the
old DECIMAL and VAR_STRING codes and unknown types, unusual metadata, missing column names (``binlog_row_
metadata`` not FULL), a columns-present bitmap with unset bits
(``binlog_row_image`` other than FULL), partial JSON updates (MySQL's PARTIAL_UPDATE_ROWS_EVENT, which
MariaDB never sends). A body that fails to decode (a value the library would also reject, or a malformed
event) is handed back: the packet is rewound, so ``event.rows`` then behaves exactly as without this module.

Usage::

    decoder = RowDecoder()
    result = decoder.decode(event)            # before anything read event.rows
    if result is None:
        rows = event.rows                      # library fallback
    else:
        pairs, zero_dates = result             # [(before|None, after|None), ...], count of zero dates

``pairs`` holds ``(None, values)`` for an INSERT, ``(values, None)`` for a DELETE and ``(before, after)``
for an UPDATE; ``zero_dates`` counts the values the library would give as None with a NONE_SOURCE of
OUT_OF_DATE_RANGE / OUT_OF_DATETIME_RANGE / OUT_OF_DATETIME2_RANGE.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Optional

from pymysql.protocol import MysqlPacket

from replicator.changes import ZeroDatedRow
from replicator.sources.rowcompile import (DELETE, TableDecoder, UPDATE, WRITE, ZeroMark, _EVENT_KINDS, _MAX_TABLES,
                                           _options, _signature, compile_table, marked, unsupported_reason)
from replicator.sources.rowvalues import exact_time, fixed_binary_length


log = logging.getLogger(__name__)
_ESCAPED = re.compile("[\udc80-\udcff]")  # a byte surrogateescape kept: its character set has no character for it


@dataclass(frozen=True)
class Undecodable:
    """The first value of a rows event that is not text of its column's character set (a byte a single-byte
    MariaDB character set leaves undefined: cp1250 0x81, which MariaDB itself shows as '?'): its row image,
    read with the byte kept as a surrogate (surrogateescape), the column and the byte."""

    schema: str
    table: str
    image: dict[str, Any]
    column: str
    byte: bytes
    pairs: tuple[tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]], ...]  # every row, bytes kept escaped


def escaped_columns(image: Optional[dict[str, Any]]) -> list[str]:
    """The columns of a row image read with surrogateescape that hold a byte their character set leaves undefined."""
    return [c for c, v in (image or {}).items() if isinstance(v, str) and _ESCAPED.search(v) is not None]


def undefined_byte(value: str) -> bytes:
    """The first byte surrogateescape kept in `value` (b"" when none)."""
    found = _ESCAPED.search(value)
    return b"" if found is None else bytes([ord(found.group()) - 0xDC00])


def replaced(value: Any) -> Any:
    """A value with each undefined byte as U+FFFD (storable text; never written to a target)."""
    return _ESCAPED.sub("\ufffd", value) if isinstance(value, str) else value


_MYSQL_PACKET: Any = MysqlPacket  # the packet whose read() decode() does inline (typed Any: private attributes)

__all__ = ["RowDecoder", "TableDecoder", "Undecodable", "compile_table", "escaped_columns", "exact_time",
           "fixed_binary_length", "replaced", "undefined_byte", "unsupported_reason", "WRITE", "UPDATE", "DELETE"]


class RowDecoder:
    """Decodes row events with compiled per-table decoders, cached by table map.

    Not thread-safe; one per binlog reader.
    """

    def __init__(self, *, utc_timestamps: bool = False, sets_as_text: bool | str = False,
                 zero_timestamps_as_none: bool = False, exact_values: bool = False):
        _options(False, utc_timestamps, sets_as_text, zero_timestamps_as_none, exact_values)  # validate early
        self.options: dict[str, Any] = {"utc_timestamps": utc_timestamps, "sets_as_text": sets_as_text,
                                        "zero_timestamps_as_none": zero_timestamps_as_none,
                                        "exact_values": exact_values}
        self._by_table_id: dict[int, tuple[Any, Optional[TableDecoder], str]] = {}
        self._compiled: dict[tuple[Any, ...], tuple[Optional[TableDecoder], str]] = {}
        self.decoded_events = 0
        self.fallback_events = 0
        self.last_fallback: Optional[str] = None
        # the undefined byte that made the last decode() fall back, found in its row (None: no such byte)
        self.undecodable: Optional[Undecodable] = None
        self._lenient: dict[tuple[Any, ...], Optional[TableDecoder]] = {}
        self._marked: dict[int, tuple[TableDecoder, TableDecoder]] = {}  # by id() of the decoder: marked(it)

    def decoder_for(self, event: Any) -> Optional[TableDecoder]:
        """The compiled decoder of the event's table map (None: not supported)."""
        return self._lookup(event)[0]

    def _lookup(self, event: Any) -> tuple[Optional[TableDecoder], str]:
        table_id = event.table_id
        table = event.table_map.get(table_id)
        if table is None or table.columns is not event.columns:
            return None, "no table map"
        return self._table_decoder(table_id, table, bool(event._ignore_decode_errors))

    def _table_decoder(self, table_id: int, table: Any, ignore: bool) -> tuple[Optional[TableDecoder], str]:
        """The compiled decoder of a registered table map (None and why: not supported)."""
        hit = self._by_table_id.get(table_id)
        if hit is not None and hit[0] is table:  # the same table-map object: most events
            return hit[1], hit[2]
        columns = table.columns
        key = (table_id, ignore, _signature(columns))
        found = self._compiled.get(key)
        if found is None:
            dec = compile_table(columns, ignore_decode_errors=ignore, **self.options)
            why = "" if dec is not None else f"{table.schema}.{table.table}: {unsupported_reason(columns)}"
            if dec is None:
                log.info("binlog rows of %s.%s are decoded by mysql-replication (slower): %s",
                         table.schema, table.table, why)
            if len(self._compiled) >= _MAX_TABLES:
                self._compiled.clear()
            found = self._compiled[key] = (dec, why)
        if len(self._by_table_id) >= _MAX_TABLES:
            self._by_table_id.clear()
        self._by_table_id[table_id] = (table, found[0], found[1])
        return found

    def decode(self, event: Any
               ) -> Optional[tuple[list[tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]], int]]:
        """``(pairs, zero_dates)`` for a Write/Update/DeleteRowsEvent whose rows were not read yet, or None:
        then nothing was consumed and the caller must use ``event.rows``."""
        self.undecodable = None
        kind = _EVENT_KINDS.get(event.event_type)
        if kind is None or not event.complete or not getattr(event, "_processed", True):
            return self._fallback("event type")
        # _lookup's common case inline (the same table-map object as the last event of this table id)
        table_id = event.table_id
        table = event.table_map.get(table_id)
        hit = self._by_table_id.get(table_id)
        if hit is not None and hit[0] is table and table.columns is event.columns:
            dec, why = hit[1], hit[2]
        else:
            dec, why = self._lookup(event)
        if dec is None:
            return self._fallback(why)
        ncolumns = dec.ncolumns
        if event.number_of_columns != ncolumns or len(event.columns) != ncolumns:
            return self._fallback("column count")
        bitmap = event.columns_present_bitmap
        if bitmap is not dec.present and bitmap != dec.present and not dec.full_bitmap(bitmap):
            return self._fallback("columns-present bitmap (binlog_row_image is not FULL)")
        if kind == UPDATE:
            bitmap = event.columns_present_bitmap2
            if bitmap is not dec.present and bitmap != dec.present and not dec.full_bitmap(bitmap):
                return self._fallback("columns-present bitmap (binlog_row_image is not FULL)")
        packet = event.packet
        size = event.event_size - packet.read_bytes
        # The library's own unread() buffer must be empty: we rewind the underlying pymysql packet on failure
        # (pushing the body back with unread() would not do: the library's DECIMAL decoding unread()s a byte
        # and its buffer appends at the end).
        if size < 0 or getattr(packet, "_BinLogPacketWrapper__data_buffer", None) != b"":
            return self._fallback("packet state")
        inner = packet.packet
        if inner.__class__ is _MYSQL_PACKET:  # inner.read(size), inline
            start = inner._position
            if start is None:  # after read_all(): read() fails
                return self._fallback("short packet")
            body = inner._data[start:start + size]
            if len(body) != size:
                return self._fallback("short packet")  # nothing was consumed
            inner._position = start + size
        else:
            try:
                body = inner.read(size)  # the rows; a checksum, if any, follows (event_size excludes it)
            except Exception:  # noqa: BLE001 - short packet: nothing was consumed
                return self._fallback("short packet")
        try:
            pairs, zero, end = dec.kinds[kind](body)  # dec.decode_body(kind, body), inline
            if end != size:
                raise ValueError(f"rows body of {size} bytes decoded to offset {end}")
        except Exception as exc:  # noqa: BLE001 - event.rows then decodes (or fails) exactly as the library does
            if isinstance(exc, UnicodeDecodeError):
                self.undecodable = self._find_undecodable(event, kind, body)
            inner.advance(-size)
            log.debug("row decoder: %s.%s: %s: %s; falling back to mysql-replication",
                      event.schema, event.table, type(exc).__name__, exc)
            return self._fallback(f"{type(exc).__name__}: {exc}")
        packet.read_bytes += size
        self.decoded_events += 1
        if zero:
            pairs = self._zero_dated(dec, kind, body, pairs)
        return pairs, zero

    def table_decoder(self, table_id: int, table: Any, ignore_decode_errors: bool) -> Optional[TableDecoder]:
        """The compiled decoder decode() uses for the rows of this registered table map (None: it falls back)."""
        return self._table_decoder(table_id, table, bool(ignore_decode_errors))[0]

    def decode_lean(self, dec: TableDecoder, kind: str, ncols: int, bitmap: bytes, bitmap2: Optional[bytes],
                    body: bytes
                    ) -> Optional[tuple[list[tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]], int]]:
        """decode() for a rows event FastBinLogStreamReader has not built (fetchone(lean=True)): the decoder of
        its table map (table_decoder(), whose column count the caller checked once per table map), its kind,
        column count, columns-present bitmap(s) (``bitmap2`` for an UPDATE) and rows body (checksum excluded).
        ``(pairs, zero_dates)``, or None -- nothing counted or logged: the reader then builds the event the
        usual way, which decode() (and its fallback) sees exactly as before."""
        # decode()'s checks, in the same order, on the same values
        if ncols != dec.ncolumns:
            return None
        if bitmap is not dec.present and bitmap != dec.present and not dec.full_bitmap(bitmap):
            return None
        if kind == UPDATE and (bitmap2 is not dec.present and bitmap2 != dec.present
                               and not dec.full_bitmap(bitmap2)):
            return None
        try:
            pairs, zero, end = dec.kinds[kind](body)
        except Exception:  # noqa: BLE001 - the event is built and decode() tries (and falls back) as before
            return None
        if end != len(body):
            return None
        self.decoded_events += 1
        if zero:
            pairs = self._zero_dated(dec, kind, body, pairs)
        return pairs, zero

    def _zero_dated(self, dec: TableDecoder, kind: str, body: bytes, pairs: list[Any]) -> list[Any]:
        """`pairs` of an event that counted zero dates, each image holding one as a ``changes.ZeroDatedRow``
        naming its columns: the body decoded again by ``rowcompile.marked(dec)``. Only such an event pays for
        it; the common path only tests the count it already has."""
        hit = self._marked.get(id(dec))
        if hit is None or hit[0] is not dec:
            if len(self._marked) >= _MAX_TABLES:
                self._marked.clear()
            hit = self._marked[id(dec)] = (dec, marked(dec))
        again, _, _ = hit[1].kinds[kind](body)
        return [(_zero_image(before, mb), _zero_image(after, ma)) for (before, after), (mb, ma) in zip(pairs, again)]

    def _find_undecodable(self, event: Any, kind: str, body: bytes) -> Optional[Undecodable]:
        """Where in `body` a text value is not text of its character set: decoded again with the undefined
        bytes kept (surrogateescape), the first row and column holding one. The library then fails on
        the same byte (binlog.py names table, key and column with this)."""
        columns = event.columns
        key = (event.table_id, _signature(columns))
        if key not in self._lenient:
            if len(self._lenient) >= _MAX_TABLES:
                self._lenient.clear()
            self._lenient[key] = compile_table(columns, decode_errors="surrogateescape", **self.options)
        dec = self._lenient[key]
        if dec is None:
            return None
        try:
            pairs, _, _ = dec.kinds[kind](body)
        except Exception:  # noqa: BLE001 - not (only) an undefined byte: the library's error stands
            return None
        for before, after in pairs:
            for image in (before, after):
                bad = escaped_columns(image)
                if image is not None and bad:
                    return Undecodable(str(event.schema), str(event.table), dict(image), str(bad[0]),
                                       undefined_byte(image[bad[0]]), tuple(pairs))
        return None

    def _fallback(self, why: str) -> None:
        self.fallback_events += 1
        self.last_fallback = why
        return None


def _zero_image(image: Optional[dict[str, Any]], again: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """`image` as a ZeroDatedRow when its marked twin `again` holds a ZeroMark in some column; else `image`."""
    if image is None or again is None:
        return image
    zero = {c: v.text for c, v in again.items() if v.__class__ is ZeroMark}
    return ZeroDatedRow(image, tuple(zero), {c: t for c, t in zero.items() if t}) if zero else image
