"""Field mappings: which table on one side becomes which table on the other, and how.

Files under the mapping directory look like:

    mappings:
      customers:
        direction: both            # or <side>_to_<side>, with the connection names
        crm: {table: public.customer, key: [id]}
        erp: {table: customers, key: [id]}
        fields:
          id: ~                    # same column name on both sides
          name: {erp: customer_name}   # crm column "name", erp column "customer_name"
          credit_limit: {owner: erp}   # flows only from erp to crm

Mappings are compiled once into immutable objects; `MappingSet.route` turns a source
RowChange into the TargetChanges of every mapping that flows from that side.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from replicator.changes import UNCHANGED, Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator import metrics
from replicator.errors import ConfigError, FatalError, RowError, Where
from replicator.yamlfile import Section, YamlList, YamlMap, load_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    side: str
    table: TableRef
    key: tuple[str, ...]


@dataclass(frozen=True)
class Field:
    name: str
    columns: tuple[tuple[str, str], ...]  # (side, column)
    where: Where
    owner: str | None = None  # the only side this field flows from; None: both

    def column(self, side: str) -> str:
        return dict(self.columns)[side]


@dataclass(frozen=True)
class Flow:
    """One direction of one mapping, with the column pairs precomputed for the hot path."""

    mapping: str
    source: Endpoint
    target: Endpoint
    pairs: tuple[tuple[str, str], ...]  # (source column, target column)
    key_sources: tuple[str, ...]  # source columns giving the target key, in target key order
    truncate: str = "stop"  # stop | ignore | propagate


@dataclass(frozen=True)
class Mapping:
    name: str
    where: Where
    endpoints: tuple[Endpoint, Endpoint]
    fields: tuple[Field, ...]
    flows: tuple[Flow, ...]

    def endpoint(self, side: str) -> Endpoint:
        return next(e for e in self.endpoints if e.side == side)


class MappingSet:
    def __init__(self, mappings: Iterable[Mapping]):
        self.mappings = tuple(mappings)
        self._routes: dict[tuple[str, TableRef], tuple[Flow, ...]] = {}
        for m in self.mappings:
            for flow in m.flows:
                key = (flow.source.side, flow.source.table)
                self._routes[key] = self._routes.get(key, ()) + (flow,)

    def tables(self, side: str) -> list[TableRef]:
        """Tables of one side that any mapping reads or writes."""
        return sorted({e.table for m in self.mappings for e in m.endpoints if e.side == side})

    def source_tables(self, side: str) -> list[TableRef]:
        return sorted({t for (s, t) in self._routes if s == side})

    def target_endpoints(self, side: str) -> list[Endpoint]:
        return [f.target for m in self.mappings for f in m.flows if f.target.side == side]

    def route(self, side: str, change: RowChange) -> list[TargetChange]:
        out: list[TargetChange] = []
        for flow in self._routes.get((side, change.table), ()):
            out.extend(_transform(flow, change))
        return out


def _transform(flow: Flow, change: RowChange) -> list[TargetChange]:
    tgt = flow.target
    if change.op is Op.TRUNCATE:
        if flow.truncate == "propagate":
            return [TargetChange(tgt.table, Op.TRUNCATE, tgt.key, (), {})]
        if flow.truncate == "ignore":
            log.warning("mapping %s: TRUNCATE of %s not propagated (truncate: ignore)", flow.mapping, change.table)
            metrics.truncates_ignored.labels(f"{flow.source.side}_to_{tgt.side}", str(change.table)).inc()
            return []
        raise FatalError(
            f"mapping {flow.mapping}: {change.table} was truncated on {flow.source.side}. Truncates stop the "
            f"stream by default; set `truncate: propagate` (empty {tgt.table} too) or `truncate: ignore` "
            f"in the mapping, then start again")
    if change.op is Op.DELETE:
        return [TargetChange(tgt.table, Op.DELETE, tgt.key, _key(flow, change.before, change), {})]
    after = change.after
    if after is None:
        raise RowError(f"{change.op.value} without a row image", table=str(change.table))
    values: dict[str, Any] = {}
    for src, dst in flow.pairs:
        try:
            value = after[src]
        except KeyError:
            raise RowError(
                "column is mapped but missing from the source row (dropped or renamed?)",
                table=str(change.table), column=src,
            ) from None
        if value is not UNCHANGED:
            values[dst] = value
    key = _key(flow, after, change)
    out = []
    if change.op is Op.UPDATE and change.before:
        old_key = _key(flow, change.before, change, partial=True)
        if old_key is not None and old_key != key:
            # a key change is a delete of the old row and an upsert of the new one
            out.append(TargetChange(tgt.table, Op.DELETE, tgt.key, old_key, {}))
    out.append(TargetChange(tgt.table, change.op, tgt.key, key, values))
    return out


def _key(flow: Flow, row: Any, change: RowChange, partial: bool = False) -> Any:
    if row is None:
        raise RowError(f"{change.op.value} without the old key", table=str(change.table))
    try:
        key = tuple(row[c] for c in flow.key_sources)
    except KeyError as exc:
        if partial:
            return None
        raise RowError("key column missing from the source row", table=str(change.table),
                       column=str(exc.args[0])) from None
    if any(v is None or v is UNCHANGED for v in key):
        if partial:
            return None
        raise RowError("key column is NULL", table=str(change.table), key=key)
    return key


# ---------------------------------------------------------------- loading


def load_mappings(config: Config) -> MappingSet:
    directory = config.mappings_dir
    if not directory.is_dir():
        raise ConfigError(f"mapping directory {directory} does not exist", Where(str(config.file), None, "mappings"))
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        raise ConfigError(f"no *.yaml files in mapping directory {directory}")
    mappings: list[Mapping] = []
    seen: dict[str, Where] = {}
    for path in files:
        for m in load_mapping_file(path, config):
            if m.name in seen:
                raise ConfigError(f"mapping {m.name!r} is defined twice (also at {seen[m.name]})", m.where)
            seen[m.name] = m.where
            mappings.append(m)
    _check_overlaps(mappings)
    return MappingSet(mappings)


def load_mapping_file(path: Path, config: Config) -> list[Mapping]:
    root = Section(load_file(path), "", str(path))
    body = root.section("mappings", required=True)
    out = [_compile(name, body, config) for name, _ in list(body.items())]
    root.done()
    return out


def _default_schema(config: Config, side: str) -> str:
    conn = config.side(side)
    return "public" if conn.kind == "postgresql" else conn.database


def _compile(name: str, parent: Section, config: Config) -> Mapping:
    s = parent.section(name)
    sides = [c.name for c in config.connections]
    endpoints = []
    for side in sides:
        e = s.section(side, required=True)
        table = TableRef.parse(e.get("table", str), _default_schema(config, side))
        key = e.get("key", list)
        if not key or not all(isinstance(k, str) for k in key):
            raise ConfigError("key must be a non-empty list of column names", e.where("key"),
                              hint="every mapped table needs a primary key")
        endpoints.append(Endpoint(side, table, tuple(key)))
        e.done()
    a, b = sides
    choices = ("both", f"{a}_to_{b}", f"{b}_to_{a}")
    direction = s.get("direction", str, choices=choices)
    truncate = s.get("truncate", str, "stop", choices=("stop", "ignore", "propagate"))
    fields = _fields(s.section("fields", required=True), sides)
    flows = []
    for src, dst in ((a, b), (b, a)):
        if direction not in ("both", f"{src}_to_{dst}"):
            continue
        flows.append(_flow(name, s, endpoints, fields, src, dst, truncate))
    s.done()
    return Mapping(name, s.where(), (endpoints[0], endpoints[1]), fields, tuple(flows))


def _fields(s: Section, sides: list[str]) -> tuple[Field, ...]:
    fields = []
    for name, spec in s.items():
        where = s.where(name)
        owner = None
        if spec is None:
            cols = {side: name for side in sides}
        elif isinstance(spec, YamlMap):
            fs = Section(spec, f"{s.path}.{name}")
            cols = {side: fs.get(side, str, name) for side in sides}
            owner = fs.get("owner", str, None, choices=sides)
            fs.done()
        else:
            raise ConfigError("a field is ~ (same column name on both sides) or a mapping of side: column", where)
        fields.append(Field(name, tuple(cols.items()), where, owner))
    if not fields:
        raise ConfigError("a mapping needs at least one field", s.where())
    return tuple(fields)


def _flow(name: str, s: Section, endpoints: list[Endpoint], fields: tuple[Field, ...], src: str, dst: str,
          truncate: str) -> Flow:
    source = next(e for e in endpoints if e.side == src)
    target = next(e for e in endpoints if e.side == dst)
    pairs = tuple((f.column(src), f.column(dst)) for f in fields if f.owner in (None, src))
    # key fields always flow: they identify the row on both sides
    keys = tuple((f.column(src), f.column(dst)) for f in fields if f.column(dst) in target.key)
    pairs = pairs + tuple(p for p in keys if p not in pairs)
    by_target = {d: sc for sc, d in pairs}
    missing = [k for k in target.key if k not in by_target]
    if missing:
        raise ConfigError(
            f"key column {missing[0]!r} of {target.table} is not filled by any field",
            s.where("fields"), hint=f"add a field whose {dst} column is {missing[0]}",
        )
    return Flow(name, source, target, pairs, tuple(by_target[k] for k in target.key), truncate)


def _check_overlaps(mappings: list[Mapping]) -> None:
    targets: dict[tuple[str, TableRef], str] = {}
    for m in mappings:
        for f in m.flows:
            k = (f.target.side, f.target.table)
            if k in targets and targets[k] != m.name:
                raise ConfigError(
                    f"{f.target.table} on {f.target.side} is written by mappings {targets[k]!r} and {m.name!r}",
                    m.where,
                )
            targets[k] = m.name


__all__ = ["Endpoint", "Field", "Flow", "Mapping", "MappingSet", "load_mappings", "load_mapping_file", "YamlList"]
