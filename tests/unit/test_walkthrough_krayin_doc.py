"""docs/walkthrough-krayin-ofbiz.md without servers: its mapping files load, and every table, key and column they
name is in the page's own CREATE TABLE blocks (tests/integration/test_walkthrough_krayin_ofbiz.py runs the page
for real)."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.mapping.model import MappingSet
from tests.unit.test_walkthrough_doc import (ROOT, assert_mappings_fit, blocks, page_config, page_mappings,
                                             page_schemas)

PAGE = ROOT / "docs" / "walkthrough-krayin-ofbiz.md"


@pytest.fixture(scope="module")
def mset(tmp_path_factory: pytest.TempPathFactory) -> MappingSet:
    return page_mappings(PAGE, page_config(tmp_path_factory.mktemp("krayin"), ("krayin", "mariadb", "krayin"),
                                           ("ofbiz", "postgresql", "ofbiz")))


def test_the_page_holds_schemas_seeds_key_defaults_and_three_mapping_files() -> None:
    names = set(blocks(PAGE))
    assert {"krayin.sql", "ofbiz.sql", "ofbiz-keys.sql", "krayin-seed.sql", "ofbiz-seed.sql", "ofbiz-names.sql"} <= names
    assert sorted(n for n in names if n.startswith("mappings/")) == [
        "mappings/10-parties.yaml", "mappings/20-products.yaml", "mappings/30-quotes.yaml"]


def test_every_mapping_names_tables_keys_and_columns_of_the_schemas(mset: MappingSet, tmp_path: Path) -> None:
    schemas = page_schemas(PAGE, tmp_path, (("krayin", "krayin.sql", "krayin"), ("ofbiz", "ofbiz.sql", "public")))
    assert ("krayin", "attribute_values") in schemas["krayin"] and ("public", "order_item") in schemas["ofbiz"]
    assert schemas["ofbiz"][("public", "party_contact_mech")].primary_key == ("party_id", "contact_mech_id",
                                                                              "from_date")
    assert sorted(m.name for m in mset.mappings) == [
        "organization_names", "organizations", "person_birthday", "person_name", "person_names", "persons",
        "product_taxable", "products", "quote_items", "quotes"]
    assert_mappings_fit(mset, schemas)


def test_the_choices_the_page_explains(mset: MappingSet) -> None:
    by = {(f.mapping, f.stream): f for m in mset.mappings for f in m.flows}
    # parties of two types in one table, keyed by OFBiz's DEFAULT
    assert by["organizations", "krayin_to_ofbiz"].target.slice == (("party_type_id", "PARTY_GROUP"),)
    assert by["persons", "krayin_to_ofbiz"].target.slice == (("party_type_id", "PERSON"),)
    # the EAV attribute row of the birthday
    assert by["person_birthday", "ofbiz_to_krayin"].target.slice == (("entity_type", "persons"), ("attribute_id", 9))
    # Krayin's one name is OFBiz's person.krayin_name (the page's trigger keeps first_name / last_name with it),
    # both ways, and OFBiz's persons come to Krayin: no created_by
    name = by["person_name", "ofbiz_to_krayin"].fold
    assert name is not None and (name.value, name.into, name.parent) == ("krayin_name", "name", "persons")
    assert by["persons", "ofbiz_to_krayin"].created_by is None
    assert "ALTER TABLE person ADD COLUMN krayin_name VARCHAR(255)" in blocks(PAGE)["ofbiz-names.sql"]
    # Krayin's boolean attribute is OFBiz's 'Y'/'N' through the fold's value map, both ways
    taxable = by["product_taxable", "krayin_to_ofbiz"].fold
    assert taxable is not None
    assert (taxable.carry("krayin_to_ofbiz", 1), taxable.carry("krayin_to_ofbiz", 0)) == ("Y", "N")
    assert (taxable.carry("ofbiz_to_krayin", "Y"), taxable.carry("ofbiz_to_krayin", None)) == (1, None)
    # an order line's composite key from its order's id and the item's
    gen = by["quote_items", "krayin_to_ofbiz"].target.generate
    assert [(g.column, g.template) for g in gen] == [("order_id", "{quote_id}"), ("order_item_seq_id", "{id}")]
