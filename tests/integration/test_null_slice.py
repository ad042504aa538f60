"""A slice on NULL means IS NULL, on real servers, both ways: OFBiz's current rows (`thru_date IS NULL`, with a
second slice column, `kind`) on PostgreSQL, a soft delete (`deleted_at IS NULL`) on MariaDB. Sync copies the
current rows only, the stream carries inserts and updates, a row whose thru_date / deleted_at is set leaves the
slice (the mapping's delete on the other side) and one set back to NULL comes back whole; verify agrees and
`verify --repair` mends a drifted row and a missing one, writing the slice's NULL."""
from __future__ import annotations

from tests.integration.harness import wait_until
from tests.integration.test_verify import verify

PG = """
CREATE TABLE contact_mech (id int PRIMARY KEY, kind text NOT NULL, info text NOT NULL, thru_date timestamp);
INSERT INTO contact_mech VALUES (1, 'email', 'a@x', NULL), (2, 'email', 'old@x', '2020-01-01'),
                                (3, 'phone', '555', NULL)"""
MY = """
CREATE TABLE contacts (id INT PRIMARY KEY, info VARCHAR(100) NOT NULL, deleted_at DATETIME NULL);
INSERT INTO contacts VALUES (10, 'z@y', NULL), (11, 'gone@y', '2021-01-01 00:00:00')"""
MAPPINGS = """
mappings:
  emails:
    direction: both
    crm: {table: contact_mech, key: [id], slice: {kind: email, thru_date: null}}
    erp: {table: contacts, key: [id], slice: {deleted_at: null}}
    fields: {id: ~, info: ~}
"""
CRM_ROWS = "SELECT id, kind, info, thru_date IS NULL FROM contact_mech ORDER BY id"
ERP_ROWS = "SELECT id, info, deleted_at IS NULL FROM contacts ORDER BY id"


def _state(pair):
    return pair.my_query(ERP_ROWS), pair.pg_query(CRM_ROWS)


def _wait(pair, expected, what):
    try:
        wait_until(lambda: _state(pair) == expected, 30, what)
    except AssertionError:
        raise AssertionError(f"{what}: {_state(pair)}\n{pair.log()[-3000:]}") from None


def test_a_slice_on_null_both_ways_sync_stream_leave_return_verify_and_repair(make_pair):
    pair = make_pair(PG, MY, MAPPINGS, extra_config="sync: {on_first_run: false}\n"
                                                    "verify: {recheck_seconds: 1, chunk_rows: 100}\n")
    assert pair.cli("check").returncode == 0
    # sync: the current e-mail (1) and the ERP's live row (10) cross; the expired e-mail (2), the phone (3)
    # and the ERP's soft-deleted row (11) are outside the slices
    pair.cli("sync")
    assert pair.my_query(ERP_ROWS) == [(1, "a@x", 1), (10, "z@y", 1), (11, "gone@y", 0)]
    assert pair.pg_query(CRM_ROWS) == [(1, "email", "a@x", True), (2, "email", "old@x", False),
                                       (3, "phone", "555", True), (10, "email", "z@y", True)]
    code, out = verify(pair)
    assert code == 0, out

    pair.start()
    pair.pg_query("INSERT INTO contact_mech VALUES (4, 'email', 'b@x', NULL), (5, 'email', 'late@x', now())")
    pair.my_query("INSERT INTO contacts VALUES (12, 'w@y', NULL), (13, 'del@y', NOW())")
    pair.pg_query("UPDATE contact_mech SET info = 'a2@x' WHERE id = 1")
    pair.my_query("UPDATE contacts SET info = 'z2@y' WHERE id = 10")
    pair.pg_query("UPDATE contact_mech SET info = 'old2@x' WHERE id = 2")  # outside, stays outside
    _wait(pair, (
        [(1, "a2@x", 1), (4, "b@x", 1), (10, "z2@y", 1), (11, "gone@y", 0), (12, "w@y", 1), (13, "del@y", 0)],
        [(1, "email", "a2@x", True), (2, "email", "old2@x", False), (3, "phone", "555", True),
         (4, "email", "b@x", True), (5, "email", "late@x", False), (10, "email", "z2@y", True),
         (12, "email", "w@y", True)]), "inserts and updates both ways, the rows outside the slices kept out")
    # leaving the slice: thru_date / deleted_at set is the mapping's delete of the counterpart
    pair.pg_query("UPDATE contact_mech SET thru_date = now() WHERE id = 4")
    pair.my_query("UPDATE contacts SET deleted_at = NOW() WHERE id = 12")
    wait_until(lambda: (pair.my_query("SELECT id FROM contacts WHERE id IN (4, 12)"),
                        pair.pg_query("SELECT id FROM contact_mech WHERE id IN (4, 12)"))
               == ([(12,)], [(4,)]), 30, "rows 4 and 12 left their slices: their counterparts deleted")
    assert pair.metric("replicator_rows_left_total", direction="crm_to_erp", mapping="emails") == 1
    assert pair.metric("replicator_rows_left_total", direction="erp_to_crm", mapping="emails") == 1
    # coming back: NULL again, the row is sent whole (an insert), its slice columns written NULL
    pair.pg_query("UPDATE contact_mech SET thru_date = NULL, info = 'b2@x' WHERE id = 4")
    pair.my_query("UPDATE contacts SET deleted_at = NULL WHERE id = 12")
    wait_until(lambda: (pair.my_query("SELECT id, info, deleted_at IS NULL FROM contacts WHERE id IN (4, 12)"),
                        pair.pg_query("SELECT id, kind, thru_date IS NULL FROM contact_mech WHERE id IN (4, 12)"))
               == ([(4, "b2@x", 1), (12, "w@y", 1)], [(4, "email", True), (12, "email", True)]), 30,
               "rows 4 and 12 back")
    assert pair.stop() == 0
    code, out = verify(pair)
    assert code == 0, out

    # drift while nothing streams: an ERP row edited by hand, a CRM row the ERP misses
    pair.my_query("UPDATE contacts SET info = 'drift' WHERE id = 1")
    pair.my_query("DELETE FROM contacts WHERE id = 10")
    code, out = verify(pair)
    assert code != 0 and "key=(1,)" in out and "key=(10,)" in out, out
    code, out = verify(pair, "--repair")
    assert code == 0 and "contacts key=(1,): info 'drift' -> 'a2@x'" in out, out
    assert "inserted emails crm_to_erp" in out and "contacts key=(10,)" in out, out
    code, out = verify(pair)
    assert code == 0, out
    crm = {r[0]: r[2] for r in pair.pg_query(CRM_ROWS) if r[1] == "email" and r[3]}
    erp = {r[0]: r[1] for r in pair.my_query(ERP_ROWS) if r[2]}
    assert crm == erp and erp[1] == "a2@x" and erp[10] == "z2@y", (crm, erp)
    assert pair.my_query("SELECT deleted_at FROM contacts WHERE id = 10") == [(None,)]
