"""Who wins a conflict: the same answer in both directions, each deciding on its own.

A conflict is seen twice: direction A->B finds B's edit in its way, and B->A finds A's. Neither
direction talks to the other, so a rule may only use what both see alike: a fixed side, the two
values of the mapping's timestamp column, the two commit times. `decide(rule, incoming side, ...)`
and `decide(rule, other side, ...)` with the arguments swapped name the same winner (tested with
Hypothesis in tests/unit/test_conflict_rules.py). The winner's value is then written by the
direction from the winner (over the target's value) and kept by the direction from the loser
(the field is not written), so both databases end with the winner's value and nothing is written
a third time.

- `priority: <side>`: that side wins.
- `latest` with a column: the later value of that column wins (NULL is older than any time); equal
  values: the first connection in replicator.yaml wins. An update against a delete: the surviving row's
  column against the delete's commit time (`decide_against_delete`).
- `latest` by commit time (no column, the default): the later source commit wins. The commit time of
  the target's edit is read by the other direction's reader (`conflicts.clock.CommitClock`, waited for
  a few seconds); when it cannot be known, the first connection wins and the detail says so. Times are
  compared in whole seconds, because the MariaDB binlog records no more; edits within one second are
  a tie, won by the first connection in replicator.yaml. They come from two servers' clocks: skew
  moves the winner of nearly simultaneous edits (by the skew), but both directions compare the same
  two times and still decide alike, so the databases converge.
- `manual`: nobody wins; both sides keep their value until a person resolves it.
- `owner` was compiled into `priority` of the owning side (mapping/model.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replicator import compare
from replicator.mapping.model import ConflictRule


@dataclass(frozen=True)
class Decision:
    winner: str  # the winning side's connection name; "" for manual
    detail: str


def decide(rule: ConflictRule, incoming: str, target: str, first_side: str, *,
           incoming_stamp: Any = None, target_stamp: Any = None, stamp_kind: str = compare.TIMESTAMP,
           incoming_time: datetime | None = None, target_time: datetime | None = None) -> Decision:
    """The winner between the incoming change (from side `incoming`) and the target's value (side `target`).
    Stamps are the two values of the `latest` column, in target terms; times are source commit times."""
    if rule.rule == "priority":
        return Decision(rule.side or first_side, f"priority: {rule.side} wins")
    if rule.rule == "manual":
        return Decision("", "manual: kept on both sides until a person decides")
    if rule.rule == "latest" and rule.column is not None:
        order = _order(compare.canonical(stamp_kind, incoming_stamp), compare.canonical(stamp_kind, target_stamp))
        if order > 0:
            return Decision(incoming, f"{incoming}'s {rule.column} is later")
        if order < 0:
            return Decision(target, f"{target}'s {rule.column} is later")
        return Decision(first_side, f"{rule.column} is equal on both sides: {first_side} (the first connection) wins")
    # latest by commit time
    if incoming_time is not None and target_time is not None:
        order = _order(_utc(incoming_time).replace(microsecond=0), _utc(target_time).replace(microsecond=0))
        if order > 0:
            return Decision(incoming, f"{incoming}'s commit is later")
        if order < 0:
            return Decision(target, f"{target}'s commit is later")
        return Decision(first_side, f"committed within the same second: {first_side} (the first connection) wins")
    return Decision(first_side, f"the commit time of {target}'s edit is not known: {first_side} "
                                f"(the first connection) wins")


def decide_against_delete(rule: ConflictRule, incoming: str, target: str, first_side: str, *, deleting: str,
                          stamp: Any, stamp_kind: str, delete_time: datetime | None) -> Decision:
    """`latest` by a column, an update against a delete of the same row (update_missing in one direction,
    delete_differs in the other): the deleted row has no column value, so the surviving row's column
    (`stamp`, the updating side's value) is compared with the delete's commit time, in whole seconds. Both
    directions know the same two facts: the updating direction the stamp it carries and the delete's time
    from the other reader; the deleting direction its own commit time and the stamp the target row holds.
    A later stamp keeps the row, a later delete removes it; equal, a column that is not a time, or a
    delete time not known: the first connection. NULL is older than any time (the delete wins)."""
    updating = target if deleting == incoming else incoming
    if delete_time is None:
        return Decision(first_side, f"the commit time of {deleting}'s delete is not known: {first_side} "
                                    f"(the first connection) wins")
    if stamp is None:
        return Decision(deleting, f"{updating}'s {rule.column} is NULL: {deleting}'s delete is later")
    value = compare.canonical(stamp_kind, stamp)
    if not isinstance(value, datetime):
        return Decision(first_side, f"{rule.column} is not a time to compare with {deleting}'s delete: "
                                    f"{first_side} (the first connection) wins")
    order = _order(value.replace(microsecond=0), _utc(delete_time).replace(microsecond=0))
    if order > 0:
        return Decision(updating, f"{updating}'s {rule.column} is later than {deleting}'s delete")
    if order < 0:
        return Decision(deleting, f"{deleting}'s delete is later than {updating}'s {rule.column}")
    return Decision(first_side, f"{updating}'s {rule.column} and {deleting}'s delete are within the same second: "
                                f"{first_side} (the first connection) wins")


def row_rule(rule: ConflictRule) -> ConflictRule:
    """The rule recorded for a whole row (update_missing, delete_differs, delete_missing): `latest` (by a
    column, the update's column against the delete's commit time: `decide_against_delete`; by commit
    time, both commit times when the other reader recorded them, else the first connection)."""
    if rule.rule == "latest":
        return ConflictRule("latest")
    return rule


def _utc(t: datetime) -> datetime:
    return compare.canonical(compare.TIMESTAMP, t)  # type: ignore[no-any-return]


def _order(a: Any, b: Any) -> int:
    """-1, 0, 1; NULL before any value; values that cannot be ordered compare by their text (both
    directions see the same two values, so any fixed order decides alike)."""
    if a is None or b is None:
        return (a is not None) - (b is not None)
    try:
        return int(a > b) - int(a < b)
    except TypeError:
        sa, sb = repr(a), repr(b)
        return (sa > sb) - (sa < sb)
