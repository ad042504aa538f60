"""Deletes of linked two-way flows racing an update of the same record on the other side (issue 9's
leftovers), real servers: a crosswalk mapping (each side's own surrogate keys) and a `references`
mapping (applied row by row through the linker). The race is decided by the mapping's rule the same
way in both directions and recorded (update_missing / delete_differs), the rows end equal on both
sides, and a delete that loses leaves the crosswalk pair valid: the counterpart comes back under its
old key, so later edits of either side still find each other and nothing is duplicated."""
from __future__ import annotations

import time

import pytest

from tests.integration.harness import wait_until
from tests.integration.test_conflicts import (EXTRA, REF_MAP, REF_MY, REF_PG, XW_MAP, XW_MY, XW_PG, assert_no_echo,
                                              race, recorded)

N = 50


def xw_pair(make_pair, rule: str):
    pair = make_pair(XW_PG, XW_MY, XW_MAP.replace("{priority: erp}", rule), extra_config=EXTRA)
    pair.start()
    pair.pg_query(f"INSERT INTO customer (email, name, phone) SELECT 'u' || g || '@x', 'base-' || g, '000' "
                  f"FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM customers") == [(N,)], 60, "the rows on the erp side")
    pair.stop()
    return pair


def xw_state(pair):
    """email -> (name, phone) on each side, and the erp's own key of each email."""
    crm = {e: (n, p) for e, n, p in pair.pg_query("SELECT email, name, phone FROM customer")}
    erp = {e: (n, p) for e, n, p in pair.my_query("SELECT email, customer_name, phone FROM customers")}
    cids = {e: c for e, c in pair.my_query("SELECT email, cid FROM customers")}
    return crm, erp, cids


def settled(pair, expected, what: str) -> None:
    def done():
        crm, erp, _ = xw_state(pair)
        return crm == erp == expected
    try:
        wait_until(done, 60, what)
    except AssertionError:
        crm, erp, _ = xw_state(pair)
        bad = [(e, crm.get(e), erp.get(e), expected.get(e)) for e in sorted(set(crm) | set(erp) | set(expected))
               if not crm.get(e) == erp.get(e) == expected.get(e)]
        raise AssertionError(f"{len(bad)} rows differ, e.g. (email, crm, erp, expected) {bad[:3]}\n"
                             f"{pair.log()[-3000:]}") from None


@pytest.mark.parametrize("winner", ["crm", "erp"])
def test_crosswalk_update_against_delete_is_decided_alike_and_keeps_the_pair(make_pair, winner):
    """The crm updates u1..u10 while the erp deletes u1..u20. `priority: crm`: u1..u10 come back on the erp
    under their old cid (the pair still holds) and u11..u20 are deleted on the crm; `priority: erp`: u1..u20
    are gone on both sides. Each direction records its side of the race, naming the same winner."""
    pair = xw_pair(make_pair, f"{{priority: {winner}}}")
    _, _, cids_before = xw_state(pair)
    race(pair, "UPDATE customer SET phone = 'new' WHERE id <= 10",
         "DELETE FROM customers WHERE email IN (" + ", ".join(f"'u{i}@x'" for i in range(1, 21)) + ")")
    pair.start()
    kept = winner == "crm"
    expected = {f"u{i}@x": (f"base-{i}", "new" if i <= 10 else "000") for i in range(1, N + 1)
                if i > 20 or (kept and i <= 10)}
    settled(pair, expected, "both sides equal to the winner")
    found = recorded(pair, 20)
    assert found == {("crm_to_erp", "update_missing", None, winner, "applied" if kept else "kept"): 10,
                     ("erp_to_crm", "delete_differs", None, winner, "kept" if kept else "applied"): 10}, found
    assert_no_echo(pair, crm_to_erp=10 if kept else 0, erp_to_crm=10 if kept else 20)
    _, _, cids = xw_state(pair)
    assert cids == {e: cids_before[e] for e in expected}  # re-created under the key the pair names
    # the pair still links the two records: later edits on either side reach the same row, never a new one
    pair.pg_query("UPDATE customer SET name = 'crm-late' WHERE id = 30")
    pair.my_query("UPDATE customers SET customer_name = 'erp-late' WHERE email = 'u31@x'")
    if kept:
        pair.my_query("UPDATE customers SET phone = 'erp-back' WHERE email = 'u5@x'")
        pair.pg_query("UPDATE customer SET name = 'crm-back' WHERE id = 6")
        expected["u5@x"], expected["u6@x"] = ("base-5", "erp-back"), ("crm-back", "new")
    expected["u30@x"], expected["u31@x"] = ("crm-late", "000"), ("erp-late", "000")
    settled(pair, expected, "later edits on both sides")
    assert pair.my_query("SELECT COUNT(*) FROM customers") == [(len(expected),)] \
        == pair.pg_query("SELECT COUNT(*) FROM customer")


@pytest.mark.parametrize("later", ["update", "delete"])
def test_references_update_against_delete_by_commit_time(make_pair, later):
    """A `references` mapping (row by row through the linker), no rule (latest by commit time), the two
    commits 2 s apart: the later wins on both sides, the update (the row back whole on the erp) or the
    delete (gone on both). Before, the update re-created the row on the erp and the delete removed it
    on the crm: the sides disagreed."""
    pair = make_pair(REF_PG, REF_MY, REF_MAP.replace("    conflicts: {priority: erp}\n", ""), extra_config=EXTRA)
    pair.start()
    pair.pg_query("INSERT INTO acct VALUES (1, 'a')")
    pair.pg_query(f"INSERT INTO contact SELECT g, 1, '000', 'base' FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM contact") == [(N,)], 60, "the rows on the erp side")
    pair.stop()
    upd, dele = (lambda: pair.pg_query("UPDATE contact SET phone = 'new' WHERE id <= 10"),
                 lambda: pair.my_query("DELETE FROM contact WHERE id <= 10"))
    first, second = (dele, upd) if later == "update" else (upd, dele)
    first()
    time.sleep(2.1)
    second()
    pair.start()
    kept = later == "update"
    expected = [(i, 1, "new" if i <= 10 else "000", "base") for i in range(1, N + 1) if kept or i > 10]
    q = "SELECT id, acct_id, phone, note FROM contact ORDER BY id"
    wait_until(lambda: [tuple(r) for r in pair.pg_query(q)] == [tuple(r) for r in pair.my_query(q)] == expected,
               60, "both sides equal to the winner")
    winner = "crm" if kept else "erp"
    found = recorded(pair, 20)
    assert found == {("crm_to_erp", "update_missing", None, winner, "applied" if kept else "kept"): 10,
                     ("erp_to_crm", "delete_differs", None, winner, "kept" if kept else "applied"): 10}, found
    assert_no_echo(pair, crm_to_erp=10 if kept else 0, erp_to_crm=0 if kept else 10)


def test_verify_repair_of_a_crosswalk_mapping_decides_each_field_by_the_rule(make_pair):
    """Drift on both sides of a crosswalk mapping (edited while the daemon was down, never replicated),
    `priority: erp`: `verify --repair` writes the erp's value of every differing field, whichever side
    edited it -- the crm's edits lose on both sides, the erp's reach the crm -- never a fixed direction."""
    pair = xw_pair(make_pair, "{priority: erp}")
    pair.pg_query("UPDATE customer SET name = 'crm-' || id WHERE id <= 5")
    pair.my_query("UPDATE customers SET phone = CONCAT('erp-', email) WHERE email IN ("
                  + ", ".join(f"'u{i}@x'" for i in range(6, 11)) + ")")
    result = pair.cli("verify", "--repair", check=False)
    assert "the sides agree" in result.stdout, result.stdout + result.stderr
    expected = {f"u{i}@x": (f"base-{i}", f"erp-u{i}@x" if 6 <= i <= 10 else "000") for i in range(1, N + 1)}
    crm, erp, _ = xw_state(pair)
    assert crm == erp == expected
    repaired = sorted(line.split(" key=")[0] for line in result.stdout.splitlines() if line.startswith("repaired"))
    assert repaired == sorted([f"repaired customers erp_to_crm public.customer"] * 10), result.stdout


def test_crosswalk_delete_on_the_side_that_created_the_pair_loses_and_the_row_comes_back_under_its_id(make_pair):
    """The mirror image: the crm (whose rows the pairs in the erp's crosswalk name) deletes u1..u20 while the
    erp updates u1..u10, `priority: erp`. erp_to_crm finds the pair in its *source's* crosswalk, and the
    crm rows come back under their old ids (a serial column takes a given value), so the pair holds."""
    pair = xw_pair(make_pair, "{priority: erp}")
    ids_before = {e: i for i, e in pair.pg_query("SELECT id, email FROM customer")}
    race(pair, "DELETE FROM customer WHERE id <= 20",
         "UPDATE customers SET phone = 'new' WHERE email IN (" + ", ".join(f"'u{i}@x'" for i in range(1, 11)) + ")")
    pair.start()
    expected = {f"u{i}@x": (f"base-{i}", "new" if i <= 10 else "000") for i in range(1, N + 1) if i > 20 or i <= 10}
    settled(pair, expected, "both sides equal to the winner")
    found = recorded(pair, 20)
    assert found == {("erp_to_crm", "update_missing", None, "erp", "applied"): 10,
                     ("crm_to_erp", "delete_differs", None, "erp", "kept"): 10}, found
    assert {e: i for i, e in pair.pg_query("SELECT id, email FROM customer")} == {e: ids_before[e] for e in expected}
    pair.my_query("UPDATE customers SET customer_name = 'erp-back' WHERE email = 'u3@x'")
    pair.pg_query("UPDATE customer SET name = 'crm-back' WHERE id = 4")
    expected["u3@x"], expected["u4@x"] = ("erp-back", "new"), ("crm-back", "new")
    settled(pair, expected, "later edits on both sides")
    assert pair.my_query("SELECT COUNT(*) FROM customers") == [(len(expected),)] \
        == pair.pg_query("SELECT COUNT(*) FROM customer")
