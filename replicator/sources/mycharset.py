"""MariaDB's latin1 as a Python codec: the text a latin1 column holds, byte for byte.

MariaDB's latin1 is Windows-1252 (0x80 is '€'), and PyMySQL and mysql-replication decode it with Python's
cp1252. But cp1252 leaves five bytes undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) where MariaDB's latin1 maps
each to the C1 control character of the same number (CONVERT(x'81' USING utf8mb4) is U+0081): a latin1
column may hold all 256 bytes, a legacy table often does, and with cp1252 such a value stopped the stream
(UnicodeDecodeError). This codec is cp1252 with those five bytes as MariaDB reads them, so every latin1
value decodes, and encodes back to the same bytes (MariaDB converts U+0081 back to 0x81).
"""
from __future__ import annotations

import codecs
import encodings.cp1252
from typing import Any, Optional

NAME = "mariadb_latin1"

_DECODING = "".join(chr(byte) if ch == "\ufffe" else ch for byte, ch in enumerate(encodings.cp1252.decoding_table))
_ENCODING = codecs.charmap_build(_DECODING)


def _encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return codecs.charmap_encode(text, errors, _ENCODING)


def _decode(data: Any, errors: str = "strict") -> tuple[str, int]:
    return codecs.charmap_decode(data, errors, _DECODING)


def _search(name: str) -> Optional[codecs.CodecInfo]:
    return codecs.CodecInfo(_encode, _decode, name=NAME) if name == NAME else None


codecs.register(_search)


def exact_encoding(encoding: Optional[str]) -> Optional[str]:
    """The codec that decodes a column exactly, given the codec mysql-replication uses for it (a column's
    `character_set_name` there is already PyMySQL's codec name): MariaDB's latin1 for cp1252 (PyMySQL's
    name for latin1, the only MariaDB character set it gives cp1252), else `encoding` itself."""
    return NAME if encoding == "cp1252" else encoding
