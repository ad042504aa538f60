"""A linked two-way record deleted on one side while the other side updated it.

The linker finds the counterpart first (crosswalk pair, natural key, or the record's own key); then the
race is handed to the direction's resolver (replicator.conflicts.detect) as a one-row run, exactly as an
unlinked run would be, so it is detected, decided by the mapping's row rule and recorded the same way
in both directions:

- the direction carrying the delete finds the counterpart changed since (`delete_differs`): the
  counterpart is deleted only when the delete wins;
- the direction carrying the update finds no counterpart (`update_missing`): the counterpart comes back
  whole only when the update wins. A crosswalk counterpart comes back under the key its pair names, so
  the pair -- which lives in whichever database its creating direction wrote to, out of reach of this
  transaction when it is in the source -- stays valid on both sides without being rewritten.

Nothing here writes rows: the linker does, in its open target transaction, with the checkpoint.
"""
from __future__ import annotations

from typing import Any, Mapping

from replicator.appliers.base import Applier, group_runs
from replicator.changes import Op, TargetChange
from replicator.mapping.router import LinkedChange


def delete_wins(a: Applier, lc: LinkedChange, target_key: tuple[Any, ...], expect: Mapping[str, Any]) -> bool:
    """A checked delete of the counterpart `target_key`: True when it is to be deleted (the counterpart is as
    the source saw it, or the delete won delete_differs); False when the counterpart is kept (it changed
    since and the update won, or a manual rule) or is gone already (delete_missing)."""
    flow = lc.flow
    keys = dict(zip(flow.target.key, target_key))
    tc = TargetChange(flow.target.table, Op.DELETE, flow.target.key, target_key, {}, expect={**expect, **keys},
                      mapping=flow.mapping, source_key=lc.source_key, commit_time=lc.commit_time)
    return _resolved(a, tc)


def update_wins(a: Applier, lc: LinkedChange, target_key: tuple[Any, ...], changed: Mapping[str, Any],
                expect: Mapping[str, Any]) -> bool:
    """A checked update whose counterpart `target_key` is not there: True when the update wins
    update_missing (the caller creates the counterpart whole), False when the delete stands."""
    flow = lc.flow
    keys = dict(zip(flow.target.key, target_key))
    tc = TargetChange(flow.target.table, Op.UPDATE, flow.target.key, target_key, {**changed, **keys},
                      expect={**expect, **keys}, mapping=flow.mapping, source_key=lc.source_key,
                      commit_time=lc.commit_time)
    return _resolved(a, tc)


def gate_was_open(lc: LinkedChange) -> bool:
    """The source row passed the flow's gate before this update too, so its counterpart was created and
    a missing one was deleted; a gate that opens now creates the counterpart (no race)."""
    flow = lc.flow
    if flow.gate is None:
        return True
    before = lc.change.before
    if before is None:
        return False
    column, wanted = flow.gate
    if column not in before:
        return False
    value = before[column]
    return any(value == w or (isinstance(value, str) and value == str(w)) for w in wanted)


def _resolved(a: Applier, tc: TargetChange) -> bool:
    assert a.resolver is not None
    run = group_runs([tc])[0]
    return bool(a.resolver.resolve(a, run, [tc]))
