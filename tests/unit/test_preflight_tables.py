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


class CompanyInspector:
    """LedgerSMB's `company`: primary key (entity_id, legal_name), a UNIQUE constraint on `id`, the DBA's unique
    index on `entity_id`, and a partial and an expression index that key nothing alone."""
    dialect = SimpleNamespace(name="postgresql")

    def __init__(self, indexes: list[dict[str, Any]]) -> None:
        self.indexes = indexes

    def has_table(self, name: str, schema: str) -> bool:
        return True

    def get_columns(self, name: str, schema: str) -> list[dict[str, Any]]:
        return [{"name": c} for c in ("id", "entity_id", "legal_name", "tax_id")]

    def get_pk_constraint(self, name: str, schema: str) -> dict[str, Any]:
        return {"constrained_columns": ["entity_id", "legal_name"]}

    def get_unique_constraints(self, name: str, schema: str) -> list[dict[str, Any]]:
        return [{"name": "company_id_key", "column_names": ["id"]}]

    def get_indexes(self, name: str, schema: str) -> list[dict[str, Any]]:
        return self.indexes


def key_finding(indexes: list[dict[str, Any]], key: tuple[str, ...]) -> Any:
    conn = SimpleNamespace(name="ledgersmb", kind="postgresql")
    m = SimpleNamespace(fields=())
    (f,) = _catalog_of(CompanyInspector(indexes), conn, m, TableRef("public", "company"), key,  # type: ignore[arg-type]
                       "mapping customer_company (10-customers.yaml:20)")
    return f


def test_a_unique_index_keys_a_mapping_as_a_unique_constraint_does() -> None:
    """`CREATE UNIQUE INDEX company_entity_id_u ON company (entity_id)` (docs/walkthrough-vtiger-ledgersmb.md):
    check said the key was "neither the primary key nor unique", though ON CONFLICT and the table scan use it."""
    entity_id = {"name": "company_entity_id_u", "column_names": ["entity_id"], "unique": True, "dialect_options": {}}
    f = key_finding([entity_id], ("entity_id",))
    assert f.ok and f.what.endswith("key ['entity_id'] of public.company is a unique key"), f.what
    assert key_finding([], ("id",)).ok  # the UNIQUE constraint, as before
    assert not key_finding([], ("entity_id",)).ok


def test_a_partial_an_expression_or_a_plain_index_keys_nothing() -> None:
    partial = {"name": "eca_u", "column_names": ["entity_id"], "unique": True,
               "dialect_options": {"postgresql_where": "(entity_class = 2)"}}
    expression = {"name": "lower_u", "column_names": [None], "expressions": ["lower(legal_name)"], "unique": True}
    plain = {"name": "company_entity_id_idx", "column_names": ["entity_id"], "unique": False}
    for ix in (partial, expression, plain):
        f = key_finding([ix], ("entity_id",))
        assert not f.ok and "is neither the primary key ['entity_id', 'legal_name'] nor unique" in f.what, ix
