"""`check` on a mapped table that is not where the mapping says, without servers (a stub inspector)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from replicator.admin.preflight import _catalog_of
from replicator.changes import TableRef


class Inspector:
    def __init__(self, tables: set[tuple[str, str]]) -> None:
        self.tables = tables

    def has_table(self, name: str, schema: str) -> bool:
        return (schema, name) in self.tables

    def get_schema_names(self) -> list[str]:
        return sorted({s for s, _ in self.tables} | {"public", "information_schema"})


def findings(tables: set[tuple[str, str]], table: TableRef) -> list[Any]:
    conn = SimpleNamespace(name="idempiere", kind="postgresql")
    return _catalog_of(Inspector(tables), conn, None, table, ("c_bpartner_id",), "mapping customers (m.yaml:3)")  # type: ignore[arg-type]


def test_a_table_in_another_schema_is_named() -> None:
    """iDempiere's tables are in schema `adempiere`; `table: c_bpartner` means public.c_bpartner: check said only
    "does not exist"."""
    (f,) = findings({("adempiere", "c_bpartner")}, TableRef("public", "c_bpartner"))
    assert not f.ok
    assert f.what == ("mapping customers (m.yaml:3): table public.c_bpartner does not exist; adempiere.c_bpartner "
                      "does"), f.what
    assert f.fix == "write `table: adempiere.c_bpartner` in the mapping (a table without a schema is public's)"
    (f,) = findings(set(), TableRef("public", "c_bpartner"))
    assert f.what.endswith("table public.c_bpartner does not exist") and "create it" in f.fix
