"""`replicator verify [--mapping NAME] [--repair]`: both sides compared through the mappings.

What is compared, where, and why
--------------------------------
Verification works per Flow (one direction of one mapping). The mapping's transforms run in Python,
so no side can be checksummed in SQL: every source row is read once (in primary-key chunks of
`verify.chunk_rows`, `tablescan.TableScanner`, the same values the stream decoder produces), routed
through the flow exactly as replication routes it (`router.target_values`, filter, gate, created_by,
references translated through the referenced mapping's link) and converted by the target applier's
converters: that is the row replication would have written (the *expected* row). Its counterpart is
found by the routed key (shared keys and natural-key links), else by the crosswalk pair (in the target
database for pairs this direction created, in the source database for pairs the other direction
created), else, with `link: natural`, by the natural key. Where both tables list their rows in one
order (a shared integer key) the target is read alongside the source in key order and the rows are
paired as they come; otherwise counterparts are read from the target by key. Only the flow's planned
non-key target columns are compared (ownership: a flow only plans the fields its source side owns);
the key itself is matched by the lookup, following the target collation.

Both sides of a chunk are in memory, so each expected row is compared with its counterpart directly: a
row whose values all have equal canonical forms agrees (`compare.row_agrees`, which skips the
normalisation for two values of one plain type that are equal); only the other rows are compared
column by column, with the tolerances of `compare.values_equal` (decimal scale, fractional seconds;
floats exactly), which decides.

- A filtered source row expects nothing. A row whose gate is closed, that the flow may not create
  (`created_by` the other side) or whose referenced record has no counterpart (it would be parked) is
  not missing when it has no counterpart; when it has one, its fields are compared (an unresolved
  foreign key column is skipped).
- Extra target rows (no source row produces their key) are looked for only where they are a fault: a
  one-directional flow with `delete: propagate`, shared keys copied unchanged, and no other mapping
  writing the table. For two-way mappings a target-only row is the other flow's missing row; with
  `delete: ignore` or a soft delete extra rows are expected; crosswalk flows are skipped (a target row
  without a pair may be a row the target's own users created).
- Two-way mappings: a compared field is in agreement when either direction maps one side's value onto
  the other's (the direction of its last change); with a one-way transform or an unmapped value's
  default the two images differ although replication is complete.
- Before anything is reported it is re-checked (`replicator.verify.run`): while the stream's
  checkpoint in the target has not reached the source's current position (at most
  `verify.recheck_seconds`) the rows are compared again every half second; a row that agrees once is
  dropped. A column is reported only while its expected value stays the same from one comparison to
  the next. A stream lagging longer than `recheck_seconds` shows its pending rows as differences.

Memory is bounded by the chunk size, never by the table: a source chunk, a target chunk and the chunk
being read are alive at most, and nothing is kept across chunks but the differences (`verify_scan`).
One read-only session per side.

Modules: `verify_side` (a database session), `verify_flow` (expected rows, counterparts, comparing),
`verify_scan` (reading and pairing chunks), `verify_run` (a run and its re-checks), `verify_report`
(differences, report lines), `verify_periodic` (inside the daemon), `repair` (`--repair`: the reported
rows written through the tagged apply path). This module is the command line, and the names other
modules import.
"""
from __future__ import annotations

import argparse
from typing import TextIO

from replicator.config import Config
from replicator.mapping.model import MappingSet
from replicator.verify.flow import FlowCheck
from replicator.verify.periodic import PeriodicVerifier
from replicator.verify.report import (DIFFERS, EXTRA, FAILED, MISSING, Difference, MappingStats, Report, Stopped,
                                      format_difference, key_text)
from replicator.verify.run import Verifier, stable
from replicator.verify.side import Side

__all__ = ["DIFFERS", "EXTRA", "FAILED", "MISSING", "Difference", "FlowCheck", "MappingStats", "PeriodicVerifier",
           "Report", "Side", "Stopped", "Verifier", "add_arguments", "command", "format_difference", "key_text",
           "stable"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapping", action="append", metavar="NAME", help="only this mapping (repeatable; default: all)")
    parser.add_argument("--repair", action="store_true",
                        help="write the differences through the tagged apply path (they do not echo)")


def command(args: argparse.Namespace, config: Config, mset: MappingSet, out: TextIO) -> int:
    """`replicator verify`: 0 when the sides agree (after --repair: when the repaired rows agree), else 1."""
    names = list(getattr(args, "mapping", None) or [])
    verifier = Verifier(config, mset)
    try:
        report = verifier.run(names or None)
        for line in report.lines():
            print(line, file=out)
        if not report.differences:
            known = f" but for {len(report.known)} row(s) with changes in the dead-letter queue" if report.known else ""
            print(f"verify: the sides agree{known}", file=out)
            return 0
        if not getattr(args, "repair", False):
            print(f"verify: {len(report.differences)} row(s) differ", file=out)
            return 1
        from replicator.verify.repair import repair

        written, remaining = repair(verifier, report.suspects, out)
        for _fc, d in remaining:
            print(f"still differs: {d.line()}", file=out)
        if remaining:
            print(f"verify: repaired {written} row(s); {len(remaining)} row(s) still differ", file=out)
            return 1
        print(f"verify: repaired {written} row(s); the sides agree", file=out)
        return 0
    finally:
        verifier.close()
