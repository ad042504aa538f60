"""The explanation of one row through one flow: columns and their rules, filter, gate, key, links and
references (what `router.route_flow` does with it, told step by step)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping as TMapping

from replicator.changes import Op, RowChange, impossible_date, zero_dated
from replicator.codec import dumps_key
from replicator.errors import RowError, Where
from replicator.mapping.explain.inputs import find_flow
from replicator.mapping.links import never_paired
from replicator.mapping.explain.render import _inline, _show, _show_key
from replicator.mapping.model import (Field, FieldPlan, Flow, Mapping, MappingSet, field_default, has_default,
                                      no_natural_key)
from replicator.mapping.router import (LinkedChange, Ref, Routed, _matches, key_of, route_flow, source_key,
                                      target_values)
from replicator.mapping.transforms import TransformError, _canon, _loosely, compile_chain, compile_predicate


_MISSING: Any = object()


def explain(mset: MappingSet, name: str, side: str, row: TMapping[str, Any], *, spec: Any = None,
            lookup: Any = None, origin: str = "row given with --row", lookup_note: str | None = None
            ) -> dict[str, Any]:
    """Explain `row` of `side` through mapping `name`. `spec`: the mapping's raw YAML body (for the rules);
    `lookup`: a `DbLookup` (or a look-alike) for counterparts, None to look nothing up (`lookup_note` says why).
    Returns plain data; `render_text` and `render_json` print it."""
    m, flow = find_flow(mset, name, side)
    spec = spec if isinstance(spec, dict) else {}
    src, dst = flow.source.side, flow.target.side
    row = zero_dated(dict(row), getattr(row, "zero_dates", ()), getattr(row, "zero_texts", None))  # a row read with zero dates keeps them named
    change = RowChange(flow.source.table, Op.INSERT, None, row)
    out: dict[str, Any] = {
        "mapping": m.name,
        "direction": flow.stream,
        "source": {"side": src, "table": str(flow.source.table), "key_columns": list(flow.source.key),
                   "from": origin},
        "target": {"side": dst, "table": str(flow.target.table), "key_columns": list(flow.target.key)},
        "row": row,
    }
    out["columns"] = _columns(m, flow, change, row, spec)
    out["not_sent"] = _not_sent(m, flow, spec)
    used = ({f.column(src) for f in m.fields} | set(flow.source.key) | _filter_columns(spec, flow)
            | ({flow.gate[0]} if flow.gate else set()) | _concat_columns(spec))
    out["unmapped_source_columns"] = [c for c in row if c not in used]
    out["filter"] = _filter(flow, spec, row)
    out["leave"] = _leave(flow, spec)
    out["gate"] = _gate(flow, row)
    try:
        routed: list[Routed] = route_flow(flow, change)
        route_error = None
    except RowError as exc:
        routed, route_error = [], exc
    filtered = out["filter"] is not None and not out["filter"]["passes"]
    if flow.linked:
        _linked(out, flow, change, row, routed, route_error, filtered, lookup, lookup_note, mset)
    else:
        _plain(out, flow, change, row, routed, route_error, filtered, lookup, lookup_note)
    return out


def _columns(m: Mapping, flow: Flow, change: RowChange, row: dict[str, Any],
             spec: dict[str, Any]) -> list[dict[str, Any]]:
    fields = {f.name: f for f in m.fields}
    specs = spec["fields"] if isinstance(spec.get("fields"), dict) else {}
    out = []
    for plan in flow.plans:
        entry: dict[str, Any] = {"column": plan.target, "field": plan.name, "source_column": plan.source}
        try:  # the router's own code, one plan at a time, so an error names its column
            values = target_values(dataclasses.replace(flow, plans=(plan,)), change, row, refs=True)
            entry["value"] = values.get(plan.target)
        except RowError as exc:
            entry["value"] = None
            entry["error"] = str(exc)
        entry["rules"] = _rules(m, flow, fields[plan.name], plan, specs.get(plan.name), row)
        out.append(entry)
    return out


def _rules(m: Mapping, flow: Flow, fld: Field, plan: FieldPlan, spec: Any, row: dict[str, Any]) -> list[str]:
    src, dst = flow.source.side, flow.target.side
    spec = spec if isinstance(spec, dict) else {}
    if plan.source is None:
        if plan.stamp:
            return [f"the apply time (now: true{', insert_only' if plan.insert_only else ''}; no {src} column)"]
        return [f"constant {_show(spec['constant'])} (no {src} column)" if "constant" in spec else "constant"]
    rules = [f"{src}.{plan.source} -> {dst}.{plan.target}" + (" (same name)" if plan.source == plan.target
                                                                else " (renamed)")]
    zero = _zero_date_rule(plan, row)
    if zero:
        rules.append(zero)
    if fld.owner not in (None, src):
        rules.append(f"owned by {fld.owner}, sent anyway: {plan.target} is a key column of {flow.target.table}")
    if "constant" in spec:
        rules.append(f"constant {_show(spec['constant'])}")
        return rules
    if plan.source not in row:
        rules.append(f"the source row has no column {plan.source}")
        return rules
    value = row[plan.source]
    if not spec:
        if plan.convert is not None:
            rules.append(f"converted (map, transform or default of field {plan.name})")
        if plan.references:
            rules.append(f"references {plan.references}: translated through its link")
        return rules
    try:
        if "map" in spec:
            text, value = _map_rule(spec, value, src, dst)
            rules.append(text)
        chain = _direction(spec.get("transform"), flow)
        for i, item in enumerate(chain if isinstance(chain, list) else []):
            step = compile_chain([item], Where(str(m.where.file), None, f"{m.name}.fields.{plan.name}.transform[{i}]"))
            new = step(value, row) if step is not None else value
            rules.append(f"transform {_inline(item)}: {_show(value)} -> {_show(new)}")
            value = new
        default = field_default(spec, flow.source.side, flow.target.side)
        if has_default(default):
            if value is None:
                rules.append(f"default {_show(default)} (the value is NULL)")
            else:
                rules.append(f"default {_show(default)} not used (the value is not NULL)")
    except TransformError as exc:
        rules.append(f"fails: {exc}")
    if plan.references:
        rules.append(f"references {plan.references}: translated through its link")
    return rules


def _zero_date_rule(plan: FieldPlan, row: dict[str, Any]) -> str | None:
    """What the field does with a MariaDB zero date: said for a field with `zero_date: null` and for a value that
    is one (a row read from MariaDB; docs/types.md, "Zero dates")."""
    if plan.source in getattr(row, "zero_dates", ()):
        text = (getattr(row, "zero_texts", None) or {}).get(plan.source)
        if impossible_date(text):
            return (f"the value '{text}' is an impossible date (a day past its month's end): a row error, whatever "
                    f"zero_date says (correct the row)")
        return ("the value is a MariaDB zero date: arrives as NULL (zero_date: null)" if plan.zero_null else
                "the value is a MariaDB zero date: a row error (give the field zero_date: null to carry it as NULL)")
    if plan.zero_null:
        return "a MariaDB zero date (0000-00-00) arrives as NULL (zero_date: null)"
    return None


def _map_rule(spec: dict[str, Any], value: Any, src: str, dst: str) -> tuple[str, Any]:
    """Which entry of a value map translates `value` (transforms._lookup's order: exact, then loose)."""
    pairs = spec.get("map") or []
    if value is None:
        return "value map: NULL stays NULL", None
    hit = None
    for i, pair in enumerate(pairs):
        try:
            if _canon(pair[src]) == _canon(value):
                hit = i
                break
        except (TypeError, ArithmeticError):
            continue
    if hit is None:
        hit = next((i for i, pair in enumerate(pairs) if _loosely(value, pair[src])), None)
    if hit is not None:
        pair = pairs[hit]
        return (f"value map entry {hit + 1}: {src} {_show(pair[src])} -> {dst} {_show(pair[dst])}", pair[dst])
    unmapped = spec.get("unmapped")
    if unmapped == "pass":
        return f"value map: {_show(value)} is not listed, passed unchanged (unmapped: pass)", value
    if isinstance(unmapped, dict) and "default" in unmapped:
        return (f"value map: {_show(value)} is not listed, unmapped default {_show(unmapped['default'])}",
                unmapped["default"])
    raise TransformError("map", f"{src}->{dst}: {_show(value)} is not in the map (unmapped: error)")


def _not_sent(m: Mapping, flow: Flow, spec: dict[str, Any]) -> list[dict[str, Any]]:
    src, dst = flow.source.side, flow.target.side
    planned = {p.name for p in flow.plans}
    specs = spec["fields"] if isinstance(spec.get("fields"), dict) else {}
    out = []
    for f in m.fields:
        if f.name in planned:
            continue
        fspec = specs.get(f.name)
        if f.column(dst) is None:
            reason = f"no column on {dst} ({dst}: ~)"
        elif f.owner not in (None, src):
            whose = "the field's owner" if isinstance(fspec, dict) and "owner" in fspec else "the mapping's owner"
            reason = f"owned by {f.owner} ({whose}): it flows only {f.owner}_to_{src}"
        else:
            reason = f"no column on {src} ({src}: ~) and no constant"
        out.append({"field": f.name, "column": f.column(dst), "source_column": f.column(src), "reason": reason})
    return out


def _direction(value: Any, flow: Flow) -> Any:
    """A `key: {crm_to_erp: x, erp_to_crm: y}` value for this flow's direction, or the one value for both."""
    a, b = flow.source.side, flow.target.side
    names = {f"{a}_to_{b}", f"{b}_to_{a}"}
    if isinstance(value, dict) and value and set(value) <= names:
        return value.get(flow.stream)
    return value


def _filter_columns(spec: dict[str, Any], flow: Flow) -> set[str]:
    f = _direction(spec.get("filter"), flow)
    return set(f) if isinstance(f, dict) else set()


def _concat_columns(spec: dict[str, Any]) -> set[str]:
    """Source columns that concat transforms read."""
    out: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            concat = node.get("concat")
            if isinstance(concat, dict) and isinstance(concat.get("fields"), list):
                out.update(str(f) for f in concat["fields"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(spec.get("fields"))
    return out


def _filter(flow: Flow, spec: dict[str, Any], row: dict[str, Any]) -> dict[str, Any] | None:
    if flow.filter is None:
        return None
    passes = bool(flow.filter(row))
    conditions = []
    f = _direction(spec.get("filter"), flow)
    for column, cond in (f.items() if isinstance(f, dict) else ()):
        ops = list(cond.items()) if isinstance(cond, dict) and cond else [("eq", cond)]
        for op, arg in ops:
            check = compile_predicate({column: {op: arg}}, Where("explain", None, f"filter.{flow.stream}.{column}"))
            holds = bool(check(row)) if check is not None else True
            conditions.append({"column": column, "op": op, "arg": arg, "present": column in row,
                               "value": row.get(column), "holds": holds})
    return {"passes": passes, "conditions": conditions}


def _leave(flow: Flow, spec: dict[str, Any]) -> dict[str, Any] | None:
    """What a change that takes a row out of the flow's filter or source slice does (router._leave): the
    mapping's `leave:` for this direction, else its `delete:`. None: no filter or slice, nothing leaves."""
    if flow.filter is None:
        return None
    given = _direction(spec.get("leave"), flow) is not None
    tgt = f"{flow.target.side} {flow.target.table}"
    action = flow.leave
    if action == "ignore":
        text, form = f"its counterpart in {tgt} is kept as it is", "ignore"
    elif isinstance(action, dict):
        text, form = f"its counterpart in {tgt} is marked {_show_dict(action)}", "a soft delete"
    else:
        text, form = f"its counterpart in {tgt} is deleted", "propagate"
    text += f" (leave: {form})" if given else f" (the mapping's delete: {form}; a leave: would override it)"
    return {"action": action if isinstance(action, str) else "set", "set": action if isinstance(action, dict) else None,
            "from": "leave" if given else "delete",
            "text": "an update that takes a row out of the filter or slice (its old row passed, its new row "
                    "does not): " + text}


def _show_dict(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {_show(v)}" for k, v in d.items())


def _gate(flow: Flow, row: dict[str, Any]) -> dict[str, Any] | None:
    if flow.gate is None:
        return None
    column, wanted = flow.gate
    value = row.get(column)
    return {"column": column, "becomes": list(wanted), "present": column in row, "value": value,
            "open": _matches(value, wanted)}


# ---------------------------------------------------------------- keys, links and references


def _try(lookup: Any, fn: Any, *args: Any) -> tuple[Any, str | None]:
    """Run one read-only lookup; on failure end the (aborted) transaction and return the error text."""
    try:
        return fn(*args), None
    except Exception as exc:  # any driver error: say it, the rest of the explanation stands
        reset = getattr(lookup, "reset", None)
        if reset is not None:
            reset()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, text


def _plain(out: dict[str, Any], flow: Flow, change: RowChange, row: dict[str, Any], routed: list[Routed],
           route_error: RowError | None, filtered: bool, lookup: Any, note: str | None) -> None:
    tgt = flow.target
    key: dict[str, Any] = {"kind": "shared", "source_columns": list(flow.key_sources), "target_key": None,
                           "exists": None}
    out["key"] = key
    out["references"] = []
    try:
        tkey = key_of(flow, row, change)
        key["target_key"] = dict(zip(tgt.key, tkey))
    except RowError as exc:
        tkey = None
        key["error"] = str(exc)
    if tkey is not None:
        if lookup is None:
            key["note"] = note or "not looked up"
        else:
            exists, err = _try(lookup, lookup.exists, tgt, tkey)
            if err:
                key["note"] = f"lookup failed: {err}"
            else:
                key["exists"] = bool(exists)
    where = f"{tgt.side} {tgt.table}"
    if filtered:
        action, text = "filtered", "nothing sent: the row does not pass the filter"
    elif route_error is not None or tkey is None:
        action, text = "error", f"row error: {route_error or key.get('error')}"
    else:
        shown = _show_key(tgt.key, tkey)
        if key["exists"] is True:
            action, text = "update", f"would update the {where} row {shown} (upsert by key)"
        elif key["exists"] is False:
            action, text = "insert", f"would insert a new {where} row {shown} (upsert by key)"
        else:
            action, text = "upsert", f"would upsert the {where} row {shown}: update it if it exists, else insert it"
    out["outcome"] = {"action": action, "text": text}


def _pointed_outside(lookup: Any, ref: Ref, src: str) -> str:
    """Why a reference may wait for good: the record it points at exists, outside the referenced mapping's slice or
    filter (an order line in tonnes, a unit `units` filters out), so it gets a counterpart only if it enters it."""
    if lookup is None or not hasattr(lookup, "pointed_outside"):
        return ""
    outside, err = _try(lookup, lookup.pointed_outside, ref)
    if err or outside is None:
        return ""
    return (f"; but {ref.mapping} {_show(ref.value)} exists in {src} outside the slice or filter of mapping {outside}: "
            f"it gets a counterpart only if it enters it, and until then this row waits (`parked: "
            f"{{drop_after_days: N}}` bounds the wait)")


def _never_made(mset: MappingSet | None, mapping: str, src: str, tgt: str) -> str:
    """Why a reference may wait for good: the referenced mapping never carries a record from `src` to `tgt`
    (products only flow crm_to_erp, and an ERP order line names a product the CRM does not have)."""
    m = mset.by_name.get(mapping) if mset is not None else None
    if m is None or any(f.source.side == src for f in m.flows):
        return ""
    natural = (f", or when {tgt} gets a record with the same {', '.join(m.link.natural)} (linked by natural key)"
               if m.link.natural else "")
    return (f"; {mapping} flows only {', '.join(f.stream for f in m.flows)}: its {src} records get a counterpart "
            f"in {tgt} only when one is paired with them{natural}; until then this row waits "
            f"(`parked: {{drop_after_days: N}}` bounds the wait)")


def _linked(out: dict[str, Any], flow: Flow, change: RowChange, row: dict[str, Any], routed: list[Routed],
            route_error: RowError | None, filtered: bool, lookup: Any, note: str | None,
            mset: MappingSet | None = None) -> None:
    """Mirror of links.Linker.apply, read-only: references, counterpart by key/crosswalk/natural key, gate."""
    src, tgt = flow.source, flow.target
    lc = next((r for r in routed if isinstance(r, LinkedChange)), None)
    if lc is not None:
        values = dict(lc.values)
        if out["gate"] is not None:
            out["gate"]["open"] = lc.gate_open  # the router's verdict
    else:  # filtered or a row error: what the columns would hold
        values = {c["column"]: c["value"] for c in out["columns"] if "error" not in c}
    gate_open = out["gate"]["open"] if out["gate"] is not None else True
    key: dict[str, Any] = {"kind": "crosswalk" if flow.link.crosswalk else "shared",
                           "natural": list(flow.link.natural), "source_key": None, "target_key": None,
                           "lookups": [], "counterpart": None}
    out["key"] = key
    try:
        skey = source_key(flow, row, change)
        key["source_key"] = dict(zip(src.key, skey))
    except RowError as exc:
        skey = None
        key["error"] = str(exc)
    if not flow.link.crosswalk:
        try:
            key["target_key"] = dict(zip(tgt.key, key_of(flow, row, change)))
        except RowError:
            pass
    checked = lookup is not None
    failed: list[str] = []

    # references first: Linker.apply parks on the first one without a counterpart
    resolved = dict(values)
    refs = []
    parked_on: Ref | None = None
    outside_of: tuple[Ref, str] | None = None  # the row's own record, outside the mapping it belongs to
    for col, value in values.items():
        if not isinstance(value, Ref):
            continue
        info: dict[str, Any] = {"column": col, "mapping": value.mapping, "value": value.value, "found": None,
                                "counterpart": None}
        if lookup is not None:
            hit, err = _try(lookup, lookup.resolve, value)
            if err:
                info["text"] = f"lookup failed: {err}"
                failed.append(err)
            elif hit is None:
                info["found"] = False
                outside, err = _try(lookup, lookup.outside, value, skey) if hasattr(lookup, "outside") else (None, None)
                if outside is not None and outside_of is None and parked_on is None:
                    info["text"] = (f"no counterpart in {tgt.side}: the record {value.mapping} {_show(value.value)} "
                                    f"exists outside the slice or filter of mapping {outside}")
                    outside_of = (value, outside)
                else:
                    never = never_paired(mset, value.mapping, src.side) if mset is not None else None
                    info["text"] = (f"no counterpart in {tgt.side}: " + (
                        f"none can come ({never})" if never else
                        f"would be parked waiting for {value.mapping} {_show(value.value)}"))
                    parked_on = parked_on or value
            else:
                info["found"] = True
                info["counterpart"] = hit
                info["text"] = f"counterpart in {tgt.side}: {_show(hit)}"
                resolved[col] = hit
        else:
            info["text"] = f"not looked up ({note or 'no lookup'})"
        refs.append(info)
        for c in out["columns"]:
            if c["column"] == col:
                c["reference"] = info
    out["references"] = refs

    # the counterpart: by key or crosswalk pair, then by natural key
    counterpart = None
    natural_error = None

    def step(by: str, found: bool | None, text: str, **extra: Any) -> None:
        key["lookups"].append({"by": by, "found": found, **extra, "text": text})

    def failure(by: str, err: str) -> None:
        failed.append(err)
        step(by, None, f"lookup failed: {err}")

    if skey is not None and lookup is not None:
        if flow.link.crosswalk:
            hit, err = _try(lookup, lookup.crosswalk, flow.mapping, skey)
            if err:
                failure("crosswalk", err)
            elif hit is None:
                step("crosswalk", False, f"no crosswalk pair for {src.side} {_show_key(src.key, skey)} "
                                         "in either database")
            else:
                counterpart = {"by": "crosswalk", "target_key": dict(zip(tgt.key, hit[0])), "where": hit[1]}
                step("crosswalk", True, f"crosswalk pair {src.side} {_show_key(src.key, skey)} <-> {tgt.side} "
                                        f"{_show_key(tgt.key, hit[0])} (in {hit[1]})",
                     target_key=counterpart["target_key"])
        else:
            tkey = tuple(resolved.get(c, _MISSING) for c in tgt.key)
            if any(v is _MISSING or v is None or isinstance(v, Ref) for v in tkey):
                step("key", None, "the target key is not known yet")
            else:
                exists, err = _try(lookup, lookup.exists, tgt, tkey)
                if err:
                    failure("key", err)
                else:
                    has = "has" if exists else "has no"
                    step("key", bool(exists), f"{tgt.side} {tgt.table} {has} row {_show_key(tgt.key, tkey)}")
                    if exists:
                        counterpart = {"by": "key", "target_key": dict(zip(tgt.key, tkey))}
        if counterpart is None and flow.link.natural:
            cols: dict[str, Any] = {}
            missing = None
            for name in flow.link.natural:  # as Linker._natural: every natural field must have a value
                plan = flow.plan(name)
                v = resolved.get(plan.target) if plan is not None else None
                if plan is None or no_natural_key(v) or isinstance(v, Ref):
                    missing = name
                    break
                cols[plan.target] = v
            if missing is not None:
                step("natural", None, f"no natural key on this row ({missing} is NULL, empty or not sent): "
                                      "nothing to link by")
            else:
                found, err = _try(lookup, lookup.natural, tgt, cols)
                shown = ", ".join(f"{c} = {_show(v)}" for c, v in cols.items())
                if err:
                    failure("natural", err)
                elif len(found) > 1:
                    natural_error = (f"natural key {shown} matches more than one {tgt.side} {tgt.table} row; "
                                     f"it must be unique")
                    step("natural", True, natural_error)
                elif found:
                    tk = tuple(found[0])
                    counterpart = {"by": "natural", "target_key": dict(zip(tgt.key, tk))}
                    step("natural", True, f"natural key {shown} matches {tgt.side} {tgt.table} row "
                                          f"{_show_key(tgt.key, tk)}", target_key=counterpart["target_key"])
                else:
                    step("natural", False, f"no {tgt.side} {tgt.table} row has {shown}")
    key["counterpart"] = counterpart
    if counterpart is not None:
        key["target_key"] = counterpart["target_key"]

    where = f"{tgt.side} {tgt.table}"
    created_elsewhere = bool(flow.created_by and flow.created_by != src.side)
    if filtered:
        action, text = "filtered", "nothing sent: the row does not pass the filter"
    elif route_error is not None or skey is None:
        action, text = "error", f"row error: {route_error or key.get('error')}"
    elif outside_of is not None:
        action, text = "outside", (f"nothing sent: the row's record {outside_of[0].mapping} "
                                   f"{_show(outside_of[0].value)} exists outside the slice or filter of mapping "
                                   f"{outside_of[1]}, so the row is not carried and not parked (counted in "
                                   f"replicator_rows_outside_total)")
    elif parked_on is not None and mset is not None and never_paired(mset, parked_on.mapping, src.side):
        action, text = "unpaired", (f"nothing sent: the {parked_on.mapping} record {_show(parked_on.value)} was made "
                                    f"on {src.side} and can never get a counterpart in {tgt.side} ("
                                    f"{never_paired(mset, parked_on.mapping, src.side)}, without a natural key), so "
                                    f"the row is not carried and not parked (counted in "
                                    f"replicator_rows_filtered_total)")
    elif parked_on is not None:
        action, text = "parked", (f"would be parked waiting for {parked_on.mapping} {_show(parked_on.value)}: applied "
                                  f"when that {parked_on.mapping} record has a counterpart in {tgt.side}"
                                  + _never_made(mset, parked_on.mapping, src.side, tgt.side)
                                  + _pointed_outside(lookup, parked_on, src.side))
    elif natural_error is not None:
        action, text = "error", f"row error: {natural_error}"
    elif failed or not checked:
        why = f"lookup failed: {failed[0]}" if failed else (note or "not looked up")
        action = "unknown"
        if not gate_open:
            otherwise = "nothing is sent (the gate is closed)"
        elif created_elsewhere:
            otherwise = f"nothing is created (only {flow.created_by} creates {flow.mapping} rows)"
        else:
            otherwise = f"a new {where} row is inserted"
        text = f"counterpart unknown ({why}): an existing counterpart would be updated, otherwise {otherwise}"
    elif counterpart is not None and lc is not None and lc.refused is not None:
        action, text = "error", f"row error: {lc.refused} (the gate is closed, but the row has a counterpart)"
    elif counterpart is not None:
        action = "update"
        tkey = tuple(counterpart["target_key"].values())
        sets = [c for c in resolved if c not in tgt.key]
        text = f"would update the {where} row {_show_key(tgt.key, tkey)}"
        if counterpart["by"] == "natural":
            text += " found by natural key" + (", and record the crosswalk pair" if flow.link.crosswalk else "")
        text += f" (sets {', '.join(sets)})" if sets else " (nothing to set)"
    elif not gate_open:
        g = out["gate"]
        action, text = "gate_closed", (f"nothing sent: no counterpart exists and the gate is closed ({g['column']} is "
                                       f"{_show(g['value'])}, a counterpart is created when it becomes "
                                       f"{' or '.join(_show(v) for v in g['becomes'])})")
    elif created_elsewhere:
        action, text = "not_created", (f"nothing sent: no counterpart exists and only {flow.created_by} creates "
                                       f"{flow.mapping} rows (created_by: {flow.created_by})")
    else:
        action = "insert"
        if flow.link.crosswalk:
            text = (f"would insert a new {where} row; {tgt.side} generates its key ({', '.join(tgt.key)}) and the pair "
                    f"with {src.side} {_show_key(src.key, skey)} is recorded in {tgt.side}'s crosswalk")
        else:
            tkey = tuple(resolved.get(c) for c in tgt.key)
            text = f"would insert a new {where} row {_show_key(tgt.key, tkey)}"
        if flow.referenced:
            n, err = _try(lookup, lookup.parked, flow.mapping, dumps_key((skey[0],)))
            if not err and n:
                text += f"; then {n} parked change(s) waiting for this {flow.mapping} record would be applied"
                out["parked_children"] = n
    out["outcome"] = {"action": action, "text": text}
