"""The rows of an event that mysql-replication decodes itself, read again with undefined bytes kept.

The fast decoder (rowdecode) hands some tables to mysql-replication (a GEOMETRY column, unusual
metadata). A text value holding a byte its single-byte character set leaves undefined (latin1's 0x81
is no character of Python's cp1252) makes the library's ``event.rows`` raise UnicodeDecodeError, in the
middle of the event, without saying which row. To name the row's key and to queue it under
`on_row_error: quarantine` as the fast decoder's own rows are (binlog.undecoded_changes), the event's
rows are read again by the library itself, its packet rewound to where the rows begin, with the
string reader decoding as the library does but keeping the undefined bytes (surrogateescape) -- the
same reading rowdecode's lenient decoder makes.

Any other error of the library's readers (its catch-all in binlog.py) is named the same way: the rows read again,
`failure` finds the column being read when it raised and the key read before it.

This leans on things of mysql-replication 1.0.x, as rowdecode already does for the packet: the wrapper's read
counter and unread buffer, and the private ``RowsEvent.__read_string`` and ``RowsEvent.__read_values_name`` (an
instance attribute overrides either for the one event). Whatever does not hold -- a packet that cannot be
rewound, a second error -- gives None, and the caller keeps its message without the key.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

_BUFFER = "_BinLogPacketWrapper__data_buffer"  # the wrapper's unread() buffer (name-mangled)
_ROWS = "_RowsEvent__rows"  # RowsEvent.rows' cache
_READ_STRING = "_RowsEvent__read_string"  # RowsEvent's reader of a string column's value
_READ_VALUE = "_RowsEvent__read_values_name"  # RowsEvent's reader of one column's value in a row image


@dataclass(frozen=True)
class Mark:
    """Where an event's rows begin: the wrapper's count of bytes read, with nothing unread buffered."""

    read_bytes: int


def mark(event: Any) -> Mark | None:
    """The position to come back to, taken before anything read ``event.rows`` (None: it cannot be)."""
    packet = getattr(event, "packet", None)
    if packet is None or getattr(packet, _BUFFER, None) != b"" or not hasattr(packet.packet, "advance"):
        return None
    return Mark(int(packet.read_bytes))


def reread(event: Any, at: Mark | None) -> list[dict[str, Any]] | None:
    """``event.rows`` again from `at`, each text value decoded with its character set's codec and
    surrogateescape (an undefined byte kept as a lone surrogate, which rowdecode.escaped_columns finds);
    None when the rows cannot be read again."""
    if not _rewind(event, at):
        return None
    packet = event.packet

    def read_string(size: int, column: Any) -> Any:  # RowsEvent.__read_string, errors="surrogateescape"
        raw = packet.read_length_coded_pascal_string(size)
        if column.character_set_name is None:
            return raw.decode(errors="surrogateescape")
        try:
            return raw.decode(event.charset_to_encoding(column.character_set_name), "surrogateescape")
        except LookupError:  # a character set Python has no codec for: the library keeps the bytes
            return raw

    setattr(event, _ROWS, None)
    setattr(event, _READ_STRING, read_string)
    try:
        rows: list[dict[str, Any]] = event.rows
    except Exception:  # noqa: BLE001 - not (only) an undefined byte: the caller's message stands
        return None
    finally:
        delattr(event, _READ_STRING)
    return rows


def _rewind(event: Any, at: Mark | None) -> bool:
    """The event's packet back at `at`, nothing unread buffered (False: it cannot be)."""
    if at is None:
        return False
    packet = event.packet
    buffered = getattr(packet, _BUFFER, b"")
    consumed = packet.read_bytes - at.read_bytes + len(buffered)  # what the inner packet gave since the mark
    try:
        packet.packet.advance(-consumed)
    except Exception:  # noqa: BLE001 - a packet that cannot be rewound: the caller's message stands
        return False
    setattr(packet, _BUFFER, b"")
    packet.read_bytes = at.read_bytes
    return True


@dataclass(frozen=True)
class Failure:
    """Where the library's reading of an event's rows raised: the column whose value it was reading, the values
    of that row image read before it (in column order), and the row's image read whole before it, if any (an
    update's old image, when its new image is the one that failed)."""

    column: str
    image: dict[str, Any]
    before: dict[str, Any] | None


def failure(event: Any, at: Mark | None) -> Failure | None:
    """The column whose value makes ``event.rows`` raise (anything but an undefined byte, which `reread` is for):
    the rows read again from `at` by the library itself, its per-column reader (the private
    ``RowsEvent.__read_values_name``, overridden for this one event) noting the column it reads and the values
    read before it, with the zero dates read as the first reading read them (`watch_zero_dates`). None when the
    rows cannot be read again or the second reading does not fail."""
    original = getattr(event, _READ_VALUE, None)
    if original is None or not _rewind(event, at):
        return None
    images: list[dict[str, Any]] = []
    reading: list[str] = []

    def read_value(column: Any, null_bitmap: Any, null_bitmap_index: int, is_partial: bool, cols_bitmap: Any,
                   unsigned: bool, i: int) -> Any:
        if i == 0 or not images:
            images.append({})
        name = str(event.columns[i].name)
        reading[:] = [name]
        value = original(column, null_bitmap, null_bitmap_index, is_partial, cols_bitmap, unsigned, i)
        images[-1][name] = value
        return value

    setattr(event, _ROWS, None)
    watch_zero_dates(event)
    setattr(event, _READ_VALUE, read_value)
    try:
        event.rows  # noqa: B018 - read again, for where it fails
    except Exception:  # noqa: BLE001 - the failure looked for
        if not reading or not images:
            return None
        paired = event.__class__.__name__.startswith("Update")  # each row: its old image, then its new one
        before = images[-2] if paired and len(images) % 2 == 0 else None
        return Failure(reading[0], images[-1], before)
    finally:
        delattr(event, _READ_VALUE)
        unwatch(event)
    return None


# the library's readers of the temporal types whose zero dates it reads as None (name-mangled), the bytes each
# reads first, and the text MariaDB shows for such a value (as rowcompile's marked decoder writes it)
def _date_text(raw: bytes) -> str:
    x = int.from_bytes(raw, "little")
    return "%04d-%02d-%02d" % (x >> 9 & 0x7FFF, x >> 5 & 15, x & 31)


def _datetime2_text(raw: bytes) -> str:
    x = int.from_bytes(raw, "big")
    ym = x >> 22 & 0x1FFFF
    return "%04d-%02d-%02d %02d:%02d:%02d" % (ym // 13, ym % 13, x >> 17 & 31, x >> 12 & 31, x >> 6 & 63, x & 63)


def _datetime_text(raw: bytes) -> str:
    from replicator.sources.rowvalues import zero_datetime_text
    return zero_datetime_text(int.from_bytes(raw, "little"))


_ZERO_READERS = {"_RowsEvent__read_date": (3, _date_text), "_RowsEvent__read_datetime": (8, _datetime_text),
                 "_RowsEvent__read_datetime2": (5, _datetime2_text)}


def watch_zero_dates(event: Any) -> deque[str] | None:
    """Before anything reads ``event.rows``: wrap the library's DATE / DATETIME / DATETIME(n) readers for this one
    event so that each value they read as None (a zero date, a zero month or day, a day the calendar lacks -- which
    the library's DATE and old DATETIME readers raise ValueError for, read here as None too) leaves its text, in reading order -- each row's images in turn, each image's columns in order, which is the
    order of its ``none_sources`` -- as the fast decoder's marked twin names them. The wrapper peeks at the bytes
    (`read` then `unread`) and calls the library's own reader, so the values are the library's. None when the
    rows were read already or the packet cannot be peeked at; `unwatch` takes the wrappers off."""
    packet = getattr(event, "packet", None)
    if packet is None or not hasattr(packet, "unread") or getattr(event, _ROWS, None) is not None:
        return None
    texts: deque[str] = deque()
    for attr, (size, text) in _ZERO_READERS.items():
        original = getattr(event, attr, None)
        if original is None:
            unwatch(event)
            return None

        def reader(*args: Any, _original: Any = original, _size: int = size, _text: Any = text) -> Any:
            raw = packet.read(_size)
            packet.unread(raw)
            try:
                value = _original(*args)
            except ValueError:
                # a DATE / old DATETIME past its month's end (2024-02-30): the library raises after reading its
                # bytes; None, named by its text like a zero date, as the fast decoder reads it. (Its DATETIME(n)
                # reader reads such a date as None itself; a ValueError from it is a malformed fraction: raised.)
                if _size == 5:
                    raise
                value = None
            if value is None:
                texts.append(_text(raw))
            return value
        setattr(event, attr, reader)
    return texts


def unwatch(event: Any) -> None:
    for attr in _ZERO_READERS:
        event.__dict__.pop(attr, None)
