"""Routing: a source RowChange becomes target operations through every Flow that reads its table.

Plain flows (shared keys, no links, gates or references) produce `TargetChange`s that the applier
batches. Flows that need to look at the target first (links, gates, references, soft deletes)
produce `LinkedChange`s, which `replicator.mapping.links.Linker` applies row by row inside the same target
transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from replicator import metrics
from replicator.changes import UNCHANGED, Op, RowChange, TargetChange
from replicator.errors import FatalError, RowError
from replicator.mapping.model import Flow, MappingSet
from replicator.mapping.transforms import TransformError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ref:
    """A foreign-key value still to be translated through the link of `mapping`."""

    mapping: str
    value: Any


@dataclass(frozen=True)
class LinkedChange:
    flow: Flow
    op: Op  # INSERT/UPDATE (create or update the counterpart) or DELETE
    change: RowChange  # the source change, kept for parking
    source_key: tuple[Any, ...]  # the source row's own key (its primary key)
    values: Mapping[str, Any]  # target column -> value (Ref for foreign keys); no UNCHANGED
    gate_open: bool = True  # the row has the gate value (a counterpart may be created)
    insert_only: frozenset[str] = frozenset()  # written when creating the counterpart, not when updating it
    must_exist: bool = False  # update an existing counterpart only, never create one


def route(mset: MappingSet, side: str, change: RowChange) -> list[Any]:
    out: list[Any] = []
    for flow in mset.routes.get((side, change.table), ()):
        out.extend(route_flow(flow, change))
    return out


def route_flow(flow: Flow, change: RowChange) -> list[Any]:
    if change.op is Op.TRUNCATE:
        return _truncate(flow, change)
    row = change.before if change.op is Op.DELETE else change.after
    if row is None:
        raise RowError(f"{change.op.value} without a row image", table=str(change.table))
    if flow.filter is not None and not flow.filter(_complete(row, change.before)):
        metrics.rows_filtered.labels(flow.stream, str(flow.target.table)).inc()
        return []
    if flow.linked:
        return _linked(flow, change, row)
    tgt = flow.target
    if change.op is Op.DELETE:
        if flow.delete == "ignore":
            metrics.rows_filtered.labels(flow.stream, str(tgt.table)).inc()
            return []
        return [TargetChange(tgt.table, Op.DELETE, tgt.key, key_of(flow, row, change), {})]
    values = target_values(flow, change, row)
    key = key_of(flow, row, change)
    out = []
    if change.op is Op.UPDATE and change.before:
        old_key = key_of(flow, change.before, change, partial=True)
        if old_key is not None and old_key != key:
            # a key change is a delete of the old row and an upsert of the new one
            out.append(TargetChange(tgt.table, Op.DELETE, tgt.key, old_key, {}))
    out.append(TargetChange(tgt.table, change.op, tgt.key, key, values))
    return out


def _complete(row: Mapping[str, Any], before: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Unchanged TOAST values are taken from the old row when it has them (REPLICA IDENTITY FULL)."""
    if before is None or not any(v is UNCHANGED for v in row.values()):
        return row
    return {k: (before.get(k, v) if v is UNCHANGED else v) for k, v in row.items()}


def target_values(flow: Flow, change: RowChange, row: Mapping[str, Any], refs: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for plan in flow.plans:
        if plan.source is None:
            value = None
        else:
            try:
                value = row[plan.source]
            except KeyError:
                raise RowError("column is mapped but missing from the source row (dropped or renamed?)",
                               table=str(change.table), column=plan.source) from None
            if value is UNCHANGED:
                continue
        if plan.convert is not None:
            try:
                value = plan.convert(value, row)
            except TransformError as exc:
                raise RowError(f"field {plan.name}: {exc}", table=str(change.table),
                               key=_safe_key(flow, row), column=plan.source) from None
        if refs and plan.references and value is not None:
            value = Ref(plan.references, value)
        values[plan.target] = value
    return values


def key_of(flow: Flow, row: Any, change: RowChange, partial: bool = False) -> Any:
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


def source_key(flow: Flow, row: Mapping[str, Any], change: RowChange) -> tuple[Any, ...]:
    try:
        key = tuple(row[c] for c in flow.source.key)
    except KeyError as exc:
        raise RowError("primary key column missing from the source row", table=str(change.table),
                       column=str(exc.args[0])) from None
    if any(v is None or v is UNCHANGED for v in key):
        raise RowError("primary key column is NULL", table=str(change.table), key=key)
    return key


def _safe_key(flow: Flow, row: Mapping[str, Any]) -> Any:
    return tuple(row.get(c) for c in flow.source.key)


def _linked(flow: Flow, change: RowChange, row: Mapping[str, Any]) -> list[Any]:
    skey = source_key(flow, row, change)
    if change.op is Op.DELETE:
        if flow.delete == "ignore":
            metrics.rows_filtered.labels(flow.stream, str(flow.target.table)).inc()
            return []
        return [LinkedChange(flow, Op.DELETE, change, skey, {})]
    values = target_values(flow, change, row, refs=True)
    gate_open = True
    if flow.gate is not None:
        column, wanted = flow.gate
        full = _complete(row, change.before)
        gate_open = _matches(full.get(column), wanted)
    return [LinkedChange(flow, change.op, change, skey, values, gate_open)]


def _matches(value: Any, wanted: tuple[Any, ...]) -> bool:
    return any(value == w or (isinstance(value, str) and value == str(w)) for w in wanted)


def _truncate(flow: Flow, change: RowChange) -> list[Any]:
    tgt = flow.target
    if flow.truncate == "propagate":
        return [TargetChange(tgt.table, Op.TRUNCATE, tgt.key, (), {})]
    if flow.truncate == "ignore":
        log.warning("mapping %s: TRUNCATE of %s not propagated (truncate: ignore)", flow.mapping, change.table)
        metrics.truncates_ignored.labels(flow.stream, str(change.table)).inc()
        return []
    raise FatalError(
        f"mapping {flow.mapping}: {change.table} was truncated on {flow.source.side}. Truncates stop the "
        f"stream by default; set `truncate: propagate` (empty {tgt.table} too) or `truncate: ignore` "
        f"in the mapping, then start again")
