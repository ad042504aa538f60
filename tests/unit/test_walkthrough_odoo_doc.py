"""docs/walkthrough-odoo-erpnext.md without servers: its mapping files load, and every table, key and column
they name is in the page's own CREATE TABLE blocks (tests/integration/test_walkthrough_odoo_erpnext.py runs
the page for real)."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.mapping.model import MappingSet
from tests.unit.test_walkthrough_doc import (ROOT, assert_mappings_fit, blocks, page_config, page_mappings,
                                             page_schemas)

PAGE = ROOT / "docs" / "walkthrough-odoo-erpnext.md"


@pytest.fixture(scope="module")
def mset(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    return page_mappings(PAGE, page_config(tmp_path_factory.mktemp("odoo")))


def test_the_page_holds_schemas_stamps_seeds_and_three_mapping_files() -> None:
    names = set(blocks(PAGE))
    assert {"crm.sql", "erp.sql", "crm-stamps.sql", "erp-stamps.sql", "crm-seed.sql", "erp-seed.sql"} <= names
    assert sorted(n for n in names if n.startswith("mappings/")) == [
        "mappings/10-customers.yaml", "mappings/20-items.yaml", "mappings/30-orders.yaml"]


def test_every_mapping_names_tables_keys_and_columns_of_the_schemas(mset: MappingSet, tmp_path: Path) -> None:
    schemas = page_schemas(PAGE, tmp_path, (("crm", "crm.sql", "public"), ("erp", "erp.sql", "erpdb")))
    assert ("erpdb", "tabSales Order Item") in schemas["erp"] and ("erpdb", "tabDynamic Link") in schemas["erp"]
    assert sorted(m.name for m in mset.mappings) == ["contact_company", "contacts", "customer_tag", "customers",
                                                       "item_names", "items", "order_lines", "orders",
                                                       "partner_tags"]
    assert_mappings_fit(mset, schemas)


def test_the_choices_the_page_explains(mset: MappingSet) -> None:
    by = {(f.mapping, f.stream): f for m in mset.mappings for f in m.flows}
    # ERPNext's application names rows: replicator makes the key when it creates one there
    assert [(g.column, g.kind) for g in by["customers", "crm_to_erp"].target.generate] == [("name", "template")]
    assert [(g.column, g.kind) for g in by["contacts", "crm_to_erp"].target.generate] == [("name", "uuid")]
    # one Odoo table, two entities
    assert by["customers", "erp_to_crm"].target.slice == (("is_company", True),)
    assert by["contacts", "erp_to_crm"].target.slice == (("is_company", False), ("type", "contact"))
    # Odoo's view of a partner it did not make: set once, never over Odoo's own value
    assert {"customer_rank", "type"} <= by["customers", "erp_to_crm"].insert_only
    # the product's two Odoo tables both write item_code, the column both link by
    assert {p.target for p in by["items", "crm_to_erp"].plans} >= {"item_code"}
    assert {p.target for p in by["item_names", "crm_to_erp"].plans} >= {"item_code", "item_name"}
