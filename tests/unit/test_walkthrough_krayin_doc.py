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
    assert {"krayin.sql", "ofbiz.sql", "ofbiz-keys.sql", "krayin-seed.sql", "ofbiz-seed.sql"} <= names
    assert sorted(n for n in names if n.startswith("mappings/")) == [
        "mappings/10-parties.yaml", "mappings/20-products.yaml", "mappings/30-quotes.yaml"]


def test_every_mapping_names_tables_keys_and_columns_of_the_schemas(mset: MappingSet, tmp_path: Path) -> None:
    schemas = page_schemas(PAGE, tmp_path, (("krayin", "krayin.sql", "krayin"), ("ofbiz", "ofbiz.sql", "public")))
    assert ("krayin", "attribute_values") in schemas["krayin"] and ("public", "order_item") in schemas["ofbiz"]
    assert schemas["ofbiz"][("public", "party_contact_mech")].primary_key == ("party_id", "contact_mech_id",
                                                                              "from_date")
    assert sorted(m.name for m in mset.mappings) == [
        "organization_names", "organizations", "person_birthday", "person_names", "persons", "products",
        "quote_items", "quotes"]
    assert_mappings_fit(mset, schemas)


def test_the_choices_the_page_explains(mset: MappingSet) -> None:
    by = {(f.mapping, f.stream): f for m in mset.mappings for f in m.flows}
    # parties of two types in one table, keyed by OFBiz's DEFAULT
    assert by["organizations", "krayin_to_ofbiz"].target.slice == (("party_type_id", "PARTY_GROUP"),)
    assert by["persons", "krayin_to_ofbiz"].target.slice == (("party_type_id", "PERSON"),)
    # the EAV attribute row of the birthday
    assert by["person_birthday", "ofbiz_to_krayin"].target.slice == (("entity_type", "persons"), ("attribute_id", 9))
    # Krayin's one name split into OFBiz's two, nothing dropped: the last part keeps the rest
    plans = {p.target: p for p in by["person_names", "krayin_to_ofbiz"].plans}
    first, last = plans["first_name"].convert, plans["last_name"].convert
    assert first is not None and last is not None
    assert (first("Wile E. Coyote", {}), last("Wile E. Coyote", {})) == ("Wile", "E. Coyote")
    assert (first("Cher", {}), last("Cher", {})) == ("Cher", None)
    # an order line's composite key from its order's id and the item's
    gen = by["quote_items", "krayin_to_ofbiz"].target.generate
    assert [(g.column, g.template) for g in gen] == [("order_id", "{quote_id}"), ("order_item_seq_id", "{id}")]
