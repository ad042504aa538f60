"""A mapping's slice as SQL: the one rendering of `slice: {kind: customer, thru_date: null}` every lookup uses.

A slice selects a table's rows by constant column values. A value selects `column = %s`; NULL (OFBiz's current
rows, `thru_date IS NULL`; a soft delete's `deleted_at IS NULL`) selects `column IS NULL`, never `= NULL`, which
no row satisfies. The values are the mapping's constants, known when the statement is written, so the plain
`IS NULL` is rendered rather than a NULL-safe comparison with a parameter (`<=>` on MariaDB, `IS NOT DISTINCT
FROM` on PostgreSQL, which no index serves). Both dialects spell it alike; what differs is the quoting, given
as the applier's `quote_col` or by `kind` (`identifiers.quote_ident`, doubled % for a statement with parameters).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from replicator.identifiers import for_params, quote_ident


def slice_conditions(quote: Callable[[str], str], slice_: Iterable[tuple[str, Any]],
                     prefix: str = "") -> tuple[list[str], dict[str, Any]]:
    """The conditions (to join with AND) that select the rows of `slice_`, columns quoted by `quote` and
    preceded by `prefix` (a table alias and its dot), %s placeholders; and the values of the placeholders,
    in their order, by column (for the applier's converters)."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    for column, value in slice_:
        if value is None:
            conds.append(f"{prefix}{quote(column)} IS NULL")
        else:
            conds.append(f"{prefix}{quote(column)} = %s")
            params[column] = value
    return conds, params


def slice_sql(kind: str, slice_: Iterable[tuple[str, Any]], alias: str = "") -> tuple[list[str], list[Any]]:
    """`slice_conditions` in the dialect `kind` ("postgresql" or "mariadb"), for a statement run with
    parameters; the parameters as a list."""
    conds, params = slice_conditions(lambda c: for_params(quote_ident(kind, c)), slice_,
                                     f"{alias}." if alias else "")
    return conds, list(params.values())


def slice_text(slice_: Iterable[tuple[str, Any]]) -> str:
    """A slice in a message: `kind = 'email', thru_date IS NULL` (not a Python dict's `None`)."""
    return ", ".join(f"{c} IS NULL" if v is None else f"{c} = {v!r}" for c, v in slice_)
