"""`latest` by commit time with the ERP server's clock 30 s ahead (issue 9, the skew test).

The MariaDB server runs under libfaketime (Debian package faketime) with FAKETIME="+30s": its NOW() and the
timestamps of its binlog events, which the daemon reads as the ERP's commit times, are 30 s ahead of the
host's and of the PostgreSQL server's. Both sides edit the same field of every row while the daemon is
stopped, the ERP first. docs/conflicts.md ("Clock skew") says what must happen: when the CRM edits 2 s
later in real time, the ERP's edit looks ~28 s later and wins; when the CRM edits 32 s later, beyond the
skew, the CRM's wins. Either way both directions compare the same two commit times, so they name the
same winner, both databases converge, and nothing echoes.
"""
from __future__ import annotations

import json
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


@pytest.mark.parametrize("crm_later_by", [2.1, SKEW + 2.1], ids=["within-skew", "beyond-skew"])
def test_latest_by_commit_time_under_skew(skewed_pair: Pair, crm_later_by: float) -> None:
    """The ERP edits first, the CRM `crm_later_by` seconds later in real time. Within the skew the ERP's
    earlier edit reads later and wins; beyond it the CRM's wins. Either way on both sides, alike."""
    pair = skewed_pair
    winner, loser = ("erp", "crm") if crm_later_by < SKEW else ("crm", "erp")
    erp_started = time.time()
    pair.my_query("UPDATE acct SET name = CONCAT('erp-', id)")
    time.sleep(crm_later_by)  # more than the binlog's 1 s resolution away from the skew either way
    pair.pg_query("UPDATE acct SET name = 'crm-' || id")
    real_gap = time.time() - erp_started  # at least crm_later_by; more when the statements are slow
    pair.start()
    settle(pair, [(i, f"{winner}-{i}", "000", Decimal("1.00")) for i in range(N)])
    found = recorded(pair, 2 * N)
    assert found == {("crm_to_erp", "update_differs", "name", winner, "applied" if winner == "crm" else "kept"): N,
                     ("erp_to_crm", "update_differs", "name", winner, "applied" if winner == "erp" else "kept"): N
                     }, found  # crm_to_erp's records are in the erp database, erp_to_crm's in the crm database
    # each direction decided by the two commit times itself, or followed the other direction's decision of
    # the same race (conflicts/clock.py): either way the same winner, for the same reason
    why = {f"{winner}'s commit is later", f"as decided by the other direction: {winner}'s commit is later"}
    details = pair.pg_query("SELECT DISTINCT detail FROM replicator.conflicts")
    assert details and {d for (d,) in details} <= why, details
    details = pair.my_query(f"SELECT DISTINCT detail FROM `{pair.state_schema}`.conflicts")
    assert details and {d for (d,) in details} <= why, details
    assert_no_echo(pair, crm_to_erp=N if winner == "crm" else 0, erp_to_crm=N if winner == "erp" else 0)

    # the two commit times compared, as recorded: in the crm database the erp's (the incoming side of
    # erp_to_crm), in the erp database the crm's. The erp's edit, made earlier, reads SKEW - crm_later_by later.
    (erp_commit,), = pair.pg_query("SELECT DISTINCT source_commit_time FROM replicator.conflicts")
    crm_commits = pair.my_query(f"SELECT DISTINCT source_commit_time FROM `{pair.state_schema}`.conflicts")
    assert len(crm_commits) == 1, crm_commits
    crm_commit = crm_commits[0][0].replace(tzinfo=timezone.utc)  # DATETIME(6) in UTC
    apart = (erp_commit - crm_commit).total_seconds()
    # the commits were at least crm_later_by and at most real_gap apart in real time; -1 s: binlog times are
    # whole seconds
    assert SKEW - real_gap - 1 < apart < SKEW - crm_later_by + 1, (apart, real_gap)

    if winner == "erp":
        # the daemon reads the skewed binlog times as the erp's commit times: the one it applied to the crm
        # lies in the host's future (by SKEW - crm_later_by, less the seconds since)
        ahead = pair.metric("replicator_last_applied_timestamp_seconds", direction="erp_to_crm") - time.time()
        assert ahead > SKEW - crm_later_by - 10, ahead


def test_binlog_retention_margin_is_measured_on_the_servers_own_clock(skewed_pair: Pair) -> None:
    """MariaDB expires a closed binlog file by its own clock: the margin must not gain the skew (a file
    closed 30 s "in the future" by the host's clock would read 30 s safer than it is)."""
    pair = skewed_pair  # stopped; its checkpoint is in the current binlog file
    old = pair.my_query("SELECT @@global.binlog_expire_logs_seconds")[0][0]
    pair.my_query("SET GLOBAL binlog_expire_logs_seconds = 3600")
    try:
        pair.my_query("FLUSH BINARY LOGS")  # the checkpoint's file is closed: its expiry clock starts
        result = pair.cli("status", "--json", "--sample", "0", check=False)
        assert result.returncode in (0, 1, 2), result.stdout + result.stderr
        margin = json.loads(result.stdout)["sources"][1]["margin_seconds"]
        assert 3590 <= margin <= 3600, margin
    finally:
        pair.my_query(f"SET GLOBAL binlog_expire_logs_seconds = {int(old)}")


def test_the_lag_gauge_takes_the_sources_clock_skew_off(skewed_pair: Pair) -> None:
    """replicator_lag_seconds compares the source's commit times with the daemon's clock: each direction
    samples its source's clock (stream/skew.py) and the gauge takes the difference off. The erp's reads
    SKEW ahead, the crm's (the host's clock) about nothing."""
    pair = skewed_pair
    pair.start()
    # sampled at the start of each direction's session (0 until then)
    wait_until(lambda: pair.metric("replicator_source_clock_skew_seconds", direction="erp_to_crm") != 0
               and pair.metric("replicator_source_clock_skew_seconds", direction="crm_to_erp") != 0, 30,
               "both directions' samples")
    erp = pair.metric("replicator_source_clock_skew_seconds", direction="erp_to_crm")
    crm = pair.metric("replicator_source_clock_skew_seconds", direction="crm_to_erp")
    assert SKEW - 2 < erp < SKEW + 2, erp
    assert abs(crm) < 2, crm
