"""mapping/router: a row that leaves a mapping's filter or slice (old row matches, new one does not) is the
mapping's delete for that direction -- or its `leave:` --, as PostgreSQL's row filters turn such an UPDATE
into a DELETE; a row that stays outside costs nothing and is decided from the old row alone."""
from __future__ import annotations

import pytest

from replicator import metrics
from replicator.admin.provision import delete_filter_tables
from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.model import MappingSet
from replicator.mapping.router import LinkedChange, route
from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)

ACCOUNT = TableRef("public", "account")
PARTY = TableRef("public", "party")

SOFT = """\
mappings:
  accounts:
    direction: {direction}
    crm: {{table: account, key: [id]}}
    erp: {{table: clients, key: [id]}}
    filter: {{crm_to_erp: {{deleted: {{eq: false}}}}}}
{extra}    fields:
      id: ~
      name: ~
"""


def soft(config: Config, direction: str = "crm_to_erp", extra: str = "") -> MappingSet:
    return load(config, SOFT, direction=direction, extra=extra)


def update(old: dict, new: dict) -> RowChange:
    return RowChange(ACCOUNT, Op.UPDATE, old, new)


def left(mapping: str, action: str, direction: str = "crm_to_erp") -> float:
    return metrics.rows_left.labels(direction, mapping, action)._value.get()


LIVE = {"id": 7, "name": "Acme", "deleted": False}
GONE = {**LIVE, "deleted": True}

# old row in the filter, new row in the filter -> (what each leave action gives)
CASES = [
    (True, True, "update"),   # stays inside: an ordinary update
    (False, True, "update"),  # enters: sent (a one-way flow writes the whole row anyway)
    (True, False, "leave"),   # leaves: the leave action
    (False, False, "nothing"),  # stays outside: not sent
]


@pytest.mark.parametrize("old_in,new_in,expected", CASES)
@pytest.mark.parametrize("leave", [None, "propagate", "ignore", "{set: {active: 0}}"])
def test_the_decision_old_and_new_row_times_leave_action(config: Config, old_in: bool, new_in: bool,
                                                         expected: str, leave: str | None) -> None:
    mset = soft(config, extra="" if leave is None else f"    leave: {leave}\n")
    action = "propagate" if leave is None else "set" if leave.startswith("{") else leave
    counted = left("accounts", action)
    out = route(mset, "crm", update({**LIVE, "deleted": not old_in}, {**LIVE, "name": "New", "deleted": not new_in}))
    if expected == "update":
        assert [(c.op, c.values) for c in out] == [(Op.UPDATE, {"id": 7, "name": "New"})]
    elif expected == "nothing":
        assert out == []
    elif action == "ignore":
        assert out == []  # the counterpart stays
    elif action == "propagate":
        assert out == [TargetChange(TableRef("erpdb", "clients"), Op.DELETE, ("id",), (7,), {})]
    else:  # a soft delete needs the counterpart: the linker sets the columns
        (lc,) = out
        assert isinstance(lc, LinkedChange) and lc.op is Op.DELETE and lc.flow.delete == {"active": 0}
        assert lc.source_key == (7,) and lc.change.op is Op.UPDATE  # replayed from the queue: decided again
    assert left("accounts", action) == counted + (1 if expected == "leave" else 0)


def test_leave_follows_delete_unless_it_says_otherwise(config: Config) -> None:
    flows = soft(config, extra="    delete: ignore\n").by_name["accounts"].flows
    assert [f.leave for f in flows] == ["ignore"]
    flows = soft(config, extra="    delete: {set: {active: 0}}\n").by_name["accounts"].flows
    assert [f.leave for f in flows] == [{"active": 0}]
    flows = soft(config, extra="    delete: ignore\n    leave: {crm_to_erp: propagate}\n").by_name["accounts"].flows
    assert [(f.delete, f.leave) for f in flows] == [("ignore", "propagate")]


def test_a_row_outside_that_stays_outside_needs_no_old_row_beyond_its_filter_columns(config: Config) -> None:
    """Decided from the old image: MariaDB's FULL before image, PostgreSQL's REPLICA IDENTITY FULL."""
    mset = soft(config)
    assert route(mset, "crm", update(GONE, {**GONE, "name": "x"})) == []


def test_an_old_row_without_the_filter_column_is_a_row_error_never_a_silent_drop(config: Config) -> None:
    mset = soft(config)
    for before in (None, {"id": 7}):  # PostgreSQL's default identity: no old row, or only its key
        with pytest.raises(RowError) as info:
            route(mset, "crm", update(before, GONE))  # type: ignore[arg-type]
        assert (info.value.table, info.value.key, info.value.column) == ("public.account", (7,), "deleted")
        assert "REPLICA IDENTITY FULL" in str(info.value)
    # with `leave: ignore` nothing would be done either way: filtered, as before
    assert route(soft(config, extra="    leave: ignore\n"), "crm", update(None, GONE)) == []


def test_a_filter_on_the_key_is_decided_without_an_old_row(config: Config) -> None:
    """PostgreSQL sends no old row when the key did not change: the key's old value is its new one."""
    mset = load(config, SOFT.format(direction="crm_to_erp", extra="").replace("deleted: {eq: false}", "id: {lt: 10}"))
    assert route(mset, "crm", update(None, {"id": 12, "name": "x"})) == []
    key_change = route(mset, "crm", update({"id": 7}, {"id": 12, "name": "x"}))
    assert [(c.op, c.key) for c in key_change] == [(Op.DELETE, (7,))]


def test_a_two_way_leave_is_a_checked_delete_of_the_old_row(config: Config) -> None:
    """Conflict detection sees it as a delete: `expect` is the old row, as the target should still hold it."""
    mset = soft(config, direction="both")
    (tc,) = route(mset, "crm", update(LIVE, {**GONE, "name": "Renamed"}))
    assert isinstance(tc, TargetChange) and tc.op is Op.DELETE and tc.key == (7,)
    assert tc.expect == {"id": 7, "name": "Acme"} and tc.mapping == "accounts"
    # the other direction has no filter: its updates are untouched
    (back,) = route(mset, "erp", RowChange(TableRef("erpdb", "clients"), Op.UPDATE, {"id": 7, "name": "A"},
                                           {"id": 7, "name": "B"}))
    assert back.op is Op.UPDATE


SLICES = """\
mappings:
  customers:
    direction: both
    crm: {table: party, key: [id], slice: {dtype: customer}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  contacts:
    direction: both
    crm: {table: party, key: [id], slice: {dtype: contact}, generate: {id: uuid}}
    erp: {table: contacts, key: [contact_no]}
    link: {crosswalk: true}
%s    fields: {name: ~}
"""


def test_a_slice_move_deletes_from_one_mapping_and_creates_in_the_other(config: Config) -> None:
    mset = load(config, SLICES % "")
    old = {"id": "p1", "name": "Ann", "dtype": "customer"}
    out = route(mset, "crm", RowChange(PARTY, Op.UPDATE, old, {**old, "dtype": "contact"}))
    assert [(lc.flow.mapping, lc.op) for lc in out] == [("customers", Op.DELETE), ("contacts", Op.INSERT)]
    assert all(isinstance(lc, LinkedChange) for lc in out)
    assert out[0].expect == {"name": "Ann"}  # checked like a two-way delete, through the crosswalk pair
    kept = load(config, SLICES.replace("    link: {crosswalk: true}\n    fields: {name: ~}\n  contacts",
                                       "    link: {crosswalk: true}\n    leave: ignore\n    fields: {name: ~}\n"
                                       "  contacts", 1) % "")
    out = route(kept, "crm", RowChange(PARTY, Op.UPDATE, old, {**old, "dtype": "contact"}))
    assert [(lc.flow.mapping, lc.op) for lc in out] == [("contacts", Op.INSERT)]


def test_the_target_slice_and_gates_are_no_filter(config: Config) -> None:
    """A row of another entity on the target side, or a gate that closes again, leaves nothing."""
    gated = load(config, SOFT.format(direction="crm_to_erp", extra="").replace(
        "    filter: {crm_to_erp: {deleted: {eq: false}}}\n", "    gate: {crm_to_erp: {column: status, becomes: won}}\n"))
    row = {"id": 1, "name": "a", "status": "won"}
    (lc,) = route(gated, "crm", update(row, {**row, "status": "lost"}))
    assert isinstance(lc, LinkedChange) and lc.op is Op.UPDATE and not lc.entered


def test_leave_errors_name_file_line_and_key(config: Config) -> None:
    assert error(config, SOFT, direction="crm_to_erp", extra="    leave: drop\n") == (
        "m.yaml:7: mappings.accounts.leave: leave is propagate, ignore or {set: {column: value, ...}} (fix: one "
        "for both directions, or per direction: leave: {<from>_to_<to>: ignore})")
    assert error(config, SOFT, direction="crm_to_erp", extra="    leave: {erp_to_crm: ignore}\n").startswith(
        "m.yaml:7: mappings.accounts.leave.erp_to_crm: the mapping does not flow erp_to_crm")
    assert error(config, SOFT, direction="crm_to_erp", extra="    leave: {crm_to_erp: {set: []}}\n").startswith(
        "m.yaml:7: mappings.accounts.leave.crm_to_erp: leave is propagate, ignore")
    unfiltered = SOFT.format(direction="both", extra="    leave: ignore\n").replace(
        "    filter: {crm_to_erp: {deleted: {eq: false}}}\n", "")
    assert error(config, unfiltered).startswith(
        "m.yaml:6: mappings.accounts.leave: leave says what a row that leaves the mapping's filter or source slice")


def test_full_identity_is_needed_unless_deletes_and_leaves_are_both_ignored(config: Config) -> None:
    crm = config.side("crm")
    assert delete_filter_tables(crm, soft(config, extra="    delete: ignore\n")) == {}
    assert delete_filter_tables(crm, soft(config, extra="    leave: ignore\n")) == {
        ACCOUNT: "mapping accounts filters crm_to_erp on deleted"}
    assert delete_filter_tables(crm, soft(config, extra="    delete: ignore\n    leave: propagate\n")) == {
        ACCOUNT: "mapping accounts filters crm_to_erp on deleted"}


def test_a_linked_row_entering_again_is_an_insert_so_a_deleted_counterpart_comes_back(config: Config) -> None:
    """The crosswalk pair outlives the counterpart a leave deleted: the linker brings it back for an insert
    (links.Linker: an insert whose pair's row is gone), so a one-way linked flow routes an entering row as
    one too, as a two-way flow always did."""
    mset = load(config, SOFT.format(direction="crm_to_erp", extra="    link: {crosswalk: true}\n").replace(
        "      id: ~\n", ""))
    (lc,) = route(mset, "crm", update(GONE, {**LIVE, "name": "Back"}))
    assert isinstance(lc, LinkedChange) and lc.op is Op.INSERT and lc.values == {"name": "Back"} and lc.entered
    (lc,) = route(mset, "crm", update(LIVE, {**LIVE, "name": "Edit"}))  # inside before and after: an update
    assert isinstance(lc, LinkedChange) and lc.op is Op.UPDATE
    (lc,) = route(mset, "crm", update(LIVE, GONE))  # leaving: the pair's counterpart is deleted
    assert isinstance(lc, LinkedChange) and lc.op is Op.DELETE and lc.source_key == (7,)


ROLES = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: party_role, key: [party_id, role], slice: {role: CUSTOMER, thru_date: null}}
    erp: {table: customers, key: [id]}
    fields: {id: {crm: party_id}, name: ~}
  suppliers:
    direction: crm_to_erp
    crm: {table: party_role, key: [party_id, role], slice: {role: SUPPLIER, thru_date: null}}
    erp: {table: suppliers, key: [id]}
    fields: {id: {crm: party_id}, name: ~}
"""
ROLE = TableRef("public", "party_role")


def test_a_row_of_no_mapping_needs_no_old_row_when_its_key_already_says_whose_it_is(config: Config) -> None:
    """A table keyed by its slice column, PostgreSQL's default identity (no old row when the key did not change,
    the key alone of a deleted row): the key tells that a row of another role was never a mapping's. Before, the
    filter's other column (thru_date) was asked for first, and every such update stopped on REPLICA IDENTITY."""
    mset = load(config, ROLES)
    employee = {"party_id": 1, "role": "EMPLOYEE", "name": "b", "thru_date": None}
    assert route(mset, "crm", RowChange(ROLE, Op.UPDATE, None, employee)) == []
    assert route(mset, "crm", RowChange(ROLE, Op.UPDATE, {"party_id": 1, "role": "EMPLOYEE"}, employee)) == []
    assert route(mset, "crm", RowChange(ROLE, Op.DELETE, {"party_id": 1, "role": "EMPLOYEE"}, None)) == []
    # the row of one mapping: the other mapping is not asked for an old row it does not need
    customer = {**employee, "role": "CUSTOMER"}
    (tc,) = route(mset, "crm", RowChange(ROLE, Op.UPDATE, None, customer))
    assert isinstance(tc, TargetChange) and tc.table.name == "customers" and tc.key == (1,)


def test_a_row_whose_old_image_is_really_needed_still_stops_naming_it(config: Config) -> None:
    """The customer's row with an end date now: it may have been inside before (thru_date NULL) and its
    counterpart must then go; without the old row that cannot be told."""
    mset = load(config, ROLES)
    ended = {"party_id": 1, "role": "CUSTOMER", "name": "b", "thru_date": "2026-01-01"}
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(ROLE, Op.UPDATE, None, ended))
    assert (info.value.table, info.value.key, info.value.column) == ("public.party_role", (1, "CUSTOMER"),
                                                                      "thru_date")
    assert "mapping customers" in str(info.value) and "REPLICA IDENTITY FULL" in str(info.value)
    with pytest.raises(RowError, match="REPLICA IDENTITY FULL"):
        route(mset, "crm", RowChange(ROLE, Op.DELETE, {"party_id": 1, "role": "CUSTOMER"}, None))
    # with the whole old row it is decided: it left the mapping, its counterpart is deleted
    (tc,) = route(mset, "crm", RowChange(ROLE, Op.UPDATE, {**ended, "thru_date": None}, ended))
    assert isinstance(tc, TargetChange) and tc.op is Op.DELETE and tc.key == (1,)
