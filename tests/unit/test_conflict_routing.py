"""Two-way mappings: an UPDATE writes only the fields whose mapped value changed, and every change
carries what the source saw before (`expect`), in target terms; the mapping's `conflicts:` rules
compile per direction; YAML mistakes name file, line and key."""
from __future__ import annotations

import pytest

from replicator.changes import UNCHANGED, Op, RowChange, TableRef
from replicator.config import Config
from replicator.mapping.model import ConflictRule
from replicator.mapping.router import route, route_flow

from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)

ACCT_PG = TableRef("public", "acct")
ACCT_MY = TableRef("erpdb", "acct")

ACCT_YAML = """\
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields:
      id: ~
      name: ~
      phone: ~
      status: {map: [{crm: active, erp: A}, {crm: closed, erp: C}]}
      credit: {owner: erp}
"""


def upd(table: TableRef, before: dict | None, after: dict) -> RowChange:
    return RowChange(table, Op.UPDATE, before, after)


ROW = {"id": 1, "name": "Ann", "phone": "1", "status": "active", "credit": 5}


# ---------------------------------------------------------------- only what changed is written


def test_update_writes_only_changed_fields_and_the_key(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    (out,) = route(mset, "crm", upd(ACCT_PG, ROW, {**ROW, "phone": "2"}))
    assert out.values == {"id": 1, "phone": "2"}
    assert out.expect == {"id": 1, "name": "Ann", "phone": "1", "status": "A"}  # target terms; credit: erp owns it
    assert (out.mapping, out.source_key) == ("acct", (1,))


def test_changes_are_compared_after_the_value_map(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    (out,) = route(mset, "crm", upd(ACCT_PG, ROW, {**ROW, "status": "closed"}))
    assert out.values == {"id": 1, "status": "C"}
    assert out.expect is not None and out.expect["status"] == "A"


def test_an_update_of_unmapped_columns_only_writes_nothing(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    assert route(mset, "crm", upd(ACCT_PG, {**ROW, "notes": "a"}, {**ROW, "notes": "b"})) == []


def test_a_field_the_other_side_owns_does_not_flow(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    assert route(mset, "crm", upd(ACCT_PG, ROW, {**ROW, "credit": 9})) == []
    (out,) = route(mset, "erp", upd(ACCT_MY, {**ROW, "status": "A"}, {**ROW, "status": "A", "credit": 9}))
    assert out.values == {"id": 1, "credit": 9}


def test_a_changed_owned_field_carries_no_old_value(config: Config) -> None:
    """An owned field is never a conflict (conflicts.md), changed or not: its old value is no `expect`. It was
    when it changed: CiviCRM's display_name, a metasfresh-owned copy of the partner's name, recorded a conflict
    of its own in a race on the name (docs/walkthrough-civicrm-metasfresh.md)."""
    mset = load(config, ACCT_YAML)
    (out,) = route(mset, "erp", upd(ACCT_MY, {**ROW, "status": "A"}, {**ROW, "status": "A", "credit": 9,
                                                                        "name": "Bo"}))
    assert out.values == {"id": 1, "credit": 9, "name": "Bo"}
    assert out.expect == {"id": 1, "name": "Ann", "phone": "1", "status": "active"}


def test_unchanged_toast_stays_left_out(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    (out,) = route(mset, "crm", upd(ACCT_PG, ROW, {**ROW, "name": UNCHANGED, "phone": "2"}))
    assert out.values == {"id": 1, "phone": "2"}


def test_key_only_old_row_writes_every_field_unchecked(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    (out,) = route(mset, "crm", upd(ACCT_PG, None, {**ROW, "phone": "2"}))
    assert out.expect is None and set(out.values) == {"id", "name", "phone", "status"}
    (out,) = route(mset, "crm", upd(ACCT_PG, {"id": 1}, {**ROW, "phone": "2"}))
    assert out.expect is None and set(out.values) == {"id", "name", "phone", "status"}


def test_a_table_scan_writes_every_field(config: Config) -> None:
    """sync, verify --repair and explain route rows they read from a table: no expect, all fields."""
    mset = load(config, ACCT_YAML)
    flow = mset.by_name["acct"].flow("crm")
    (out,) = route_flow(flow, upd(ACCT_PG, ROW, {**ROW, "phone": "2"}))
    assert out.expect is None and set(out.values) == {"id", "name", "phone", "status"}


def test_one_way_mappings_are_unchanged(config: Config) -> None:
    mset = load(config, ACCT_YAML.replace("direction: both", "direction: crm_to_erp").replace(
        "      credit: {owner: erp}\n", ""))
    (out,) = route(mset, "crm", upd(ACCT_PG, ROW, {**ROW, "phone": "2"}))
    assert out.expect is None and set(out.values) == {"id", "name", "phone", "status"}


def test_delete_and_insert_carry_expect(config: Config) -> None:
    mset = load(config, ACCT_YAML)
    (d,) = route(mset, "crm", RowChange(ACCT_PG, Op.DELETE, ROW, None))
    assert d.op is Op.DELETE and d.expect == {"id": 1, "name": "Ann", "phone": "1", "status": "A"}
    (i,) = route(mset, "crm", RowChange(ACCT_PG, Op.INSERT, None, ROW))
    assert i.op is Op.INSERT and i.expect == {} and i.values["status"] == "A"


# ---------------------------------------------------------------- rules compiled per direction


def test_default_rule_is_latest_by_commit_time_ties_to_the_first_connection(config: Config) -> None:
    flow = load(config, ACCT_YAML).by_name["acct"].flow("crm")
    assert flow.conflicts is not None
    assert flow.conflicts.rule("name") == ConflictRule("latest")
    assert flow.conflicts.first_side == "crm"


def test_owned_fields_are_won_by_their_owner(config: Config) -> None:
    flow = load(config, ACCT_YAML).by_name["acct"].flow("erp")
    assert flow.conflicts.rule("credit") == ConflictRule("priority", side="erp")


def test_a_column_also_read_by_a_field_the_target_side_owns_keeps_its_own_rule(config: Config) -> None:
    """`label` copies the CRM's `name` one way into the ERP's `label`; it never flows into the CRM, so the CRM's
    `name` keeps `name`'s rule there. It took label's `priority: crm`: in a race on the name each direction
    decided for another side and the sides kept different names (docs/walkthrough-civicrm-metasfresh.md,
    CiviCRM's organization_name also copied into metasfresh's companyname)."""
    text = ACCT_YAML.replace("      credit: {owner: erp}\n", "      credit: {owner: erp}\n"
                             "      label: {crm: name, erp: label, owner: crm}\n")
    mset = load(config, text)
    assert mset.by_name["acct"].flow("erp").conflicts.rule("name") == ConflictRule("latest")
    assert mset.by_name["acct"].flow("crm").conflicts.rule("name") == ConflictRule("latest")
    assert mset.by_name["acct"].flow("crm").conflicts.rule("label") == ConflictRule("priority", side="crm")


def test_rules_per_mapping_and_per_field(config: Config) -> None:
    text = ACCT_YAML.replace("    direction: both\n", "    direction: both\n    conflicts: {latest: {column: stamp}}\n")
    text = text.replace("      phone: ~\n", "      phone: {conflicts: {priority: crm}}\n      stamp: {erp: changed_at}\n")
    text = text.replace("      name: ~\n", "      name: {conflicts: manual}\n")
    mset = load(config, text)
    to_erp = mset.by_name["acct"].flow("crm").conflicts
    to_crm = mset.by_name["acct"].flow("erp").conflicts
    assert to_erp.rule("status") == ConflictRule("latest", column="changed_at")  # target terms
    assert to_crm.rule("status") == ConflictRule("latest", column="stamp")
    assert to_erp.rule("phone") == to_crm.rule("phone") == ConflictRule("priority", side="crm")
    assert to_erp.rule("name") == ConflictRule("manual")


@pytest.mark.parametrize("rule, message", [
    ("sometimes", "m.yaml:3: mappings.acct.conflicts: 'sometimes' is not a conflict rule (one of latest, owner, "
                  "manual, {priority: <side>} or {latest: {column: <field>}})"),
    ("{priority: wms}", "m.yaml:3: mappings.acct.conflicts: priority names a side: crm or erp, not 'wms'"),
    ("priority", "m.yaml:3: mappings.acct.conflicts: priority needs the winning side: {priority: crm}"),
    ("{latest: {column: nope}}", "m.yaml:3: mappings.acct.conflicts: latest column 'nope' is not a field of "
                                 "this mapping"),
    ("{latest: {col: name}}", "m.yaml:3: mappings.acct.conflicts: latest takes {column: <field>}: the field whose "
                              "value orders the edits (an updated_at the applications maintain)"),
])
def test_bad_rules_name_file_line_and_key(config: Config, rule: str, message: str) -> None:
    text = ACCT_YAML.replace("    direction: both\n", f"    conflicts: {rule}\n    direction: both\n")
    assert error(config, text) == message


def test_a_field_rule_error_names_the_field(config: Config) -> None:
    text = ACCT_YAML.replace("      phone: ~\n", "      phone: {conflicts: {latest: {column: name}}}\n")
    assert error(config, text).startswith("m.yaml:9: mappings.acct.fields.phone.conflicts: a field's rule cannot")


def test_one_way_mapping_has_no_conflicts(config: Config) -> None:
    text = ACCT_YAML.replace("direction: both", "direction: crm_to_erp\n    conflicts: latest")
    assert error(config, text) == ("m.yaml:4: mappings.acct.conflicts: conflicts: only a `direction: both` mapping "
                                   "has conflicts (fix: remove it, or make the mapping two-way)")


def test_setup_print_sql_sets_replica_identity_full_for_two_way_tables(config: Config) -> None:
    from replicator.admin.provision import describe
    lines = describe(config, load(config, ACCT_YAML)).splitlines()
    assert 'ALTER TABLE "public"."acct" REPLICA IDENTITY FULL;' in lines
    one_way = load(config, ACCT_YAML.replace("direction: both", "direction: crm_to_erp").replace(
        "      credit: {owner: erp}\n", ""))
    assert not any("REPLICA IDENTITY" in line for line in describe(config, one_way).splitlines())


LINKED_YAML = """\
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [cid]}
    link: {natural: [email], crosswalk: true}
    fields:
      email: ~
      name: ~
"""


def test_linked_two_way_changes_carry_the_old_row_for_the_linker_to_check(config: Config) -> None:
    from datetime import datetime, timezone

    from replicator.mapping.router import LinkedChange
    mset = load(config, LINKED_YAML)
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    row = {"id": 1, "email": "a@x", "name": "Ann"}
    [lc] = route(mset, "crm", upd(ACCT_PG, row, {**row, "name": "Bo"}), t)
    assert isinstance(lc, LinkedChange)
    # every field (the counterpart may have to be created whole), and the old row to find what changed
    assert lc.values == {"email": "a@x", "name": "Bo"} and lc.expect == {"email": "a@x", "name": "Ann"}
    assert lc.commit_time == t
    [ins] = route(mset, "crm", RowChange(ACCT_PG, Op.INSERT, None, row), t)
    assert ins.expect == {}  # an insert that finds its counterpart is checked as insert_exists
    [key_only] = route(mset, "crm", upd(ACCT_PG, {"id": 1}, {**row, "name": "Bo"}), t)
    assert key_only.expect is None  # no full old row (REPLICA IDENTITY DEFAULT): written unchecked, as before
    flow = mset.by_name["acct"].flow("crm")
    assert flow is not None
    [scan] = route_flow(flow, upd(ACCT_PG, row, {**row, "name": "Bo"}))  # sync, verify, explain: unchecked
    assert scan.expect is None
