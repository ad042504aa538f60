"""`check` refuses the default `delete: propagate` of a mapping whose target rows another mapping carries too
(mapping/check/shared.py): a purged 1:1 custom-field row deleted the whole ERP company."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_mapping_check import Env

TWO = """\
mappings:
  customers:
    direction: both
    crm: {{table: accounts, key: [id]}}
    erp: {{table: customers, key: [id]{erp_slice}}}
    delete: {{crm_to_erp: ignore}}
    fields:
      id: ~
      name: ~
  customer_custom:
    direction: both
    crm: {{table: accounts_cstm, key: [id]}}
    erp: {{table: customers, key: [id]{custom_slice}}}
{delete}    fields:
      id: ~
      code: {{owner: erp}}
"""


def text(delete: str = "", erp_slice: str = "", custom_slice: str = "") -> str:
    return TWO.format(delete=delete, erp_slice=erp_slice, custom_slice=custom_slice)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def shared(env: Env, t: str) -> list[str]:
    return [m for m in env.failures(t) if "carries that row too" in m]


def test_the_default_propagate_onto_a_shared_row_is_refused_with_both_ways_out(env: Env) -> None:
    (msg,) = shared(env, text())
    assert msg.startswith("erp: m.yaml:11: mappings.customer_custom: a deleted public.accounts_cstm row deletes its "
                          "erp:erpdb.customers row (crm_to_erp, the default `delete: propagate`), and mapping "
                          "'customers' carries that row too"), msg
    assert "`delete: {crm_to_erp: ignore}` when public.accounts_cstm only extends the record" in msg
    assert "`delete: {crm_to_erp: propagate}` when its delete is the record's" in msg


@pytest.mark.parametrize("delete", ["    delete: {crm_to_erp: ignore}\n", "    delete: {crm_to_erp: propagate}\n",
                                    "    delete: ignore\n", "    delete: {crm_to_erp: {set: {code: X}}}\n"])
def test_a_delete_written_out_is_the_dbas_decision(env: Env, delete: str) -> None:
    assert shared(env, text(delete)) == []


def test_the_other_direction_targets_a_table_of_its_own(env: Env) -> None:
    # erp_to_crm deletes accounts_cstm rows: no other mapping carries them, nothing to say
    assert all("erp_to_crm" not in m for m in shared(env, text()))


def test_disjoint_slices_hold_different_rows(env: Env) -> None:
    assert shared(env, text(erp_slice=", slice: {entity: 1}", custom_slice=", slice: {entity: 2}")) == []
    assert len(shared(env, text(erp_slice=", slice: {entity: 1}", custom_slice=", slice: {entity: 1}"))) == 1
    assert len(shared(env, text(custom_slice=", slice: {entity: 1}"))) == 1  # the other mapping has every entity


def test_a_single_mapping_of_a_table_keeps_the_default(env: Env) -> None:
    one = text().split("  customer_custom:")[0]
    assert shared(env, one.replace("    delete: {crm_to_erp: ignore}\n", "")) == []


# a 1:1 table keyed by the other mapping's records: `optional: true`, or a warning
EXT = TWO.replace("      id: ~\n      code: {{owner: erp}}", "      id: {{references: customers}}\n      code: {{owner: erp}}")


def ext(env: Env, optional: str = "", direction: str = "both") -> list[str]:
    t = EXT.format(delete="    delete: {crm_to_erp: ignore}\n", erp_slice="", custom_slice="")
    t = t.replace("crm: {table: accounts_cstm, key: [id]}", "crm: {table: accounts_cstm, key: [id]" + optional + "}")
    t = t.replace("  customer_custom:\n    direction: both", "  customer_custom:\n    direction: " + direction)
    return [f"{f.side}: {f.what} | fix: {f.fix}".replace(str(env.config.mappings_dir) + "/", "")
            for f in env.check(t) if f.warning and "1:1" in f.what]


def test_an_extension_table_without_optional_is_a_warning_naming_the_way_out(env: Env) -> None:
    (msg,) = ext(env)
    assert msg.startswith("crm: m.yaml:11: mappings.customer_custom: crm:public.accounts_cstm rows are keyed by "
                          "mapping 'customers''s records (id references it) and its erp row is 'customers''s too: "
                          "a 1:1 extension"), msg
    assert "add `optional: true` to the mapping's crm endpoint" in msg


def test_optional_or_a_one_way_flow_needs_no_warning(env: Env) -> None:
    assert ext(env, ", optional: true") == []
    assert ext(env, direction="crm_to_erp") == []  # nothing flows into accounts_cstm
