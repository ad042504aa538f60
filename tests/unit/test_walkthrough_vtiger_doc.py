"""docs/walkthrough-vtiger-ledgersmb.md without servers: its mapping files load, and every table, key and column
they name is in the page's own CREATE TABLE blocks (tests/integration/test_walkthrough_vtiger_ledgersmb.py runs the
page for real)."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.config import Account, Batching, Config, Connection, Secret
from replicator.mapping.model import MappingSet
from tests.unit.test_reference_mappings import parse_schema
from tests.unit.test_walkthrough_doc import ROOT, assert_mappings_fit, blocks, page_mappings, page_schemas

PAGE = ROOT / "docs" / "walkthrough-vtiger-ledgersmb.md"


@pytest.fixture(scope="module")
def mset(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    base = tmp_path_factory.mktemp("vtiger")
    acc = Account("u", Secret(""))
    config = Config(base / "replicator.yaml", (Connection("vtiger", "mariadb", "h", 3306, "vtiger", acc, acc),
                                               Connection("ledgersmb", "postgresql", "h", 5432, "ledgersmb", acc, acc)),
                    base / "maps", Batching())
    return page_mappings(PAGE, config)


def test_the_page_holds_schemas_seeds_key_defaults_and_three_mapping_files() -> None:
    names = set(blocks(PAGE))
    assert {"vtiger.sql", "ledgersmb.sql", "vtiger-keys.sql", "ledgersmb-keys.sql", "vtiger-seed.sql",
            "ledgersmb-seed.sql"} <= names
    assert sorted(n for n in names if n.startswith("mappings/")) == [
        "mappings/10-customers.yaml", "mappings/20-addresses.yaml", "mappings/30-contacts.yaml"]


def test_every_mapping_names_tables_keys_and_columns_of_the_schemas(mset: MappingSet, tmp_path: Path) -> None:
    schemas = page_schemas(PAGE, tmp_path, (("ledgersmb", "ledgersmb.sql", "public"),))
    # vtiger_crmentity_seq has no key (one row, one column) and no mapping reads it: the schema parser wants a key
    sql = blocks(PAGE)["vtiger.sql"]
    seq = sql[:sql.index("CREATE TABLE `vtiger_crmentity` (")]
    assert seq.startswith("CREATE TABLE `vtiger_crmentity_seq` (") and "PRIMARY KEY" not in seq
    (tmp_path / "vtiger.sql").write_text(sql[len(seq):], encoding="utf-8")
    schemas["vtiger"] = parse_schema(tmp_path / "vtiger.sql", "vtiger")
    # company's primary key holds its name: the mappings key it by the DBA's unique index on entity_id (check
    # accepts it); the page's schema block keeps LedgerSMB's key, so the test names the index's column here
    company = schemas["ledgersmb"][("public", "company")]
    assert company.primary_key == ("entity_id", "legal_name")
    company.primary_key = ("entity_id",)
    # entity is keyed by its serial id, UNIQUE beside the (control_code, entity_class) primary key
    entity = schemas["ledgersmb"][("public", "entity")]
    assert entity.primary_key == ("control_code", "entity_class")
    entity.primary_key = ("id",)
    eca = schemas["ledgersmb"][("public", "entity_credit_account")]
    assert eca.primary_key == ("entity_id", "meta_number", "entity_class")
    eca.primary_key = ("id",)
    person = schemas["ledgersmb"][("public", "person")]  # keyed by its UNIQUE (entity_id), as company
    assert person.primary_key == ("id",)
    person.primary_key = ("entity_id",)
    assert sorted(m.name for m in mset.mappings) == [
        "contact_email", "contact_person", "contacts", "customer_address", "customer_bill_city",
        "customer_bill_street", "customer_company", "customer_email", "customer_number", "customer_phone",
        "customer_tax", "customers"]
    assert_mappings_fit(mset, schemas)


def test_the_choices_the_page_explains(mset: MappingSet) -> None:
    by = {(f.mapping, f.stream): f for m in mset.mappings for f in m.flows}
    # one supertable on each side, split by its discriminator; vtiger's crmid by the DEFAULT and trigger
    assert by["customers", "ledgersmb_to_vtiger"].target.slice == (("setype", "Accounts"),)
    assert by["customers", "vtiger_to_ledgersmb"].target.slice == (("entity_class", 2),)
    assert [(g.column, g.kind) for g in by["customers", "ledgersmb_to_vtiger"].target.generate] == [
        ("crmid", "default")]
    assert by["contacts", "vtiger_to_ledgersmb"].target.slice == (("entity_class", 4),)
    # contact rows typed by contact_class, one fold per class
    assert by["customer_email", "ledgersmb_to_vtiger"].source.slice == (("contact_class_id", 12),)
    assert by["customer_phone", "ledgersmb_to_vtiger"].source.slice == (("contact_class_id", 1),)
    # the address only from LedgerSMB (a two-hop fold reads one way)
    assert {f.stream for m in mset.mappings if m.name == "customer_bill_city" for f in m.flows} == {
        "ledgersmb_to_vtiger"}
    # the custom-field table is created lazily and its purge is not the record's
    assert by["customer_tax", "ledgersmb_to_vtiger"].target.optional
    assert by["customer_tax", "vtiger_to_ledgersmb"].delete == "ignore"
