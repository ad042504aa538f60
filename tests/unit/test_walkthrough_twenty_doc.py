"""docs/walkthrough-twenty-akaunting.md without servers: its mapping files load, and every table, key and column
they name is in the page's own CREATE TABLE blocks (tests/integration/test_walkthrough_twenty_akaunting.py runs
the page for real)."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.mapping.model import MappingSet
from tests.unit.test_walkthrough_doc import (ROOT, assert_mappings_fit, blocks, page_config, page_mappings,
                                             page_schemas)

PAGE = ROOT / "docs" / "walkthrough-twenty-akaunting.md"
WS = "workspace_1wgvd1injqtife6y4rvfbu3h5"


@pytest.fixture(scope="module")
def mset(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    return page_mappings(PAGE, page_config(tmp_path_factory.mktemp("twenty"), ("twenty", "postgresql", "twenty"),
                                           ("akaunting", "mariadb", "erpdb")))


def test_the_page_holds_schemas_seeds_and_two_mapping_files() -> None:
    names = set(blocks(PAGE))
    assert {"twenty.sql", "akaunting.sql", "twenty-seed.sql", "akaunting-seed.sql"} <= names
    assert sorted(n for n in names if n.startswith("mappings/")) == [
        "mappings/10-customers.yaml", "mappings/20-invoices.yaml"]


def test_every_mapping_names_tables_keys_and_columns_of_the_schemas(mset: MappingSet, tmp_path: Path) -> None:
    schemas = page_schemas(PAGE, tmp_path, (("twenty", "twenty.sql", "public"), ("akaunting", "akaunting.sql", "erpdb")))
    assert (WS, "opportunity") in schemas["twenty"] and ("erpdb", "ak_document_items") in schemas["akaunting"]
    assert sorted(m.name for m in mset.mappings) == ["customer_persons", "customers", "invoice_items", "invoices"]
    assert_mappings_fit(mset, schemas)


def test_the_choices_the_page_explains(mset: MappingSet) -> None:
    by = {(f.mapping, f.stream): f for m in mset.mappings for f in m.flows}
    # Akaunting's tenant and discriminator
    assert by["customers", "twenty_to_akaunting"].target.slice == (("company_id", 1), ("type", "customer"))
    # micros into amounts, exactly
    plan = next(p for p in by["invoices", "twenty_to_akaunting"].plans if p.target == "amount")
    assert plan.convert is not None and plan.convert(250000000000, {}) == 250000
    # Twenty's two name columns into Akaunting's one, trimmed when the first name is ''
    name = next(p for p in by["customer_persons", "twenty_to_akaunting"].plans if p.target == "name")
    assert name.convert is not None and name.convert("", {"nameFirstName": "", "nameLastName": "Hank"}) == "Hank"
    # a won opportunity creates the invoice and its line once
    assert by["invoices", "twenty_to_akaunting"].gate == ("stage", ("CUSTOMER",))
