"""MariaDB's latin1 codec (replicator/sources/mycharset.py)."""
from __future__ import annotations

import codecs

from replicator.sources.mycharset import NAME, exact_encoding

UNDEFINED_IN_CP1252 = b"\x81\x8d\x8f\x90\x9d"


def test_every_byte_decodes_and_encodes_back() -> None:
    raw = bytes(range(256))
    text = raw.decode(NAME)
    assert len(text) == 256 and text.encode(NAME) == raw


def test_cp1252_characters_are_kept_and_its_holes_are_the_c1_controls() -> None:
    assert b"\x80\x9f\xe9".decode(NAME) == "€Ÿé" == b"\x80\x9f\xe9".decode("cp1252")
    assert UNDEFINED_IN_CP1252.decode(NAME) == "\x81\x8d\x8f\x90\x9d"
    for byte in range(256):
        b = bytes([byte])
        if b not in UNDEFINED_IN_CP1252:
            assert b.decode(NAME) == b.decode("cp1252")


def test_text_outside_latin1_is_an_encode_error() -> None:
    try:
        "漢".encode(NAME)
    except UnicodeEncodeError:
        pass
    else:
        raise AssertionError("encoded a character latin1 has not")


def test_only_cp1252_is_replaced() -> None:
    assert exact_encoding("cp1252") == NAME
    assert exact_encoding("utf8") == "utf8" and exact_encoding(None) is None
    assert codecs.lookup(NAME).name == NAME


def test_every_single_byte_set_mariadb_reads_differently_has_its_codec() -> None:
    """greek 0xA1 is ʽ in MariaDB and ‘ in Python; hebrew 0xAF, koi8u 0x95, cp866 0xFC/0xFD and tis620's
    undefined bytes likewise: the exact codec reads them as MariaDB does, every other byte as Python does."""
    cases = {"greek": {0xA1: "\u02bd", 0xA2: "\u02bc"}, "hebrew": {0xAF: "\u203e"}, "koi8_u": {0x95: "\u2022"},
             "cp866": {0xFC: "\u207f", 0xFD: "\u00b2"},
             "tis620": {b: "\ufffd" for b in (0xA0, 0xDB, 0xDC, 0xDD, 0xDE, 0xFC, 0xFD, 0xFE, 0xFF)}}
    for base, reads in cases.items():
        exact = exact_encoding(base)
        assert exact == f"mariadb_{base}"
        for byte, char in reads.items():
            assert bytes([byte]).decode(exact) == char != _python(byte, base)
        for byte in set(range(256)) - set(reads):
            try:
                mine: str | None = bytes([byte]).decode(exact)
            except UnicodeDecodeError:
                mine = None
            assert mine == _python(byte, base), (base, byte)
    assert exact_encoding("latin2") == "latin2" and exact_encoding("koi8_r") == "koi8_r"


def _python(byte: int, base: str) -> str | None:
    try:
        return bytes([byte]).decode(base)
    except UnicodeDecodeError:
        return None
