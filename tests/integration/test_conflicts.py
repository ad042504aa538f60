"""Concurrent edits on both sides (issue 9), real servers: 200 rows edited on both sides before either
edit reached the other, then the daemon left to settle. Afterwards every row is equal on both sides and
equal to the documented winner, edits of different fields both survive, each database records at most
one conflict per raced row and field, and nothing echoes.

The daemon is stopped while both sides edit, so every row really races: each direction reads its
side's edit only after the other side's edit is committed in its target."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.integration.harness import wait_until

N = 200
PG = ("CREATE TABLE acct (id int PRIMARY KEY, name text NOT NULL, phone text, credit numeric(12,2), "
      "changed timestamptz)")
MY = ("CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, phone VARCHAR(30), credit DECIMAL(12,2), "
      "changed DATETIME(6))")
MAPPINGS = """
mappings:
  acct:
    direction: both
{rule}    crm: {{table: acct, key: [id]}}
    erp: {{table: acct, key: [id]}}
    fields: {{id: ~, name: ~, phone: ~, credit: ~, changed: ~}}
"""
EXTRA = "sync: {on_first_run: false}\n"
T0 = datetime(2026, 12, 6, 9, 0, 0)


def start_pair(make_pair, rule: str = ""):
    pair = make_pair(PG, MY, MAPPINGS.format(rule=f"    conflicts: {rule}\n" if rule else ""), extra_config=EXTRA)
    # setup gave the two-way table REPLICA IDENTITY FULL
    assert pair.pg_query("SELECT relreplident FROM pg_class WHERE relname = 'acct'") == [("f",)]
    pair.start()
    values = ", ".join(f"({i}, 'base-{i}', '000', 1.00, '{T0.isoformat()}+00')" for i in range(N))
    pair.pg_query(f"INSERT INTO acct (id, name, phone, credit, changed) VALUES {values}")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM acct") == [(N,)], 60, "the rows on the erp side")
    pair.stop()
    return pair


def race(pair, crm_sql: str, erp_sql: str) -> None:
    """Both sides edit every row, in two clients at the same moment, while the daemon is stopped."""
    threads = [threading.Thread(target=pair.pg_query, args=(crm_sql,)),
               threading.Thread(target=pair.my_query, args=(erp_sql,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def rows(pair, columns: str = "id, name, phone, credit"):
    crm = [tuple(r) for r in pair.pg_query(f"SELECT {columns} FROM acct ORDER BY id")]
    erp = [tuple(r) for r in pair.my_query(f"SELECT {columns} FROM acct ORDER BY id")]
    return crm, erp


def settle(pair, expected) -> None:
    def done():
        crm, erp = rows(pair)
        return crm == erp == expected
    try:
        wait_until(done, 60, "both sides equal to the winner")
    except AssertionError:
        crm, erp = rows(pair)
        bad = [(c, e, x) for c, e, x in zip(crm, erp, expected) if not c == e == x][:3]
        raise AssertionError(f"{sum(1 for c, e, x in zip(crm, erp, expected) if not c == e == x)} rows differ, "
                             f"e.g. (crm, erp, expected): {bad}\n{pair.log()[-3000:]}") from None


def assert_no_echo(pair, crm_to_erp: int, erp_to_crm: int) -> None:
    """Each direction applied exactly the rows it won (counted after the decision) and nothing comes
    back: a write that echoed would be applied by the other direction and grow its count."""
    def applied():
        return (pair.metric("replicator_rows_applied_total", direction="crm_to_erp"),
                pair.metric("replicator_rows_applied_total", direction="erp_to_crm"))
    wait_until(lambda: applied() == (crm_to_erp, erp_to_crm), 30, f"rows applied {(crm_to_erp, erp_to_crm)}")
    time.sleep(3)  # long enough for an echo to be read and applied (the batch window is 100s of ms)
    assert applied() == (crm_to_erp, erp_to_crm)
    assert pair.metric("replicator_loop_dropped_batches_total") >= 1  # our own writes came back, dropped


def recorded(pair, total: int = 0):
    """(stream, kind, field, winner, resolution) -> count, from both databases, once there are `total`
    records: the rows may agree before the losing direction has decided (it writes nothing)."""
    if total:
        wait_until(lambda: sum(_recorded(pair).values()) >= total, 60, f"{total} conflict records")
    return _recorded(pair)


def _recorded(pair):
    out: dict[tuple, int] = {}
    for q, schema in ((pair.pg_query, "replicator"), (pair.my_query, f"`{pair.state_schema}`")):
        for r in q(f"SELECT stream, kind, field, winner, resolution, COUNT(*) FROM {schema}.conflicts "
                   "GROUP BY stream, kind, field, winner, resolution"):
            out[tuple(r[:5])] = int(r[5])
    return out


def test_same_field_priority_erp(make_pair):
    pair = start_pair(make_pair, "{priority: erp}")
    race(pair, "UPDATE acct SET name = 'crm-' || id", "UPDATE acct SET name = CONCAT('erp-', id)")
    pair.start()
    settle(pair, [(i, f"erp-{i}", "000", Decimal("1.00")) for i in range(N)])
    assert recorded(pair, 2 * N) == {
        ("crm_to_erp", "update_differs", "name", "erp", "kept"): N,  # in the erp database
        ("erp_to_crm", "update_differs", "name", "erp", "applied"): N,  # in the crm database
    }
    assert pair.metric("replicator_conflicts_total", direction="crm_to_erp", kind="update_differs",
                       resolution="kept") == N
    assert_no_echo(pair, crm_to_erp=0, erp_to_crm=N)


@pytest.mark.parametrize("later", ["crm", "erp"])
def test_same_field_default_rule_later_commit_wins(make_pair, later):
    """No `conflicts:`: latest by commit time. Each direction learns the commit time of the other side's
    edit from the other direction's reader; edits more than a second apart (the binlog's resolution)
    are won by the later one, on both sides."""
    pair = start_pair(make_pair)
    first, second = (pair.my_query, pair.pg_query) if later == "crm" else (pair.pg_query, pair.my_query)
    first("UPDATE acct SET name = CONCAT('" + ("erp" if later == "crm" else "crm") + "-', id)")
    time.sleep(2.1)
    second("UPDATE acct SET name = CONCAT('" + later + "-', id)")
    pair.start()
    settle(pair, [(i, f"{later}-{i}", "000", Decimal("1.00")) for i in range(N)])
    found = recorded(pair, 2 * N)
    assert found == {("crm_to_erp", "update_differs", "name", later, "applied" if later == "crm" else "kept"): N,
                     ("erp_to_crm", "update_differs", "name", later, "applied" if later == "erp" else "kept"): N}, found
    # a direction that sees the race after its peer recorded it follows the peer's decision (docs/conflicts.md)
    why = f"{later}'s commit is later"
    details = {d for (d,) in pair.pg_query("SELECT DISTINCT detail FROM replicator.conflicts")
               + pair.my_query(f"SELECT DISTINCT detail FROM `{pair.state_schema}`.conflicts")}
    assert why in details and details <= {why, f"as decided by the other direction: {why}"}, details
    assert_no_echo(pair, crm_to_erp=N if later == "crm" else 0, erp_to_crm=N if later == "erp" else 0)


def test_same_field_latest_by_column(make_pair):
    """The later `changed` wins: even ids were edited later in the crm, odd ids later in the erp; the column
    itself is decided by the same rule, so it ends equal too."""
    pair = start_pair(make_pair, "{latest: {column: changed}}")
    crm_t = f"('{T0.isoformat()}'::timestamp + interval '1 second' * (1 + (id % 2 = 0)::int * 10)) AT TIME ZONE 'UTC'"
    erp_t = f"TIMESTAMP('{T0.isoformat()}') + INTERVAL (1 + (id % 2) * 10) SECOND"
    race(pair, f"UPDATE acct SET name = 'crm-' || id, changed = {crm_t}",
         f"UPDATE acct SET name = CONCAT('erp-', id), changed = {erp_t}")
    pair.start()
    settle(pair, [(i, f"crm-{i}" if i % 2 == 0 else f"erp-{i}", "000", Decimal("1.00")) for i in range(N)])
    crm, erp = [[(r[0], r[1].astimezone(timezone.utc).replace(tzinfo=None) if r[1].tzinfo else r[1]) for r in side]
                for side in rows(pair, "id, changed")]
    assert crm == erp == [(i, T0 + timedelta(seconds=11)) for i in range(N)]
    found = recorded(pair, 4 * N)
    # each database: one conflict per raced row for each of the two fields both sides changed
    assert sum(n for k, n in found.items() if k[0] == "crm_to_erp") == 2 * N, found
    assert sum(n for k, n in found.items() if k[0] == "erp_to_crm") == 2 * N, found
    assert found[("crm_to_erp", "update_differs", "name", "crm", "applied")] == N // 2
    assert found[("erp_to_crm", "update_differs", "name", "crm", "kept")] == N // 2
    assert_no_echo(pair, crm_to_erp=N // 2, erp_to_crm=N // 2)


@pytest.mark.parametrize("rule", ["", "{priority: erp}"])
def test_different_fields_both_edits_survive(make_pair, rule):
    pair = start_pair(make_pair, rule)
    race(pair, "UPDATE acct SET phone = 'crm-' || id", "UPDATE acct SET credit = id + 0.5")
    pair.start()
    settle(pair, [(i, f"base-{i}", f"crm-{i}", Decimal(i) + Decimal("0.50")) for i in range(N)])
    assert_no_echo(pair, crm_to_erp=N, erp_to_crm=N)
    assert recorded(pair) == {}  # nothing conflicted: each side changed a field the other did not


def test_update_of_a_row_deleted_on_the_other_side(make_pair):
    """priority crm: the crm's update wins over the erp's delete: the row comes back whole on the erp and
    stays on the crm. Without priority for the updating side it would stay deleted on both."""
    pair = start_pair(make_pair, "{priority: crm}")
    race(pair, "UPDATE acct SET phone = 'new' WHERE id < 10", "DELETE FROM acct WHERE id < 20")
    pair.start()
    expected = [(i, f"base-{i}", "new" if i < 10 else "000", Decimal("1.00")) for i in range(N) if not 10 <= i < 20]
    settle(pair, expected)
    found = recorded(pair, 20)
    assert found[("crm_to_erp", "update_missing", None, "crm", "applied")] == 10, found
    assert found[("erp_to_crm", "delete_differs", None, "crm", "kept")] == 10, found
    assert_no_echo(pair, crm_to_erp=10, erp_to_crm=10)  # 10 rows back on the erp, 10 deletes on the crm


@pytest.mark.parametrize("later", ["update", "delete"])
def test_update_against_delete_by_commit_time(make_pair, later):
    """No rule (latest by commit time), the two commits 2 s apart: the later one wins on both sides, the
    update (the row back whole on the erp) or the delete (gone on both)."""
    pair = start_pair(make_pair)
    upd, dele = (lambda: pair.pg_query("UPDATE acct SET phone = 'new' WHERE id < 10"),
                 lambda: pair.my_query("DELETE FROM acct WHERE id < 10"))
    first, second = (dele, upd) if later == "update" else (upd, dele)
    first()
    time.sleep(2.1)
    second()
    pair.start()
    kept = later == "update"
    settle(pair, [(i, f"base-{i}", "new" if i < 10 else "000", Decimal("1.00")) for i in range(N) if kept or i >= 10])
    winner = "crm" if kept else "erp"
    found = recorded(pair, 20)
    assert found == {("crm_to_erp", "update_missing", None, winner, "applied" if kept else "kept"): 10,
                     ("erp_to_crm", "delete_differs", None, winner, "kept" if kept else "applied"): 10}, found
    assert_no_echo(pair, crm_to_erp=10 if kept else 0, erp_to_crm=0 if kept else 10)


def test_verify_repair_decides_each_field_by_the_rule(make_pair):
    """Rows that drifted (edited on both sides while the daemon was down, never replicated): `verify --repair`
    keeps the newer edit by `changed` for each row, whichever side holds it, never a fixed direction."""
    pair = start_pair(make_pair, "{latest: {column: changed}}")
    later = (T0 + timedelta(seconds=30)).isoformat()
    pair.pg_query(f"UPDATE acct SET name = 'crm-' || id, changed = '{later}+00' WHERE id < 10 AND id % 2 = 0")
    pair.my_query(f"UPDATE acct SET name = CONCAT('erp-', id), changed = '{later}' WHERE id < 10 AND id % 2 = 1")
    result = pair.cli("verify", "--repair", check=False)
    assert "the sides agree" in result.stdout, result.stdout + result.stderr
    expected = [(i, (f"crm-{i}" if i % 2 == 0 else f"erp-{i}") if i < 10 else f"base-{i}", "000", Decimal("1.00"))
                for i in range(N)]
    crm, erp = rows(pair)
    assert crm == erp == expected
    repaired = sorted(line.split(" key=")[0] for line in result.stdout.splitlines() if line.startswith("repaired"))
    assert repaired == sorted([f"repaired acct crm_to_erp {pair.maria.dbname}.acct"] * 5
                              + ["repaired acct erp_to_crm public.acct"] * 5), result.stdout


def test_live_race_with_the_daemon_running_converges(make_pair):
    """The issue's experiment as a user runs it: the daemon runs while two clients edit the same field of
    every row, row by row, at the same moment. Rows whose edits really raced are recorded once in each
    database, both directions name the same winner (the default rule: the later commit, ties to the first
    connection) and the row holds its value; every row ends equal."""
    pair = start_pair(make_pair)
    pair.start()

    def edit(query, side):
        for i in range(N):
            query(f"UPDATE acct SET name = '{side}-{i}' WHERE id = {i}")
    threads = [threading.Thread(target=edit, args=(pair.pg_query, "crm")),
               threading.Thread(target=edit, args=(pair.my_query, "erp"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def equal():
        crm, erp = rows(pair)
        return crm == erp and all(r[1] in (f"crm-{r[0]}", f"erp-{r[0]}") for r in crm) and crm
    final = wait_until(equal, 60, "both sides equal after the race")
    def both_recorded():
        raced = {}
        for q, schema, stream in ((pair.pg_query, "replicator", "erp_to_crm"),
                                  (pair.my_query, f"`{pair.state_schema}`", "crm_to_erp")):
            keys = [r[0] for r in q(f"SELECT target_key FROM {schema}.conflicts WHERE stream = '{stream}'")]
            assert len(keys) == len(set(keys)) <= N  # at most once per raced row
            raced[stream] = {int(k.strip("[]")) for k in keys}
        return raced if raced["crm_to_erp"] == raced["erp_to_crm"] else None
    # a race is seen by both directions, each in its own database (the loser's may be recorded last)...
    raced = wait_until(both_recorded, 30, "each race recorded by both directions")
    # ...and both name the same winner
    winners = {}
    for q, schema in ((pair.pg_query, "replicator"), (pair.my_query, f"`{pair.state_schema}`")):
        for key, winner in q(f"SELECT target_key, winner FROM {schema}.conflicts"):
            winners.setdefault(int(key.strip("[]")), set()).add(winner)
    assert all(len(w) == 1 for w in winners.values()), winners
    assert all(final[i][1] == f"{w.pop()}-{i}" for i, w in winners.items())  # the winner's value, on both sides
    print(f"live race: {len(raced['crm_to_erp'])} of {N} rows raced; {len(final)} of {N} rows equal")


def test_kill_9_in_a_burst_of_conflicts_records_each_once(make_pair):
    pair = start_pair(make_pair, "{priority: erp}")
    race(pair, "UPDATE acct SET name = 'crm-' || id", "UPDATE acct SET name = CONCAT('erp-', id)")
    pair.start()
    wait_until(lambda: pair.metric("replicator_conflicts_total") > 0, 30, "the first conflicts")
    pair.kill()
    pair.start()
    settle(pair, [(i, f"erp-{i}", "000", Decimal("1.00")) for i in range(N)])
    # the rows can settle before the restarted daemon has committed its part of the burst (the killed one
    # may have applied one direction whole): each conflict is recorded, once, when both directions are done
    for q, schema in ((pair.pg_query, "replicator"), (pair.my_query, f"`{pair.state_schema}`")):
        counted = lambda: q(f"SELECT COUNT(*), COUNT(DISTINCT target_key) FROM {schema}.conflicts")  # noqa: E731
        wait_until(lambda: counted()[0][0] >= N, 60, f"the {N} conflicts recorded in {schema}")
        assert counted() == [(N, N)]


MAPPED_PG = "CREATE TABLE cust (id int PRIMARY KEY, full_name text NOT NULL, status text NOT NULL, credit numeric(12,2))"
MAPPED_MY = ("CREATE TABLE cust (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, status CHAR(1) NOT NULL, "
             "credit DECIMAL(12,2))")
MAPPED = """
mappings:
  cust:
    direction: both
    conflicts: manual
    crm: {table: cust, key: [id]}
    erp: {table: cust, key: [id]}
    fields:
      id: ~
      name: {crm: full_name}
      status: {map: [{crm: active, erp: A}, {crm: closed, erp: C}]}
      credit: ~
"""


def test_conflicts_are_found_in_mapped_terms(make_pair):
    """Renamed columns, a value map, CHAR padding: edits of different
    fields are no conflict, and the same edit made on both sides (closed / C) is none either; only the
    really different values of one field are (manual: both sides keep theirs, recorded as pending)."""
    pair = make_pair(MAPPED_PG, MAPPED_MY, MAPPED, extra_config=EXTRA)
    pair.start()
    values = ", ".join(f"({i}, 'n{i}', 'active', 5)" for i in range(N))
    pair.pg_query(f"INSERT INTO cust VALUES {values}")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM cust") == [(N,)], 60, "the rows on the erp side")
    pair.stop()
    race(pair, "UPDATE cust SET full_name = 'crm-' || id, status = 'closed' WHERE id < 100",
         "UPDATE cust SET credit = 7, status = 'C' WHERE id < 100")
    race(pair, "UPDATE cust SET full_name = 'crm-' || id WHERE id >= 190",
         "UPDATE cust SET name = CONCAT('erp-', id) WHERE id >= 190")
    pair.start()

    def settled():
        crm = pair.pg_query("SELECT id, full_name, status, credit FROM cust ORDER BY id")
        erp = pair.my_query("SELECT id, name, status, credit FROM cust ORDER BY id")
        return (crm, erp) if crm[0][1:] == ("crm-0", "closed", Decimal("7.00")) \
            and erp[0][1:] == ("crm-0", "C", Decimal("7.00")) else None
    crm, erp = wait_until(settled, 60, "the edits of different fields on both sides")
    assert all(c[1:] == (f"crm-{i}", "closed", Decimal("7.00")) for i, c in enumerate(crm[:100]))
    assert all(e[1:] == (f"crm-{i}", "C", Decimal("7.00")) for i, e in enumerate(erp[:100]))
    assert [c[1] for c in crm[190:]] == [f"crm-{i}" for i in range(190, N)]  # manual: each side keeps its own
    assert [e[1] for e in erp[190:]] == [f"erp-{i}" for i in range(190, N)]
    found = recorded(pair, 20)
    assert found == {("crm_to_erp", "update_differs", "name", "", "pending"): 10,
                     ("erp_to_crm", "update_differs", "full_name", "", "pending"): 10}, found


def test_same_key_inserted_on_both_sides(make_pair):
    """insert_exists: decided field by field (priority crm), never a duplicate or an error; a field both
    sides inserted alike is no conflict."""
    pair = start_pair(make_pair, "{priority: crm}")
    race(pair, "INSERT INTO acct (id, name, phone, credit) SELECT g, 'crm-' || g, 'same', 2 FROM generate_series(1000, 1009) g",
         "INSERT INTO acct (id, name, phone, credit) SELECT seq, CONCAT('erp-', seq), 'same', 3 FROM seq_1000_to_1009")
    pair.start()
    expected = [(i, f"base-{i}", "000", Decimal("1.00")) for i in range(N)] + \
        [(i, f"crm-{i}", "same", Decimal("2.00")) for i in range(1000, 1010)]
    settle(pair, expected)
    found = recorded(pair, 40)
    assert found == {("crm_to_erp", "insert_exists", "name", "crm", "applied"): 10,
                     ("crm_to_erp", "insert_exists", "credit", "crm", "applied"): 10,
                     ("erp_to_crm", "insert_exists", "name", "crm", "kept"): 10,
                     ("erp_to_crm", "insert_exists", "credit", "crm", "kept"): 10}, found


def test_check_fails_without_replica_identity_full_and_setup_sets_it(make_pair):
    pair = make_pair(PG, MY, MAPPINGS.format(rule=""), extra_config=EXTRA)
    pair.pg_query("ALTER TABLE acct REPLICA IDENTITY DEFAULT")
    result = pair.cli("check", check=False)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "public.acct has REPLICA IDENTITY DEFAULT: a two-way mapping needs FULL" in out, out
    assert 'ALTER TABLE "public"."acct" REPLICA IDENTITY FULL' in out, out
    assert "Traceback" not in out
    pair.setup()
    assert pair.pg_query("SELECT relreplident FROM pg_class WHERE relname = 'acct'") == [("f",)]
    assert "public.acct has REPLICA IDENTITY FULL (two-way mapping)" in pair.cli("check", check=False).stdout


# ---------------------------------------------------------------- linked flows: crosswalk, references

XW_PG = "CREATE TABLE customer (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text, phone text)"
XW_MY = ("CREATE TABLE customers (cid INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, "
         "customer_name VARCHAR(200), phone VARCHAR(30)) ENGINE=InnoDB AUTO_INCREMENT=5000")
XW_MAP = """
mappings:
  customers:
    direction: both
    conflicts: {priority: erp}
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    link: {natural: [email], crosswalk: true}
    fields:
      email: ~
      name: {erp: customer_name}
      phone: ~
"""


def xw_rows(pair):
    crm = sorted(tuple(r) for r in pair.pg_query("SELECT email, name, phone FROM customer"))
    erp = sorted(tuple(r) for r in pair.my_query("SELECT email, customer_name, phone FROM customers"))
    return crm, erp  # sorted here: the two databases collate text differently


@pytest.mark.parametrize("same_field", [True, False])
def test_crosswalk_race_converges_and_keeps_edits_of_different_fields(make_pair, same_field):
    """Own identity keys on each side (crm id 1.., erp cid 5000..), paired by the crosswalk: the row is
    found through the link first, then checked like an unlinked run."""
    pair = make_pair(XW_PG, XW_MY, XW_MAP, extra_config=EXTRA)
    assert pair.pg_query("SELECT relreplident FROM pg_class WHERE relname = 'customer'") == [("f",)]
    pair.start()
    pair.pg_query(f"INSERT INTO customer (email, name, phone) SELECT 'u' || g || '@x', 'base-' || g, '000' "
                  f"FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM customers") == [(N,)], 60, "the rows on the erp side")
    pair.stop()
    if same_field:
        race(pair, "UPDATE customer SET name = 'crm-' || id",
             "UPDATE customers SET customer_name = CONCAT('erp-', SUBSTRING_INDEX(SUBSTRING(email, 2), '@', 1))")
    else:
        race(pair, "UPDATE customer SET phone = 'crm-' || id",
             "UPDATE customers SET customer_name = CONCAT('erp-', SUBSTRING_INDEX(SUBSTRING(email, 2), '@', 1))")
    pair.start()
    expected = sorted((f"u{i}@x", f"erp-{i}", "000" if same_field else f"crm-{i}") for i in range(1, N + 1))

    def done():
        crm, erp = xw_rows(pair)
        return crm == erp == expected
    try:
        wait_until(done, 60, "both sides equal")
    except AssertionError:
        crm, erp = xw_rows(pair)
        bad = [(c, e, x) for c, e, x in zip(crm, erp, expected) if not c == e == x]
        raise AssertionError(f"{len(bad)} rows differ, e.g. {bad[:3]}\n{pair.log()[-3000:]}") from None
    if same_field:
        assert recorded(pair, 2 * N) == {("crm_to_erp", "update_differs", "customer_name", "erp", "kept"): N,
                                         ("erp_to_crm", "update_differs", "name", "erp", "applied"): N}
    else:
        assert recorded(pair) == {}
    assert_no_echo(pair, crm_to_erp=N, erp_to_crm=N)  # the linker counts each counterpart it checked once
    assert pair.my_query("SELECT COUNT(*) FROM customers") == [(N,)]  # linked, never duplicated


REF_PG = ("CREATE TABLE acct (id int PRIMARY KEY, name text NOT NULL);"
          "CREATE TABLE contact (id int PRIMARY KEY, acct_id int NOT NULL, phone text, note text)")
REF_MY = ("CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL);"
          "CREATE TABLE contact (id INT PRIMARY KEY, acct_id INT NOT NULL, phone VARCHAR(30), note VARCHAR(30))")
REF_MAP = """
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields: {id: ~, name: ~}
  contact:
    direction: both
    conflicts: {priority: erp}
    crm: {table: contact, key: [id]}
    erp: {table: contact, key: [id]}
    fields:
      id: ~
      acct_id: {references: acct}
      phone: ~
      note: ~
"""


def test_references_race_decides_the_raced_field_and_keeps_the_other(make_pair):
    """A flow with `references` goes row by row through the linker: the crm edits phone and note, the
    erp edits note: phone arrives, note is decided by the rule (erp), on both sides."""
    pair = make_pair(REF_PG, REF_MY, REF_MAP, extra_config=EXTRA)
    pair.start()
    pair.pg_query("INSERT INTO acct VALUES (1, 'a')")
    pair.pg_query(f"INSERT INTO contact SELECT g, 1, '000', 'base' FROM generate_series(1, {N}) g")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM contact") == [(N,)], 60, "the rows on the erp side")
    pair.stop()
    race(pair, "UPDATE contact SET phone = 'crm-' || id, note = 'crm'", "UPDATE contact SET note = 'erp'")
    pair.start()
    expected = [(i, 1, f"crm-{i}", "erp") for i in range(1, N + 1)]
    q = "SELECT id, acct_id, phone, note FROM contact ORDER BY id"
    wait_until(lambda: [tuple(r) for r in pair.pg_query(q)] == [tuple(r) for r in pair.my_query(q)] == expected,
               60, "both sides equal")
    assert recorded(pair, 2 * N) == {("crm_to_erp", "update_differs", "note", "erp", "kept"): N,
                                     ("erp_to_crm", "update_differs", "note", "erp", "applied"): N}
    assert_no_echo(pair, crm_to_erp=N, erp_to_crm=N)


def test_same_natural_key_inserted_on_both_sides_links_instead_of_duplicating(make_pair):
    """insert_exists by natural key on a crosswalk mapping: the two rows are linked (one pair, no
    duplicate on either side) and their differing fields decided by the rule (erp), on both sides."""
    pair = make_pair(XW_PG, XW_MY, XW_MAP, extra_config=EXTRA)
    race(pair, "INSERT INTO customer (email, name, phone) SELECT 'n' || g || '@x', 'crm-' || g, 'same' "
               "FROM generate_series(1, 10) g",
         "INSERT INTO customers (email, customer_name, phone) SELECT CONCAT('n', seq, '@x'), CONCAT('erp-', seq), "
         "'same' FROM seq_1_to_10")
    pair.start()
    expected = sorted((f"n{i}@x", f"erp-{i}", "same") for i in range(1, 11))
    wait_until(lambda: xw_rows(pair) == (expected, expected), 60, "both sides equal")
    found = recorded(pair, 20)
    assert found == {("crm_to_erp", "insert_exists", "customer_name", "erp", "kept"): 10,
                     ("erp_to_crm", "insert_exists", "name", "erp", "applied"): 10}, found
    time.sleep(3)  # nothing echoes into a duplicate
    assert xw_rows(pair) == (expected, expected)
    assert pair.my_query("SELECT COUNT(*) FROM customers") == [(10,)] == pair.pg_query("SELECT COUNT(*) FROM customer")


LATE_ERP_READER = """
import sys, threading, time
from replicator.conflicts import clock
saw, late = clock.CommitClock.saw, threading.Event()
def delayed(self, side, txn):
    # the erp's reader falls behind once: past crm_to_erp's wait for the erp edit's commit time
    if side == "erp" and not txn.echo and txn.changes and not late.is_set():
        late.set()
        time.sleep(8)
    saw(self, side, txn)
clock.CommitClock.saw = delayed
from replicator.cli import main
sys.argv[0] = "replicator"
raise SystemExit(main())
"""


def test_a_late_reader_does_not_swap_values(make_pair):
    """latest by commit time, the erp's edit 2 s later, but the erp's reader is 8 s late: crm_to_erp does
    not learn the erp's commit time within its 5 s wait and lets the first connection (crm) win; then
    erp_to_crm, which knows both times, follows that decision instead of deciding by time (which
    swapped the values between the sides)."""
    import subprocess
    import sys
    from tests.integration.harness import checkout_env
    pair = start_pair(make_pair)
    pair.pg_query("UPDATE acct SET name = 'crm-' || id")
    time.sleep(2.1)
    pair.my_query("UPDATE acct SET name = CONCAT('erp-', id)")
    with open(pair.log_path, "a") as log:
        pair.proc = subprocess.Popen([sys.executable, "-c", LATE_ERP_READER, "run", "--config", str(pair.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=pair.tmp, env=checkout_env())
    found = recorded(pair, 2 * N)  # both directions decided (the rows agree for a while before the late one)
    settle(pair, [(i, f"crm-{i}", "000", Decimal("1.00")) for i in range(N)])
    time.sleep(2)
    settle(pair, [(i, f"crm-{i}", "000", Decimal("1.00")) for i in range(N)])  # and stay so
    assert found == {("crm_to_erp", "update_differs", "name", "crm", "applied"): N,
                     ("erp_to_crm", "update_differs", "name", "crm", "kept"): N}, found
    details = {d for (d,) in pair.pg_query("SELECT DISTINCT detail FROM replicator.conflicts")}
    assert details and all(d.startswith("as decided by the other direction") for d in details), details


def test_a_float_column_is_no_conflict_of_its_own(make_pair):
    """MariaDB sends a FLOAT's text with 6 significant digits (1.2345671 as 1.23457): read that way, the
    check's locked read saw a FLOAT with more digits as changed by someone else, so a CRM edit of it was a
    conflict -- lost under `priority: erp` to an ERP "edit" that never happened. The read takes the float32
    whole (CAST AS DOUBLE), as verify's scanner does."""
    pg = "CREATE TABLE meas (id int PRIMARY KEY, name text, w real, d double precision)"
    my = "CREATE TABLE meas (id INT PRIMARY KEY, name VARCHAR(50), w FLOAT, d DOUBLE)"
    mappings = """
mappings:
  meas:
    direction: both
    conflicts: {priority: erp}
    crm: {table: meas, key: [id]}
    erp: {table: meas, key: [id]}
    fields: {id: ~, name: ~, w: ~, d: ~}
"""
    pair = make_pair(pg, my, mappings, extra_config=EXTRA)
    pair.start()
    pair.pg_query("INSERT INTO meas VALUES (1, 'a', 1.2345671, 1.2345671), (2, 'b', 123456789, 0.1), "
                  "(3, 'c', 3.4028235e38, 2.5)")
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM meas") == [(3,)], 60, "the rows on the erp side")
    exact = "SELECT id, CAST(w AS DOUBLE), d FROM meas ORDER BY id"
    pair.pg_query("UPDATE meas SET w = w / 2, d = d * 3")  # the float fields themselves, from the crm
    want = [tuple(r) for r in pair.pg_query("SELECT id, w::float8, d FROM meas ORDER BY id")]
    try:
        wait_until(lambda: [tuple(r) for r in pair.my_query(exact)] == want, 30, "the crm edits on the erp side")
    except AssertionError:
        raise AssertionError(f"erp {pair.my_query(exact)} crm {want} conflicts {_recorded(pair)}") from None
    pair.my_query("UPDATE meas SET w = w * 2, d = d + 1")  # and back from the erp
    want = [tuple(r) for r in pair.my_query(exact)]
    wait_until(lambda: [tuple(r) for r in pair.pg_query("SELECT id, w::float8, d FROM meas ORDER BY id")] == want,
               60, "the erp edits on the crm side")
    time.sleep(1)
    assert _recorded(pair) == {}
    assert [tuple(r) for r in pair.my_query(exact)] == want
