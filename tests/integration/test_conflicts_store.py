"""The conflict store on real servers: `setup` creates it on both databases, conflicts are recorded through a
real applier transaction (and vanish with its rollback), `replicator conflicts` lists both databases,
`resolve --take` makes both rows equal through the tagged repair path and marks the records, the
retention trims old decided records and keeps pending ones, and `explain` shows the row's conflicts.

The daemon is not running: the records are written as a direction writes them (applier transaction,
checkpoint commit), so the test does not depend on detection."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from replicator.admin.conflicts import Housekeeping
from replicator.appliers import make_applier
from replicator.changes import TableRef
from replicator.config import load
from replicator.conflicts import store
from replicator.conflicts.model import APPLIED, KEPT, LATEST, MANUAL, PENDING, RESOLVED, UPDATE_DIFFERS, Conflict
from tests.integration.harness import wait_until

PG = "CREATE TABLE acct (id int PRIMARY KEY, name text NOT NULL, credit numeric(12,2))"
MY = "CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, credit DECIMAL(12,2))"
MAPPINGS = """
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields: {id: ~, name: ~, credit: ~}
"""
EXTRA = "sync: {on_first_run: false}\nverify: {recheck_seconds: 1}\n"


def conflict(stream: str, table: TableRef, key: int, field: str | None, source: object, target: object, **kw: object
             ) -> Conflict:
    base = dict(stream=stream, mapping="acct", kind=UPDATE_DIFFERS, table=table, target_key=(key,),
                source_key=(key,), field=field, source_value=source, target_value=target, rule=MANUAL, winner="",
                resolution=PENDING, source_commit_time=datetime(2026, 12, 6, 9, 0, 0, 123456, tzinfo=timezone.utc))
    base.update(kw)
    return Conflict(**base)  # type: ignore[arg-type]


def record_committed(config: object, side: str, stream: str, conflicts: list[Conflict]) -> None:
    """As a direction does it: begin (tag), record, commit with the checkpoint."""
    applier = make_applier(config.side(side), stream, "")  # type: ignore[attr-defined]
    applier.connect()
    try:
        position = applier.read_checkpoint()
        assert position is not None
        applier.begin()
        store.record(applier, conflicts)
        applier.commit(position, None)
    finally:
        applier.close()


def test_conflicts_recorded_listed_resolved_and_trimmed(make_pair):
    pair = make_pair(PG, MY, MAPPINGS, extra_config=EXTRA)
    config = load(pair.config_path)
    erp_schema, db = pair.state_schema, pair.maria.dbname
    crm_table, erp_table = TableRef("public", "acct"), TableRef(db, "acct")

    # setup made the table on both sides (and --print-sql shows it)
    assert pair.pg_query("SELECT to_regclass('replicator.conflicts') IS NOT NULL") == [(True,)]
    assert pair.my_query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                         "AND TABLE_NAME = 'conflicts'", (erp_schema,)) == [(1,)]
    assert "CREATE TABLE IF NOT EXISTS replicator.conflicts" in pair.cli("setup", "--print-sql").stdout.replace('"', "")
    checked = pair.cli("check", check=False).stdout
    assert "[ok  ] crm: replicator.conflicts exists" in checked
    assert f"[ok  ] erp: {erp_schema}.conflicts exists" in checked

    # the row as a manual conflict leaves it: each side kept its own edit
    pair.pg_query("INSERT INTO acct VALUES (42, 'crm-name', 10.50), (7, 'same', 1)")
    pair.my_query("INSERT INTO acct VALUES (42, 'erp-name', 10.50), (7, 'same', 1)")

    # a rolled-back transaction records nothing: record() never commits on its own
    applier = make_applier(config.side("erp"), "crm_to_erp", "")
    applier.connect()
    applier.begin()
    store.record(applier, [conflict("crm_to_erp", erp_table, 42, "name", "crm-name", "erp-name")])
    applier.rollback()
    applier.close()
    assert pair.my_query(f"SELECT COUNT(*) FROM `{erp_schema}`.conflicts") == [(0,)]

    # each direction decided the same race once, in its own target
    record_committed(config, "erp", "crm_to_erp", [
        conflict("crm_to_erp", erp_table, 42, "name", "crm-name", "erp-name"),
        conflict("crm_to_erp", erp_table, 7, "credit", Decimal("2.00"), Decimal("1.00"), rule=LATEST, winner="erp",
                 resolution=KEPT, detail="erp's commit is later"),
    ])
    record_committed(config, "crm", "erp_to_crm", [
        conflict("erp_to_crm", crm_table, 42, "name", "erp-name", "crm-name"),
        conflict("erp_to_crm", crm_table, 7, "credit", Decimal("1.00"), Decimal("2.00"), rule=LATEST, winner="erp",
                 resolution=APPLIED, detail="erp's commit is later"),
    ])
    rows = pair.my_query(f"SELECT stream, target_key, source_value, target_value, source_commit_time "
                         f"FROM `{erp_schema}`.conflicts ORDER BY id")
    assert rows[1] == ("crm_to_erp", "[7]", '{"$d":"2.00"}', '{"$d":"1.00"}', datetime(2026, 12, 6, 9, 0, 0, 123456))

    # listed from both databases, with types intact
    listed = [json.loads(line) for line in pair.cli("conflicts", "--json").stdout.splitlines()]
    assert len(listed) == 4
    assert sorted(x["id"].split(":")[0] for x in listed) == ["crm", "crm", "erp", "erp"]
    by = {(x["decided_in"], x["key"]["crm"][0]): x for x in listed}
    assert by[("erp", 7)]["crm_value"] == "2.00" and by[("erp", 7)]["erp_value"] == "1.00"
    assert by[("crm", 7)]["crm_value"] == "2.00" and by[("crm", 7)]["erp_value"] == "1.00"
    assert by[("erp", 42)]["crm_value"] == "crm-name" and by[("erp", 42)]["resolution"] == PENDING
    pending = [json.loads(line) for line in pair.cli("conflicts", "--pending", "--key", "42", "--json").stdout.splitlines()]
    assert sorted(x["id"] for x in pending) == sorted([by[("erp", 42)]["id"], by[("crm", 42)]["id"]])
    table = pair.cli("conflicts", "--mapping", "acct").stdout
    assert "crm-name" in table and "'erp-name'" in table and "pending" in table and "erp won (kept)" in table

    # explain shows the row's conflicts from both databases
    explained = pair.cli("explain", "--mapping", "acct", "--side", "crm", "--key", "42").stdout
    assert "recent conflicts of this row (2, newest first" in explained, explained
    assert f"  {by[('erp', 42)]['id']} " in explained and "name: crm \"crm-name\", erp \"erp-name\"; manual: pending" \
        in explained, explained
    as_json = json.loads(pair.cli("explain", "--mapping", "acct", "--side", "erp", "--key", "7", "--json").stdout)
    assert sorted(x["id"] for x in as_json["conflicts"]["recent"]) == sorted([by[("erp", 7)]["id"], by[("crm", 7)]["id"]])

    # resolve: take the CRM's row; both rows equal, both records resolved by this user
    erp_ref = by[("erp", 42)]["id"]
    result = pair.cli("conflicts", "resolve", erp_ref, "--take", "crm")
    lines = result.stdout.splitlines()
    assert lines[0] == f"repaired acct crm_to_erp {db}.acct key=(42,): name 'erp-name' -> 'crm-name'", result.stdout
    assert lines[1].startswith(f"resolved crm:") and f"erp:{erp_ref.split(':')[1]}" in lines[1], result.stdout
    assert pair.my_query("SELECT name FROM acct WHERE id = 42") == [("crm-name",)]
    assert pair.pg_query("SELECT name FROM acct WHERE id = 42") == [("crm-name",)]
    states = pair.my_query(f"SELECT resolution, resolved_by IS NOT NULL, resolved_at IS NOT NULL FROM "
                           f"`{erp_schema}`.conflicts WHERE target_key = '[42]'")
    states += pair.pg_query("SELECT resolution, resolved_by IS NOT NULL, resolved_at IS NOT NULL FROM "
                            "replicator.conflicts WHERE target_key = '[42]'")
    assert states == [(RESOLVED, True, True), (RESOLVED, True, True)]
    # the repair went through the tagged path: its transaction carries the loop tag (checkpoint row bumped
    # by the tag on MariaDB, a logical message on PostgreSQL); the daemon is not running to echo it anyway

    # resolving again, or an unknown id: a clear error, exit 78
    again = pair.cli("conflicts", "resolve", erp_ref, "--take", "erp", check=False)
    assert again.returncode == 78 and "is not pending: it was resolved by" in again.stderr, again.stderr
    unknown = pair.cli("conflicts", "resolve", "erp:99999", "--take", "erp", check=False)
    assert unknown.returncode == 78 and "no conflict 99999 in erp" in unknown.stderr
    assert "Traceback" not in again.stderr + unknown.stderr

    # retention: decided records older than retention_days go, a pending one stays however old
    record_committed(config, "erp", "crm_to_erp", [conflict("crm_to_erp", erp_table, 8, "name", "a", "b")])
    old = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=40)
    pair.my_query(f"UPDATE `{erp_schema}`.conflicts SET detected_at = %s WHERE target_key IN ('[7]', '[8]')", (old,))
    pair.pg_query("UPDATE replicator.conflicts SET detected_at = now() - interval '40 days' WHERE target_key = '[7]'")
    trimmed = Housekeeping(config, threading.Event()).run_once()
    assert trimmed == {"crm": 1, "erp": 1}
    assert pair.my_query(f"SELECT target_key, resolution FROM `{erp_schema}`.conflicts ORDER BY id") == [
        ("[42]", RESOLVED), ("[8]", PENDING)]
    assert pair.pg_query("SELECT target_key FROM replicator.conflicts") == [("[42]",)]
    pair.pg_query("UPDATE replicator.conflicts SET detected_at = now() - interval '31 days'")
    assert pair.cli("conflicts", "trim").stdout == "trimmed conflict records older than 30 days: 1 in crm, 0 in erp\n"
    from replicator import metrics
    assert metrics.REGISTRY.get_sample_value("replicator_conflicts_pending", {"table": f"{db}.acct"}) == 1

    # an installation set up by an older version: check and run refuse, naming the fix
    pair.my_query(f"DROP TABLE `{erp_schema}`.conflicts")
    checked = pair.cli("check", check=False)
    assert checked.returncode == 78
    assert f"[FAIL] erp: {erp_schema}.conflicts is missing" in checked.stdout
    assert "fix: run `replicator setup`" in checked.stdout


def test_daemon_records_manual_conflicts_and_resolve_settles_them_while_it_runs(make_pair):
    """End to end: the daemon decides `manual` conflicts (both sides keep their value, one pending record
    per direction), the housekeeping side job exports the pending gauge, and `resolve --take erp` with the
    daemon running makes both sides equal for good (the tagged write does not echo back)."""
    pair = make_pair(PG, MY, MAPPINGS.replace("    fields:", "    conflicts: manual\n    fields:"),
                     extra_config=EXTRA + "conflicts: {housekeeping_seconds: 1}\n")
    db = pair.maria.dbname
    pair.start()
    pair.pg_query("INSERT INTO acct SELECT i, 'n' || i, i FROM generate_series(1, 5) i")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM acct") == [(5,)], what="rows in the ERP")
    pair.stop()
    # both sides edit the same field of rows 1..3 while nothing replicates: each edit is a conflict
    pair.pg_query("UPDATE acct SET name = 'crm-' || id WHERE id <= 3")
    pair.my_query("UPDATE acct SET name = CONCAT('erp-', id) WHERE id <= 3")
    pair.pg_query("UPDATE acct SET credit = 100 WHERE id = 5")  # no race: flows as usual
    pair.start()
    wait_until(lambda: pair.my_query("SELECT credit FROM acct WHERE id = 5") == [(Decimal("100.00"),)],
               what="the unconflicted edit in the ERP")
    listed = wait_until(lambda: (lambda x: x if len(x) == 6 else None)(
        [json.loads(line) for line in pair.cli("conflicts", "--pending", "--json").stdout.splitlines()]),
        what="six pending conflicts (3 rows x 2 directions)")
    assert {(x["decided_in"], x["key"]["crm"][0], x["field"], x["crm_value"], x["erp_value"]) for x in listed} == {
        (side, i, "name", f"crm-{i}", f"erp-{i}") for side in ("crm", "erp") for i in (1, 2, 3)}
    # nobody overwrote anything
    assert pair.pg_query("SELECT name FROM acct WHERE id <= 3 ORDER BY id") == [("crm-1",), ("crm-2",), ("crm-3",)]
    assert pair.my_query("SELECT name FROM acct WHERE id <= 3 ORDER BY id") == [("erp-1",), ("erp-2",), ("erp-3",)]
    assert pair.metric("replicator_conflicts_total", resolution=PENDING) == 6
    wait_until(lambda: pair.metric("replicator_conflicts_pending", table=f"{db}.acct") == 3
               and pair.metric("replicator_conflicts_pending", table="public.acct") == 3, what="pending gauges")

    ref = next(x["id"] for x in listed if x["decided_in"] == "crm" and x["key"]["crm"] == [2])
    pair.cli("conflicts", "resolve", ref, "--take", "erp")
    assert pair.pg_query("SELECT name FROM acct WHERE id = 2") == [("erp-2",)]
    left = [json.loads(line) for line in pair.cli("conflicts", "--pending", "--json").stdout.splitlines()]
    assert sorted(x["key"]["crm"][0] for x in left) == [1, 1, 3, 3]
    time.sleep(2)  # an echo of the repair would have come back by now
    assert pair.pg_query("SELECT name FROM acct WHERE id = 2") == [("erp-2",)]
    assert pair.my_query("SELECT name FROM acct WHERE id = 2") == [("erp-2",)]
    assert pair.metric("replicator_conflicts_total") == 6  # the resolution raised no new conflict
    wait_until(lambda: pair.metric("replicator_conflicts_pending", table="public.acct") == 2, what="gauge refresh")
    assert pair.stop() == 0


def test_kill_9_in_a_burst_of_conflicts_records_each_once(make_pair):
    """300 rows edited on both sides in 600 single-row transactions, the daemon applying them 5 rows per
    target transaction, killed with SIGKILL as soon as the first conflicts are recorded: after the restart
    every conflict is recorded exactly once per direction (records commit with the checkpoint)."""
    n = 300
    pair = make_pair(PG, MY, MAPPINGS.replace("    fields:", "    conflicts: manual\n    fields:"),
                     extra_config=EXTRA + "batch: {max_rows: 5, max_ms: 50}\n", setup=False)
    # equal rows on both sides before setup: the streams start after them
    pair.pg_query(f"INSERT INTO acct SELECT i, 'n' || i, i FROM generate_series(1, {n}) i")
    pair.my_query(f"INSERT INTO acct SELECT seq, CONCAT('n', seq), seq FROM seq_1_to_{n}")
    pair.setup()
    pg, my = pair.pg.connect(), pair.maria.connect()
    try:
        with pg.cursor() as pc, my.cursor() as mc:
            for i in range(1, n + 1):  # autocommit: one source transaction per row and side
                pc.execute("UPDATE acct SET name = %s WHERE id = %s", (f"crm-{i}", i))
                mc.execute("UPDATE acct SET name = %s WHERE id = %s", (f"erp-{i}", i))
    finally:
        pg.close()
        my.close()

    def counts() -> tuple[int, int]:
        return (pair.pg_query("SELECT COUNT(*) FROM replicator.conflicts")[0][0],
                pair.my_query(f"SELECT COUNT(*) FROM `{pair.state_schema}`.conflicts")[0][0])

    pair.start()
    at_kill = wait_until(lambda: (lambda c: c if sum(c) > 0 else None)(counts()), what="the first conflicts")
    pair.kill()
    at_kill = counts()
    pair.start()
    try:
        wait_until(lambda: counts() == (n, n), timeout=60, what=f"{n} conflicts in each database")
    except AssertionError:
        raise AssertionError(f"{counts()} (at the kill: {at_kill})\n{pair.log()[-3000:]}") from None
    time.sleep(1)  # nothing more comes
    assert counts() == (n, n), f"at the kill: {at_kill}"
    for rows in (pair.pg_query("SELECT target_key, COUNT(*) FROM replicator.conflicts GROUP BY target_key "
                               "HAVING COUNT(*) > 1"),
                 pair.my_query(f"SELECT target_key, COUNT(*) FROM `{pair.state_schema}`.conflicts "
                               f"GROUP BY target_key HAVING COUNT(*) > 1")):
        assert rows == [], f"recorded twice: {rows[:5]}"
    assert pair.pg_query("SELECT COUNT(*) FROM acct WHERE name LIKE 'crm-%'") == [(n,)]
    assert pair.my_query("SELECT COUNT(*) FROM acct WHERE name LIKE 'erp-%'") == [(n,)]
    print(f"conflicts recorded at the kill (crm, erp): {at_kill}")
    assert pair.stop() == 0
