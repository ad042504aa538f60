"""`replicator explain` of a `fold:` mapping: what a row becomes through the fold (mapping/folds.py),
read-only -- whose row it is, the parent's counterpart, the value in target terms and the write it makes."""
from __future__ import annotations

from typing import Any

from replicator.changes import Op, RowChange
from replicator.mapping.folds import PARENT, VALUE, route_fold
from replicator.mapping.model import Flow
from replicator.mapping.router import LinkedChange, Ref


def explain_fold(flow: Flow, data: dict[str, Any], lookup: Any, origin: str, note: str | None) -> dict[str, Any]:
    """The row as if it were inserted now (as `explain` does for other mappings). `lookup`: a DbLookup, or
    None (--offline, or the databases cannot be reached: `note` says why)."""
    fold = flow.fold
    assert fold is not None
    child = flow.source.side == fold.child
    out: dict[str, Any] = {
        "mapping": flow.mapping, "direction": flow.stream, "kind": "fold", "origin": origin,
        "source": {"side": flow.source.side, "table": str(flow.source.table)},
        "target": {"side": flow.target.side, "table": str(flow.target.table)},
        "row": data, "lookup": note or "looked up read-only",
    }
    routed = [r for r in route_fold(flow, RowChange(flow.source.table, Op.INSERT, None, data))
              if isinstance(r, LinkedChange)]
    if not routed:
        out["result"] = (f"not this fold's row (outside {dict(flow.source.slice)} or no {fold.by})" if child
                         else f"{fold.into} is NULL: no {fold.child} row is made")
        return out
    lc = routed[0]
    parent, value = lc.values[PARENT], lc.values[VALUE]
    assert isinstance(parent, Ref)
    resolved = lookup.resolve(parent) if lookup is not None else None
    out["parent"] = {"mapping": fold.parent, "key": parent.value,
                     "counterpart": resolved if lookup is not None else "(not looked up)"}
    shown = value
    if isinstance(value, Ref):
        got = lookup.resolve(value) if lookup is not None else None
        shown = got if lookup is not None else f"(a {value.mapping} key, not looked up)"
        out["value_reference"] = {"mapping": value.mapping, "key": value.value, "counterpart": shown}
    out["value"] = shown
    if lookup is not None and (resolved is None or (isinstance(value, Ref) and shown is None)):
        waits = parent if resolved is None else value
        out["result"] = f"parked until {waits.mapping} {waits.value!r} has a counterpart on {flow.target.side}"
    elif child:
        out["result"] = (f"{flow.target.table}.{fold.into} = {shown!r} on the parent; a second row of "
                         f"{dict(flow.source.slice) or 'this table'} for the parent is a row error")
    else:
        out["result"] = (f"the {flow.target.table} row of {dict(flow.target.slice) or 'the parent'} with "
                         f"{fold.by} = parent gets {fold.value} = {shown!r} (created when missing)")
    return out


def render_fold(r: dict[str, Any]) -> str:
    lines = [f"mapping {r['mapping']} ({r['direction']}): a fold, {r['source']['side']} {r['source']['table']} -> "
             f"{r['target']['side']} {r['target']['table']}", f"row: {r['row']}", f"     {r['origin']}", ""]
    if "parent" in r:
        p = r["parent"]
        lines.append(f"parent: {p['mapping']} {p['key']!r} -> {p['counterpart']!r}")
        lines.append(f"value: {r['value']!r}")
    lines.append(f"result: {r['result']}")
    lines.append(f"({r['lookup']})")
    return "\n".join(lines) + "\n"
