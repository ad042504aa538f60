"""`replicator explain`: what one source row becomes on the other side, and why. Writes nothing.

    replicator explain --config C --mapping NAME --side SIDE (--key K[,K2] | --row JSON) [--json] [--offline]

The row is read from SIDE's database by the mapping's key columns (the apply account, in a read-only
session whose transactions are rolled back), or taken from `--row` as a JSON object. It becomes an
INSERT-like `RowChange` and goes through the mapping's flow from SIDE exactly as the daemon routes it
(`router.route_flow`, `router.target_values`). The explanation names, for the target table:

- each target column, its value and the rules that produced it (the field, a rename, the value-map
  entry used, each transform with its input and output, a default or constant, a reference);
- the fields that are not sent (owned by the other side, no column on one side);
- the filter (passes, or which condition fails and on what value) and the gate (open or closed, why);
- the key: for shared keys the target key and whether that row exists; for links whether a
  counterpart exists (by key, crosswalk pair in either database, or natural key), so whether the row
  would update it or create a new one; for references whether each referenced record has a
  counterpart, else "would be parked waiting for <mapping> <value>".

Lookups in the target (and in both crosswalk tables) use `links.Linker`'s own read paths on
connections that are read-only at the session level, and every transaction is rolled back.
Without servers (`--offline`) the counterpart part says what would decide it instead.

The package: `inputs` (the flow, key, row and raw YAML given), `explanation` (the row through the flow),
`lookup` (read-only sessions and counterpart lookups), `render` (JSON or text), `command` (`run`, what
the CLI calls).

Only ConfigError leaves this package for a usage problem (unknown mapping or side, a mapping that does
not flow from the side, bad --row JSON, wrong number of key parts, no row with that key); the CLI
turns it into exit status 78.
"""
from __future__ import annotations

from replicator.mapping.explain.command import ConflictReader, run
from replicator.mapping.explain.explanation import explain
from replicator.mapping.explain.inputs import find_flow, parse_key, parse_row, raw_spec
from replicator.mapping.explain.lookup import DbLookup, ReadOnlyDb
from replicator.mapping.explain.render import jsonable, render_json, render_text

__all__ = ["ConflictReader", "DbLookup", "ReadOnlyDb", "explain", "find_flow", "jsonable", "parse_key", "parse_row",
           "raw_spec", "render_json", "render_text", "run"]
