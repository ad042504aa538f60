"""`replicator explain` of a `fold:` mapping: what a row becomes through the fold (mapping/folds.py),
read-only -- whose row it is, the parent's counterpart, the value in target terms and the write it makes."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from replicator.changes import Op, RowChange
from replicator.errors import RowError
from replicator.mapping.folds import FAR, PARENT, VALUE, far_rows_sql, route_fold
from replicator.mapping.model import Flow
from replicator.mapping.explain.render import _show, _show_dict
from replicator.mapping.router import LinkedChange, Ref


def _slice(values: Any, otherwise: str) -> str:
    """A slice as the text output writes values (`kind = "email"`, `deleted = false`), not a Python dict."""
    if not values:
        return otherwise
    return ", ".join(f"{c} IS NULL" if v is None else _show_dict({c: v}) for c, v in values)


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
    routed = _routed(flow, data, out)
    if routed is None:
        return out
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


def _routed(flow: Flow, data: dict[str, Any], out: dict[str, Any]) -> list[LinkedChange] | None:
    """What the stream makes of the row as an insert; None when it is a row error, which `out` then shows (a
    value the fold's map does not list: what the stream would stop or queue with)."""
    try:
        return [r for r in route_fold(flow, RowChange(flow.source.table, Op.INSERT, None, data))
                if isinstance(r, LinkedChange)]
    except RowError as exc:
        out["result"] = f"row error: {exc}"
        return None


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
    routed = _routed(flow, data, out)
    if routed is None:
        return out
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


def explain_parent(flow: Flow, parent_row: dict[str, Any], parent_value: Any,
                   source_query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]], source_kind: str,
                   lookup: Any, origin: str, note: str | None) -> dict[str, Any]:
    """`explain --key` of a two-hop fold: the key is the parent's (what the link rows' `by` holds), and the
    source is read as the applier reads it (folds.far_rows_sql): the link rows of the slice, the far row they
    point at, its value, and the parent's column it sets. A link row itself is explained with `--row`."""
    fold = flow.fold
    assert fold is not None and fold.via is not None and fold.via.far is not None
    link, far = fold.via.endpoint, fold.via.far
    out: dict[str, Any] = {
        "mapping": flow.mapping, "direction": flow.stream, "kind": "fold", "origin": origin,
        "source": {"side": flow.source.side, "table": str(flow.source.table)},
        "target": {"side": flow.target.side, "table": str(flow.target.table)},
        "row": parent_row, "lookup": note or "looked up read-only", "path": path(flow),
    }
    rows = [tuple(r[1:]) for r in source_query(*far_rows_sql(fold, source_kind, [parent_value]))][:3]
    n = len(link.key)
    out["links"] = [{"link_key": list(r[:n]), "far_key": r[n], "value": r[n + 1]} for r in rows]
    parent = Ref(fold.parent, parent_value)
    resolved = lookup.resolve(parent) if lookup is not None else None
    out["parent"] = {"mapping": fold.parent, "key": parent_value,
                     "counterpart": resolved if lookup is not None else "(not looked up)"}
    fars = {r[n] for r in rows}
    if len(fars) > 1:
        out["value"] = "(two or more)"
        out["result"] = (f"a row error: the parent links to {len(fars)} rows of {far.table} through {link.table} "
                         f"rows ({_slice(link.slice, 'any')}); {flow.target.table}.{fold.into} carries one")
        return out
    value = rows[0][n + 1] if rows else None
    shown: Any = value
    unresolved = False
    if fold.references and value is not None:
        ref = Ref(fold.references, value)
        got = lookup.resolve(ref) if lookup is not None else None
        shown = got if lookup is not None else f"(a {fold.references} key, not looked up)"
        unresolved = lookup is not None and got is None
        out["value_reference"] = {"mapping": fold.references, "key": value, "counterpart": shown}
    out["value"] = shown
    if lookup is not None and (resolved is None or unresolved):
        waits = (fold.parent, parent_value) if resolved is None else (fold.references, value)
        out["result"] = f"parked until {waits[0]} {_show(waits[1])} has a counterpart on {flow.target.side}"
    elif not rows:
        out["result"] = (f"{flow.target.table}.{fold.into} of the parent = NULL: no {link.table} row "
                         f"({_slice(link.slice, 'any')}) points at a {far.table} row ({_slice(far.slice, 'any')})")
    else:
        out["result"] = f"{flow.target.table}.{fold.into} of the parent = {_value(shown)}"
    return out


def render_fold(r: dict[str, Any]) -> str:
    lines = [f"mapping {r['mapping']} ({r['direction']}): a fold, {r['source']['side']} {r['source']['table']} -> "
             f"{r['target']['side']} {r['target']['table']}", f"row: {_show_dict(r['row'])}", f"     {r['origin']}", ""]
    if "path" in r:
        lines.append(f"path: {r['path']}")
    for found in r.get("links", ()):
        lines.append(f"link row {_show(found['link_key'])} -> far row {_show(found['far_key'])}: "
                     f"{_show(found['value'])}")
    if "parent" in r:
        p = r["parent"]
        lines.append(f"parent: {p['mapping']} {_show(p['key'])} -> {_value(p['counterpart'])}")
        lines.append(f"value: {_value(r['value'])}")
    lines.append(f"result: {r['result']}")
    lines.append(f"({r['lookup']})")
    return "\n".join(lines) + "\n"
