"""Rule: a transform that drops information without a word needs `lossy: allow` on its field, as a cast does.

`{truncate: N}` cuts a text to N characters silently, and `{round: N}` drops decimal places, like a cast
into fewer decimal places or fractional-second digits, which `check` refuses unless the field says
`lossy: allow` (docs/types.md): the cut is the point of the transform, but the field has to say so, so that
a mapping never loses the end of a value because a transform was copied without thought. Refused without
it; with it, an ok finding records the allowance. A source column that the step cannot change, read before
anything that could change it -- a text of a known length of at most N, an integer or a decimal of at most
N places for `round` -- needs nothing: no finding.

`{split: {sep, index}}` keeps one part of a text and drops the others just as silently. A split is lossless
only with `parts: N` (the last part keeps the rest) and when the flow's fields that split the same source
column the same way (same steps before it, same sep and parts) take every part 0..N-1 between them (-1 is
part N-1): "Wile E. Coyote" into first_name (index 0) and last_name (index 1 or -1), parts 2, loses nothing.
Any other split is refused like a truncate, naming the parts that no field takes, unless `lossy: allow`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from replicator.mapping.check.specs import _direction_transform

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.check.columns import ColumnInfo
    from replicator.mapping.model import Field, FieldPlan, Flow

# transforms that keep the value's length or shorten it only by what `truncate` would cut anyway (and leave a
# number alone): a short enough source column stays short enough through them
_NOT_LONGER = ("trim", "lower", "upper", "null_if_empty")


def check_lossy_transforms(ck: _Checker, flow: Flow, f: Field, plan: FieldPlan, spec: Any, tname: str,
                           siblings: Sequence[tuple[FieldPlan, Any]] = ()) -> None:
    """`siblings`: every plan of the flow with its field's spec (the other parts of a split)."""
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
        if name == "split" and isinstance(step["split"], dict):
            lost = _split_loses(plan.source, chain[:i], step["split"], flow.stream, siblings)
            short = False
            if lost is None:
                continue
            direction = f".{flow.stream}" if isinstance(spec.get("transform"), dict) else ""
            at = _at(f.where, f".transform{direction}[{i}]", _line(spec, "transform", f.where))
            what = f"{at}: {_show(step['split'])} of {sname} {lost[0]} ({flow.stream})"
            if plan.lossy:
                ck.ok(flow.target.side, f"{what}, allowed by lossy: allow")
            else:
                ck.fail(flow.target.side, what, f"{lost[1]}, or add `lossy: allow` to the field if the loss is wanted")
            return
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


def _show(options: dict[str, Any]) -> str:
    return "{split: {" + ", ".join(f"{k}: {v!r}" for k, v in options.items()) + "}}"


def _split_loses(source: str, before: list[Any], options: dict[str, Any], stream: str,
                 siblings: Sequence[tuple[FieldPlan, Any]]) -> tuple[str, str] | None:
    """None when the flow's fields take every part of this split; else (what is lost, the fix)."""
    sep, parts, index = options.get("sep"), options.get("parts"), options.get("index", 0)
    if not isinstance(sep, str) or not isinstance(index, int):
        return None  # the load refused it already
    if not isinstance(parts, int):
        example = sep.join("abc")
        picked = example.split(sep)[index] if -3 <= index < 3 else None
        kept = f"{picked!r}" if picked is not None else "NULL"
        return (f"keeps one part and drops the others: {example!r} gives {kept}, "
                f"{' and '.join(repr(p) for p in 'abc' if p != picked)} lost",
                f"add `parts: N` (the last part keeps the rest of the text) and a field with the same split for "
                f"each part 0..N-1")
    taken: set[int] = set()
    for other, ospec in siblings:
        chain = _direction_transform(ospec, stream)
        if other.source != source or not isinstance(chain, list):
            continue
        for j, step in enumerate(chain):
            o = step.get("split") if isinstance(step, dict) and len(step) == 1 else None
            if isinstance(o, dict) and chain[:j] == before and o.get("sep") == sep and o.get("parts") == parts \
                    and isinstance(o.get("index", 0), int):
                taken.add(o.get("index", 0) % parts)
    missing = [p for p in range(parts) if p not in taken]
    if not missing:
        return None
    example = sep.join(chr(ord("a") + p) for p in range(parts))
    return (f"has no field for part(s) {', '.join(map(str, missing))} of {parts}: {example!r} loses "
            f"{' and '.join(repr(chr(ord('a') + p)) for p in missing)}",
            f"map part(s) {', '.join(map(str, missing))} to other fields with the same split "
            f"(sep {sep!r}, parts {parts}, index {missing[0]})")


def _unchanged(name: str, c: ColumnInfo, n: int) -> bool:
    """Whether `{name: n}` leaves every value of column `c` as it is."""
    if name == "truncate":
        return c.kind == "text" and c.length is not None and c.length <= n
    return c.kind == "int" or (c.kind == "decimal" and c.scale is not None and c.scale <= n)
