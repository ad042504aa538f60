"""Constructs real CRM and ERP schemas need (issue 11): filters that deletes must see whole, a constant on
either side, `insert_only`, `null_if` for an ERP's 0 meaning "none"."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.admin.provision import delete_filter_tables, describe, full_identity_tables
from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.router import LinkedChange, Ref, route, route_flow

from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)

ACCOUNT = TableRef("public", "account")  # crm
CLIENTS = TableRef("erpdb", "clients")  # erp


# ---------------------------------------------------------------- defect 1: a filter and key-only deletes

FILTERED = """\
mappings:
  accounts:
    direction: crm_to_erp
    crm: {table: account, key: [id]}
    erp: {table: clients, key: [id]}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    fields:
      id: ~
      name: ~
"""


def test_a_filter_on_a_non_key_column_needs_full_deleted_rows(config: Config) -> None:
    mset = load(config, FILTERED)
    crm = config.side("crm")
    assert delete_filter_tables(crm, mset) == {ACCOUNT: "mapping accounts filters crm_to_erp on deleted"}
    assert full_identity_tables(crm, mset) == [ACCOUNT]
    assert 'ALTER TABLE "public"."account" REPLICA IDENTITY FULL;' in describe(config, mset).splitlines()


def test_no_full_identity_when_deletes_are_ignored_or_the_filter_reads_the_key(config: Config) -> None:
    crm = config.side("crm")
    ignored = load(config, FILTERED.replace("    fields:", "    delete: ignore\n    fields:"))
    assert delete_filter_tables(crm, ignored) == {}
    on_key = load(config, FILTERED.replace("deleted: {eq: false}", "id: {gt: 10}"))
    assert delete_filter_tables(crm, on_key) == {}
    assert not any("REPLICA IDENTITY" in line for line in describe(config, on_key).splitlines())


def test_a_key_only_delete_is_a_row_error_not_a_silent_drop(config: Config) -> None:
    mset = load(config, FILTERED)
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(ACCOUNT, Op.DELETE, {"id": 7}, None))
    msg = str(info.value)
    assert "table public.account, key (7,), column deleted" in msg and "REPLICA IDENTITY FULL" in msg
    # with the whole old row the filter decides as before
    out = route(mset, "crm", RowChange(ACCOUNT, Op.DELETE, {"id": 7, "name": "A", "deleted": False}, None))
    assert [(c.op, c.key) for c in out] == [(Op.DELETE, (7,))]
    assert route(mset, "crm", RowChange(ACCOUNT, Op.DELETE, {"id": 7, "name": "A", "deleted": True}, None)) == []


# ---------------------------------------------------------------- defect 2: constant on either side

CONSTANTS = """\
mappings:
  accounts:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: clients, key: [id]}
    fields:
      id: ~
      name: ~
      client: {crm: ~, constant: 1}          # ERP-only column
      origin: {erp: ~, constant: erp}        # CRM-only column
      entity: {crm: ~, constant: 1, insert_only: true}
"""


def test_a_constant_fills_a_column_of_either_side(config: Config) -> None:
    mset = load(config, CONSTANTS)
    to_erp = route_flow(mset.by_name["accounts"].flow("crm"), RowChange(ACCOUNT, Op.INSERT, None, {"id": 1, "name": "A"}))
    assert to_erp[0].values == {"id": 1, "name": "A", "client": 1, "entity": 1}
    to_crm = route_flow(mset.by_name["accounts"].flow("erp"), RowChange(CLIENTS, Op.INSERT, None, {"id": 1, "name": "A"}))
    assert to_crm[0].values == {"id": 1, "name": "A", "origin": "erp"}


def test_insert_only_columns_are_not_written_over_an_existing_row(config: Config) -> None:
    mset = load(config, CONSTANTS)
    flow = mset.by_name["accounts"].flow("crm")
    assert flow is not None and flow.insert_only == frozenset({"entity"})
    out = route_flow(flow, RowChange(ACCOUNT, Op.UPDATE, {"id": 1, "name": "A"}, {"id": 1, "name": "B"}))
    assert isinstance(out[0], TargetChange) and out[0].insert_only == frozenset({"entity"})
    back = mset.by_name["accounts"].flow("erp")
    assert back is not None and back.insert_only == frozenset()


def test_a_constant_needs_no_column_on_its_other_side(config: Config) -> None:
    assert "set the other side to ~" in error(config, CONSTANTS.replace("{crm: ~, constant: 1}", "{constant: 1}"))


# ---------------------------------------------------------------- gap 8: zero means none

ZERO = """\
mappings:
  companies:
    direction: both
    crm: {table: company, key: [id]}
    erp: {table: societe, key: [rowid]}
    link: {crosswalk: true}
    fields:
      name: {erp: nom}
  contacts:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: socpeople, key: [rowid]}
    link: {crosswalk: true}
    fields:
      company_id: {erp: fk_soc, references: companies, null_if: {erp: 0}}
      name: ~
"""


def test_zero_from_the_erp_is_no_reference_and_never_parks(config: Config) -> None:
    mset = load(config, ZERO)
    flow = mset.by_name["contacts"].flow("erp")
    out = route_flow(flow, RowChange(TableRef("erpdb", "socpeople"), Op.INSERT, None,
                                     {"rowid": 3, "fk_soc": 0, "name": "A"}))
    assert isinstance(out[0], LinkedChange) and out[0].values == {"company_id": None, "name": "A"}
    out = route_flow(flow, RowChange(TableRef("erpdb", "socpeople"), Op.INSERT, None,
                                     {"rowid": 3, "fk_soc": 9, "name": "A"}))
    assert out[0].values["company_id"] == Ref("companies", 9)


def test_null_from_the_crm_is_written_as_zero_not_looked_up(config: Config) -> None:
    mset = load(config, ZERO)
    flow = mset.by_name["contacts"].flow("crm")
    out = route_flow(flow, RowChange(TableRef("public", "contact"), Op.INSERT, None,
                                     {"id": 3, "company_id": None, "name": "A"}))
    assert out[0].values == {"fk_soc": 0, "name": "A"}
    out = route_flow(flow, RowChange(TableRef("public", "contact"), Op.INSERT, None,
                                     {"id": 3, "company_id": 5, "name": "A"}))
    assert out[0].values["fk_soc"] == Ref("companies", 5)


def test_null_if_matches_numbers_not_booleans_nor_text() -> None:
    from decimal import Decimal

    from replicator.mapping.router import _is_null_value
    assert _is_null_value(0, 0) and _is_null_value(Decimal("0.00"), 0) and _is_null_value(0.0, 0)
    assert not _is_null_value(False, 0) and not _is_null_value("0", 0) and not _is_null_value(None, 0)
    assert _is_null_value("", "") and not _is_null_value(1, 0)


@pytest.mark.parametrize("spec, message", [
    ("0", "null_if names the side that stores a value for NULL: {erp: 0}"),
    ("{sap: 0}", "null_if names the side"),
    ("{erp: [0, -1]}", "null_if.erp is one plain value"),
])
def test_bad_null_if_names_file_line_and_key(config: Config, spec: str, message: str) -> None:
    msg = error(config, ZERO.replace("null_if: {erp: 0}", f"null_if: {spec}"))
    assert "m.yaml:15: mappings.contacts.fields.company_id.null_if" in msg and message in msg, msg


# ---------------------------------------------------------------- defect 3: the apply connection's gauge

def test_only_the_streams_own_session_reports_the_apply_connection(config: Config) -> None:
    from replicator import metrics
    from replicator.appliers import make_applier

    erp = config.side("erp")
    gauge = metrics.connection_up.labels(erp.name, "apply")
    gauge.set(1)
    lookup = make_applier(erp, "lookup", "")  # a look-up, retention or status session closing
    lookup.report_up(0)
    assert gauge._value.get() == 1
    stream = make_applier(erp, "crm_to_erp", "erp_to_crm")
    stream.report_up(0)
    assert gauge._value.get() == 0


# ---------------------------------------------------------------- gap 4: keys the application makes

KEYS = """\
mappings:
  contacts:
    direction: erp_to_crm
    crm: {table: customer, key: [id], generate: GEN}
    erp: {table: customers, key: [id]}
    link: {crosswalk: true}
    fields:
      entity: ~
      name: ~
"""


def test_generate_compiles_per_key_column(config: Config) -> None:
    from replicator.mapping.keygen import KeyGen
    mset = load(config, KEYS.replace("GEN", '{id: {template: "contact/{entity}/{uuid}"}}'))
    (gen,) = mset.by_name["contacts"].endpoint("crm").generate
    assert gen == KeyGen("id", "template", "contact/{entity}/{uuid}", ("entity",))
    key = gen.make({"entity": 3})
    assert key.startswith("contact/3/") and len(key) == len("contact/3/") + 36
    assert gen.make({"entity": 3}) != key  # a fresh UUID each time
    with pytest.raises(KeyError):
        gen.make({"entity": None})
    (gen,) = load(config, KEYS.replace("GEN", "{id: uuid}")).by_name["contacts"].endpoint("crm").generate
    assert len(gen.make({})) == 36 and not gen.by_database
    (gen,) = load(config, KEYS.replace("GEN", "{id: default}")).by_name["contacts"].endpoint("crm").generate
    assert gen.by_database


@pytest.mark.parametrize("gen, message", [
    ("{code: uuid}", "generate: 'code' is not a key column of this table (key: ['id'])"),
    ("{id: serial}", "generate.id is default, uuid, {template:"),
    ('{id: {template: "c/{owner}/{uuid}"}}', "generate.id.template: {owner} is neither a field of the mapping nor {uuid}"),
    ('{id: {template: "contact"}}', "makes the same key for every row"),
    ("[id]", "generate maps key columns to default, uuid"),
])
def test_bad_generate_names_file_line_and_key(config: Config, gen: str, message: str) -> None:
    msg = error(config, KEYS.replace("GEN", gen))
    assert "m.yaml:4: mappings.contacts.crm.generate" in msg and message in msg, msg


def test_generate_needs_a_crosswalk(config: Config) -> None:
    msg = error(config, KEYS.replace("GEN", "{id: uuid}").replace("    link: {crosswalk: true}\n", "")
                .replace("      entity: ~", "      id: ~\n      entity: ~"))
    assert "generate makes keys for rows created through a crosswalk" in msg, msg


def test_check_accepts_a_crosswalk_into_a_table_keyed_by_application_strings(tmp_path: Path) -> None:
    from tests.unit.test_mapping_check import PK, Env, vc
    env = Env(tmp_path)
    crm = {"id": vc(80, nullable=False), "entity": PK, "name": vc(50)}
    erp = {"id": PK, "entity": PK, "name": vc(50)}
    plain = KEYS.replace(", generate: GEN", "")
    assert any("crosswalk: key column id of" in f for f in env.failures(plain, crm, erp))
    made = KEYS.replace("GEN", '{id: {template: "contact/{entity}/{uuid}"}}')
    assert env.failures(made, crm, erp) == []
    by_default = KEYS.replace("GEN", "{id: default}")
    (msg,) = env.failures(by_default, crm, erp)
    assert "generate: id is default, but public.customer.id has no DEFAULT" in msg, msg
    crm["id"] = vc(80, nullable=False, has_default=True)
    assert env.failures(by_default, crm, erp) == []


# ---------------------------------------------------------------- gap 5: one table, several entities

SLICES = """\
mappings:
  customers:
    direction: both
    crm: {table: party, key: [id], slice: {dtype: customer, tenant: acme}, generate: {id: uuid}}
    erp: {table: customers, key: [id]}
    link: {crosswalk: true}
    fields: {name: ~}
  contacts:
    direction: both
    crm: {table: party, key: [id], slice: {dtype: contact, tenant: acme}, generate: {id: uuid}}
    erp: {table: contacts, key: [id]}
    link: {crosswalk: true}
    fields: {name: ~}
"""
PARTY = TableRef("public", "party")


def test_a_source_slice_selects_the_mappings_rows(config: Config) -> None:
    mset = load(config, SLICES)  # both mappings write party.name: different slices, different rows
    def mappings_of(row: dict) -> list[str]:
        return [o.flow.mapping for o in route(mset, "crm", RowChange(PARTY, Op.INSERT, None, row))]
    assert mappings_of({"id": "a", "dtype": "customer", "tenant": "acme", "name": "A"}) == ["customers"]
    assert mappings_of({"id": "b", "dtype": "contact", "tenant": "acme", "name": "B"}) == ["contacts"]
    assert mappings_of({"id": "c", "dtype": "lead", "tenant": "acme", "name": "C"}) == []
    assert mappings_of({"id": "d", "dtype": "customer", "tenant": "other", "name": "D"}) == []
    # deletes read the slice's columns: a PostgreSQL source needs REPLICA IDENTITY FULL
    assert set(delete_filter_tables(config.side("crm"), mset)) == {PARTY}
    with pytest.raises(RowError):
        route(mset, "crm", RowChange(PARTY, Op.DELETE, {"id": "a"}, None))


def test_a_target_slice_makes_the_flow_linked_and_is_set_on_insert(config: Config) -> None:
    mset = load(config, SLICES)
    flow = mset.by_name["customers"].flow("erp")
    assert flow is not None and flow.linked and dict(flow.target.slice) == {"dtype": "customer", "tenant": "acme"}


@pytest.mark.parametrize("bad, message", [
    ("slice: {dtype: [customer]}", "slice maps columns to the plain values"),
    ("slice: {}", "slice maps columns to the plain values"),
])
def test_bad_slices_are_refused(config: Config, bad: str, message: str) -> None:
    assert message in error(config, SLICES.replace("slice: {dtype: customer, tenant: acme}", bad))


def test_a_slice_on_null_selects_the_rows_whose_column_is_null(config: Config) -> None:
    """OFBiz's current rows are `thru_date IS NULL`: `slice: {thru_date: null}` selects them as a source (NULL
    only, never the text 'None') and is set NULL on a target's insert; a row whose thru_date is set left the
    slice, which is the mapping's delete of its counterpart."""
    mset = load(config, SLICES.replace("slice: {dtype: customer, tenant: acme}",
                                       "slice: {dtype: customer, thru_date: null}"))
    assert dict(mset.by_name["customers"].flow("erp").target.slice) == {"dtype": "customer", "thru_date": None}
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None and flow.filter is not None

    def mappings_of(row: dict) -> list[str]:
        return [o.flow.mapping for o in route(mset, "crm", RowChange(PARTY, Op.INSERT, None, row))]
    assert mappings_of({"id": "a", "dtype": "customer", "tenant": "acme", "thru_date": None, "name": "A"}) == ["customers"]
    assert mappings_of({"id": "b", "dtype": "customer", "thru_date": "2026-01-01", "name": "B"}) == []
    assert mappings_of({"id": "c", "dtype": "customer", "thru_date": "None", "name": "C"}) == []
    # the NULL column does not keep NULLs out of the mapping (check's NOT NULL rule must still warn)
    assert "thru_date" not in flow.filter.rejects_null and "dtype" in flow.filter.rejects_null
    # thru_date set: the row left the slice, the ERP customer is deleted as for a row leaving a filter
    left = route(mset, "crm", RowChange(PARTY, Op.UPDATE,
                                        {"id": "a", "dtype": "customer", "tenant": "acme", "thru_date": None, "name": "A"},
                                        {"id": "a", "dtype": "customer", "tenant": "acme", "thru_date": "2026-01-01", "name": "A"}))
    assert [(o.flow.mapping, o.op) for o in left] == [("customers", Op.DELETE)], left
    back = route(mset, "crm", RowChange(PARTY, Op.UPDATE,
                                        {"id": "a", "dtype": "customer", "tenant": "acme", "thru_date": "2026-01-01", "name": "A"},
                                        {"id": "a", "dtype": "customer", "tenant": "acme", "thru_date": None, "name": "A"}))
    assert [(o.flow.mapping, o.op) for o in back] == [("customers", Op.INSERT)], back


def test_a_field_cannot_write_the_slice_column(config: Config) -> None:
    msg = error(config, SLICES.replace("fields: {name: ~}", "fields: {name: ~, dtype: ~}", 1))
    assert "column dtype of public.party is the mapping's slice" in msg, msg


def test_check_knows_the_slice_columns(tmp_path: Path) -> None:
    from tests.unit.test_mapping_check import PK, Env, vc
    env = Env(tmp_path)
    text = SLICES.split("  contacts:")[0].replace("table: party", "table: customer")
    erp = {"id": C_AUTO(), "name": vc(50)}
    crm = {"id": vc(40, nullable=False), "dtype": vc(20, nullable=False, enums=("customer", "contact")),
           "tenant": vc(10, nullable=False), "name": vc(50)}
    assert env.failures(text, crm, erp) == []  # NOT NULL dtype and tenant: filled by the slice
    fails = env.failures(text.replace("dtype: customer", "dtype: client"), crm, erp)
    assert any("slice value 'client' for crm:public.customer.dtype" in f for f in fails), fails
    del crm["tenant"]
    fails = env.failures(text, crm, erp)
    assert any("slice column tenant does not exist in public.customer" in f for f in fails), fails


def test_check_refuses_a_null_slice_on_a_not_null_column(tmp_path: Path) -> None:
    from tests.unit.test_mapping_check import Env, vc
    env = Env(tmp_path)
    text = SLICES.split("  contacts:")[0].replace("table: party", "table: customer").replace(
        "tenant: acme", "thru_date: null")
    erp = {"id": C_AUTO(), "name": vc(50)}
    crm = {"id": vc(40, nullable=False), "dtype": vc(20, nullable=False), "thru_date": vc(20), "name": vc(50)}
    assert env.failures(text, crm, erp) == []  # a nullable thru_date: the slice selects and inserts NULL
    crm["thru_date"] = vc(20, nullable=False)
    fails = env.failures(text, crm, erp)
    assert any("slice value null for crm:public.customer.thru_date: the column is "
               "NOT NULL" in f for f in fails), fails


def C_AUTO():  # noqa: N802
    from tests.unit.test_mapping_check import AUTO_PK
    return AUTO_PK


# ---------------------------------------------------------------- gap 10: parked rows that never leave

PARKED = """\
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: orders, key: [id]}
    link: {crosswalk: true}
    fields: {status: ~}
  quote_lines:
    direction: crm_to_erp
    crm: {table: quote_line, key: [id]}
    erp: {table: order_lines, key: [id]}
    link: {crosswalk: true}
    parent: {mapping: quotes, field: quote_id}
    parked: {drop_after_days: DAYS}
    fields: {quote_id: ~, item: ~}
"""


def test_parked_retention_is_per_mapping(config: Config) -> None:
    mset = load(config, PARKED.replace("DAYS", "30"))
    assert mset.by_name["quote_lines"].flow("crm").park_days == 30.0
    assert mset.by_name["quotes"].flow("crm").park_days is None
    assert "drop_after_days is a number of days above 0" in error(config, PARKED.replace("DAYS", "0"))
    assert "expected" in error(config, PARKED.replace("DAYS", "soon"))


def test_the_oldest_parked_age_grows_while_idle_and_resets() -> None:
    from replicator import metrics
    from replicator.mapping import parking
    parking.parked_now("test_stream")
    sample = [s for m in metrics.REGISTRY.collect() if m.name == "replicator_parked_oldest_age_seconds"
              for s in m.samples if s.labels.get("direction") == "test_stream"]
    assert sample and 0 <= sample[0].value < 5, sample

    class NoneParked:
        kind = "postgresql"

        def query(self, sql: str, params: list) -> list:
            assert "MIN(parked_at)" in sql and params == ["test_stream"]
            return [(None,)]
    assert parking.refresh(NoneParked(), "parked", "test_stream") is None  # type: ignore[arg-type]
    sample = [s for m in metrics.REGISTRY.collect() if m.name == "replicator_parked_oldest_age_seconds"
              for s in m.samples if s.labels.get("direction") == "test_stream"]
    assert sample[0].value == 0


# ---------------------------------------------------------------- gap 11: a first draft for a wide table

def test_scaffold_pairs_columns_by_name_and_lists_the_rest() -> None:
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft, pair_columns
    crm = Table("crm", TableRef("public", "customer"), ("id",), {
        "id": C("int", bits=64, nullable=False, generated=True),
        "name": C("text", length=200, nullable=False),
        "VatId": C("text", length=20),
        "credit_limit": C("decimal", precision=14, scale=4),
        "status": C("text", length=10, enums=("active", "blocked", "prospect")),
        "notes": C("json"),
        "nickname": C("text"),
    })
    erp = Table("erp", TableRef("erpdb", "llx_customers"), ("c_rowid",), {
        "c_rowid": C("int", bits=32, nullable=False, generated=True),
        "c_name": C("text", length=100, nullable=False),
        "c_vat_id": C("text", length=20),
        "c_creditlimit": C("decimal", precision=12, scale=2),
        "c_status": C("enum", enums=("A", "B")),
        "c_notes": C("int", bits=32),
        "c_entity": C("int", bits=32, nullable=False),
        "c_fax": C("text", length=20),
    })
    # notes (json) and c_notes (an integer) are one name only without erp's prefix: not paired (round 13)
    assert pair_columns(crm, erp) == [("name", "c_name"), ("VatId", "c_vat_id"),
                                      ("credit_limit", "c_creditlimit"), ("status", "c_status")]
    text = draft("customers", crm, erp)
    doc = yaml.safe_load(text)["mappings"]["customers"]
    assert doc["link"] == {"crosswalk": True} and doc["erp"] == {"table": "erpdb.llx_customers", "key": ["c_rowid"]}
    fields = doc["fields"]
    assert fields["name"] == {"erp": "c_name", "lossy": "allow"}  # 200 characters into 100
    assert fields["VatId"] == {"erp": "c_vat_id"}
    assert fields["status"]["map"] == [{"crm": "active", "erp": "A"}, {"crm": "blocked", "erp": "B"}]
    assert "# TODO map crm 'prospect' / erp -" in text
    assert "notes" not in fields and ("#   notes JSON / c_notes INTEGER: the same name with case, underscores and erp's prefix c_ "
                                      "ignored, but json against a number") in text, text
    assert "#   c_entity INTEGER" in text.split("NOT NULL without a default")[1]
    assert "#   c_fax VARCHAR(20)" in text and "#   nickname TEXT" in text


def test_scaffold_links_application_made_uuid_keys_to_auto_increment_through_a_crosswalk() -> None:
    """SuiteCRM keys accounts by char(36) UUIDs its application makes; Dolibarr's llx_societe by AUTO_INCREMENT.
    Before, the draft linked nothing and told the user to fill the CRM's `id` with a constant."""
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft
    accounts = Table("crm", TableRef("public", "accounts"), ("id",), {
        "id": C("text", length=36, nullable=False), "name": C("text", length=150)})
    societe = Table("erp", TableRef("erp", "llx_societe"), ("rowid",), {
        "rowid": C("int", bits=32, nullable=False, generated=True), "name": C("text", length=128)})
    text = draft("customers", accounts, societe)
    doc = yaml.safe_load(text)["mappings"]["customers"]
    assert doc["link"] == {"crosswalk": True}, text
    assert doc["crm"] == {"table": "public.accounts", "key": ["id"], "generate": {"id": "uuid"}}, text
    assert doc["erp"] == {"table": "erp.llx_societe", "key": ["rowid"]}, text
    assert "id" not in doc["fields"] and "NOT NULL without a default" not in text, text
    # a key with a DEFAULT (gen_random_uuid()) is made by the database: generate: default
    with_default = Table("crm", accounts.table, ("id",), {"id": C("uuid", nullable=False, has_default=True),
                                                          "name": C("text")})
    assert yaml.safe_load(draft("c", with_default, societe))["mappings"]["c"]["crm"]["generate"] == {"id": "default"}
    # two application-made keys of the same values: shared keys, as before (no crosswalk)
    both = yaml.safe_load(draft("c", accounts, Table("erp", societe.table, ("id",), dict(accounts.columns))))
    assert "link" not in both["mappings"]["c"] and "generate" not in both["mappings"]["c"]["crm"]


def test_scaffold_links_uuid_keys_to_numbers_the_application_hands_out() -> None:
    """SuiteCRM's char(36) accounts.id against iDempiere's c_bpartner_id numeric(10), numbered by iDempiere from
    its AD_Sequence table (no identity, no DEFAULT): the draft linked nothing, kept both keys as they were
    and `check` refused it (key column not filled by any field)."""
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft
    accounts = Table("suitecrm", TableRef("crm", "accounts"), ("id",), {
        "id": C("text", length=36, nullable=False), "name": C("text", length=150)})
    bpartner = Table("idempiere", TableRef("public", "c_bpartner"), ("c_bpartner_id",), {
        "c_bpartner_id": C("decimal", precision=10, scale=0, nullable=False), "name": C("text", length=120)})
    text = draft("customers", accounts, bpartner)
    doc = yaml.safe_load(text)["mappings"]["customers"]
    assert doc["link"] == {"crosswalk": True}, text
    assert doc["suitecrm"] == {"table": "crm.accounts", "key": ["id"], "generate": {"id": "uuid"}}, text
    assert doc["idempiere"] == {"table": "public.c_bpartner", "key": ["c_bpartner_id"]}, text
    assert ("# TODO idempiere's application numbers c_bpartner_id (no identity, no DEFAULT): give it a DEFAULT "
            "that takes the application's next number, then add generate: {c_bpartner_id: default} above") in text
    assert "c_bpartner_id" not in doc["fields"] and "NOT NULL without a default" not in text, text
    # two numbered keys: shared keys, as before
    plain = yaml.safe_load(draft("c", Table("suitecrm", accounts.table, ("c_bpartner_id",), dict(bpartner.columns)),
                                 bpartner))
    assert "link" not in plain["mappings"]["c"]


def test_scaffold_names_the_mapping_without_spaces_or_quotes() -> None:
    # ERPNext's tables: `tabSales Order Item` would be a mapping name every --mapping must quote
    from replicator.mapping.scaffold import mapping_name
    assert mapping_name("tabSales Order Item") == "tabsales_order_item"
    assert mapping_name("llx_societe") == "llx_societe"
    assert mapping_name('Odd "Name"`') == "odd_name"
    assert mapping_name("  ") == "mapping"


def test_scaffold_links_espocrm_ids_too_narrow_for_a_uuid_to_a_serial_through_a_crosswalk() -> None:
    """EspoCRM keys every row by VARCHAR(17), 17 hex digits its application makes; Tryton's party_party by
    `DEFAULT nextval(...)`. The draft paired the two keys as one shared field (`id: {lossy: allow}`, text into
    int), which `check` accepted and whose every EspoCRM insert is a row error."""
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft
    account = Table("espocrm", TableRef("espocrm", "account"), ("id",), {
        "id": C("text", length=17, nullable=False), "name": C("text", length=255)})
    party = Table("tryton", TableRef("public", "party_party"), ("id",), {
        "id": C("int", bits=32, nullable=False, has_default=True, generated=True), "name": C("text")})
    text = draft("customers", account, party)
    doc = yaml.safe_load(text)["mappings"]["customers"]
    assert doc["link"] == {"crosswalk": True}, text
    assert doc["espocrm"] == {"table": "espocrm.account", "key": ["id"], "generate": {"id": {"hex": 17}}}, text
    assert doc["tryton"] == {"table": "public.party_party", "key": ["id"]}, text
    assert "id" not in doc["fields"], text
    # a short code (a 3-letter currency) is no key an application makes at random: shared keys, as before
    code = Table("espocrm", account.table, ("id",), {"id": C("text", length=3, nullable=False), "name": C("text")})
    assert "link" not in yaml.safe_load(draft("c", code, party))["mappings"]["c"]


# ------------------------------------------- round 13: scaffold pairs conservatively and says why

def _suitecrm_accounts() -> Any:
    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table
    uuid36 = dict(length=36, padded=True)
    return Table("suitecrm", TableRef("crm", "accounts"), ("id",), {
        "id": C("text", nullable=False, **uuid36), "name": C("text", length=150),
        "date_entered": C("datetime"), "date_modified": C("datetime"), "modified_user_id": C("text", **uuid36),
        "created_by": C("text", **uuid36), "description": C("text"), "deleted": C("bool", bits=8),
        "assigned_user_id": C("text", **uuid36), "account_type": C("text", length=50),
        "industry": C("text", length=50), "phone_office": C("text", length=100), "website": C("text", length=255),
        "employees": C("text", length=10), "parent_id": C("text", **uuid36)})


def _idempiere_bpartner() -> Any:
    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table
    num = dict(precision=10, scale=0)
    return Table("idempiere", TableRef("adempiere", "c_bpartner"), ("c_bpartner_id",), {
        "c_bpartner_id": C("decimal", nullable=False, **num), "ad_client_id": C("decimal", nullable=False, **num),
        "ad_org_id": C("decimal", nullable=False, **num), "isactive": C("text", length=1, padded=True),
        "created": C("datetime", timezone=False), "createdby": C("decimal", nullable=False, **num),
        "updated": C("datetime"), "updatedby": C("decimal", nullable=False, **num),
        "value": C("text", length=40, nullable=False), "name": C("text", length=120, nullable=False),
        "description": C("text", length=255), "iscustomer": C("text", length=1, padded=True),
        "numberemployees": C("decimal", **num), "url": C("text", length=120),
        "c_bpartner_parent_id": C("decimal", **num)})


def test_scaffold_does_not_pair_similar_names_of_different_kinds() -> None:
    """SuiteCRM's created_by (a user's char(36) UUID) and iDempiere's createdby (a user's number) are one name
    once the underscore is dropped: the draft paired them with `lossy: allow` (walkthrough-suitecrm-idempiere.md).
    A pair that is not the same name and whose kinds differ is not drafted now; the draft lists it and says why,
    and every pair it drafts under another spelling says which."""
    import yaml

    from replicator.mapping.scaffold import draft, pair_columns
    accounts, bpartner = _suitecrm_accounts(), _idempiere_bpartner()
    assert pair_columns(accounts, bpartner) == [("name", "name"), ("description", "description")]
    text = draft("customers", accounts, bpartner)
    fields = yaml.safe_load(text)["mappings"]["customers"]["fields"]
    assert set(fields) == {"name", "description"}, text
    assert ("#   created_by VARCHAR(36) / createdby NUMERIC(10,0): the same name with case and underscores ignored, "
            "but text against a number") in text, text
    # still listed among the columns to deal with: createdby is NOT NULL without a default
    assert "#   createdby NUMERIC(10,0)" in text.split("NOT NULL without a default")[1], text


def test_scaffold_says_why_it_paired_each_column_and_prefers_the_exact_name() -> None:
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft, pair_columns
    crm = Table("crm", TableRef("public", "customer"), ("id",), {
        "id": C("int", bits=64, nullable=False), "created_by": C("text", length=36),
        "VatId": C("text", length=20), "email": C("text", length=100)})
    erp = Table("erp", TableRef("erp", "customers"), ("id",), {
        "id": C("int", bits=64, nullable=False), "createdby": C("text", length=36),
        "created_by": C("text", length=36), "vat_id": C("text", length=20), "EMAIL": C("text", length=100)})
    # the exact name wins over a spelling that comes first in the catalog
    assert pair_columns(crm, erp) == [("id", "id"), ("created_by", "created_by"), ("VatId", "vat_id"),
                                      ("email", "EMAIL")]
    text = draft("customers", crm, erp)
    fields = yaml.safe_load(text)["mappings"]["customers"]["fields"]
    assert fields == {"id": None, "created_by": None, "VatId": {"erp": "vat_id"}, "email": {"erp": "EMAIL"}}, text
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if line.startswith("      ")}
    assert lines["VatId"].endswith("# paired: VatId / vat_id, the same name with case and underscores ignored")
    assert lines["email"].endswith("# paired: email / EMAIL, the same name with case ignored")
    assert "#" not in lines["created_by"]  # the same name: nothing to explain
    assert "#   createdby VARCHAR(36)" in text  # left for a person


def test_scaffold_does_not_pair_a_key_with_an_ordinary_column() -> None:
    """ERPNext keys tabCustomer by `name` (CUST-00001); Odoo's res_partner.name is the partner's name. One
    table's key and the other's ordinary column of one name are not one field: not drafted, and the ordinary
    column stays listed (the crosswalk swallowed it before, drafted nowhere and listed nowhere)."""
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft
    partner = Table("odoo", TableRef("public", "res_partner"), ("id",), {
        "id": C("int", bits=32, nullable=False, generated=True, has_default=True), "name": C("text"),
        "email": C("text"), "vat": C("text"), "create_uid": C("int", bits=32), "write_date": C("datetime")})
    customer = Table("erpnext", TableRef("erpnext", "tabCustomer"), ("name",), {
        "name": C("text", length=140, nullable=False), "customer_name": C("text", length=140),
        "email_id": C("text", length=140), "tax_id": C("text", length=140), "owner": C("text", length=140),
        "modified": C("datetime", precision=6)})
    text = draft("customers", partner, customer)
    doc = yaml.safe_load(text)["mappings"]["customers"]
    assert doc["link"] == {"crosswalk": True}, text
    assert "name" not in (doc["fields"] or {}), text
    assert "#   name TEXT / name VARCHAR(140): the same name, but erpnext's key" in text, text
    assert "#   name TEXT" in text.split("odoo columns not paired")[1], text


def test_scaffold_keys_a_composite_primary_key_table_by_its_serial_and_links_it_through_a_crosswalk() -> None:
    """LedgerSMB's `entity`: primary key (control_code, entity_class), `id serial UNIQUE`; vtiger's
    `vtiger_crmentity.crmid` from its sequence table through a DEFAULT (docs/walkthrough-vtiger-ledgersmb.md). The
    draft keyed the entity by its code and its class (a slice column), drafted no link, and hinted `constant:` for
    vtiger's NOT NULL `createdtime`."""
    import yaml

    from replicator.mapping.check.columns import ColumnInfo as C
    from replicator.mapping.scaffold import Table, draft, draft_key
    columns = {"id": C("int", nullable=False, generated=True), "name": C("text"),
               "entity_class": C("int", nullable=False), "control_code": C("text", nullable=False)}
    pk = ("control_code", "entity_class")
    assert draft_key(pk, [("control_code",), ("id",)], columns) == ("id",)
    assert draft_key(pk, [("control_code",)], columns) == pk            # no numbered unique key: the primary key
    assert draft_key(("id",), [("control_code",)], columns) == ("id",)  # a one-column primary key stays
    entity = Table("ledgersmb", TableRef("public", "entity"), ("id",), columns, pk)
    crmentity = Table("vtiger", TableRef("vtiger", "vtiger_crmentity"), ("crmid",), {
        "crmid": C("int", nullable=False, has_default=True), "label": C("text", length=255),
        "createdtime": C("datetime", nullable=False)})
    text = draft("entity", crmentity, entity)
    doc = yaml.safe_load(text)["mappings"]["entity"]
    assert doc["link"] == {"crosswalk": True}, text
    assert doc["vtiger"] == {"table": "vtiger.vtiger_crmentity", "key": ["crmid"], "generate": {"crmid": "default"}}
    assert doc["ledgersmb"] == {"table": "public.entity", "key": ["id"]}, text
    assert ("# ledgersmb key: id is unique and numbered by the database; the primary key is (control_code, "
            "entity_class)") in text
    assert "field (`{ledgersmb: ~, constant: ...}`, `{ledgersmb: ~, now: true}` for a date and time)" in text, text
