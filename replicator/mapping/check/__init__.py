"""Mappings against the column types of both live catalogs (`replicator check`).

`read_catalog(engine, tables)` reads the columns of the mapped tables through a SQLAlchemy Inspector
into `ColumnInfo`s; `check_types(mset, catalogs, kinds, specs)` compares every field plan of every
flow and returns `Finding`s naming file:line, the field's key path and how to fix it.
`check_config(config, mset)` does both for a configuration (what `preflight.run_checks` calls), reading
through `live_catalogs(config, tables, on_error)` (the stream's shape guard reads through it too).

Arguments of `check_types`:

- `catalogs`: `{side: {TableRef: {column: ColumnInfo}}}`. A side or table missing from it (the
  server was unreachable, the table does not exist) is skipped: `preflight._catalog` reports it.
  A missing column is skipped for the same reason.
- `kinds`: `{side: "postgresql" | "mariadb"}`, for the wording of fixes.
- `specs` (optional): `{(mapping name, field name): raw YAML spec of the field}` (the value under
  `fields:`, `None` for `~`), as `field_specs(directory)` builds it from the mapping files. The
  compiled model keeps only closures for maps, transforms, defaults and constants; with the raw
  specs the check also sees map values, the `unmapped:` policy, `default:` and `constant:`, and
  rules marked (spec) below apply. Without them only a constant (evaluated through its plan)
  is checked against its target column.

The package, one concept per module: `columns` (ColumnInfo), `checks` (CHECK clauses), `catalog`
(reading catalogs), `casts` (the cast table: the single source of truth for type-pair verdicts),
`values` (values spelled out in mappings), `specs` (the raw field specs), `checker` (the check).
"""
from replicator.mapping.check.casts import ERROR, FIT, LOSSY, UNKNOWN, _cast
from replicator.mapping.check.catalog import (column_info, inspected_columns, inspected_primary_key,
                                              inspected_unique_keys, read_catalog)
from replicator.mapping.check.checker import Finding, check_config, check_types
from replicator.mapping.check.checks import parse_check
from replicator.mapping.check.columns import KINDS, Catalog, ColumnInfo, Specs
from replicator.mapping.check.specs import field_specs

__all__ = ["ERROR", "FIT", "LOSSY", "UNKNOWN", "KINDS", "Catalog", "ColumnInfo", "Finding", "Specs", "_cast",
           "check_config", "check_types", "column_info", "field_specs", "inspected_columns", "inspected_primary_key",
           "inspected_unique_keys", "parse_check", "read_catalog"]
