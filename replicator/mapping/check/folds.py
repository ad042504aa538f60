"""`check` of a `fold:` mapping (docs/mappings.md, "Child rows folded into columns"): its tables and columns
exist, the child table's rows can be created (every NOT NULL column filled by the fold, the slice or
`generate:`), and the values cast both ways -- the child's value into the parent's column and back, the
parent's key into the child's parent column -- as a field's would (`lossy: allow` on the fold)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from replicator.mapping.check.casts import ERROR, FIT, UNKNOWN, _cast, _loud
from replicator.mapping.check.columns import ColumnInfo

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Fold, Mapping


def check_fold(ck: _Checker, m: Mapping) -> None:
    from replicator.mapping.check.checker import _at, _col

    fold = next(f.fold for f in m.flows if f.fold is not None)
    assert fold is not None
    child = m.endpoint(fold.child)
    side = next(e.side for e in m.endpoints if e.side != fold.child)
    parent = m.endpoint(side)
    at = _at(m.where, ".fold")
    failed = sum(1 for f in ck.out if not f.ok and not f.warning)
    found: dict[str, ColumnInfo | None] = {}
    for e, cols in ((child, (*child.key, fold.by, fold.value)), (parent, (*parent.key, fold.into))):
        table = ck.table(e.side, e.table)
        if table is None:
            return  # preflight reports a missing table
        for c in dict.fromkeys(cols):
            found[f"{e.side}.{c}"] = table.get(c)
            if c not in table:
                ck.fail(e.side, f"{at}: column {c} does not exist in {e.table}", "fix the column name in the fold")
    ck.slices(m)
    value, into, by = found[f"{child.side}.{fold.value}"], found[f"{side}.{fold.into}"], found[f"{child.side}.{fold.by}"]
    creates = any(f.target.side == fold.child for f in m.flows)
    if creates:  # a NULL-free child row needs its columns from the fold, the slice or generate
        filled = {fold.by, fold.value, *(c for c, _ in child.slice), *(g.column for g in child.generate)}
        for name, info in (ck.table(child.side, child.table) or {}).items():
            if not (info.nullable or info.has_default or info.generated or info.computed or name in filled):
                ck.fail(child.side, f"{at}: column {name} of {child.table} is NOT NULL and the fold does not fill "
                        f"it when it creates a child row", f"give {child.table}.{name} a DEFAULT, or put it in the "
                        f"{child.side} endpoint's slice or generate")
    parent_map = ck.mset.by_name.get(fold.parent)
    ref_map = ck.mset.by_name.get(fold.references) if fold.references else None
    for flow in m.flows:
        if flow.target.side == fold.child:  # the parent's column into the child's value, its key into `by`
            pairs = [(_ref_key(ck, ref_map, fold.child) if ref_map else (into, _col(side, parent.table, fold.into)),
                      value, _col(child.side, child.table, fold.value))]
            if parent_map is not None and parent_map.link.crosswalk:
                pk = parent_map.endpoint(fold.child)
                pairs.append(((ck.column(pk.side, pk.table, pk.key[0]), _col(pk.side, pk.table, pk.key[0])),
                              by, _col(child.side, child.table, fold.by)))
        else:
            pairs = [(_ref_key(ck, ref_map, side) if ref_map else (value, _col(child.side, child.table, fold.value)),
                      into, _col(side, parent.table, fold.into))]
        for (scol, sname), tcol, tname in pairs:
            if scol is not None and tcol is not None:
                _judge(ck, fold, flow.target.side, f"{at}: {sname} {scol.describe()} -> {tname} {tcol.describe()} "
                       f"({flow.stream})", scol, tcol)
    if sum(1 for f in ck.out if not f.ok and not f.warning) == failed:
        ck.ok(child.side, f"{at}: {child.table} rows of {dict(child.slice) or 'every kind'} fold into "
              f"{parent.table}.{fold.into} (`verify` does not compare folded columns yet)")


def _ref_key(ck: _Checker, ref: Mapping | None, side: str) -> tuple[ColumnInfo | None, str]:
    """A `references` value arrives as the referenced mapping's key on that side."""
    from replicator.mapping.check.checker import _col
    if ref is None:
        return None, ""
    e = ref.endpoint(side)
    return ck.column(side, e.table, e.key[0]), f"{_col(side, e.table, e.key[0])} (the key of {ref.name})"


def _judge(ck: _Checker, fold: Fold, side: str, head: str, s: ColumnInfo, t: ColumnInfo) -> None:
    verdict, why = _cast(s, t)
    if verdict == FIT:
        return
    if verdict == ERROR:
        ck.fail(side, f"{head}: incompatible types: {why}", "fold columns of compatible types")
    elif verdict == UNKNOWN and not fold.lossy:
        ck.warn(side, f"{head}: not checked ({why})", "`lossy: allow` on the fold acknowledges it")
    elif verdict != UNKNOWN and not fold.lossy:
        if _loud(s, t):
            ck.warn(side, f"{head}: lossy cast: {why}", "widen the target column, or `lossy: allow` on the fold")
        else:
            ck.fail(side, f"{head}: lossy cast: {why}", "widen the target column, or `lossy: allow` on the fold")

