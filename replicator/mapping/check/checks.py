"""CHECK clauses that restrict one column to a list of values or an integer range (`parse_check`)."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any


# (values a text / int column may hold, or None; (lo, hi) bounds of an int column, or None)
Check = tuple["tuple[Any, ...] | None", "tuple[int | None, int | None] | None"]
_LITERAL = re.compile(r"'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?)")
_CAST = re.compile(r"::\s*(?:character varying|double precision|bit varying|"
                   r"(?:timestamp|time)(?:\(\d\))? with(?:out)? time zone|[a-z_][a-z0-9_.]*)"
                   r"(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?", re.I)


def _unwrap(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _literals(body: str) -> tuple[Any, ...]:
    out: list[Any] = []
    for text, number in _LITERAL.findall(body):
        if number:
            out.append(int(number) if re.fullmatch(r"-?\d+", number) else Decimal(number))
        else:
            out.append(text.replace("''", "'"))
    return tuple(out)


# a string literal (left as it is), or a quoted identifier: `...` (MariaDB) or "..." (PostgreSQL)
_QUOTED = re.compile(r"'(?:[^']|'')*'|`((?:[^`]|``)*)`|\"((?:[^\"]|\"\")*)\"")
_TOKEN = re.compile(r"__id(\d+)__")


def parse_check(clause: str) -> tuple[str, Check] | None:
    """A CHECK clause that restricts one column to a list of values or an integer range, as
    `(column, (values, bounds))`; None for anything else. Understands PostgreSQL's and MariaDB's
    spellings of `c IN (...)`, `c = v`, `c BETWEEN a AND b`, `c >= a AND c <= b` (and > <), each
    optionally `OR c IS NULL`. A quoted column name (a backtick, a quote, a space inside) is read
    as the name it quotes."""
    names: list[str] = []

    def token(m: re.Match[str]) -> str:
        if m.group(1) is None and m.group(2) is None:
            return str(m.group(0))  # a string literal
        names.append(m.group(1).replace("``", "`") if m.group(1) is not None else m.group(2).replace('""', '"'))
        return f"__id{len(names) - 1}__"

    parsed = _parse_check(_QUOTED.sub(token, clause))
    if parsed is None:
        return None
    m = _TOKEN.fullmatch(parsed[0])
    return (names[int(m.group(1))] if m else parsed[0]), parsed[1]


def _parse_check(text: str) -> tuple[str, Check] | None:
    text = _CAST.sub("", text)
    text = _unwrap(re.sub(r"(?<!\w)\(\s*([A-Za-z_]\w*)\s*\)", r"\1", text))  # (status) = ...
    m = re.fullmatch(r"(.*?)\s+or\s+\(?\s*(\w+)\s+is\s+null\s*\)?", text, re.I | re.S)
    if m:
        text = _unwrap(m.group(1))
    m = (re.fullmatch(r"(\w+)\s*=\s*any\s*\(\s*(?:\(\s*)?array\s*\[(.*)\]\s*(?:\)\s*)?\)", text, re.I | re.S)
         or re.fullmatch(r"(\w+)\s+in\s*\((.*)\)", text, re.I | re.S))
    if m:
        values = _literals(m.group(2))
        return (m.group(1), (values, None)) if values else None
    m = re.fullmatch(r"(\w+)\s*=\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)", text)
    if m:
        return m.group(1), (_literals(m.group(2)), None)
    m = re.fullmatch(r"(\w+)\s+between\s+(-?\d+)\s+and\s+(-?\d+)", text, re.I)
    if m:
        return m.group(1), (None, (int(m.group(2)), int(m.group(3))))
    column, lo, hi = None, None, None
    for part in re.split(r"\s+and\s+", text, flags=re.I):
        m = re.fullmatch(r"(\w+)\s*(>=|>|<=|<)\s*(-?\d+)", _unwrap(part))
        if not m or column not in (None, m.group(1)):
            return None
        column, op, n = m.group(1), m.group(2), int(m.group(3))
        if op in (">=", ">"):
            lo = n + (op == ">") if lo is None else max(lo, n + (op == ">"))
        else:
            hi = n - (op == "<") if hi is None else min(hi, n - (op == "<"))
    return (column, (None, (lo, hi))) if column else None


def _narrow(old: Check | None, new: Check) -> Check:
    """Two CHECKs on one column: both hold."""
    if old is None:
        return new
    values = new[0] if old[0] is None else old[0] if new[0] is None else tuple(v for v in old[0] if v in new[0])
    bounds = new[1] if old[1] is None else old[1] if new[1] is None else (
        max((b for b in (old[1][0], new[1][0]) if b is not None), default=None),
        min((b for b in (old[1][1], new[1][1]) if b is not None), default=None))
    return values, bounds
