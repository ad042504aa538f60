"""What `replicator verify` reports: one `Difference` per row, per-mapping figures, report lines.

Pure data and formatting, no I/O (see `replicator.verify.command` for what is compared and how).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replicator.compare import show, show_key

MISSING = "missing in target"
EXTRA = "extra in target"
DIFFERS = "differs"
FAILED = "cannot be mapped"
# a counterpart of a source row outside the flow's filter or slice, which the mapping's leave (propagate, or a
# soft delete: `columns` then holds the columns to set) says must not be there as it is
LEFT = "left the filter or slice"


class Stopped(Exception):
    """The daemon is stopping: the verification run was abandoned."""


@dataclass(frozen=True)
class Difference:
    mapping: str
    stream: str
    table: str  # the target table
    kind: str  # MISSING | EXTRA | DIFFERS | FAILED | LEFT
    source_side: str
    source_key: tuple[Any, ...] | None
    target_key: tuple[Any, ...] | None
    columns: tuple[tuple[str, Any, Any], ...] = ()  # (target column, expected value, target value)
    note: str = ""
    crosswalk: bool = False
    stamp: tuple[Any, ...] = ()  # what the source side looked like (expected canonical values): stability across re-checks

    def line(self) -> str:
        return format_difference(self)


def key_text(d: Difference) -> str:
    if d.crosswalk:
        if d.target_key is None:
            return f"{d.source_side} key={show_key(d.source_key)}"
        return f"key={show_key(d.target_key)} ({d.source_side} key {show_key(d.source_key)})"
    return f"key={show_key(d.target_key if d.target_key is not None else d.source_key)}"


def format_difference(d: Difference) -> str:
    where = f"{d.mapping} {d.stream} {d.table} {key_text(d)}"
    if d.kind == DIFFERS:
        return f"{where}: differs: " + "; ".join(f"{c}: {show(e)} -> {show(a)}" for c, e, a in d.columns)
    if d.kind == FAILED:
        return f"{where}: {FAILED}: {d.note}"
    if d.kind == LEFT:
        if d.columns:  # a soft delete not (yet) applied
            return f"{where}: {LEFT}, not marked: " + "; ".join(f"{c}: {show(e)} -> {show(a)}" for c, e, a in d.columns)
        return f"{where}: {LEFT}, still in the target"
    return f"{where}: {d.kind}"


@dataclass
class MappingStats:
    rows: int = 0
    differing: int = 0
    seconds: float = 0.0


@dataclass
class Report:
    differences: list[Difference]
    stats: dict[str, MappingStats]
    tables: list[str]  # every target table verified
    seconds: float
    suspects: list[tuple[Any, Difference]] = field(default_factory=list, repr=False)  # (flow check, difference)
    # target table -> differing rows found beyond the run's limit (Verifier max_listed): counted, not listed
    # or re-checked
    unlisted: dict[str, int] = field(default_factory=dict)
    # rows that differ because changes of theirs wait in the dead-letter queue: known, not drift
    known: list[Difference] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [d.line() for d in self.differences]
        out.extend(f"{d.line()} (known: queued in the dead-letter queue, see `replicator dlq list`)"
                   for d in self.known)
        out.extend(f"{table}: {n} more differing rows, not listed or re-checked" for table, n in self.unlisted.items())
        for name, s in self.stats.items():
            out.append(f"{name}: {s.rows} rows checked, {s.differing} differing, {s.seconds:.1f} s")
        return out
