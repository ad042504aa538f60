"""`latest` by commit time on a linked mapping shaped like flow 2 (mappings/02-customer-master.yaml):
each side numbers its own rows (crm id 1.., erp cid 5000..), paired by the crosswalk on a natural key,
a field renamed between the sides. Both sides edit the same field of every row while the daemon is
stopped, one side clearly (2 s, more than the binlog's whole second) later than the other. The later
edit must win on both sides, decided by the two commit times, not by the first-connection fallback
(which the demo's races showed every time: "crm won" although the ERP edit was later)."""
from __future__ import annotations

import time

import pytest

from tests.integration.harness import wait_until
from tests.integration.test_conflicts import EXTRA, recorded

N = 20
PG = ("CREATE TABLE customer (id serial PRIMARY KEY, customer_no text NOT NULL UNIQUE, name text, phone text, "
      "updated_at timestamptz)")
MY = ("CREATE TABLE customers (cid INT AUTO_INCREMENT PRIMARY KEY, customer_no VARCHAR(20) NOT NULL UNIQUE, "
      "customer_name VARCHAR(200), phone VARCHAR(30)) ENGINE=InnoDB AUTO_INCREMENT=5000")
MAP = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    link: {natural: [customer_no], crosswalk: true}
    conflicts: latest
    fields:
      customer_no: ~
      name: {erp: customer_name}
      phone: ~
"""


def rows(pair):
    crm = sorted(tuple(r) for r in pair.pg_query("SELECT customer_no, name, phone FROM customer"))
    erp = sorted(tuple(r) for r in pair.my_query("SELECT customer_no, customer_name, phone FROM customers"))
    return crm, erp


@pytest.mark.parametrize("later", ["erp", "crm"])
def test_linked_same_field_race_later_commit_wins_by_commit_time(make_pair, later):
    pair = make_pair(PG, MY, MAP, extra_config=EXTRA)
    pair.start()
    pair.pg_query(f"INSERT INTO customer (customer_no, name, phone) SELECT 'K' || g, 'base-' || g, '000' "
                  f"FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM customers") == [(N,)], 60, "the rows on the erp side")
    assert pair.stop() == 0
    crm_edit = ("UPDATE customer SET phone = 'crm-' || substr(customer_no, 2), name = 'crm-' || "
                "substr(customer_no, 2), updated_at = now()")
    erp_edit = ("UPDATE customers SET phone = CONCAT('erp-', SUBSTRING(customer_no, 2)), "
                "customer_name = CONCAT('erp-', SUBSTRING(customer_no, 2))")
    first, second = ((pair.pg_query, crm_edit), (pair.my_query, erp_edit))[::1 if later == "erp" else -1]
    first[0](first[1])
    time.sleep(2.1)  # the later edit commits in a later second than the earlier one (binlog: whole seconds)
    second[0](second[1])
    pair.start()
    expected = sorted((f"K{i}", f"{later}-{i}", f"{later}-{i}") for i in range(1, N + 1))

    def done():
        crm, erp = rows(pair)
        return crm == erp == expected
    try:
        wait_until(done, 60, "both sides equal to the later edit")
    except AssertionError:
        crm, erp = rows(pair)
        raise AssertionError(f"crm {crm[:3]} erp {erp[:3]} expected {expected[:3]}\n{pair.log()[-3000:]}") from None
    found = recorded(pair, 4 * N)
    assert found == {
        ("crm_to_erp", "update_differs", "customer_name", later, "applied" if later == "crm" else "kept"): N,
        ("crm_to_erp", "update_differs", "phone", later, "applied" if later == "crm" else "kept"): N,
        ("erp_to_crm", "update_differs", "name", later, "applied" if later == "erp" else "kept"): N,
        ("erp_to_crm", "update_differs", "phone", later, "applied" if later == "erp" else "kept"): N,
    }, found
    # decided by the two commit times (in each direction, or taken over from the other), never by the fallback
    details = {r[0] for r in pair.pg_query("SELECT detail FROM replicator.conflicts")} | \
        {r[0] for r in pair.my_query(f"SELECT detail FROM `{pair.state_schema}`.conflicts")}
    allowed = {f"{later}'s commit is later", f"as decided by the other direction: {later}'s commit is later"}
    assert details and details <= allowed, details
    assert "was not read within" not in pair.log(), pair.log()[-3000:]


@pytest.mark.parametrize("later", ["erp", "crm"])
def test_live_race_the_later_commit_wins_while_the_daemon_runs(make_pair, later):
    """What the demo's two-sided edit does now (demo/traffic.py both_edit_customer): with the daemon
    running, both sides update the same row; the later side's transaction stays open 1.5 s after the
    earlier side committed. Its row lock holds the earlier edit's replication back, so the two edits
    really race (neither saw the other) and commit in different seconds: the later one wins on both
    sides, by commit time."""
    pair = make_pair(PG, MY, MAP, extra_config=EXTRA)
    pair.start()
    pair.pg_query(f"INSERT INTO customer (customer_no, name, phone) SELECT 'K' || g, 'base-' || g, '000' "
                  f"FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM customers") == [(N,)], 60, "the rows on the erp side")
    pg, my = pair.pg.connect(autocommit=False), pair.maria.connect(autocommit=False)
    try:
        for i in range(1, 4):
            with pg.cursor() as c:
                c.execute("UPDATE customer SET phone = %s WHERE customer_no = %s", (f"crm-{i}", f"K{i}"))
            with my.cursor() as c:
                c.execute("UPDATE customers SET phone = %s WHERE customer_no = %s", (f"erp-{i}", f"K{i}"))
            first, second = (pg, my) if later == "erp" else (my, pg)
            first.commit()
            time.sleep(1.5)  # the earlier edit is read and applied meanwhile: it waits for this row lock
            second.commit()
    finally:
        pg.close()
        my.close()
    want = [(f"K{i}", f"{later}-{i}") for i in range(1, 4)]
    q = "SELECT customer_no, phone FROM {} WHERE customer_no IN ('K1', 'K2', 'K3') ORDER BY customer_no"
    wait_until(lambda: [tuple(r) for r in pair.pg_query(q.format("customer"))] == want
               and [tuple(r) for r in pair.my_query(q.format("customers"))] == want, 60, "the later edit on both sides")
    found = recorded(pair, 6)
    assert found == {("crm_to_erp", "update_differs", "phone", later, "applied" if later == "crm" else "kept"): 3,
                     ("erp_to_crm", "update_differs", "phone", later, "applied" if later == "erp" else "kept"): 3}, found
    details = {r[0] for r in pair.pg_query("SELECT detail FROM replicator.conflicts")} | \
        {r[0] for r in pair.my_query(f"SELECT detail FROM `{pair.state_schema}`.conflicts")}
    assert details and details <= {f"{later}'s commit is later",
                                    f"as decided by the other direction: {later}'s commit is later"}, details


def test_a_later_edit_of_another_field_does_not_date_the_raced_field(make_pair):
    """The ERP edits the phone, the CRM edits the phone 2 s later, then the ERP edits only the name of
    the same rows 2 s later still, all before the daemon reads any of it. The CRM's phone edit is the
    later one: it wins on both sides, and the ERP's name arrives in the CRM. (The commit record kept only
    the latest edit per row and took it for the edit of any column still holding the value: the ERP's
    name edit dated its phone, the ERP won in one direction and the CRM in the other, and the two sides
    kept different phones. Seen in a demo run: an account edited again right after its race.)"""
    pair = make_pair(PG, MY, MAP, extra_config=EXTRA)
    pair.start()
    pair.pg_query(f"INSERT INTO customer (customer_no, name, phone) SELECT 'K' || g, 'base-' || g, '000' "
                  f"FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM customers") == [(N,)], 60, "the rows on the erp side")
    assert pair.stop() == 0
    pair.my_query("UPDATE customers SET phone = CONCAT('erp-', SUBSTRING(customer_no, 2))")
    time.sleep(2.1)
    pair.pg_query("UPDATE customer SET phone = 'crm-' || substr(customer_no, 2)")
    time.sleep(2.1)
    pair.my_query("UPDATE customers SET customer_name = CONCAT('erp-', SUBSTRING(customer_no, 2))")
    pair.start()
    expected = sorted((f"K{i}", f"erp-{i}", f"crm-{i}") for i in range(1, N + 1))

    def done():
        crm, erp = rows(pair)
        return crm == erp == expected
    try:
        wait_until(done, 60, "the crm's phone and the erp's name on both sides")
    except AssertionError:
        crm, erp = rows(pair)
        raise AssertionError(f"crm {crm[:3]} erp {erp[:3]} expected {expected[:3]}\n{pair.log()[-3000:]}") from None
    found = recorded(pair, 2 * N)
    assert found == {("crm_to_erp", "update_differs", "phone", "crm", "applied"): N,
                     ("erp_to_crm", "update_differs", "phone", "crm", "kept"): N}, found
    details = {r[0] for r in pair.pg_query("SELECT detail FROM replicator.conflicts")} | \
        {r[0] for r in pair.my_query(f"SELECT detail FROM `{pair.state_schema}`.conflicts")}
    assert details and details <= {"crm's commit is later", "as decided by the other direction: crm's commit is later"}, \
        details
