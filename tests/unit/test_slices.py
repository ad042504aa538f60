"""A mapping's slice as SQL (appliers/slices.py): a value selects `= %s`, NULL selects `IS NULL`, in both
dialects' quoting; the applier's find_keys and a two-hop fold's read render it the same way."""
from __future__ import annotations

from typing import Any, Sequence

import pytest

from replicator.appliers import mariadb, postgres
from replicator.appliers.base import Applier
from replicator.appliers.slices import slice_conditions, slice_sql, slice_text
from replicator.changes import TableRef
from replicator.config import Account, Connection, Secret

OFBIZ = (("party_type", "PERSON"), ("thru_date", None), ("active", 1))


@pytest.mark.parametrize("kind, q", [("postgresql", '"'), ("mariadb", "`")])
def test_a_value_is_equal_and_null_is_is_null_in_both_dialects(kind: str, q: str) -> None:
    conds, params = slice_sql(kind, OFBIZ)
    assert conds == [f"{q}party_type{q} = %s", f"{q}thru_date{q} IS NULL", f"{q}active{q} = %s"]
    assert params == ["PERSON", 1]  # one per placeholder, in order: none for the NULL


@pytest.mark.parametrize("kind, q", [("postgresql", '"'), ("mariadb", "`")])
def test_an_alias_and_a_name_with_a_percent_sign(kind: str, q: str) -> None:
    conds, params = slice_sql(kind, (("100%", None), ("ki`n\"d", "x")), "l")
    assert conds[0] == f"l.{q}100%%{q} IS NULL"  # % doubled: a statement run with parameters
    assert conds[1].startswith("l.") and conds[1].endswith(" = %s") and params == ["x"]


def test_only_nulls_take_no_parameter_and_no_slice_renders_nothing() -> None:
    assert slice_sql("postgresql", (("thru_date", None), ("deleted_at", None))) == (
        ['"thru_date" IS NULL', '"deleted_at" IS NULL'], [])
    assert slice_sql("mariadb", ()) == ([], [])
    conds, values = slice_conditions(lambda c: f"[{c}]", OFBIZ, "t.")
    assert conds == ["t.[party_type] = %s", "t.[thru_date] IS NULL", "t.[active] = %s"]
    assert values == {"party_type": "PERSON", "active": 1}


def test_false_and_zero_are_values_not_null() -> None:
    conds, params = slice_sql("mariadb", (("deleted", 0), ("primary", False), ("name", "")))
    assert conds == ["`deleted` = %s", "`primary` = %s", "`name` = %s"] and params == [0, False, ""]


def test_a_slice_in_a_message() -> None:
    assert slice_text(OFBIZ) == "party_type = 'PERSON', thru_date IS NULL, active = 1"


ACC = Account("u", Secret(""))


def _recording(applier: Applier) -> list[tuple[str, list[Any]]]:
    seen: list[tuple[str, list[Any]]] = []

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        seen.append((sql, list(params)))
        return []
    applier.query = query  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("make, q", [
    (lambda: postgres.PostgresApplier(Connection("crm", "postgresql", "h", 5432, "crm", ACC, ACC), "x"), '"'),
    (lambda: mariadb.MariaDBApplier(Connection("erp", "mariadb", "h", 3306, "erp", ACC, ACC), "x"), "`"),
])
def test_find_keys_puts_the_slice_after_the_equal_columns(make: Any, q: str) -> None:
    applier = make()
    seen = _recording(applier)
    t = TableRef("s", "party_contact_mech")
    applier.find_keys(t, ("party_id",), {"party_id": "P1"}, limit=1, slice_=OFBIZ)
    applier.find_keys(t, ("party_id",), {"party_id": "P1"})  # no slice: as before
    (sql, params), (plain, plain_params) = seen
    assert sql.endswith(f"WHERE {q}party_id{q} = %s AND {q}party_type{q} = %s AND {q}thru_date{q} IS NULL AND "
                        f"{q}active{q} = %s LIMIT 1"), sql
    assert params == ["P1", "PERSON", 1]
    assert plain.endswith(f"WHERE {q}party_id{q} = %s LIMIT 2") and plain_params == ["P1"]
