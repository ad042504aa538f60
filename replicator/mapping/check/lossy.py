"""Rule: a transform that drops information without a word needs `lossy: allow` on its field, as a cast does.

`{truncate: N}` cuts a text to N characters silently, and `{round: N}` drops decimal places, like a cast
into fewer decimal places or fractional-second digits, which `check` refuses unless the field says
`lossy: allow` (docs/types.md): the cut is the point of the transform, but the field has to say so, so that
a mapping never loses the end of a value because a transform was copied without thought. Refused without
it; with it, an ok finding records the allowance. A source column that the step cannot change, read before
anything that could change it -- a text of a known length of at most N, an integer or a decimal of at most
N places for `round` -- needs nothing: no finding.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replicator.mapping.check.specs import _direction_transform

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.check.columns import ColumnInfo
    from replicator.mapping.model import Field, FieldPlan, Flow

# transforms that keep the value's length or shorten it only by what `truncate` would cut anyway (and leave a
# number alone): a short enough source column stays short enough through them
_NOT_LONGER = ("trim", "lower", "upper", "null_if_empty")


def check_lossy_transforms(ck: _Checker, flow: Flow, f: Field, plan: FieldPlan, spec: Any, tname: str) -> None:
    from replicator.mapping.check.checker import _at, _col, _line

    chain = _direction_transform(spec, flow.stream)
    if not isinstance(chain, list) or plan.source is None:
        return
    scol = ck.column(flow.source.side, flow.source.table, plan.source)
    sname = _col(flow.source.side, flow.source.table, plan.source)
    short = scol is not None  # the value is still the column's (nothing before the step changed it)
    for i, step in enumerate(chain):
        if isinstance(step, str) and step in _NOT_LONGER:
            continue
        name = next(iter(step)) if isinstance(step, dict) and len(step) == 1 else None
        if name not in ("truncate", "round"):
            short = False  # a concat, a split, a date_format...: the value is no longer the column's
            continue
        n = step[name]
        if short and scol is not None and isinstance(n, int) and _unchanged(name, scol, n):
            continue  # the step cannot change a value of that column
        direction = f".{flow.stream}" if isinstance(spec.get("transform"), dict) else ""
        at = _at(f.where, f".transform{direction}[{i}]", _line(spec, "transform", f.where))
        what = (f"{at}: {{truncate: {n}}} cuts {sname}{' ' + scol.describe() if scol else ''} to {n} characters "
                f"without a word ({flow.stream})" if name == "truncate" else
                f"{at}: {{round: {n}}} rounds {sname}{' ' + scol.describe() if scol else ''} to {n} decimal "
                f"places without a word ({flow.stream})")
        if plan.lossy:
            ck.ok(flow.target.side, f"{what}, allowed by lossy: allow")
        else:
            wider = ("widen " + f"{flow.target.table}.{plan.target} and drop the truncate" if name == "truncate"
                     else "drop the round if the target column holds the places")
            ck.fail(flow.target.side, what,
                    f"add `lossy: allow` to the field if the cut is wanted (as for a lossy cast), or {wider}")
        return


def _unchanged(name: str, c: ColumnInfo, n: int) -> bool:
    """Whether `{name: n}` leaves every value of column `c` as it is."""
    if name == "truncate":
        return c.kind == "text" and c.length is not None and c.length <= n
    return c.kind == "int" or (c.kind == "decimal" and c.scale is not None and c.scale <= n)
