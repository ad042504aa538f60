"""`replicator explain` itself: read or take the row, look up what can be looked up, explain, render."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from replicator.config import Config
from replicator.errors import ConfigError, ReplicatorError
from replicator.mapping.explain.explanation import explain
from replicator.mapping.explain.fold import explain_fold, explain_parent, render_fold
from replicator.mapping.explain.inputs import find_flow, parse_key, parse_row, raw_spec
from replicator.mapping.explain.lookup import DbLookup, ReadOnlyDb
from replicator.mapping.explain.render import _given_key, render_json, render_text
from replicator.mapping.model import Endpoint, Flow, Mapping, MappingSet


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
        # a two-hop fold's --key is its parent's (the link rows' `by`): what the DBA asks is "which value does
        # this parent get", and a link row's own key says little (its row is explained with --row)
        read = flow.source if flow.fold is None or flow.fold.via is None else _parent_endpoint(mset, flow)
        if row is not None:
            data = parse_row(row)
            origin = "row given with --row"
        else:
            assert key is not None
            parts = parse_key(key, read)
            source_db = ReadOnlyDb(config.side(side))
            dbs.append(source_db)
            found = source_db.read_row(read, parts)
            if found is None:
                raise ConfigError(f"no row in {side} {read.table} with {_given_key(read.key, parts)}"
                                  + ("" if read is flow.source else
                                     f" (--key of a fold through {flow.source.table} is the key of its parent "
                                     f"mapping {read.table}'s row; a link row is explained with --row)"))
            data = found
            origin = f"read from {side} by {_given_key(read.key, parts)} (read-only)"
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
        if read is not flow.source and key is not None:
            assert source_db is not None and flow.fold is not None
            fold = explain_parent(flow, data, data[read.key[0]], source_db.query, source_db.conn.kind, lookup,
                                  f"parent {flow.fold.parent}: {origin}", note)
            return render_json(fold) if as_json else render_fold(fold)
        if flow.fold is not None:
            fold = explain_fold(flow, data, lookup, origin, note)
            return render_json(fold) if as_json else render_fold(fold)
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


def _parent_endpoint(mset: MappingSet, flow: Flow) -> Endpoint:
    """The parent mapping's endpoint on a two-hop fold's source side: the row whose key the link rows hold."""
    assert flow.fold is not None
    parent = mset.by_name[flow.fold.parent]
    return next(e for e in parent.endpoints if e.side == flow.source.side)


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
