"""docs/walkthrough.md without servers: its mapping files load, and every table, key and column they name
is in the page's own CREATE TABLE blocks (tests/integration/test_walkthrough.py runs the page for real)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from replicator.config import Account, Batching, Config, Connection, Secret
from replicator.mapping.model import MappingSet, load_mappings
from tests.unit.test_reference_mappings import parse_schema, written_columns

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "walkthrough.md"


def blocks(page: Path = PAGE) -> dict[str, str]:
    """The fenced blocks marked `<!-- file: NAME -->`, by NAME."""
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    names = [name for name, _ in found]
    assert len(names) == len(set(names)), names
    return dict(found)


def page_config(base: Path, *connections: tuple[str, str, str]) -> Config:
    """What a page's mapping files load against: its connections, each (name, kind, database), on no server, the
    mappings folder in `base`. None given: the pages' usual crm on PostgreSQL and erp on MariaDB."""
    connections = connections or (("crm", "postgresql", "crmdb"), ("erp", "mariadb", "erpdb"))
    acc = Account("u", Secret(""))
    return Config(base / "replicator.yaml",
                  tuple(Connection(name, kind, "h", 5432 if kind == "postgresql" else 3306, database, acc, acc)
                        for name, kind, database in connections),
                  base / "maps", Batching())


def page_mappings(page: Path, config: Config) -> MappingSet:
    """The page's `mappings/...` blocks written into `config`'s (new) mappings folder, and loaded."""
    config.mappings_dir.mkdir()
    for name, text in blocks(page).items():
        if name.startswith("mappings/"):
            (config.mappings_dir / name.split("/", 1)[1]).write_text(text, encoding="utf-8")
    return load_mappings(config)


def page_schemas(page: Path, tmp_path: Path, sides: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    """`{side: parsed CREATE TABLE blocks}` of the page, for each (side, block name, default schema)."""
    schemas = {}
    for side, sql, schema in sides:
        path = tmp_path / sql
        path.write_text(blocks(page)[sql], encoding="utf-8")
        schemas[side] = parse_schema(path, schema)
    return schemas


@pytest.fixture(scope="module")
def mset(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    return page_mappings(PAGE, page_config(tmp_path_factory.mktemp("walkthrough")))


def test_the_page_holds_the_schemas_the_seed_rows_and_four_mapping_files() -> None:
    names = set(blocks())
    assert {"crm.sql", "erp.sql", "crm-seed.sql", "erp-seed.sql"} <= names
    assert sorted(n for n in names if n.startswith("mappings/")) == [
        "mappings/10-customers.yaml", "mappings/20-contacts.yaml", "mappings/30-products.yaml",
        "mappings/40-orders.yaml"]


def test_every_mapping_loads_and_names_tables_keys_and_columns_of_the_schemas(
        mset: MappingSet, tmp_path: Path) -> None:
    schemas = page_schemas(PAGE, tmp_path, (("crm", "crm.sql", "public"), ("erp", "erp.sql", "erpdb")))
    assert sorted(m.name for m in mset.mappings) == ["contact_account", "contacts", "customer_custom", "customers",
                                                       "order_lines", "orders", "products"]
    assert_mappings_fit(mset, schemas)


def test_the_choices_the_page_explains(mset: MappingSet) -> None:
    by = {(f.mapping, f.stream): f for m in mset.mappings for f in m.flows}
    # application-made UUIDs in the CRM, AUTO_INCREMENT in the ERP
    gen = by["customers", "erp_to_crm"].target.generate
    assert [(g.column, g.kind) for g in gen] == [("id", "uuid")]
    # the custom-field table shares the tenant slice, its rows are created lazily (an update that finds no
    # row creates it), and a purge of one is not the company's delete
    assert by["customer_custom", "erp_to_crm"].source.slice == (("entity", 1),)
    assert by["customers", "erp_to_crm"].source.slice == (("entity", 1),)
    assert by["customer_custom", "erp_to_crm"].target.optional
    assert by["customer_custom", "crm_to_erp"].delete == "ignore"


def assert_mappings_fit(mset: MappingSet, schemas: dict[str, Any]) -> None:
    """Every table a page's mappings name is one of its CREATE TABLEs, keyed as the mapping says, with the
    columns its slices and written fields name (shared with test_walkthrough_odoo_doc.py)."""
    for flow in (f for m in mset.mappings for f in m.flows):
        for end in (flow.source, flow.target):
            table = schemas[end.side].get((end.table.schema, end.table.name))
            assert table is not None, f"{flow.mapping}: {end.side} table {end.table} is not in the page"
            assert end.key == table.primary_key, (flow.mapping, end.key, table.primary_key)
            assert {c for c, _ in end.slice} <= set(table.columns), (flow.mapping, end.slice)
        if flow.fold is None:
            target = schemas[flow.target.side][(flow.target.table.schema, flow.target.table.name)]
            assert written_columns(flow) <= set(target.columns), (flow.mapping, written_columns(flow))
