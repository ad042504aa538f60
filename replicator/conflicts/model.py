"""What a conflict is: one record edited on both sides before either edit reached the other.

The stream detects conflicts while applying (in the target's own terms, after the mapping), the
rules decide a winner the same way in both directions, and the store records each conflict in the
target database in the same transaction as its resolution. This module is the contract between
them: plain frozen data, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replicator.changes import TableRef

# kinds
UPDATE_DIFFERS = "update_differs"  # a changed field's target value is not what the source saw before
UPDATE_MISSING = "update_missing"  # an update of a row that is gone on the target
DELETE_DIFFERS = "delete_differs"  # a delete of a row changed on the target since
DELETE_MISSING = "delete_missing"  # a delete of a row already gone
INSERT_EXISTS = "insert_exists"  # an insert whose key or natural key exists already on the target
KINDS = (UPDATE_DIFFERS, UPDATE_MISSING, DELETE_DIFFERS, DELETE_MISSING, INSERT_EXISTS)

# rules (per mapping, overridable per field)
OWNER = "owner"  # the field's owning side wins
LATEST = "latest"  # the later change wins: by a timestamp column the mapping names, else commit time
PRIORITY = "priority"  # one named side always wins
MANUAL = "manual"  # nobody overwrites: a person resolves it with `replicator conflicts resolve`
RULES = (OWNER, LATEST, PRIORITY, MANUAL)

# resolutions (the `resolution` label of replicator_conflicts_total, and the store's `resolution`)
APPLIED = "applied"  # the incoming change won and was written
KEPT = "kept"  # the target's value won; the incoming change was not written
PENDING = "pending"  # manual: kept on both sides until a person decides
RESOLVED = "resolved"  # a pending conflict a person resolved
RESOLUTIONS = (APPLIED, KEPT, PENDING, RESOLVED)


@dataclass(frozen=True)
class Conflict:
    """One conflict as detected by the direction `stream` (source side -> target side) on one target
    row; `field` is the target column (None for row kinds: update_missing, delete_*, insert_exists)."""

    stream: str  # the direction that detected it, e.g. "crm_to_erp"
    mapping: str
    kind: str  # one of KINDS
    table: TableRef  # the target table
    target_key: tuple[Any, ...]  # the target row's key values, in the table's key order
    source_key: tuple[Any, ...]  # the source row's key values
    field: str | None
    source_value: Any  # the value the incoming change carries (target terms)
    target_value: Any  # the value the target holds now
    rule: str  # one of RULES, as it applied to this field
    winner: str  # the winning side's connection name ("crm", "erp"), or "" for manual
    resolution: str  # one of RESOLUTIONS
    source_commit_time: datetime | None = None
    detail: str = ""  # why this winner, for a person: "erp owns credit", "crm's updated_at is later", ...
