"""Rule: a transform that drops information without a word needs `lossy: allow` on its field, as a cast does.

`{truncate: N}` cuts a text to N characters silently, like a cast into fewer decimal places or
fractional-second digits, which `check` refuses unless the field says `lossy: allow` (docs/types.md):
the cut is the point of the transform, but the field has to say so, so that a mapping never loses the
end of a value because a transform was copied without thought. Refused without it; with it, an ok
finding records the allowance. A source column of a known length of at most N, read before anything
that could lengthen it, is never cut: no finding.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replicator.mapping.check.specs import _direction_transform

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Field, FieldPlan, Flow

# transforms that keep the value's length or shorten it only by what `truncate` would cut anyway: a short
# enough source column stays short enough through them
_NOT_LONGER = ("trim", "lower", "upper", "null_if_empty")


def check_lossy_transforms(ck: _Checker, flow: Flow, f: Field, plan: FieldPlan, spec: Any, tname: str) -> None:
    from replicator.mapping.check.checker import _at, _col, _line

    chain = _direction_transform(spec, flow.stream)
    if not isinstance(chain, list) or plan.source is None:
        return
    scol = ck.column(flow.source.side, flow.source.table, plan.source)
    sname = _col(flow.source.side, flow.source.table, plan.source)
    short = scol is not None and scol.kind == "text" and scol.length is not None
    for i, step in enumerate(chain):
        if isinstance(step, str) and step in _NOT_LONGER:
            continue
        if not (isinstance(step, dict) and len(step) == 1 and "truncate" in step):
            short = False  # a concat, a split, a date_format...: the value's length is no longer the column's
            continue
        n = step["truncate"]
        if short and scol is not None and scol.length is not None and isinstance(n, int) and scol.length <= n:
            continue  # never longer than N: nothing is cut
        direction = f".{flow.stream}" if isinstance(spec.get("transform"), dict) else ""
        at = _at(f.where, f".transform{direction}[{i}]", _line(spec, "transform", f.where))
        what = f"{at}: {{truncate: {n}}} cuts {sname}{' ' + scol.describe() if scol else ''} to {n} characters " \
               f"without a word ({flow.stream})"
        if f.lossy:
            ck.ok(flow.target.side, f"{what}, allowed by lossy: allow")
        else:
            ck.fail(flow.target.side, what,
                    f"add `lossy: allow` to the field if the cut is wanted (as for a lossy cast), or widen "
                    f"{flow.target.table}.{plan.target} and drop the truncate")
        return
