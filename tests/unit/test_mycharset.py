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
