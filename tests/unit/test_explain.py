"""explain: the rules behind each target column, filters, gates, keys, links and references, the text
and JSON output, and the CLI's exit codes. No servers: rows come from --row and counterparts from a
fake lookup (the real one is covered by tests/integration/test_explain.py)."""
from __future__ import annotations

import dataclasses

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from replicator.cli import main
from replicator.config import Config
from replicator.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from replicator.mapping.explain import (explain, find_flow, jsonable, parse_key, parse_row, raw_spec, render_json,
                                render_text)
from replicator.mapping.model import MappingSet, load_mappings
from replicator.mapping.router import Ref
from tests.unit import mapsets

MAPPINGS = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {natural: [vat_id], crosswalk: true}
    filter:
      crm_to_erp: {deleted: {eq: false}, status: {in: [active, blocked]}}
    fields:
      vat_id: {transform: {crm_to_erp: [trim, upper]}}
      name: {erp: customer_name, transform: [trim, {truncate: 5}], default: "n/a"}
      status: {erp: status_code, map: [{crm: active, erp: A}, {crm: blocked, erp: B}]}
      tier: {map: [{crm: 1, erp: gold}, {crm: 2, erp: silver}], unmapped: {default: bronze}}
      region: {map: [{crm: north, erp: N}], unmapped: pass}
      credit_limit: {owner: erp}
      notes: {erp: ~}
      origin: {crm: ~, erp: source, constant: crm}
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: sales_orders, key: [id]}
    gate:
      crm_to_erp: {column: status, becomes: [confirmed, won]}
    fields:
      id: ~
      customer_id: {erp: cust_no, references: customers}
      total: ~
  products:
    direction: both
    owner: crm
    crm: {table: product, key: [sku]}
    erp: {table: items, key: [sku]}
    fields:
      sku: ~
      price: {erp: list_price}
      stock: {owner: erp}
  accounts:
    direction: both
    created_by: erp
    crm: {table: account, key: [id]}
    erp: {table: accounts, key: [id]}
    fields:
      id: ~
      name: ~
"""

CONFIG = """\
connections:
  crm:
    kind: postgresql
    host: 127.0.0.1
    port: 1
    database: crm
    user: u
  erp:
    kind: mariadb
    host: 127.0.0.1
    port: 1
    database: erpdb
    user: u
mappings: maps
"""

CUSTOMER = {"id": 42, "vat_id": " de1 ", "name": "  Annabel  ", "status": "active", "tier": 2,
            "region": "west", "credit_limit": 5, "notes": "x", "deleted": False, "extra": 1}


def make_config(tmp_path: Path) -> Config:
    return mapsets.make_config(tmp_path, host="127.0.0.1", port=1, crm_db="crm")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "m.yaml").write_text(MAPPINGS)
    (tmp_path / "replicator.yaml").write_text(CONFIG)
    return make_config(tmp_path)


@pytest.fixture
def mset(config: Config) -> MappingSet:
    return load_mappings(config)


class FakeLookup:
    """Stands in for explain.DbLookup: canned counterparts, no database."""

    def __init__(self, *, rows: dict | None = None, pairs: dict | None = None, natural: dict | None = None,
                 refs: dict | None = None, parked: int = 0, fail: str | None = None):
        self.rows = rows or {}  # (table name, key tuple) -> True
        self.pairs = pairs or {}  # (mapping, source key) -> target key
        self.natural_rows = natural or {}  # tuple(sorted(cols.items())) -> [keys]
        self.refs = refs or {}  # (mapping, value) -> target value
        self.parked_n = parked
        self.fail = fail
        self.resets = 0
        self.calls: list[str] = []

    def _maybe_fail(self, what: str) -> None:
        self.calls.append(what)
        if self.fail == what:
            raise RuntimeError(f"{what} broke\nsecond line")

    def exists(self, endpoint, key):
        self._maybe_fail("exists")
        return self.rows.get((endpoint.table.name, tuple(key)), False)

    def crosswalk(self, mapping, skey):
        self._maybe_fail("crosswalk")
        hit = self.pairs.get((mapping, tuple(skey)))
        return (hit, "erp's crosswalk replicator.crosswalk") if hit else None

    def natural(self, endpoint, cols):
        self._maybe_fail("natural")
        return self.natural_rows.get(tuple(sorted(cols.items())), [])

    def resolve(self, ref):
        self._maybe_fail("resolve")
        return self.refs.get((ref.mapping, ref.value))

    def parked(self, mapping, key):
        self._maybe_fail("parked")
        return self.parked_n

    def reset(self):
        self.resets += 1


def ex(mset: MappingSet, config: Config, name: str, side: str, row: dict, **kw: Any) -> dict:
    return explain(mset, name, side, row, spec=raw_spec(config, name), **kw)


def col(result: dict, name: str) -> dict:
    return next(c for c in result["columns"] if c["column"] == name)


# ---------------------------------------------------------------- inputs


def test_find_flow_errors_name_what_exists(mset: MappingSet) -> None:
    known = r"\(mappings: accounts, customers, products, quotes\)"
    with pytest.raises(ConfigError, match=r"unknown mapping 'nope' " + known):
        find_flow(mset, "nope", "crm")
    with pytest.raises(ConfigError, match=r"unknown side 'sap' for mapping 'quotes' \(sides: crm, erp\)"):
        find_flow(mset, "quotes", "sap")
    with pytest.raises(ConfigError, match="mapping 'quotes' does not flow from erp: it flows crm_to_erp"):
        find_flow(mset, "quotes", "erp")
    m, flow = find_flow(mset, "customers", "erp")
    assert flow.stream == "erp_to_crm"


def test_parse_key_and_row(mset: MappingSet) -> None:
    _, flow = find_flow(mset, "customers", "crm")
    assert parse_key("42", flow.source) == ("42",)
    assert parse_key(" 42 ", flow.source) == ("42",)
    # a one-column key is the whole text: ERPNext's names hold commas ("Doe, John"); a non-number for an
    # integer key is the database's error, which explain reports as a ConfigError
    assert parse_key("Doe, John", flow.source) == ("Doe, John",)
    assert parse_key("1,2", flow.source) == ("1,2",)
    with pytest.raises(ConfigError, match="does not fit"):
        parse_key("", flow.source)
    two = dataclasses.replace(flow.source, key=("category_id", "partner_id"))
    assert parse_key("7, 2", two) == ("7", "2")
    assert parse_key('["Acme, Inc.", 2]', two) == ("Acme, Inc.", "2")
    with pytest.raises(ConfigError, match=r"needs 2 comma-separated value\(s\), for category_id, partner_id"):
        parse_key("1,2,3", two)
    with pytest.raises(ConfigError, match="not a JSON array"):
        parse_key("[1,", two)
    with pytest.raises(ConfigError, match="JSON array of 2 plain values"):
        parse_key("[1, null]", two)
    with pytest.raises(ConfigError, match="JSON array of 2 plain values"):
        parse_key("[true, 2]", two)  # str() would send 'True'
    assert parse_row('{"id": 1, "x": [1, 2], "y": null}') == {"id": 1, "x": [1, 2], "y": None}
    with pytest.raises(ConfigError, match="--row is not valid JSON"):
        parse_row("{id: 1}")
    with pytest.raises(ConfigError, match="--row must be a JSON object"):
        parse_row("[1, 2]")


# ---------------------------------------------------------------- columns and their rules


def test_columns_with_rename_map_transforms_default_constant(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", CUSTOMER)
    assert [c["column"] for c in r["columns"]] == ["vat_id", "customer_name", "status_code", "tier", "region",
                                                   "source"]
    assert col(r, "vat_id")["value"] == "DE1"
    assert col(r, "vat_id")["rules"] == ["crm.vat_id -> erp.vat_id (same name)",
                                         'transform trim: " de1 " -> "de1"', 'transform upper: "de1" -> "DE1"']
    assert col(r, "customer_name")["value"] == "Annab"
    assert col(r, "customer_name")["rules"] == [
        "crm.name -> erp.customer_name (renamed)", 'transform trim: "  Annabel  " -> "Annabel"',
        'transform {truncate: 5}: "Annabel" -> "Annab"', 'default "n/a" not used (the value is not NULL)']
    assert col(r, "status_code")["value"] == "A"
    assert col(r, "status_code")["rules"][1] == 'value map entry 1: crm "active" -> erp "A"'
    assert col(r, "tier")["value"] == "silver"
    assert col(r, "tier")["rules"][1] == 'value map entry 2: crm 2 -> erp "silver"'
    assert col(r, "region")["value"] == "west"
    assert col(r, "region")["rules"][1] == 'value map: "west" is not listed, passed unchanged (unmapped: pass)'
    assert col(r, "source") == {"column": "source", "field": "origin", "source_column": None, "value": "crm",
                                "rules": ['constant "crm" (no crm column)']}
    assert r["unmapped_source_columns"] == ["extra"]


def test_map_loose_match_unmapped_default_null_and_default_used(mset: MappingSet, config: Config) -> None:
    row = dict(CUSTOMER, tier="1", name=None, status=None)
    r = ex(mset, config, "customers", "crm", dict(row))
    assert col(r, "tier")["value"] == "gold"  # text "1" matches the number 1 (the matching rule)
    assert col(r, "tier")["rules"][1] == 'value map entry 1: crm 1 -> erp "gold"'
    assert col(r, "customer_name")["value"] == "n/a"
    assert col(r, "customer_name")["rules"][-1] == 'default "n/a" (the value is NULL)'
    assert col(r, "status_code")["value"] is None
    assert col(r, "status_code")["rules"][1] == "value map: NULL stays NULL"
    r = ex(mset, config, "customers", "crm", dict(CUSTOMER, tier=9))
    assert col(r, "tier")["value"] == "bronze"
    assert col(r, "tier")["rules"][1] == 'value map: 9 is not listed, unmapped default "bronze"'


def test_a_failing_column_is_named_and_the_outcome_is_a_row_error(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", dict(CUSTOMER, status="blocked", region=7, name=12))
    c = col(r, "customer_name")
    assert c["value"] is None
    assert "column name: field name: transform trim: expects text, got int" in c["error"]
    assert c["rules"][-1] == "fails: transform trim: expects text, got int"
    assert r["outcome"]["action"] == "error"
    assert r["outcome"]["text"].startswith("row error: table public.customer, key (42,), column name")
    text = render_text(r)
    assert "customer_name  (error)" in text
    assert text.count("expects text, got int") == 2  # the column's rule and the result; no extra error line

    r = ex(mset, config, "customers", "crm", dict(CUSTOMER, status="gone"))
    assert col(r, "status_code")["rules"][-1] == \
        'fails: transform map: crm->erp: "gone" is not in the map (unmapped: error)'


def test_missing_source_column_is_an_error_of_that_column(mset: MappingSet, config: Config) -> None:
    row = {k: v for k, v in CUSTOMER.items() if k != "region"}
    r = ex(mset, config, "customers", "crm", row)
    assert "column is mapped but missing from the source row" in col(r, "region")["error"]
    assert col(r, "region")["rules"][-1] == "the source row has no column region"
    assert r["outcome"]["action"] == "error"


def test_not_sent_owned_fields_and_missing_columns(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", CUSTOMER)
    assert r["not_sent"] == [
        {"field": "credit_limit", "column": "credit_limit", "source_column": "credit_limit",
         "reason": "owned by erp (the field's owner): it flows only erp_to_crm"},
        {"field": "notes", "column": None, "source_column": "notes", "reason": "no column on erp (erp: ~)"},
    ]
    back = ex(mset, config, "customers", "erp", {"cust_no": 7, "vat_id": "DE1", "customer_name": "A",
                                                 "status_code": "B", "tier": "gold", "region": "N",
                                                 "credit_limit": Decimal("10.50"), "source": "crm"})
    assert col(back, "credit_limit")["value"] == Decimal("10.50")
    assert col(back, "status")["value"] == "blocked"
    assert col(back, "vat_id")["rules"] == ["erp.vat_id -> crm.vat_id (same name)"]  # the trim is crm_to_erp only
    assert {n["field"]: n["reason"] for n in back["not_sent"]} == {
        "notes": "no column on erp (erp: ~) and no constant", "origin": "no column on crm (crm: ~)"}
    # the mapping's owner: everything but the key flows only from crm
    p = ex(mset, config, "products", "erp", {"sku": "A-1", "list_price": 1, "stock": 3})
    assert [c["column"] for c in p["columns"]] == ["sku", "stock"]
    assert col(p, "sku")["rules"][1] == "owned by crm, sent anyway: sku is a key column of public.product"
    assert p["not_sent"] == [{"field": "price", "column": "price", "source_column": "list_price",
                              "reason": "owned by crm (the mapping's owner): it flows only crm_to_erp"}]


# ---------------------------------------------------------------- filter and gate


def test_filter_passes_or_names_the_failing_condition(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", CUSTOMER)
    assert r["filter"]["passes"] is True
    assert "filter: passes (deleted eq false; status in [\"active\", \"blocked\"])" in render_text(r)

    r = ex(mset, config, "customers", "crm", dict(CUSTOMER, deleted=True))
    assert r["filter"]["passes"] is False
    assert [(c["column"], c["holds"]) for c in r["filter"]["conditions"]] == [("deleted", False), ("status", True)]
    assert r["outcome"] == {"action": "filtered", "text": "nothing sent: the row does not pass the filter"}
    assert "filter: fails: deleted is true, the filter wants eq false\n" in render_text(r)

    row = {k: v for k, v in CUSTOMER.items() if k != "deleted"}
    r = ex(mset, config, "customers", "crm", row)
    assert "filter: fails: deleted is missing from the row, the filter wants eq false" in render_text(r)
    # the erp_to_crm direction has no filter, so nothing leaves it
    erp_row = {"cust_no": 1, "vat_id": None, "customer_name": "A", "status_code": "A", "tier": None, "region": None,
               "credit_limit": None}
    assert ex(mset, config, "customers", "erp", erp_row)["filter"] is None
    assert ex(mset, config, "customers", "erp", erp_row)["leave"] is None
    assert "leave:" not in render_text(ex(mset, config, "customers", "erp", erp_row))


def test_what_leaving_the_filter_does_is_stated(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", CUSTOMER)
    assert (r["leave"]["action"], r["leave"]["from"]) == ("propagate", "delete")
    assert ("leave: an update that takes a row out of the filter or slice (its old row passed, its new row does "
            "not): its counterpart in erp erpdb.customers is deleted (the mapping's delete: propagate; a leave: would "
            "override it)"
            ) in render_text(r)
    for extra, action, said in (
            ("    leave: {crm_to_erp: ignore}\n", "ignore", "is kept as it is (leave: ignore)"),
            ("    delete: {set: {active: 0}}\n", "set", "is marked active = 0 (the mapping's delete: a soft delete")):
        (config.mappings_dir / "m.yaml").write_text(
            MAPPINGS.replace("    fields:\n      vat_id", extra + "    fields:\n      vat_id", 1))
        other = load_mappings(config)
        r = ex(other, config, "customers", "crm", CUSTOMER)
        assert r["leave"]["action"] == action and said in render_text(r), render_text(r)


def test_gate_open_and_closed(mset: MappingSet, config: Config) -> None:
    quote = {"id": 10, "customer_id": 1, "status": "draft", "total": Decimal("99.50")}
    closed = ex(mset, config, "quotes", "crm", quote)
    assert closed["gate"] == {"column": "status", "becomes": ["confirmed", "won"], "present": True, "value": "draft",
                              "open": False}
    assert ('gate: closed: status is "draft", not "confirmed" or "won": no counterpart is created before it becomes '
            '"confirmed" or "won" (an existing one is still updated)') in render_text(closed)
    opened = ex(mset, config, "quotes", "crm", dict(quote, status="won"))
    assert opened["gate"]["open"] is True
    assert 'gate: open: status is "won" (becomes "confirmed" or "won"): a counterpart may be created' in \
        render_text(opened)
    assert ex(mset, config, "customers", "crm", CUSTOMER)["gate"] is None


# ---------------------------------------------------------------- keys, counterparts, references


def test_shared_key_offline_and_looked_up(mset: MappingSet, config: Config) -> None:
    row = {"sku": "A-1", "price": Decimal("9.90"), "stock": 1}
    offline = ex(mset, config, "products", "crm", row, lookup_note="--offline: nothing looked up")
    assert offline["key"] == {"kind": "shared", "source_columns": ["sku"], "target_key": {"sku": "A-1"},
                              "exists": None, "note": "--offline: nothing looked up"}
    assert offline["outcome"] == {"action": "upsert", "text": 'would upsert the erp erpdb.items row sku = "A-1": '
                                                              "update it if it exists, else insert it"}
    found = ex(mset, config, "products", "crm", row, lookup=FakeLookup(rows={("items", ("A-1",)): True}))
    assert found["key"]["exists"] is True
    assert found["outcome"] == {"action": "update",
                                "text": 'would update the erp erpdb.items row sku = "A-1" (upsert by key)'}
    new = ex(mset, config, "products", "crm", row, lookup=FakeLookup())
    assert new["outcome"]["action"] == "insert"
    assert "key: shared key: erp key sku = \"A-1\" (no row with this key yet)" in render_text(new)
    null_key = ex(mset, config, "products", "crm", dict(row, sku=None), lookup=FakeLookup())
    assert null_key["outcome"]["action"] == "error" and "key column is NULL" in null_key["outcome"]["text"]


def test_crosswalk_pair_found_updates(mset: MappingSet, config: Config) -> None:
    lookup = FakeLookup(pairs={("customers", (42,)): (7,)})
    r = ex(mset, config, "customers", "crm", CUSTOMER, lookup=lookup)
    assert r["key"]["counterpart"] == {"by": "crosswalk", "target_key": {"cust_no": 7},
                                       "where": "erp's crosswalk replicator.crosswalk"}
    assert lookup.calls == ["crosswalk"]  # found: no natural-key lookup
    assert r["outcome"]["action"] == "update"
    assert r["outcome"]["text"] == ("would update the erp erpdb.customers row cust_no = 7 "
                                    "(sets vat_id, customer_name, status_code, tier, region, source)")


def test_natural_key_match_links_and_updates(mset: MappingSet, config: Config) -> None:
    lookup = FakeLookup(natural={(("vat_id", "DE1"),): [(9,)]})
    r = ex(mset, config, "customers", "crm", CUSTOMER, lookup=lookup)
    assert [(s["by"], s["found"]) for s in r["key"]["lookups"]] == [("crosswalk", False), ("natural", True)]
    assert r["key"]["counterpart"] == {"by": "natural", "target_key": {"cust_no": 9}}
    assert r["outcome"]["action"] == "update"
    assert "found by natural key, and record the crosswalk pair" in r["outcome"]["text"]
    text = render_text(r)
    assert "  by crosswalk: no crosswalk pair for crm id = 42 in either database" in text
    assert '  by natural: natural key vat_id = "DE1" matches erp erpdb.customers row cust_no = 9' in text


def test_natural_key_ambiguous_or_null(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", CUSTOMER, lookup=FakeLookup(natural={(("vat_id", "DE1"),): [(1,), (2,)]}))
    assert r["outcome"]["action"] == "error"
    assert "matches more than one erp erpdb.customers row; it must be unique" in r["outcome"]["text"]
    r = ex(mset, config, "customers", "crm", dict(CUSTOMER, vat_id=None), lookup=FakeLookup())
    assert r["key"]["lookups"][1]["text"] == \
        "no natural key on this row (vat_id is NULL, empty or not sent): nothing to link by"
    assert r["outcome"]["action"] == "insert"
    assert r["outcome"]["text"] == ("would insert a new erp erpdb.customers row; erp generates its key (cust_no) "
                                    "and the pair with crm id = 42 is recorded in erp's crosswalk")


def test_new_record_unparks_waiting_children(mset: MappingSet, config: Config) -> None:
    lookup = FakeLookup(parked=2)
    r = ex(mset, config, "customers", "crm", CUSTOMER, lookup=lookup)
    assert r["outcome"]["text"].endswith("; then 2 parked change(s) waiting for this customers record would be applied")
    assert r["parked_children"] == 2


def test_references_resolved_or_parked(mset: MappingSet, config: Config) -> None:
    quote = {"id": 10, "customer_id": 3, "status": "confirmed", "total": Decimal("1")}
    parked = ex(mset, config, "quotes", "crm", quote, lookup=FakeLookup())
    assert col(parked, "cust_no")["value"] == Ref("customers", 3)
    assert parked["references"] == [{"column": "cust_no", "mapping": "customers", "value": 3, "found": False,
                                     "counterpart": None,
                                     "text": "no counterpart in erp: would be parked waiting for customers 3"}]
    assert parked["outcome"]["action"] == "parked"
    assert parked["outcome"]["text"] == ("would be parked waiting for customers 3: applied when that customers "
                                         "record has a counterpart in erp")
    ok = ex(mset, config, "quotes", "crm", quote, lookup=FakeLookup(refs={("customers", 3): 70}))
    assert ok["references"][0]["counterpart"] == 70
    assert ok["outcome"] == {"action": "insert", "text": "would insert a new erp erpdb.sales_orders row id = 10"}
    text = render_text(ok)
    assert "  cust_no  70" in text and "counterpart in erp: 70" in text
    resolved = FakeLookup(refs={("customers", 3): 70})
    closed = ex(mset, config, "quotes", "crm", dict(quote, status="draft"), lookup=resolved)
    assert closed["outcome"]["action"] == "gate_closed"
    assert closed["outcome"]["text"] == ('nothing sent: no counterpart exists and the gate is closed (status is '
                                         '"draft", a counterpart is created when it becomes "confirmed" or "won")')
    existing = ex(mset, config, "quotes", "crm", dict(quote, status="draft"),
                  lookup=FakeLookup(refs={("customers", 3): 70}, rows={("sales_orders", (10,)): True}))
    assert existing["outcome"] == {"action": "update",
                                   "text": "would update the erp erpdb.sales_orders row id = 10 (sets cust_no, total)"}


def test_created_by_the_other_side(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "accounts", "crm", {"id": 1, "name": "A"}, lookup=FakeLookup())
    assert r["outcome"] == {"action": "not_created", "text": "nothing sent: no counterpart exists and only erp "
                                                             "creates accounts rows (created_by: erp)"}
    r = ex(mset, config, "accounts", "crm", {"id": 1, "name": "A"}, lookup=FakeLookup(rows={("accounts", (1,)): True}))
    assert r["outcome"]["action"] == "update"


def test_offline_and_failed_lookups_say_what_would_decide(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", CUSTOMER, lookup_note="--offline: nothing looked up")
    assert r["outcome"] == {"action": "unknown", "text": "counterpart unknown (--offline: nothing looked up): an "
                                                         "existing counterpart would be updated, otherwise a new erp "
                                                         "erpdb.customers row is inserted"}
    quote = {"id": 10, "customer_id": 3, "status": "draft", "total": 1}
    r = ex(mset, config, "quotes", "crm", quote)
    assert r["references"][0]["text"] == "not looked up (no lookup)"
    assert r["outcome"]["text"].endswith("otherwise nothing is sent (the gate is closed)")
    lookup = FakeLookup(fail="crosswalk")
    r = ex(mset, config, "customers", "crm", CUSTOMER, lookup=lookup)
    assert lookup.resets == 1
    assert r["key"]["lookups"][0] == {"by": "crosswalk", "found": None, "text": "lookup failed: crosswalk broke"}
    assert r["outcome"]["action"] == "unknown"
    assert r["outcome"]["text"].startswith("counterpart unknown (lookup failed: crosswalk broke)")


# ---------------------------------------------------------------- output


def test_jsonable_types() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert jsonable({"d": Decimal("1.50"), "t": datetime(2024, 1, 2, 3, 4, 5), "day": date(2024, 1, 2),
                     "b": b"\x01\xff", "u": u, "r": Ref("customers", 3), "l": (1, None), "f": 1.5, "nan": float("nan")}
                    ) == {"d": "1.50", "t": "2024-01-02T03:04:05", "day": "2024-01-02", "b": "0x01ff",
                          "u": str(u), "r": {"references": "customers", "value": 3}, "l": [1, None], "f": 1.5,
                          "nan": "nan"}


def test_render_json_round_trips_and_text_layout(mset: MappingSet, config: Config) -> None:
    r = ex(mset, config, "customers", "crm", dict(CUSTOMER, credit_limit=Decimal("5.00")))
    data = json.loads(render_json(r))
    assert data["row"]["credit_limit"] == "5.00"
    assert data["outcome"]["action"] == "unknown"
    text = render_text(r)
    lines = text.splitlines()
    assert lines[0] == "mapping customers (crm_to_erp): crm public.customer -> erp erpdb.customers"
    assert lines[2] == "     row given with --row"
    assert lines[4] == "erp erpdb.customers:"
    assert lines[5].startswith('  vat_id         "DE1"     field vat_id: crm.vat_id -> erp.vat_id (same name)')
    assert "not sent:\n  credit_limit  owned by erp (the field's owner): it flows only erp_to_crm\n" \
           "  notes         no column on erp (erp: ~)" in text
    assert "source columns no field maps: extra" in text
    assert "key: crosswalk (erp generates its own key cust_no); crm key id = 42; natural key: vat_id" in text
    assert lines[-1].startswith("result: counterpart unknown")


# ---------------------------------------------------------------- the command line


def run_cli(capsys: pytest.CaptureFixture[str], config: Config, *argv: str) -> tuple[int, str, str]:
    code = main(["explain", "--config", str(config.file), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_row_offline_text_and_json(capsys: pytest.CaptureFixture[str], config: Config) -> None:
    row = json.dumps(CUSTOMER)
    code, out, err = run_cli(capsys, config, "--mapping", "customers", "--side", "crm", "--row", row, "--offline")
    assert (code, err) == (EXIT_OK, "")
    assert out.startswith("mapping customers (crm_to_erp): crm public.customer -> erp erpdb.customers\n")
    assert 'status_code    "A"' in out
    assert "result: counterpart unknown (--offline: nothing looked up)" in out
    code, out, err = run_cli(capsys, config, "--mapping", "quotes", "--side", "crm", "--offline", "--json",
                             "--row", '{"id": 1, "customer_id": 2, "status": "won", "total": 1.25}')
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["gate"]["open"] is True
    assert data["columns"][1]["value"] == {"references": "customers", "value": 2}
    assert data["references"][0]["text"] == "not looked up (--offline: nothing looked up)"


def test_cli_unreachable_servers_still_explain_the_row(capsys: pytest.CaptureFixture[str], config: Config) -> None:
    code, out, err = run_cli(capsys, config, "--mapping", "products", "--side", "crm",
                             "--row", '{"sku": "A", "price": 1, "stock": 2}')
    assert code == EXIT_OK, err
    assert "cannot look up: cannot connect to 127.0.0.1:1" in out
    assert "result: would upsert the erp erpdb.items row" in out


@pytest.mark.parametrize("argv, message", [
    (("--mapping", "nope", "--side", "crm", "--row", "{}"), "unknown mapping 'nope'"),
    (("--mapping", "customers", "--side", "sap", "--row", "{}"), "unknown side 'sap' for mapping 'customers'"),
    (("--mapping", "quotes", "--side", "erp", "--row", "{}"), "mapping 'quotes' does not flow from erp: it flows "
                                                              "crm_to_erp"),
    (("--mapping", "customers", "--side", "crm", "--row", "{nope"), "--row is not valid JSON"),
    (("--mapping", "customers", "--side", "crm", "--row", "3"), "--row must be a JSON object"),
    (("--mapping", "customers", "--side", "crm", "--key", " "), "needs 1 comma-separated value(s), for id"),
])
def test_cli_configuration_problems_exit_78(capsys: pytest.CaptureFixture[str], config: Config,
                                            argv: tuple[str, ...], message: str) -> None:
    code, out, err = run_cli(capsys, config, *argv)
    assert code == EXIT_CONFIG == 78
    assert out == ""
    assert err.startswith("replicator: configuration error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_needs_key_or_row(capsys: pytest.CaptureFixture[str], config: Config) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", "--config", str(config.file), "--mapping", "customers", "--side", "crm"])
    assert info.value.code == 2
    assert "one of the arguments --key --row is required" in capsys.readouterr().err


def test_a_reference_to_a_one_way_mapping_says_what_could_ever_pair_it(tmp_path: Path) -> None:
    """An ERP order line names a product only the ERP has, and products flow only crm_to_erp: the line waits
    until the CRM gets a product with the same part number (linked by natural key), maybe never."""
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "m.yaml").write_text("""\
mappings:
  products:
    direction: crm_to_erp
    crm: {table: product, key: [id]}
    erp: {table: llx_product, key: [rowid]}
    link: {natural: [part_number], crosswalk: true}
    fields: {part_number: {erp: ref}}
  orders:
    direction: erp_to_crm
    crm: {table: orders, key: [id], generate: {id: uuid}}
    erp: {table: llx_commande, key: [rowid]}
    link: {crosswalk: true}
    fields: {ref: ~}
  order_lines:
    direction: erp_to_crm
    crm: {table: order_line, key: [id], generate: {id: uuid}}
    erp: {table: llx_commandedet, key: [rowid]}
    link: {crosswalk: true}
    parent: {mapping: orders, field: fk_commande}
    fields:
      fk_commande: {crm: order_id}
      fk_product: {crm: product_id, references: products}
""")
    config = make_config(tmp_path)
    mset = load_mappings(config)
    line = {"rowid": 5, "fk_commande": 2, "fk_product": 7}
    r = explain(mset, "order_lines", "erp", line, lookup=FakeLookup(refs={("orders", 2): "o-2"}))
    assert r["outcome"]["action"] == "parked", r["outcome"]
    assert r["outcome"]["text"].endswith(
        "; products flows only crm_to_erp: its erp records get a counterpart in crm only when one is paired "
        "with them, or when crm gets a record with the same part_number (linked by natural key); until then "
        "this row waits (`parked: {drop_after_days: N}` bounds the wait)"), r["outcome"]["text"]
    # the parent waits too, but orders flow erp_to_crm: it comes by itself, no such note
    r = explain(mset, "order_lines", "erp", line, lookup=FakeLookup(refs={("products", 7): "p-7"}))
    assert r["outcome"]["text"] == ("would be parked waiting for orders 2: applied when that orders record has "
                                    "a counterpart in crm"), r["outcome"]["text"]


def test_long_text_is_shown_by_its_start_and_length_and_stamps_as_the_apply_time(tmp_path: Path) -> None:
    # Twenty's 70,000-character address (refused by Akaunting's TEXT) filled the terminal in `explain`, and a
    # `now: true` column was listed as "constant"
    (tmp_path / "maps").mkdir()
    config = make_config(tmp_path)
    (config.mappings_dir / "m.yaml").write_text("""\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      address: ~
      modified: {crm: ~, now: true}
      created: {crm: ~, now: true, insert_only: true}
""")
    mset = load_mappings(config)
    r = ex(mset, config, "customers", "crm", {"id": 1, "address": "x" * 70000})
    assert col(r, "address")["value"] == "x" * 70000  # the data itself is whole (--json)
    assert col(r, "modified")["rules"] == ["the apply time (now: true; no crm column)"]
    assert col(r, "created")["rules"] == ["the apply time (now: true, insert_only; no crm column)"]
    text = render_text(r)
    assert f'"{"x" * 60}…" (70000 characters)' in text and "x" * 61 not in text, text
