"""Rules for a row two mappings carry: its delete is a decision the mapping must state, and a 1:1 table keyed
by the other mapping's records may hold its rows only once a field is set.

Several mappings may write one table: SuiteCRM's `accounts_cstm` (custom fields, 1:1 with `accounts`) is a
second mapping onto the ERP's company row, beside the mapping of `accounts` itself. Deletes propagate by
default, so a purged `accounts_cstm` row deleted the ERP company -- although the `accounts` mapping says CRM
deletes are ignored -- and the ERP's delete then soft-deleted the CRM account. Nothing warned. Which of two
mappings decides a shared row's life cannot be guessed (a custom-field table does not; an order header's
second table may), so `check` refuses the default there and asks for `delete:` to be written out: `ignore`
(the row only extends the record) or `propagate` (its delete is the record's).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Endpoint, Mapping


def _overlap(a: tuple[tuple[str, Any], ...], b: tuple[tuple[str, Any], ...]) -> bool:
    """Whether two slices of one table can hold the same row (different values of a shared column: no)."""
    x, y = dict(a), dict(b)
    return all(x[c] == y[c] for c in x.keys() & y.keys())


def _others(mappings: tuple[Mapping, ...], m: Mapping, e: Endpoint) -> list[Mapping]:
    """The mappings of rows (not folds) other than `m` whose endpoint on `e`'s side can hold `e`'s rows."""
    out = []
    for other in mappings:
        if other is m or any(f.fold is not None for f in other.flows):
            continue
        mine = next((x for x in other.endpoints if x.side == e.side), None)
        if mine is not None and mine.table == e.table and _overlap(mine.slice, e.slice):
            out.append(other)
    return out


def check_shared_deletes(ck: _Checker, m: Mapping) -> None:
    from replicator.mapping.check.checker import _at

    if any(f.fold is not None for f in m.flows):
        return  # a fold never deletes its parent's row (docs/mappings.md, "Child rows folded into columns")
    for flow in m.flows:
        if flow.delete != "propagate" or flow.delete_given:
            continue
        others = _others(ck.mset.mappings, m, flow.target)
        if not others:
            continue
        names = ", ".join(repr(o.name) for o in others)
        tgt = f"{flow.target.side}:{flow.target.table}"
        ck.fail(flow.target.side,
                f"{_at(m.where)}: a deleted {flow.source.table} row deletes its {tgt} row ({flow.stream}, the "
                f"default `delete: propagate`), and mapping {names} carries that row too: a purge of "
                f"{flow.source.table} alone would delete the whole record on {flow.target.side}",
                f"say which: `delete: {{{flow.stream}: ignore}}` when {flow.source.table} only extends the record "
                f"(custom fields, a 1:1 table), `delete: {{{flow.stream}: propagate}}` when its delete is the "
                f"record's")


def check_extension_rows(ck: _Checker, m: Mapping) -> None:
    """A mapping whose row on one side is another mapping's row (the shared row) and whose table on the other
    side is keyed by that mapping's records (`references:` on its key) is a 1:1 extension: SuiteCRM's
    accounts_cstm, Dolibarr's *_extrafields. Their applications create such a row only once one of its fields
    is set; without `optional: true` an edit from the shared side that finds no row is an update_missing race,
    decided as if the row had been deleted (the edit is dropped under `latest`, docs/conflicts.md)."""
    from replicator.mapping.check.checker import _at

    if any(f.fold is not None for f in m.flows):
        return
    for flow in m.flows:
        ext = flow.target
        if ext.optional or flow.conflicts is None:
            continue  # declared, or one-way: an update for a missing row is written (no race to decide)
        shared = flow.source
        for other in _others(ck.mset.mappings, m, shared):
            theirs = other.endpoint(ext.side)
            keyed = [f for f in m.fields if f.column(ext.side) in ext.key and f.references == other.name]
            if theirs.table == ext.table or not keyed:
                continue
            ck.warn(ext.side,
                    f"{_at(m.where)}: {ext.side}:{ext.table} rows are keyed by mapping {other.name!r}'s records "
                    f"({keyed[0].name} references it) and its {shared.side} row is {other.name!r}'s too: a 1:1 "
                    f"extension. If {ext.side}'s application creates such a row only once one of its fields is "
                    f"set (custom fields), an edit from {shared.side} that finds none is an update_missing race "
                    f"decided as if the row had been deleted",
                    f"add `optional: true` to the mapping's {ext.side} endpoint (a missing row is one whose fields "
                    f"are all NULL: the edit creates it, verify does not miss it), or confirm that every "
                    f"{other.name!r} record has its {ext.table} row")
            break
