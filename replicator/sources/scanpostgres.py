"""The table scanner's PostgreSQL values: the text pgoutput would send, through the stream's own
converters (sources/pgoutput.py), and key values passed back as text."""
from __future__ import annotations

import binascii
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from replicator.sources.pgoutput import converter_for
from replicator.sources.scancolumn import Conv


_PG_TEXT = converter_for(25)  # text: the decoder's bytes.decode; a str from psycopg2 is that already


def pg_conv(type_oid: int) -> Conv:
    """The stream's converter for the OID pgoutput reports (atttypid), applied to the same text."""
    conv = converter_for(type_oid)
    if conv is _PG_TEXT:
        return None
    if conv is int or conv is float:  # int() and float() read str exactly as they read ASCII bytes
        return conv
    return lambda text: conv(text.encode())  # conv is bound once


def pg_param(value: Any) -> str:
    """A key value as the stream gave it -> text the column type's input function reads back to that value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + binascii.hexlify(bytes(value)).decode()
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same double; 'nan', 'inf' are accepted
    if isinstance(value, (int, Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"unexpected {type(value).__name__}")
