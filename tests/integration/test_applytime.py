"""`now: true` on real servers: an ERP table whose NOT NULL created/modified stamps the application sets
(ERPNext's `creation`/`modified`), no trigger. `check` passes, every row of one applied transaction gets the
same instant (UTC), an update restamps `modified` only, the application's own edit of the stamp is no
conflict, and verify calls the sides in agreement."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.integration.harness import wait_until

PG = "CREATE TABLE acct (id int PRIMARY KEY, name text NOT NULL)"
MY = ("CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, created DATETIME(6) NOT NULL, "
      "modified DATETIME(6) NOT NULL)")
MAPPINGS = """
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields:
      id: ~
      name: ~
      created: {crm: ~, now: true, insert_only: true}
      modified: {crm: ~, now: true}
"""


def _stamps(pair) -> dict[int, tuple[datetime, datetime]]:
    return {i: (c, m) for i, c, m in pair.my_query("SELECT id, created, modified FROM acct ORDER BY id")}


def test_the_apply_time_stamps_rows_replicator_writes(make_pair) -> None:
    pair = make_pair(PG, MY, MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    checked = pair.cli("check", check=False)
    assert checked.returncode == 0 and "0 failed" in checked.stdout, checked.stdout + checked.stderr
    pair.start()
    before = datetime.utcnow() - timedelta(seconds=5)  # the test's clock against the daemon's, both UTC
    pair.pg_query("INSERT INTO acct VALUES (1, 'Ann'), (2, 'Bob')")  # one source transaction
    wait_until(lambda: len(pair.my_query("SELECT id FROM acct")) == 2, 60, "the rows on the erp side")
    after = datetime.utcnow() + timedelta(seconds=5)
    first = _stamps(pair)
    (c1, m1), (c2, m2) = first[1], first[2]
    assert c1 == m1 == c2 == m2, first  # one instant for the whole applied transaction
    assert before <= c1 <= after, (before, c1, after)  # UTC, whatever the servers' or the daemon's zone

    pair.pg_query("UPDATE acct SET name = 'Anna' WHERE id = 1")
    wait_until(lambda: pair.my_query("SELECT name FROM acct WHERE id = 1") == [("Anna",)], 60, "the update")
    second = _stamps(pair)
    assert second[1][0] == c1 and second[1][1] > m1, second  # created kept, modified restamped
    assert second[2] == first[2]  # a row nobody changed keeps its stamps

    # the application stamps its own edit (ERPNext's save) and edits the name: it flows to the CRM, and the
    # stamp, which the CRM has no column for, is nobody's edit there
    pair.my_query("UPDATE acct SET name = 'Bobby', modified = '2030-01-01 00:00:00' WHERE id = 2")
    wait_until(lambda: pair.pg_query("SELECT name FROM acct WHERE id = 2") == [("Bobby",)], 60, "the erp edit")
    # a CRM edit of the same row afterwards: the target's stamp differs from what it last wrote, no conflict
    pair.pg_query("UPDATE acct SET name = 'Robert' WHERE id = 2")
    wait_until(lambda: pair.my_query("SELECT name FROM acct WHERE id = 2") == [("Robert",)], 60, "the crm edit")
    third = _stamps(pair)
    assert third[2][0] == c2 and second[1][1] <= third[2][1] < datetime(2030, 1, 1), third
    pair.stop()
    assert pair.pg_query("SELECT count(*) FROM replicator.conflicts") == [(0,)]
    assert pair.my_query(f"SELECT count(*) FROM `{pair.state_schema}`.conflicts") == [(0,)]
    verified = pair.cli("verify", check=False)
    assert verified.returncode == 0 and "the sides agree" in verified.stdout, verified.stdout + verified.stderr
