"""MariaDB's single-byte character sets as Python codecs: the text a column holds, byte for byte.

PyMySQL and mysql-replication decode a column with the Python codec of the same name (latin1 with cp1252),
but some bytes MariaDB reads differently. Measured on MariaDB 10.11 (CONVERT(UNHEX('xx') USING cs) USING
utf8mb4 for all 256 bytes of every single-byte character set Python has a codec for):

- latin1: Windows-1252, but the five bytes cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) are the C1
  control characters of the same number: a latin1 column may hold every byte, a legacy table often does,
  and with cp1252 such a value stopped the stream (UnicodeDecodeError);
- greek 0xA1 / 0xA2, hebrew 0xAF, koi8u 0x95, cp866 0xFC / 0xFD: another character than Python's (ʽ, not ‘),
  which arrived altered without a word;
- tis620: the bytes it leaves undefined read as U+FFFD, as MariaDB shows them.

Every other byte is Python's own reading (a byte MariaDB itself shows as '?' keeps Python's reading, or its
error). The codecs are registered as mariadb_<codec> and used by the binlog reader's exact path and the
table scanner (`exact_encoding`).
"""
from __future__ import annotations

import codecs
from typing import Any, Optional

# the codec mysql-replication picks for the column -> {byte: the character MariaDB reads}
_MARIADB_READS: dict[str, dict[int, str]] = {
    "cp1252": {0x81: "\x81", 0x8D: "\x8d", 0x8F: "\x8f", 0x90: "\x90", 0x9D: "\x9d"},  # latin1
    "greek": {0xA1: "\u02bd", 0xA2: "\u02bc"},
    "hebrew": {0xAF: "\u203e"},
    "koi8_u": {0x95: "\u2022"},
    "cp866": {0xFC: "\u207f", 0xFD: "\u00b2"},
    "tis620": {b: "\ufffd" for b in (0xA0, 0xDB, 0xDC, 0xDD, 0xDE, 0xFC, 0xFD, 0xFE, 0xFF)},
}
NAME = "mariadb_cp1252"  # latin1's


def _table(base: str, reads: dict[int, str]) -> str:
    out = []
    for byte in range(256):
        if byte in reads:
            out.append(reads[byte])
            continue
        try:
            out.append(bytes([byte]).decode(base))
        except UnicodeDecodeError:
            out.append("\ufffe")  # undefined: charmap_decode raises for it
    return "".join(out)


def _codec(name: str, decoding: str) -> codecs.CodecInfo:
    encoding = codecs.charmap_build(decoding)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.charmap_encode(text, errors, encoding)

    def decode(data: Any, errors: str = "strict") -> tuple[str, int]:
        return codecs.charmap_decode(data, errors, decoding)
    return codecs.CodecInfo(encode, decode, name=name)


_CODECS = {f"mariadb_{base}": (base, reads) for base, reads in _MARIADB_READS.items()}
_BUILT: dict[str, codecs.CodecInfo] = {}


def _search(name: str) -> Optional[codecs.CodecInfo]:
    found = _CODECS.get(name)
    if found is None:
        return None
    info = _BUILT.get(name)
    if info is None:
        info = _BUILT[name] = _codec(name, _table(*found))
    return info


codecs.register(_search)


def exact_encoding(encoding: Optional[str]) -> Optional[str]:
    """The codec that decodes a column exactly, given the codec mysql-replication uses for it (a column's
    `character_set_name` there is already PyMySQL's codec name: cp1252 for latin1); else `encoding`."""
    return f"mariadb_{encoding}" if encoding in _MARIADB_READS else encoding
