"""docs/types.md and replicator/mapping/check/casts.py cannot drift apart.

- The cast table of the document is the code's `TABLE`, cell by cell.
- `_cast` agrees with `TABLE`: a verdict cell gives that verdict for every sample of the two kinds, and a
  rule (letter) cell gives a verdict (never "not checked").
- docs/mappings.md's summary of the cast verdicts says what `_cast` and `_loud` do for its examples.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.mapping.check.casts import ERROR, FIT, LOSSY, TABLE, TARGETS, UNKNOWN, _cast, _loud
from replicator.mapping.check.columns import KINDS, ColumnInfo

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "types.md"


def doc_table() -> dict[str, dict[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split("<!-- cast-table", 1)[1].split("<!-- end cast-table -->", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.splitlines()[1:]
            if line.startswith("|")]
    header, rows = rows[0], rows[2:]
    assert header[0] == "source \\ target"
    return {r[0]: dict(zip(header[1:], r[1:])) for r in rows}


def test_the_documented_cast_table_is_the_code_table() -> None:
    assert doc_table() == TABLE
    assert tuple(TABLE) == TARGETS  # square: every kind is a source and a target
    assert set(TARGETS) | {"other"} == set(KINDS)


C = ColumnInfo
SAMPLES: dict[str, list[ColumnInfo]] = {
    "int": [C("int", bits=8), C("int", bits=32), C("int", bits=64, unsigned=True), C("int", bits=16, bounds=(0, 9))],
    "decimal": [C("decimal", precision=10, scale=2), C("decimal"), C("decimal", precision=65, scale=0, unsigned=True)],
    "float": [C("float", bits=32), C("float", bits=64)],
    "text": [C("text", length=10), C("text"), C("text", length=5, enums=("a", "b"))],
    "enum": [C("enum", enums=("a", "bb"))],
    "bool": [C("bool")],
    "date": [C("date")],
    "datetime": [C("datetime", precision=6), C("datetime", precision=0, bits=32), C("datetime", timezone=True)],
    "time": [C("time", precision=0, bits=24), C("time", precision=6)],
    "interval": [C("interval")],
    "json": [C("json")],
    "bytes": [C("bytes", length=16, precision=16), C("bytes", length=8), C("bytes")],
    "uuid": [C("uuid")],
    "inet": [C("inet", bits=128), C("inet", bits=32), C("inet")],
    "array": [C("array", item="int"), C("array", item="float"), C("array", item="other")],
}


@pytest.mark.parametrize("source", list(TABLE))
def test_cast_follows_the_table(source: str) -> None:
    verdicts = {"fit": FIT, "lossy": LOSSY, "error": ERROR}
    for target, cell in TABLE[source].items():
        for s in SAMPLES[source]:
            for t in SAMPLES[target]:
                verdict, why = _cast(s, t)
                if cell in verdicts:
                    # a CHECK list on a text target narrows any fitting cast (rule W); skip only that
                    if cell != "fit" or not t.enums:
                        assert verdict == verdicts[cell], (source, target, s, t, verdict, why)
                else:
                    assert verdict != UNKNOWN, (source, target, s, t, why)
                if verdict != FIT:
                    assert why, (source, target, s, t)


def test_other_is_never_checked_and_says_so() -> None:
    for kind in TARGETS:
        assert _cast(C("other"), SAMPLES[kind][0])[0] == UNKNOWN
        assert _cast(SAMPLES[kind][0], C("other"))[0] == UNKNOWN


def test_docs_mappings_cast_summary_matches_the_code() -> None:
    """docs/mappings.md: silent losses are refused, values that may not fit are warnings (the server
    refuses them), impossible casts errors. One example of each kind of wording."""
    text = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")
    assert "docs/types.md" in text
    silent = [(C("decimal", precision=10, scale=4), C("decimal", precision=10, scale=2)),  # fewer decimal places
              (C("decimal"), C("decimal", precision=10, scale=2)),  # unbounded numeric into DECIMAL(10,2)
              (C("datetime", precision=6), C("datetime", precision=0)),
              (C("float", bits=64), C("decimal", precision=10, scale=2)),
              (C("datetime", precision=6), C("date")),
              (C("bytes"), C("bytes", length=16, precision=16))]
    loud = [(C("decimal", precision=14, scale=2), C("decimal", precision=10, scale=2)),  # fewer integer digits
            (C("int", bits=64), C("int", bits=32)), (C("text", length=20), C("text", length=10)),
            (C("text"), C("int", bits=32)), (C("datetime", precision=6), C("datetime", precision=6, bits=32)),
            (C("interval"), C("time", precision=6, bits=24)), (C("time", precision=6, bits=24), C("time", precision=6))]
    for s, t in silent:
        assert _cast(s, t)[0] == LOSSY and not _loud(s, t), (s, t)
    for s, t in loud:
        assert _cast(s, t)[0] == LOSSY and _loud(s, t), (s, t)
    assert _cast(C("json"), C("int", bits=32))[0] == ERROR
