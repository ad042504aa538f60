"""`replicator explain`'s inputs: the flow from a side, the key or row given, the mapping's raw YAML."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replicator.config import Config
from replicator.errors import ConfigError, ReplicatorError
from replicator.mapping.model import Endpoint, Flow, Mapping, MappingSet


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
    """`--key 42`, `--key 7,2`, or `--key '["Acme, Inc.", 2]'`. A one-column key is the whole text: ERPNext
    names rows by text that may hold commas ("Doe, John"). A key of several columns is split on commas,
    matched by position to the key columns, or given as a JSON array when a part holds a comma. The parts
    stay text; the database casts them to the column types."""
    n = len(endpoint.key)
    stripped = text.strip()
    parts: tuple[str, ...]
    if n > 1 and stripped.startswith("["):
        parts = json_key_parts(text, f"{n} plain values, for {', '.join(endpoint.key)}")
    elif n == 1:
        parts = (stripped,)
    else:
        parts = tuple(p.strip() for p in text.split(","))
    if len(parts) != n or any(p == "" for p in parts):
        raise ConfigError(
            f"--key {text!r} does not fit the key of {endpoint.side} {endpoint.table}: it needs "
            f"{n} comma-separated value(s), for {', '.join(endpoint.key)} (a JSON array when a value holds "
            f"a comma)")
    return parts


def json_key_parts(text: str, what: str) -> tuple[str, ...]:
    """`--key '["Acme, Inc.", 2]'`: the values of a key given as a JSON array (when one holds a comma), each
    as text; refused unless it is an array of plain values (`what` says which, for the message). Shared
    by `explain --key` and `dlq`/`conflicts --key` (admin/conflicts.key_candidates)."""
    try:
        items = json.loads(text.strip())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--key {text!r} is not a JSON array: {exc}") from None
    # (not true/false: str() would send 'True', which no key column stores as such)
    if not isinstance(items, list) or any(isinstance(i, (list, dict, bool)) or i is None for i in items):
        raise ConfigError(f"--key {text!r}: a JSON array of {what}")
    return tuple(i if isinstance(i, str) else str(i) for i in items)


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
