"""`explain`'s output: JSON, or text for a terminal."""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Sequence

from replicator.mapping.router import Ref


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


_LONG, _SHOWN = 200, 60  # text longer than _LONG characters is shown by its first _SHOWN and its length


def _show(value: Any) -> str:
    """One value for the text output: NULL, true/false, numbers as written, text in double quotes."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, str):
        if len(value) > _LONG:  # a 70,000-character address filled the terminal; --json keeps it whole
            return f"{json.dumps(value[:_SHOWN], ensure_ascii=False)[:-1]}…\" ({len(value)} characters)"
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
    if r.get("leave"):
        lines.append(f"leave: {r['leave']['text']}")
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
