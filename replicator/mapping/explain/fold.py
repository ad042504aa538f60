"""`replicator explain` of a `fold:` mapping: what a row becomes through the fold (mapping/folds.py),
read-only -- whose row it is, the parent's counterpart, the value in target terms and the write it makes."""
from __future__ import annotations

from typing import Any

from replicator.changes import Op, RowChange
from replicator.mapping.folds import FAR, PARENT, VALUE, route_fold
from replicator.mapping.model import Flow
from replicator.mapping.explain.render import _show, _show_dict
from replicator.mapping.router import LinkedChange, Ref


def _slice(values: Any, otherwise: str) -> str:
    """A slice as the text output writes values (`kind = "email"`, `deleted = false`), not a Python dict."""
    return _show_dict(dict(values)) if values else otherwise


def _value(v: Any) -> str:
    """A value as the text output writes it; "(not looked up)" and the like are notes, not text values."""
    return v if isinstance(v, str) and v.startswith("(") and v.endswith(")") else _show(v)


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
    if fold.via is not None:
        return _two_hops(flow, data, lookup, out)
    routed = [r for r in route_fold(flow, RowChange(flow.source.table, Op.INSERT, None, data))
              if isinstance(r, LinkedChange)]
    if not routed:
        out["result"] = (f"not this fold's row (outside {_slice(flow.source.slice, 'the table')} or no {fold.by})" if child
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
        out["result"] = f"parked until {waits.mapping} {_show(waits.value)} has a counterpart on {flow.target.side}"
    elif child:
        out["result"] = (f"{flow.target.table}.{fold.into} = {_value(shown)} on the parent; a second row "
                         f"of {_slice(flow.source.slice, 'this table')} for the parent is a row error")
    else:
        out["result"] = (f"the {flow.target.table} row of {_slice(flow.target.slice, 'the parent')} with "
                         f"{fold.by} = parent gets {fold.value} = {_value(shown)} (created when missing)")
    return out


def path(flow: Flow) -> str:
    """A two-hop fold's path, as `explain` and `check` write it: parent -> link rows -> far row -> column."""
    fold = flow.fold
    assert fold is not None and fold.via is not None and fold.via.far is not None
    link, far = fold.via.endpoint, fold.via.far
    return (f"{fold.parent} key = {link.table}.{fold.by} ({_slice(link.slice, 'every row')}) -> {link.table}."
            f"{fold.via.to} = {far.table}.{far.key[0]} ({_slice(far.slice, 'every row')}) -> {far.table}.{fold.value}"
            f" -> {flow.target.side} {flow.target.table}.{fold.into}")


def _two_hops(flow: Flow, data: dict[str, Any], lookup: Any, out: dict[str, Any]) -> dict[str, Any]:
    fold = flow.fold
    assert fold is not None and fold.via is not None
    out["path"] = path(flow)
    routed = [r for r in route_fold(flow, RowChange(flow.source.table, Op.INSERT, None, data))
              if isinstance(r, LinkedChange)]
    if not routed:
        out["result"] = (f"not this fold's link row (outside {_slice(flow.source.slice, 'the table')}, or no "
                         f"{fold.by} / {fold.via.to})")
        return out
    lc = routed[0]
    if FAR in lc.values:
        out["result"] = (f"every parent whose {fold.via.endpoint.table} rows point at this row takes "
                         f"{flow.target.table}.{fold.into} again, read from {flow.source.side} when applied")
        return out
    parent = lc.values[PARENT]
    assert isinstance(parent, Ref)
    resolved = lookup.resolve(parent) if lookup is not None else None
    out["parent"] = {"mapping": fold.parent, "key": parent.value,
                     "counterpart": resolved if lookup is not None else "(not looked up)"}
    out["value"] = f"(read from {flow.source.side} when applied)"
    if lookup is not None and resolved is None:
        out["result"] = f"parked until {parent.mapping} {_show(parent.value)} has a counterpart on {flow.target.side}"
    else:
        out["result"] = (f"{flow.target.table}.{fold.into} of the parent = the {fold.value} of the one "
                         f"{fold.via.far.table if fold.via.far else '?'} row its link rows point at (NULL when none; "
                         f"two are a row error)")
    return out


def render_fold(r: dict[str, Any]) -> str:
    lines = [f"mapping {r['mapping']} ({r['direction']}): a fold, {r['source']['side']} {r['source']['table']} -> "
             f"{r['target']['side']} {r['target']['table']}", f"row: {_show_dict(r['row'])}", f"     {r['origin']}", ""]
    if "path" in r:
        lines.append(f"path: {r['path']}")
    if "parent" in r:
        p = r["parent"]
        lines.append(f"parent: {p['mapping']} {_show(p['key'])} -> {_value(p['counterpart'])}")
        lines.append(f"value: {_value(r['value'])}")
    lines.append(f"result: {r['result']}")
    lines.append(f"({r['lookup']})")
    return "\n".join(lines) + "\n"
