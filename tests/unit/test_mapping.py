"""mapping: compiled once from YAML files, then `route` turns source RowChanges into TargetChanges."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from replicator import metrics
from replicator.changes import UNCHANGED, Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.errors import ConfigError, FatalError, RowError, Where
from replicator.mapping.model import Endpoint, MappingSet, load_mapping_file, load_mappings
from replicator.mapping.router import route
from tests.unit.mapsets import config, error, load, make_config, write  # noqa: F401 (config: the fixture)

CUSTOMER = TableRef("public", "customer")  # crm (PostgreSQL)
CUSTOMERS = TableRef("erpdb", "customers")  # erp (MariaDB), default schema = database

CUSTOMERS_YAML = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
      email: ~
      credit_limit: {owner: erp}
"""


@pytest.fixture
def mset(config: Config) -> MappingSet:
    return load(config, CUSTOMERS_YAML)


def ins(table: TableRef, row: dict) -> RowChange:
    return RowChange(table, Op.INSERT, None, row)


# ---------------------------------------------------------------- compiling


def pairs(flow):
    return tuple((p.source, p.target) for p in flow.plans)


def test_compiled_mapping(config: Config, mset: MappingSet) -> None:
    (m,) = mset.mappings
    assert m.name == "customers"
    assert m.endpoints == (Endpoint("crm", CUSTOMER, ("id",)), Endpoint("erp", CUSTOMERS, ("cid",)))
    assert [f.name for f in m.fields] == ["id", "name", "email", "credit_limit"]
    assert m.fields[1].columns == (("crm", "name"), ("erp", "customer_name"))
    assert m.fields[2].columns == (("crm", "email"), ("erp", "email"))
    assert [f.owner for f in m.fields] == [None, None, None, "erp"]
    assert m.fields[1].where == Where(str(config.mappings_dir / "m.yaml"), 8, "mappings.customers.fields.name")
    to_erp, to_crm = m.flows
    assert (to_erp.source.side, to_erp.target.side) == ("crm", "erp")
    assert pairs(to_erp) == (("id", "cid"), ("name", "customer_name"), ("email", "email"))
    assert to_erp.key_sources == ("id",)
    assert pairs(to_crm) == (("cid", "id"), ("customer_name", "name"), ("email", "email"),
                            ("credit_limit", "credit_limit"))
    assert to_crm.key_sources == ("cid",)
    assert to_erp.truncate == to_crm.truncate == "stop"


def test_default_schemas(mset: MappingSet) -> None:
    # PostgreSQL: public; MariaDB: the connection's database
    assert mset.tables("crm") == [CUSTOMER]
    assert mset.tables("erp") == [CUSTOMERS]


def test_explicit_schemas(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("table: customer,", "table: sales.customer,").replace(
        "table: customers,", "table: other_db.customers,")
    ms = load(config, text)
    assert ms.tables("crm") == [TableRef("sales", "customer")]
    assert ms.tables("erp") == [TableRef("other_db", "customers")]


def test_direction_both(mset: MappingSet) -> None:
    assert mset.source_tables("crm") == [CUSTOMER]
    assert mset.source_tables("erp") == [CUSTOMERS]
    assert [e.table for e in mset.target_endpoints("erp")] == [CUSTOMERS]
    assert [e.table for e in mset.target_endpoints("crm")] == [CUSTOMER]


def test_direction_one_way(config: Config) -> None:
    ms = load(config, CUSTOMERS_YAML.replace("direction: both", "direction: crm_to_erp"))
    (m,) = ms.mappings
    assert [(f.source.side, f.target.side) for f in m.flows] == [("crm", "erp")]
    assert ms.source_tables("crm") == [CUSTOMER]
    assert ms.source_tables("erp") == []
    assert ms.target_endpoints("crm") == []
    assert route(ms, "erp", ins(CUSTOMERS, {"cid": 1})) == []
    assert ms.tables("erp") == [CUSTOMERS]  # still a mapped table (preflight checks it)


def test_direction_other_way(config: Config) -> None:
    ms = load(config, CUSTOMERS_YAML.replace("direction: both", "direction: erp_to_crm"))
    assert [(f.source.side, f.target.side) for f in ms.mappings[0].flows] == [("erp", "crm")]
    assert route(ms, "crm", ins(CUSTOMER, {"id": 1, "name": "a", "email": "e"})) == []


def test_several_files_are_loaded_in_name_order(config: Config) -> None:
    write(config, "b.yml", CUSTOMERS_YAML)
    write(config, "a.yaml", CUSTOMERS_YAML.replace("customers:\n    direction", "orders:\n    direction")
          .replace("table: customer,", "table: orders,").replace("table: customers,", "table: orders,"))
    write(config, "notes.txt", "not a mapping")
    ms = load_mappings(config)
    assert [m.name for m in ms.mappings] == ["orders", "customers"]


def test_load_mapping_file_directly(config: Config) -> None:
    path = write(config, "x.yaml", CUSTOMERS_YAML)
    assert [m.name for m in load_mapping_file(path, config)] == ["customers"]


# ---------------------------------------------------------------- owner


def test_owner_field_flows_only_from_its_owner(mset: MappingSet) -> None:
    row = {"id": 1, "name": "Ann", "email": "a@x", "credit_limit": 500}
    (to_erp,) = route(mset, "crm", ins(CUSTOMER, row))
    assert to_erp.values == {"cid": 1, "customer_name": "Ann", "email": "a@x"}  # no credit_limit
    (to_crm,) = route(mset, "erp", ins(CUSTOMERS, {"cid": 1, "customer_name": "Ann", "email": "a@x",
                                                   "credit_limit": 500}))
    assert to_crm.values == {"id": 1, "name": "Ann", "email": "a@x", "credit_limit": 500}


def test_owner_field_not_needed_in_the_other_sides_row(mset: MappingSet) -> None:
    # crm need not even have the column erp owns: it is never read from crm
    (to_erp,) = route(mset, "crm", ins(CUSTOMER, {"id": 1, "name": "Ann", "email": "a@x"}))
    assert to_erp.key == (1,)


def test_key_field_always_flows_even_with_an_owner(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("id: {erp: cid}", "id: {erp: cid, owner: erp}")
    ms = load(config, text)
    to_erp, to_crm = ms.mappings[0].flows
    assert pairs(to_erp) == (("id", "cid"), ("name", "customer_name"), ("email", "email"))
    assert to_erp.key_sources == ("id",)
    (change,) = route(ms, "crm", ins(CUSTOMER, {"id": 7, "name": "n", "email": "e"}))
    assert change.key == (7,)
    assert change.values == {"customer_name": "n", "email": "e", "cid": 7}


def test_owner_must_be_a_side(config: Config) -> None:
    assert error(config, CUSTOMERS_YAML.replace("owner: erp", "owner: ERP")) == (
        "m.yaml:10: mappings.customers.fields.credit_limit.owner: 'ERP' is not one of crm, erp"
    )


# ---------------------------------------------------------------- routing


def test_route_insert(mset: MappingSet) -> None:
    out = route(mset, "crm", ins(CUSTOMER, {"id": 1, "name": "Ann", "email": None, "extra": "ignored"}))
    # a two-way mapping: an insert is checked against an existing row (expect: no row before)
    assert out == [TargetChange(CUSTOMERS, Op.INSERT, ("cid",), (1,), {"cid": 1, "customer_name": "Ann",
                                                                       "email": None},
                                expect={}, mapping="customers", source_key=(1,))]


def test_route_update_same_key(mset: MappingSet) -> None:
    change = RowChange(CUSTOMER, Op.UPDATE, {"id": 1, "name": "old", "email": None},
                       {"id": 1, "name": "new", "email": "e"})
    assert route(mset, "crm", change) == [
        TargetChange(CUSTOMERS, Op.UPDATE, ("cid",), (1,), {"cid": 1, "customer_name": "new", "email": "e"},
                     expect={"cid": 1, "customer_name": "old", "email": None}, mapping="customers", source_key=(1,))
    ]


def test_route_update_without_old_image(mset: MappingSet) -> None:
    change = RowChange(CUSTOMER, Op.UPDATE, None, {"id": 1, "name": "n", "email": "e"})
    assert [c.op for c in route(mset, "crm", change)] == [Op.UPDATE]


def test_unchanged_values_are_left_out(mset: MappingSet) -> None:
    change = RowChange(CUSTOMER, Op.UPDATE, None, {"id": 1, "name": UNCHANGED, "email": "e"})
    (out,) = route(mset, "crm", change)
    assert out.values == {"cid": 1, "email": "e"}
    assert UNCHANGED not in out.values.values()


def test_key_change_is_delete_then_upsert(mset: MappingSet) -> None:
    change = RowChange(CUSTOMER, Op.UPDATE, {"id": 1, "name": None, "email": None},
                       {"id": 2, "name": "n", "email": "e"})
    out = route(mset, "crm", change)
    assert [(c.op, c.key, c.values, c.expect) for c in out] == [
        (Op.DELETE, (1,), {}, {"cid": 1, "customer_name": None, "email": None}),
        (Op.UPDATE, (2,), {"cid": 2, "customer_name": "n", "email": "e"}, None),  # written whole, unchecked
    ]


def test_key_change_with_key_only_old_image(mset: MappingSet) -> None:
    change = RowChange(CUSTOMERS, Op.UPDATE, {"cid": 5}, {"cid": 6, "customer_name": "n", "email": "e",
                                                          "credit_limit": 1})
    out = route(mset, "erp", change)
    assert [(c.op, c.key) for c in out] == [(Op.DELETE, (5,)), (Op.UPDATE, (6,))]


def test_route_delete(mset: MappingSet) -> None:
    change = RowChange(CUSTOMER, Op.DELETE, {"id": 3, "name": None, "email": None}, None)
    assert route(mset, "crm", change) == [TargetChange(CUSTOMERS, Op.DELETE, ("cid",), (3,), {},
                                                       expect={"cid": 3, "customer_name": None, "email": None},
                                                       mapping="customers", source_key=(3,))]


def test_delete_without_old_key(mset: MappingSet) -> None:
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(CUSTOMER, Op.DELETE, None, None))
    assert str(info.value) == "table public.customer: delete without a row image"


def test_unmapped_table_routes_nowhere(mset: MappingSet) -> None:
    assert route(mset, "crm", ins(TableRef("public", "other"), {"id": 1})) == []
    assert route(mset, "erp", ins(CUSTOMER, {"id": 1})) == []  # right table name, wrong side


def test_missing_mapped_column_is_a_row_error(mset: MappingSet) -> None:
    with pytest.raises(RowError) as info:
        route(mset, "crm", ins(CUSTOMER, {"id": 1, "email": "e"}))
    err = info.value
    assert (err.table, err.column) == ("public.customer", "name")
    assert str(err) == ("table public.customer, column name: column is mapped but missing from the source row "
                        "(dropped or renamed?)")


def test_null_key_is_a_row_error(mset: MappingSet) -> None:
    with pytest.raises(RowError) as info:
        route(mset, "crm", ins(CUSTOMER, {"id": None, "name": "n", "email": "e"}))
    assert str(info.value) == "table public.customer, key (None,): key column is NULL"
    assert info.value.key == (None,)


def test_null_key_on_delete_is_a_row_error(mset: MappingSet) -> None:
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(CUSTOMER, Op.DELETE, {"id": None}, None))
    assert str(info.value) == "table public.customer, key (None,): key column is NULL"


def test_insert_without_row_image(mset: MappingSet) -> None:
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(CUSTOMER, Op.INSERT, None, None))
    assert str(info.value) == "table public.customer: insert without a row image"


def test_composite_key_in_target_key_order(config: Config) -> None:
    ms = load(config, """\
mappings:
  lines:
    direction: crm_to_erp
    crm: {table: order_line, key: [order_id, line_no]}
    erp: {table: lines, key: [nr, ord]}
    fields:
      order_id: {erp: ord}
      line_no: {erp: nr}
      qty: ~
""")
    (out,) = route(ms, "crm", ins(TableRef("public", "order_line"), {"order_id": 10, "line_no": 2, "qty": 5}))
    assert out.key_columns == ("nr", "ord")
    assert out.key == (2, 10)


def test_one_source_table_feeds_two_mappings(config: Config) -> None:
    write(config, "a.yaml", CUSTOMERS_YAML.replace("direction: both", "direction: crm_to_erp"))
    write(config, "b.yaml", """\
mappings:
  contacts:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: contacts, key: [id]}
    fields:
      id: ~
      email: ~
""")
    ms = load_mappings(config)
    out = route(ms, "crm", ins(CUSTOMER, {"id": 1, "name": "n", "email": "e"}))
    assert [c.table.name for c in out] == ["customers", "contacts"]


# ---------------------------------------------------------------- truncate


def test_truncate_stops_by_default(mset: MappingSet) -> None:
    with pytest.raises(FatalError) as info:
        route(mset, "crm", RowChange(CUSTOMER, Op.TRUNCATE))
    assert str(info.value) == (
        "mapping customers: public.customer was truncated on crm. Truncates stop the stream by default; set "
        "`truncate: propagate` (empty erpdb.customers too) or `truncate: ignore` in the mapping, then start again"
    )


def test_truncate_ignore(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    ms = load(config, CUSTOMERS_YAML.replace("direction: both", "direction: both\n    truncate: ignore"))
    labels = {"direction": "crm_to_erp", "table": "public.customer"}
    before = metrics.REGISTRY.get_sample_value("replicator_truncates_ignored_total", labels) or 0
    with caplog.at_level(logging.WARNING, logger="replicator.mapping"):
        assert route(ms, "crm", RowChange(CUSTOMER, Op.TRUNCATE)) == []
    assert metrics.REGISTRY.get_sample_value("replicator_truncates_ignored_total", labels) == before + 1
    assert caplog.messages == [
        "mapping customers: TRUNCATE of public.customer not propagated (truncate: ignore)"
    ]


def test_truncate_propagate(config: Config) -> None:
    ms = load(config, CUSTOMERS_YAML.replace("direction: both", "direction: both\n    truncate: propagate"))
    assert route(ms, "erp", RowChange(CUSTOMERS, Op.TRUNCATE)) == [
        TargetChange(CUSTOMER, Op.TRUNCATE, ("id",), (), {})
    ]


def test_truncate_unknown_policy(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("direction: both", "direction: both\n    truncate: cascade")
    assert error(config, text) == "m.yaml:4: mappings.customers.truncate: 'cascade' is not one of stop, ignore, propagate"


# ---------------------------------------------------------------- errors


def test_missing_key_list(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("erp: {table: customers, key: [cid]}", "erp: {table: customers}")
    assert error(config, text) == "m.yaml:5: mappings.customers.erp.key: required key is missing"


def test_empty_key_list(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("key: [cid]", "key: []")
    assert error(config, text) == (
        "m.yaml:5: mappings.customers.erp.key: key must be a non-empty list of column names "
        "(fix: every mapped table needs a primary key)"
    )


def test_key_is_not_a_list(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("key: [cid]", "key: cid")
    assert error(config, text) == "m.yaml:5: mappings.customers.erp.key: expected a list, got str 'cid'"


def test_missing_side(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("    erp: {table: customers, key: [cid]}\n", "")
    assert error(config, text) == "m.yaml:3: mappings.customers.erp: required section is missing"


def test_unknown_side_is_an_unknown_key(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("    fields:", "    wms: {table: x, key: [id]}\n    fields:")
    assert error(config, text) == (
        "m.yaml:6: mappings.customers.wms: unknown key 'wms' (known: accept_cascades, conflicts, created_by, crm, delete, direction, erp, fields, filter, gate, leave, link, on_error, owner, parent, parked, truncate)"
    )


def test_key_column_not_covered_by_a_field(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("      id: {erp: cid}\n", "")
    assert error(config, text) == (
        "m.yaml:6: mappings.customers.fields: key column 'cid' of erpdb.customers is not filled by any field "
        "(fix: add a field whose erp column is cid, or link: {crosswalk: true})"
    )


def test_unknown_direction(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("direction: both", "direction: erp_to_wms")
    assert error(config, text) == (
        "m.yaml:3: mappings.customers.direction: 'erp_to_wms' is not one of both, crm_to_erp, erp_to_crm"
    )


def test_missing_direction(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("    direction: both\n", "")
    assert error(config, text) == "m.yaml:3: mappings.customers.direction: required key is missing"


def test_unknown_key_in_field(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("name: {erp: customer_name}", "name: {erp: customer_name, ownr: erp}")
    assert error(config, text) == (
        "m.yaml:8: mappings.customers.fields.name.ownr: unknown key 'ownr' (known: conflicts, constant, crm, default, erp, insert_only, lossy, map, null_if, owner, references, transform, unmapped)"
    )


def test_field_of_the_wrong_shape(config: Config) -> None:
    text = CUSTOMERS_YAML.replace("email: ~", "email: mail")
    assert error(config, text) == (
        "m.yaml:9: mappings.customers.fields.email: a field is ~ (same column name on both sides) "
        "or a mapping of its settings"
    )


def test_no_fields(config: Config) -> None:
    text = CUSTOMERS_YAML.split("    fields:")[0] + "    fields: {}\n"
    assert error(config, text) == "m.yaml:6: mappings.customers.fields: a mapping needs at least one field"


def test_column_written_by_two_mappings(config: Config) -> None:
    write(config, "a.yaml", CUSTOMERS_YAML)
    text = """\
mappings:
  legacy:
    direction: erp_to_crm
    crm: {table: public.customer, key: [id]}
    erp: {table: old_customers, key: [id]}
    fields:
      id: ~
      name: ~
"""
    assert error(config, text, "b.yaml") == (
        "b.yaml:3: mappings.legacy: column name of public.customer on crm is written by mappings 'customers' "
        "and 'legacy' (fix: give the column one writer (owner: or a field in only one mapping; several mappings "
        "may write a column they all name in `link: {natural: [...]}`))"
    )


ITEMS_TWO_TABLES = """\
mappings:
  items:
    direction: crm_to_erp
    crm: {table: product_product, key: [id]}
    erp: {table: "tabItem", key: [name], generate: {name: {template: "{default_code}"}}}
    link: {natural: [default_code], crosswalk: true}
    fields:
      default_code: {erp: item_code}
  item_names:
    direction: crm_to_erp
    crm: {table: product_template, key: [id]}
    erp: {table: "tabItem", key: [name], generate: {name: {template: "{default_code}"}}}
    link: {natural: [default_code], crosswalk: true}
    fields:
      default_code: {erp: item_code}
      name: {erp: item_name, transform: [{json_get: en_US}]}
"""


def test_one_entity_in_two_tables_may_share_the_natural_key_column(config: Config) -> None:
    # Odoo keeps a product in product_template (its name) and product_product (what order lines reference);
    # ERPNext has one tabItem row: both mappings link it by item_code and write the same item_code
    ms = load(config, ITEMS_TWO_TABLES)
    assert {m.name for m in ms.mappings} == {"items", "item_names"}
    # a column that one of them writes as an ordinary field is still an overwrite
    msg = error(config, ITEMS_TWO_TABLES.replace("link: {natural: [default_code], crosswalk: true}\n    fields:\n"
                                                 "      default_code: {erp: item_code}\n      name:",
                                                 "link: {crosswalk: true}\n    fields:\n"
                                                 "      default_code: {erp: item_code}\n      name:"))
    assert "column item_code of erpdb.tabItem on erp is written by mappings 'items' and 'item_names'" in msg, msg


def test_several_mappings_may_write_other_columns_of_one_table(config: Config) -> None:
    write(config, "a.yaml", CUSTOMERS_YAML)
    write(config, "b.yaml", """\
mappings:
  status_history:
    direction: erp_to_crm
    crm: {table: public.customer, key: [id]}
    erp: {table: customer_status, key: [id]}
    fields:
      id: ~
      last_status: ~
""")
    ms = load_mappings(config)
    assert [f.target.table for f in ms.by_name["status_history"].flows] == [CUSTOMER]
    assert len(ms.routes[("erp", TableRef("erpdb", "customer_status"))]) == 1


def test_mapping_defined_twice_across_files(config: Config) -> None:
    write(config, "a.yaml", CUSTOMERS_YAML)
    msg = error(config, "# same name again\n" + CUSTOMERS_YAML, "b.yaml")
    assert msg == "b.yaml:4: mappings.customers: mapping 'customers' is defined twice (also at a.yaml:3: mappings.customers)"


def test_mapping_defined_twice_in_one_file(config: Config) -> None:
    text = CUSTOMERS_YAML + CUSTOMERS_YAML.replace("mappings:\n", "")
    assert error(config, text) == "m.yaml:11: mappings.customers: duplicate key 'customers' (first on line 2)"


def test_unknown_top_level_key(config: Config) -> None:
    assert error(config, CUSTOMERS_YAML + "mapping: {}\n") == "m.yaml:11: mapping: unknown key 'mapping' (known: mappings)"


def test_missing_mappings_section(config: Config) -> None:
    assert error(config, "customers: {}\n") == "m.yaml:1: mappings: required section is missing"


def test_yaml_error_in_mapping_file(config: Config) -> None:
    assert error(config, CUSTOMERS_YAML + "  broken: [\n") == (
        "m.yaml:12: <syntax>: YAML error: expected the node content, but found '<stream end>'"
    )


def test_empty_directory(config: Config) -> None:
    (config.mappings_dir / "README").write_text("no yaml here")
    with pytest.raises(ConfigError) as info:
        load_mappings(config)
    assert str(info.value) == f"no *.yaml files in mapping directory {config.mappings_dir}"


def test_missing_directory(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_mappings(config)
    assert str(info.value) == (
        f"{tmp_path / 'replicator.yaml'}: mappings: mapping directory {tmp_path / 'maps'} does not exist"
    )


def test_an_owned_field_without_a_column_on_its_owner_is_refused(config: Config) -> None:
    # Twenty keeps a person's name in two columns, Akaunting in one: written as a concat field with no Twenty
    # column, it was loaded, checked and never written (Akaunting's contact persons arrived without names)
    msg = error(config, """\
mappings:
  people:
    direction: both
    crm: {table: person, key: [id]}
    erp: {table: contact_persons, key: [id]}
    fields:
      id: ~
      fullname: {crm: ~, erp: name, owner: crm, transform: [{concat: {fields: [first, last], sep: " "}}]}
""")
    assert "m.yaml:8: mappings.people.fields.fullname" in msg, msg
    assert "no column on crm (crm: ~) and no constant: nothing is ever written" in msg, msg
    assert "crm: <column>" in msg, msg
    ok = load(config, """\
mappings:
  people:
    direction: both
    crm: {table: person, key: [id]}
    erp: {table: contact_persons, key: [id]}
    fields:
      id: ~
      fullname: {crm: first, erp: name, owner: crm, transform: [{concat: {fields: [first, last], sep: " "}}]}
      status: {crm: ~, owner: erp}
""")
    assert [p.target for p in ok.mappings[0].flows[0].plans if p.name == "fullname"] == ["name"]
