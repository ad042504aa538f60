"""An UPDATE's after image sharing the before image's values (rowcompile `share_unchanged`), against the full
decode of both images and against mysql-replication.

The after image takes the before image's value of a text, DECIMAL or temporal column whose bytes are the
same in both images instead of decoding them again. These tests build update bodies whose after image
copies each column's bytes (NULL bit included) from the before image at a drawn rate, else encodes a fresh
value (valid, or with WILD on the odd encodings the library rejects or reads as zero dates), over every
column type of test_rowdecode's table, and check that the shared decoder gives exactly what the full decode
gives (same values, types, Decimal digits, tzinfo; same zero-date count; same end offset; or the same
error), that it equals the library, and that a shared value is the before image's very object.
"""
from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings, strategies as st

from replicator.sources.rowcompile import _SHARED_TYPES, compile_table
from replicator.sources.rowdecode import RowDecoder

from tests.unit.test_rowdecode import T, WILD, assert_same, check_body, col, columns_all, encoder

COLUMNS = columns_all()
ENCODERS = [encoder(c) for c in COLUMNS]


def _image(rnd: random.Random, idx: list[int], null_rate: float,
           like: list[bytes | None] | None, copy_rate: float) -> tuple[bytes, list[bytes | None]]:
    """One row image of the columns `idx`: (bytes, per column its bytes or None for NULL). With `like`, each
    column copies like's part (NULL or bytes) at copy_rate."""
    parts: list[bytes | None] = []
    for k, i in enumerate(idx):
        if like is not None and rnd.random() < copy_rate:
            parts.append(like[k])
        elif rnd.random() < null_rate:
            parts.append(None)
        else:
            parts.append(ENCODERS[i](rnd))
    nulls = sum(1 << k for k, part in enumerate(parts) if part is None)
    return nulls.to_bytes((len(idx) + 7) // 8, "little") + b"".join(p for p in parts if p is not None), parts


def _decode(dec: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", dec.kinds["update"](body)
    except Exception as exc:  # noqa: BLE001 - compared: both must raise alike
        return "raised", (type(exc), str(exc))


OPTIONS = st.fixed_dictionaries({
    "exact_values": st.booleans(), "utc_timestamps": st.booleans(), "zero_timestamps_as_none": st.booleans(),
    "sets_as_text": st.sampled_from([False, True, "definition"]), "ignore_decode_errors": st.booleans()})


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), ncols=st.integers(1, 24), rows=st.integers(1, 3),
       copy_rate=st.sampled_from([0.0, 0.5, 0.9, 1.0]), null_rate=st.sampled_from([0.0, 0.2, 0.6]),
       wild=st.booleans(), opts=OPTIONS)
def test_shared_after_image_equals_full_decode(seed: int, ncols: int, rows: int, copy_rate: float,
                                               null_rate: float, wild: bool, opts: dict[str, Any]) -> None:
    rnd = random.Random(seed)
    idx = rnd.sample(range(len(COLUMNS)), ncols)
    columns = [COLUMNS[i] for i in idx]
    WILD["on"] = wild
    try:
        body, images = b"", []
        for _ in range(rows):
            before, bparts = _image(rnd, idx, null_rate, None, 0.0)
            after, aparts = _image(rnd, idx, null_rate, bparts, copy_rate)
            body += before + after
            images.append((bparts, aparts))
    finally:
        WILD["on"] = False
    full = compile_table(columns, share_unchanged=False, **opts)
    shared = compile_table(columns, **opts)
    assert full is not None and shared is not None
    got, want = _decode(shared, body), _decode(full, body)
    assert got[0] == want[0], (got, want)
    if want[0] == "raised":
        assert got == want
        return
    (gpairs, gzero, gend), (wpairs, wzero, wend) = got[1], want[1]
    assert_same(gpairs, wpairs, "pairs")
    assert (gzero, gend) == (wzero, wend)
    # a column of a shared type, not NULL, with the same bytes and a value that is not None: the same object
    for (before, after), (bparts, aparts) in zip(gpairs, images):
        for c, bp, ap in zip(columns, bparts, aparts):
            if c.type in _SHARED_TYPES and bp is not None and bp == ap and before[c.name] is not None:
                assert after[c.name] is before[c.name], c.name
    # and the library agrees (RowDecoder shares by default)
    if not opts["exact_values"] and not opts["utc_timestamps"] and not opts["zero_timestamps_as_none"] \
            and opts["sets_as_text"] is False:
        check_body("update", columns, body, RowDecoder(), ignore_decode_errors=opts["ignore_decode_errors"])


def test_shared_values_only_of_immutable_types() -> None:
    """Same bytes in both images: text, DECIMAL, temporal values are shared; integers, floats, ENUM, SET,
    BIT and JSON are decoded again (a SET is a mutable set, a JSON value a dict; a shared NaN would be
    identical to itself)."""
    rnd = random.Random(7)
    idx = list(range(len(COLUMNS)))
    before, bparts = _image(rnd, idx, 0.0, None, 0.0)
    after, _ = _image(rnd, idx, 0.0, bparts, 1.0)
    dec = compile_table(COLUMNS)
    assert dec is not None
    (pair,), _, end = dec.kinds["update"](before + after)
    assert end == len(before + after)
    b, a = pair
    assert b == a or any(v != v for v in b.values())  # a NaN float
    immutable = {T.VARCHAR, T.STRING, T.BLOB, T.NEWDECIMAL, T.DATE, T.DATETIME2, T.TIMESTAMP2, T.TIME2,
                 T.DATETIME, T.TIME, T.TIMESTAMP}
    assert _SHARED_TYPES == immutable
    for c in COLUMNS:
        v = b[c.name]
        if c.type in immutable and v is not None:
            assert a[c.name] is v, c.name
        elif c.type in (T.SET, T.JSON, T.FLOAT, T.DOUBLE) and v is not None and not isinstance(v, (str, bytes)):
            assert a[c.name] is not v, c.name
    assert {c.type for c in COLUMNS if a[c.name] is b[c.name] and b[c.name] is not None} >= {
        T.VARCHAR, T.NEWDECIMAL, T.DATETIME2, T.TIMESTAMP2, T.TIME2, T.DATE}


def test_changed_bytes_are_decoded_again() -> None:
    """A string whose length prefix is the same but whose text differs, and one that only grows: the after
    image's own value, not the before image's."""
    columns = [col(T.VARCHAR, "a", max_length=40, character_set_name="utf8"),
               col(T.VARCHAR, "b", max_length=40, character_set_name="utf8")]
    body = b"\x00" + b"\x03abc" + b"\x02xy" + b"\x00" + b"\x03abd" + b"\x03xyz"
    dec = compile_table(columns)
    assert dec is not None
    pairs, zero, end = dec.kinds["update"](body)
    assert pairs == [({"a": "abc", "b": "xy"}, {"a": "abd", "b": "xyz"})] and zero == 0 and end == len(body)
