"""`latest` by commit time with the ERP server's clock 30 s ahead (issue 9, the skew test).

The MariaDB server runs under libfaketime (Debian package faketime) with FAKETIME="+30s": its NOW() and the
timestamps of its binlog events, which the daemon reads as the ERP's commit times, are 30 s ahead of the
host's and of the PostgreSQL server's. Both sides edit the same field of every row while the daemon is
stopped, the ERP 2 s *before* the CRM in real time. docs/conflicts.md ("Clock skew") says what must happen:
the ERP's edit looks ~28 s later and wins, on both sides; both directions compare the same two commit
times, so they name the same winner, both databases converge, and nothing echoes.
"""
from __future__ import annotations

import time
from datetime import timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

from replicator.testing.devservers import Database, MariaDBServer, faketime_env, faketime_library
from tests.integration.conftest import require_server, unique_name
from tests.integration.harness import Pair, wait_until
from tests.integration.test_conflicts import EXTRA, MAPPINGS, MY, PG, T0, assert_no_echo, recorded, settle

N = 50  # rows raced: enough for a batch of conflicts per direction, and the test stays well under a minute
SKEW = 30  # seconds the ERP server's clock runs ahead


@pytest.fixture(scope="module")
def skewed_maria(server_root: Path) -> Iterator[MariaDBServer]:
    """A MariaDB server of its own whose clock runs SKEW seconds ahead (the shared one keeps the host's)."""
    require_server("mariadb")
    if faketime_library() is None:
        pytest.skip("libfaketime not installed (Debian package faketime; scripts/install adds it)")
    server = MariaDBServer(server_root / "mariadb-skewed", env=faketime_env(f"+{SKEW}s"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def skewed_db(skewed_maria: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    db = skewed_maria.create_database(unique_name(request))
    yield db
    skewed_maria.drop_database(db.dbname)


@pytest.fixture
def skewed_pair(tmp_path: Path, pg_db: Database, skewed_db: Database) -> Iterator[Pair]:
    """A set-up, stopped daemon between a normal CRM and the skewed ERP, with N rows on both sides."""
    for sql, db in ((PG, pg_db), (MY, skewed_db)):
        conn = db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()
    pair = Pair(tmp_path, pg_db, skewed_db, MAPPINGS.format(rule=""), EXTRA)  # no `conflicts:`: latest by commit
    try:
        pair.setup()
        pair.start()
        values = ", ".join(f"({i}, 'base-{i}', '000', 1.00, '{T0.isoformat()}+00')" for i in range(N))
        pair.pg_query(f"INSERT INTO acct (id, name, phone, credit, changed) VALUES {values}")
        wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM acct") == [(N,)], 60, "the rows on the erp side")
        pair.stop()
        yield pair
    finally:
        pair.close()


def test_the_erp_server_clock_is_shifted(skewed_maria: MariaDBServer) -> None:
    """What the skew test relies on: the server's own clock (NOW(), what binlog event headers are stamped
    with) is SKEW seconds ahead of the host's; the daemon side of it is checked in the race below."""
    (now,), = skewed_maria.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
    assert SKEW - 1 < float(now) - time.time() < SKEW + 1, float(now) - time.time()


def test_latest_by_commit_time_skewed_erp_wins_an_edit_made_earlier(skewed_pair: Pair) -> None:
    pair = skewed_pair
    pair.my_query("UPDATE acct SET name = CONCAT('erp-', id)")
    time.sleep(2.1)  # the CRM edits 2 s later in real time, more than the binlog's 1 s resolution
    pair.pg_query("UPDATE acct SET name = 'crm-' || id")
    pair.start()
    settle(pair, [(i, f"erp-{i}", "000", Decimal("1.00")) for i in range(N)])
    found = recorded(pair, 2 * N)
    assert found == {("crm_to_erp", "update_differs", "name", "erp", "kept"): N,  # in the erp database
                     ("erp_to_crm", "update_differs", "name", "erp", "applied"): N}, found  # in the crm database
    details = pair.pg_query("SELECT DISTINCT detail FROM replicator.conflicts")
    assert details == [("erp's commit is later",)], details
    assert pair.my_query(f"SELECT DISTINCT detail FROM `{pair.state_schema}`.conflicts") == [("erp's commit is later",)]
    assert_no_echo(pair, crm_to_erp=0, erp_to_crm=N)

    # the two commit times compared, as recorded: in the crm database the erp's (the incoming side of
    # erp_to_crm), in the erp database the crm's. The erp's edit, 2 s earlier, reads SKEW - 2 s later.
    (erp_commit,), = pair.pg_query("SELECT DISTINCT source_commit_time FROM replicator.conflicts")
    crm_commits = pair.my_query(f"SELECT DISTINCT source_commit_time FROM `{pair.state_schema}`.conflicts")
    assert len(crm_commits) == 1, crm_commits
    crm_commit = crm_commits[0][0].replace(tzinfo=timezone.utc)  # DATETIME(6) in UTC
    apart = (erp_commit - crm_commit).total_seconds()
    assert SKEW - 2.1 - 1 < apart < SKEW - 2.1 + 1, apart  # minus up to 1 s: binlog times are whole seconds

    # the daemon reads the skewed binlog times as the erp's commit times: its last applied commit of
    # erp_to_crm lies in the host's future
    ahead = pair.metric("replicator_last_applied_timestamp_seconds", direction="erp_to_crm") - time.time()
    assert ahead > SKEW - 10, ahead
