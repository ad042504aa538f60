"""Rule: a key replicator makes (`generate: uuid` or a template) fits the key column it goes into.

ERPNext names rows by varchar(140) keys its application makes; a template such as "{name}-{uuid}" over a
field that holds up to 140 characters makes keys of up to 177, and the first long one is a row error
(MariaDB's 1406) when the row is created. `check` says so before any data moves: a warning, as for any
value that may not fit, with the widest key the template can make.
"""
from __future__ import annotations

import string
from typing import TYPE_CHECKING

from replicator.mapping.check.columns import ColumnInfo

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.keygen import KeyGen
    from replicator.mapping.model import Mapping

UUID_TEXT = 36  # str(uuid.uuid4())


def _width(c: ColumnInfo | None) -> int | None:
    """The most characters a value of that column has as text; None: unbounded or not known."""
    if c is None:
        return None
    if c.kind == "text":
        return c.length
    if c.kind == "int" and c.bits:
        return len(str(2 ** c.bits)) + 1  # a sign
    return None


def key_width(gen: KeyGen, width_of: dict[str, int | None]) -> int | None:
    """The widest key `gen` makes, given the widest value of each field it reads; None: unbounded."""
    if gen.kind == "uuid":
        return UUID_TEXT
    if gen.kind == "hex":
        return gen.length
    total = 0
    for literal, name, _spec, _conv in string.Formatter().parse(gen.template):
        total += len(literal)
        if name is None:
            continue
        w = UUID_TEXT if name == "uuid" else width_of.get(name)
        if w is None:
            return None
        total += w
    return total


def check_key_widths(ck: _Checker, m: Mapping) -> None:
    """Every made key against its column, per endpoint that has `generate:` (not `default`: the database's)."""
    from replicator.mapping.check.checker import _at

    for e in m.endpoints:
        cols = ck.table(e.side, e.table)
        if cols is None:
            continue
        widths = {f.name: _width(cols.get(f.column(e.side) or "")) for f in m.fields}
        for gen in e.generate:
            c = cols.get(gen.column)
            if gen.by_database or c is None or c.kind != "text" or c.length is None:
                continue
            w = key_width(gen, widths)
            if w is not None and w <= c.length:
                continue
            made = "unbounded values" if w is None else f"up to {w} characters"
            how = {"uuid": "uuid", "hex": f"{{hex: {gen.length}}}"}.get(gen.kind, repr(gen.template))
            fix = (f"generate: {{{gen.column}: {{hex: {c.length}}}}} makes random keys of {c.length} hex digits "
                   f"(mappings.md, \"Keys the application makes\")" if gen.kind in ("uuid", "hex") and c.length >= 12 else
                   f"shorten the template (fewer fields, or a field of a narrower column)")
            ck.warn(e.side, f"{_at(m.where, '.' + e.side + '.generate')}: {gen.column} = {how} makes keys of {made}, "
                            f"{e.table}.{gen.column} holds {c.length}: a longer key is a row error when the row is "
                            f"created",
                    f"{fix}, or widen {e.table}.{gen.column}")
