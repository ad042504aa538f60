"""`replicator explain`: what one source row becomes on the other side, and why. Writes nothing.

    replicator explain --config C --mapping NAME --side SIDE (--key K[,K2] | --row JSON) [--json] [--offline]

The row is read from SIDE's database by the mapping's key columns (the apply account, in a read-only
session whose transactions are rolled back), or taken from `--row` as a JSON object. It becomes an
INSERT-like `RowChange` and goes through the mapping's flow from SIDE exactly as the daemon routes it
(`router.route_flow`, `router.target_values`). The explanation names, for the target table:

- each target column, its value and the rules that produced it (the field, a rename, the value-map
  entry used, each transform with its input and output, a default or constant, a reference);
- the fields that are not sent (owned by the other side, no column on one side);
- the filter (passes, or which condition fails and on what value) and the gate (open or closed, why);
- the key: for shared keys the target key and whether that row exists; for links whether a
  counterpart exists (by key, crosswalk pair in either database, or natural key), so whether the row
  would update it or create a new one; for references whether each referenced record has a
  counterpart, else "would be parked waiting for <mapping> <value>".

Lookups in the target (and in both crosswalk tables) use `links.Linker`'s own read paths on
connections that are read-only at the session level, and every transaction is rolled back.
Without servers (`--offline`) the counterpart part says what would decide it instead.

Only ConfigError leaves this module for a usage problem (unknown mapping or side, a mapping that does
not flow from the side, bad --row JSON, wrong number of key parts, no row with that key); the CLI
turns it into exit status 78.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping as TMapping, Sequence, cast

from replicator.changes import Op, RowChange, TableRef
from replicator.codec import dumps_key
from replicator.config import Config, Connection
from replicator.errors import ConfigError, ReplicatorError, RowError, Where
from replicator.mapping.model import Endpoint, Field, FieldPlan, Flow, Mapping, MappingSet
from replicator.mapping.router import LinkedChange, Ref, _matches, key_of, route_flow, source_key, target_values
from replicator.mapping.transforms import TransformError, _canon, _loosely, compile_chain, compile_predicate

if TYPE_CHECKING:
    from replicator.appliers.mariadb import MariaDBApplier
    from replicator.appliers.postgres import PostgresApplier

_MISSING: Any = object()


# ---------------------------------------------------------------- inputs


def find_flow(mset: MappingSet, name: str, side: str) -> tuple[Mapping, Flow]:
    """The mapping and its flow from `side`; ConfigError naming what exists otherwise."""
    m = mset.by_name.get(name)
    if m is None:
        known = ", ".join(sorted(mset.by_name)) or "none"
        raise ConfigError(f"unknown mapping {name!r} (mappings: {known})")
    sides = [e.side for e in m.endpoints]
    if side not in sides:
        raise ConfigError(f"unknown side {side!r} for mapping {name!r} (sides: {', '.join(sides)})")
    flow = m.flow(side)
    if flow is None:
        flows = ", ".join(f.stream for f in m.flows) or "no direction"
        raise ConfigError(f"mapping {name!r} does not flow from {side}: it flows {flows}")
    return m, flow


def parse_key(text: str, endpoint: Endpoint) -> tuple[str, ...]:
    """`--key 42` or `--key 7,2`: split on commas, matched by position to the key columns. The parts stay
    text; the database casts them to the column types."""
    parts = tuple(p.strip() for p in text.split(","))
    if len(parts) != len(endpoint.key) or any(p == "" for p in parts):
        raise ConfigError(
            f"--key {text!r} does not fit the key of {endpoint.side} {endpoint.table}: it needs "
            f"{len(endpoint.key)} comma-separated value(s), for {', '.join(endpoint.key)}")
    return parts


def parse_row(text: str) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--row is not valid JSON: {exc}") from None
    if not isinstance(row, dict):
        raise ConfigError("--row must be a JSON object of column: value")
    return row


def raw_spec(config: Config, name: str) -> dict[str, Any] | None:
    """The YAML body of mapping `name` as written (the compiled model keeps only closures); None if not found."""
    from replicator.yamlfile import load_file

    directory = Path(config.mappings_dir)
    if not directory.is_dir():
        return None
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")):
        try:
            data = load_file(path)
        except ReplicatorError:
            continue
        body = data.get("mappings") if isinstance(data, dict) else None
        if isinstance(body, dict) and isinstance(body.get(name), dict):
            found: dict[str, Any] = body[name]
            return found
    return None


# ---------------------------------------------------------------- the explanation


def explain(mset: MappingSet, name: str, side: str, row: TMapping[str, Any], *, spec: Any = None,
            lookup: Any = None, origin: str = "row given with --row", lookup_note: str | None = None
            ) -> dict[str, Any]:
    """Explain `row` of `side` through mapping `name`. `spec`: the mapping's raw YAML body (for the rules);
    `lookup`: a `DbLookup` (or a look-alike) for counterparts, None to look nothing up (`lookup_note` says why).
    Returns plain data; `render_text` and `render_json` print it."""
    m, flow = find_flow(mset, name, side)
    spec = spec if isinstance(spec, dict) else {}
    src, dst = flow.source.side, flow.target.side
    row = dict(row)
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
    out["gate"] = _gate(flow, row)
    try:
        routed: list[Any] = route_flow(flow, change)
        route_error = None
    except RowError as exc:
        routed, route_error = [], exc
    filtered = out["filter"] is not None and not out["filter"]["passes"]
    if flow.linked:
        _linked(out, flow, change, row, routed, route_error, filtered, lookup, lookup_note)
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
        return [f"constant {_show(spec['constant'])} (no {src} column)" if "constant" in spec else "constant"]
    rules = [f"{src}.{plan.source} -> {dst}.{plan.target}" + (" (same name)" if plan.source == plan.target
                                                                else " (renamed)")]
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
        if "default" in spec:
            if value is None:
                rules.append(f"default {_show(spec['default'])} (the value is NULL)")
            else:
                rules.append(f"default {_show(spec['default'])} not used (the value is not NULL)")
    except TransformError as exc:
        rules.append(f"fails: {exc}")
    if plan.references:
        rules.append(f"references {plan.references}: translated through its link")
    return rules


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


def _plain(out: dict[str, Any], flow: Flow, change: RowChange, row: dict[str, Any], routed: list[Any],
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


def _linked(out: dict[str, Any], flow: Flow, change: RowChange, row: dict[str, Any], routed: list[Any],
            route_error: RowError | None, filtered: bool, lookup: Any, note: str | None) -> None:
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
                info["text"] = (f"no counterpart in {tgt.side}: would be parked waiting for "
                                f"{value.mapping} {_show(value.value)}")
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
                if plan is None or v is None or isinstance(v, Ref):
                    missing = name
                    break
                cols[plan.target] = v
            if missing is not None:
                step("natural", None, f"no natural key on this row ({missing} is NULL or not sent): "
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
    elif parked_on is not None:
        action, text = "parked", (f"would be parked waiting for {parked_on.mapping} {_show(parked_on.value)}: applied "
                                  f"when that {parked_on.mapping} record has a counterpart in {tgt.side}")
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


# ---------------------------------------------------------------- read-only database access


class ReadOnlyDb:
    """One connection with a side's apply account. The session is read-only (PostgreSQL
    default_transaction_read_only, MariaDB SET SESSION TRANSACTION READ ONLY) and every transaction is
    rolled back; the write methods of an applier are not offered at all."""

    def __init__(self, conn: Connection):
        from replicator.appliers import make_applier

        self.conn = conn
        # a concrete applier: its driver connection (`db`) and `_run` are used below
        self.applier = cast("PostgresApplier | MariaDBApplier", make_applier(conn, "explain", ""))
        self.applier.connect()
        try:
            db = self.applier.db
            db.rollback()
            if conn.kind == "postgresql":
                db.set_session(readonly=True)
            else:
                with db.cursor() as cur:
                    cur.execute("SET SESSION TRANSACTION READ ONLY")
        except Exception:
            self.close()
            raise

    # what links.Linker reads through
    def quote_table(self, table: TableRef) -> str:
        return self.applier.quote_table(table)

    def quote_col(self, column: str) -> str:
        return self.applier.quote_col(column)

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.applier.query(sql, params)

    def find_keys(self, table: TableRef, key_cols: Sequence[str], where: dict[str, Any],
                  limit: int = 2) -> list[tuple[Any, ...]]:
        return self.applier.find_keys(table, key_cols, where, limit)

    def load_types(self, tables: Sequence[TableRef]) -> None:
        self.applier.load_types(tables)

    def read_row(self, endpoint: Endpoint, key: Sequence[Any]) -> dict[str, Any] | None:
        cond = " AND ".join(f"{self.quote_col(c)} = %s" for c in endpoint.key)
        sql = f"SELECT * FROM {self.quote_table(endpoint.table)} WHERE {cond} LIMIT 2"

        def q() -> tuple[list[str], list[tuple[Any, ...]]]:
            with self.applier.db.cursor() as cur:
                cur.execute(sql, list(key))
                return [d[0] for d in cur.description], list(cur.fetchall())
        try:
            names, rows = self.applier._run(q)
        except ReplicatorError:
            raise
        except Exception as exc:
            self.rollback()
            if self.applier.is_row_error(exc):
                raise ConfigError(f"cannot read {endpoint.side} {endpoint.table} where "
                                  f"{_given_key(endpoint.key, key)}: {self.applier.describe_error(exc)}") from None
            raise
        self.rollback()
        if len(rows) > 1:
            raise ConfigError(f"{_given_key(endpoint.key, key)} matches more than one row of {endpoint.side} "
                              f"{endpoint.table}: the mapping's key must be the table's primary key")
        return dict(zip(names, rows[0])) if rows else None

    def execute(self, *_args: Any, **_kw: Any) -> int:
        raise RuntimeError("replicator explain never writes")

    def rollback(self) -> None:
        self.applier.rollback()

    def close(self) -> None:
        self.applier.rollback()
        self.applier.close()


class DbLookup:
    """Counterparts, crosswalk pairs, natural keys and references of one flow, read-only, through
    links.Linker's read paths (its write paths are never called; the connections could not write anyway)."""

    def __init__(self, mset: MappingSet, flow: Flow, target: ReadOnlyDb, source: ReadOnlyDb):
        from replicator.mapping.links import CROSSWALK, Linker

        self.flow = flow
        self.target = target
        self.source = source
        self._source_crosswalk = source.quote_table(TableRef(source.conn.state_schema, CROSSWALK))
        self.linker = Linker(target, mset, flow.stream, flow.source.side, flow.target.side,  # type: ignore[arg-type]
                             target.conn.state_schema, self._source_query)

    def _source_query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        rows = self.source.query(sql.replace("{crosswalk}", self._source_crosswalk), params)
        self.source.rollback()
        return rows

    def exists(self, endpoint: Endpoint, key: tuple[Any, ...]) -> bool:
        return bool(self.target.find_keys(endpoint.table, endpoint.key, dict(zip(endpoint.key, key)), limit=1))

    def crosswalk(self, mapping: str, skey: tuple[Any, ...]) -> tuple[tuple[Any, ...], str] | None:
        """(target key, where the pair was found), like Linker._crosswalk but saying which database."""
        src, dst = self.flow.source.side, self.flow.target.side
        pair = self.linker.lookup.pair(mapping, skey)
        if pair is None:
            return None
        if pair.in_source:
            return pair.target_key, f"{src}'s crosswalk {self.source.conn.state_schema}.crosswalk"
        return pair.target_key, f"{dst}'s crosswalk {self.target.conn.state_schema}.crosswalk"

    def natural(self, endpoint: Endpoint, cols: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.target.find_keys(endpoint.table, endpoint.key, cols)

    def resolve(self, ref: Ref) -> Any:
        return self.linker._resolve(ref)

    def parked(self, mapping: str, key: str) -> int:
        rows = self.target.query(f"SELECT COUNT(*) FROM {self.linker.parked} WHERE stream = %s AND "
                                 f"waiting_mapping = %s AND waiting_key = %s", [self.flow.stream, mapping, key])
        return int(rows[0][0]) if rows else 0

    def reset(self) -> None:
        self.target.rollback()
        self.source.rollback()


# (config, mapping name, the row's keys) -> the row's recent conflicts as JSON-able dicts, newest first;
# None when no database has a conflicts table. Passed in by the CLI (replicator.admin.conflicts): the
# conflict store lives in a layer above the mapping language.
ConflictReader = Callable[[Config, str, Sequence[tuple[Any, ...]]], "list[dict[str, Any]] | None"]


def run(config: Config, mset: MappingSet, *, mapping: str, side: str, key: str | None = None,
        row: str | None = None, as_json: bool = False, offline: bool = False,
        conflicts: ConflictReader | None = None) -> str:
    """What `replicator explain` prints. ConfigError for a usage problem (exit 78). With `conflicts` (and
    not --offline), the row's recent conflicts are shown too."""
    m, flow = find_flow(mset, mapping, side)
    if (key is None) == (row is None):
        raise ConfigError("give one of --key or --row")
    spec = raw_spec(config, m.name)
    dbs: list[ReadOnlyDb] = []
    try:
        source_db: ReadOnlyDb | None = None
        if row is not None:
            data = parse_row(row)
            origin = "row given with --row"
        else:
            assert key is not None
            parts = parse_key(key, flow.source)
            source_db = ReadOnlyDb(config.side(side))
            dbs.append(source_db)
            found = source_db.read_row(flow.source, parts)
            if found is None:
                raise ConfigError(f"no row in {side} {flow.source.table} with {_given_key(flow.source.key, parts)}")
            data = found
            origin = f"read from {side} by {_given_key(flow.source.key, parts)} (read-only)"
        lookup = None
        note = "--offline: nothing looked up" if offline else None
        if not offline:
            try:
                target_db = ReadOnlyDb(config.side(flow.target.side))
                dbs.append(target_db)
                target_db.load_types([e.table for e in mset.target_endpoints(flow.target.side)])
                if source_db is None:
                    source_db = ReadOnlyDb(config.side(side))
                    dbs.append(source_db)
                lookup = DbLookup(mset, flow, target_db, source_db)
            except ReplicatorError as exc:
                note = f"cannot look up: {exc}"
        result = explain(mset, mapping, side, data, spec=spec, lookup=lookup, origin=origin, lookup_note=note)
        if conflicts is not None and not offline:
            result["conflicts"] = _recent_conflicts(conflicts, config, m, flow, data, result)
    finally:
        for db in dbs:
            try:
                db.close()
            except Exception:
                pass
    return render_json(result) if as_json else render_text(result)


def _recent_conflicts(read: ConflictReader, config: Config, m: Mapping, flow: Flow, data: dict[str, Any],
                      result: dict[str, Any]) -> dict[str, Any] | None:
    """The row's recorded conflicts by its key on this side (and the counterpart's key when known)."""
    try:
        keys = [tuple(data[k] for k in flow.source.key)]
    except KeyError:
        return None
    target = (result.get("key") or {}).get("target_key")
    if isinstance(target, dict) and all(c in target for c in flow.target.key):
        keys.append(tuple(target[c] for c in flow.target.key))
    try:
        found = read(config, m.name, keys)
    except Exception as exc:  # explain is a diagnosis: a missing grant or a down server is said, not raised
        return {"error": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                "recent": []}
    return None if found is None else {"recent": found}


# ---------------------------------------------------------------- output


def jsonable(value: Any) -> Any:
    """Row values for --json: plain JSON stays; Decimal, dates, times, UUIDs as text, bytes as 0x hex."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, Ref):
        return {"references": value.mapping, "value": jsonable(value.value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return repr(value)


def _show(value: Any) -> str:
    """One value for the text output: NULL, true/false, numbers as written, text in double quotes."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Ref):
        return f"{value.mapping} {_show(value.value)}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return _scalar_text(value)


def _show_key(columns: Sequence[str], key: Sequence[Any] | None) -> str:
    if key is None:
        return "?"
    return ", ".join(f"{c} = {_show(v)}" for c, v in zip(columns, key))


def _given_key(columns: Sequence[str], parts: Sequence[Any]) -> str:
    """A --key as typed: id = 42."""
    return ", ".join(f"{c} = {p}" for c, p in zip(columns, parts))


def _inline(item: Any) -> str:
    """A transform item as written in YAML flow style: trim, {round: 2}, {concat: {fields: [a, b], sep: " "}}."""
    if isinstance(item, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in item.items()) + "}"
    if isinstance(item, list):
        return "[" + ", ".join(_inline(v) for v in item) + "]"
    if isinstance(item, str) and item and item.strip() == item and item.replace("_", "").replace("-", "").isalnum():
        return item
    return _show(item)


def render_json(result: dict[str, Any]) -> str:
    return json.dumps(jsonable(result), indent=2, ensure_ascii=False)


def render_text(r: dict[str, Any]) -> str:
    src, tgt = r["source"], r["target"]
    lines = [f"mapping {r['mapping']} ({r['direction']}): {src['side']} {src['table']} -> {tgt['side']} {tgt['table']}",
             f"row: {_show_dict(r['row']) if r['row'] else '(empty)'}", f"     {src['from']}", ""]
    lines.append(f"{tgt['side']} {tgt['table']}:")
    cols = r["columns"]
    if cols:
        vals = []
        for c in cols:
            if "error" in c:
                vals.append("(error)")
            elif "reference" in c and c["reference"].get("found"):
                vals.append(f"{_show(c['reference']['counterpart'])}")
            else:
                vals.append(_show(c["value"]))
        w1 = max(len(c["column"]) for c in cols)
        w2 = min(max(len(v) for v in vals), 40)
        for c, v in zip(cols, vals):
            rules = "; ".join(c["rules"])
            lines.append(f"  {c['column']:<{w1}}  {v:<{w2}}  field {c['field']}: {rules}")
            if "reference" in c:
                lines.append(f"  {'':<{w1}}  {'':<{w2}}  {c['reference']['text']}")
            if "error" in c and not any(rule.startswith("fails:") for rule in c["rules"]):
                lines.append(f"  {'':<{w1}}  {'':<{w2}}  error: {c['error']}")
    else:
        lines.append("  (no columns)")
    if r["not_sent"]:
        lines.append("not sent:")
        w = max(len(n["field"]) for n in r["not_sent"])
        for n in r["not_sent"]:
            lines.append(f"  {n['field']:<{w}}  {n['reason']}")
    if r["unmapped_source_columns"]:
        lines.append(f"source columns no field maps: {', '.join(r['unmapped_source_columns'])}")
    lines.append("")
    lines.append(f"filter: {_filter_text(r['filter'])}")
    lines.append(f"gate: {_gate_text(r['gate'])}")
    key = r["key"]
    if key["kind"] == "crosswalk":
        head = (f"crosswalk ({tgt['side']} generates its own key {', '.join(tgt['key_columns'])}); "
                f"{src['side']} key {_show_dict(key['source_key'])}")
    else:
        head = f"shared key: {tgt['side']} key {_show_dict(key['target_key'])}"
        if key.get("exists") is not None:
            head += f" ({'a row with this key exists' if key['exists'] else 'no row with this key yet'})"
    if key.get("natural"):
        head += f"; natural key: {', '.join(key['natural'])}"
    lines.append(f"key: {head}")
    if key.get("error"):
        lines.append(f"  error: {key['error']}")
    if key.get("note"):
        lines.append(f"  {key['note']}")
    for step in key.get("lookups", ()):
        lines.append(f"  by {step['by']}: {step['text']}")
    if r["references"]:
        lines.append("references:")
        for ref in r["references"]:
            lines.append(f"  {ref['column']} -> {ref['mapping']} {_show(ref['value'])}: {ref['text']}")
    lines.append("")
    lines.append(f"result: {r['outcome']['text']}")
    c = r.get("conflicts")
    if c is not None:
        lines.append("")
        if c.get("error"):
            lines.append(f"conflicts: cannot read them: {c['error']}")
        elif not c["recent"]:
            lines.append("conflicts: none recorded for this row")
        else:
            lines.append(f"recent conflicts of this row ({len(c['recent'])}, newest first; `replicator conflicts "
                         f"--key` lists more):")
            for x in c["recent"]:
                values = ", ".join(f"{k[:-6]} {_show(v)}" for k, v in x.items() if k.endswith("_value"))
                outcome = "pending" if x["resolution"] == "pending" else f"{x['winner'] or '-'} {x['resolution']}"
                lines.append(f"  {x['id']} {str(x['detected_at'])[:19].replace('T', ' ')} {x['direction']} {x['kind']} "
                             f"{x['field'] or '(row)'}: {values}; {x['rule']}: {outcome}")
    return "\n".join(lines)


def _show_dict(d: dict[str, Any] | None) -> str:
    return "?" if not d else ", ".join(f"{k} = {_show(v)}" for k, v in d.items())


def _filter_text(f: dict[str, Any] | None) -> str:
    if f is None:
        return "none"
    conds = f["conditions"]
    if f["passes"]:
        shown = "; ".join(f"{c['column']} {c['op']} {_show(c['arg'])}" for c in conds)
        return "passes" + (f" ({shown})" if shown else "")
    bad = [c for c in conds if not c["holds"]]
    if not bad:
        return "fails"
    parts = []
    for c in bad:
        got = f"is {_show(c['value'])}" if c["present"] else "is missing from the row"
        parts.append(f"{c['column']} {got}, the filter wants {c['op']} {_show(c['arg'])}")
    return "fails: " + "; ".join(parts)


def _gate_text(g: dict[str, Any] | None) -> str:
    if g is None:
        return "none"
    wanted = " or ".join(_show(v) for v in g["becomes"])
    got = _show(g["value"]) if g["present"] else "missing from the row"
    if g["open"]:
        return f"open: {g['column']} is {got} (becomes {wanted}): a counterpart may be created"
    return (f"closed: {g['column']} is {got}, not {wanted}: no counterpart is created before it becomes "
            f"{wanted} (an existing one is still updated)")
