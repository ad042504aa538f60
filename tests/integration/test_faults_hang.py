"""Faults that must not force a re-sync or leave things behind (issue 15): a hung target and a stop,
a slot advanced by hand, a clean stop's binlog dump thread, a purged binlog or a dropped slot seen
by `check`. The network faults go through tests/integration/tcpproxy.py.

Tables, writers and the exactly-once checks are those of test_faults.py: ids below ERP_BASE are
written on crm, ids from ERP_BASE up on erp, and a trigger on each side counts every applied row
version, so a doubled apply shows up.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from replicator.changes import LSN
from replicator.errors import EXIT_OPERATOR
from tests.integration.harness import Pair, wait_until
from tests.integration.tcpproxy import Mode, TcpProxy
from tests.integration.test_faults import (ERP_BASE, MAPPINGS, MY_SCHEMA, NO_SYNC, PG_SCHEMA, PG_TRIGGER, Writer,
                                           assert_converged_and_once, flowing, join_writers)

# WAL that publishes nothing: a table that is neither mapped nor in the publication
NOISE = "CREATE TABLE noise (id bigserial PRIMARY KEY, payload text)"
BLACKHOLE_SECONDS = 12.0  # longer than psycopg2's 10 s status interval, which used to confirm the slot


@pytest.fixture
def pair(make_pair):
    p = make_pair(PG_SCHEMA + ";\n" + NOISE, MY_SCHEMA, MAPPINGS, NO_SYNC)
    for stmt in PG_TRIGGER:
        p.pg_query(stmt)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.kill()


@pytest.fixture
def erp_proxy(pair: Pair):
    """Every daemon connection to MariaDB (apply, binlog, checks) through a proxy; the test's own
    connections go direct."""
    proxy = TcpProxy(pair.maria.port)
    text = pair.config_path.read_text()
    line = f"port: {pair.maria.port}\n"
    assert text.count(line) == 1, text
    pair.config_path.write_text(text.replace(line, f"port: {proxy.port}\n"))
    yield proxy
    proxy.close()


@pytest.fixture
def crm_proxy(pair: Pair):
    """Every daemon connection to PostgreSQL (apply, WAL, checks) through a proxy."""
    proxy = TcpProxy(pair.pg.port)
    text = pair.config_path.read_text()
    line = f"port: {pair.pg.port}\n"
    assert text.count(line) == 1, text
    pair.config_path.write_text(text.replace(line, f"port: {proxy.port}\n"))
    yield proxy
    proxy.close()


def slot_lsn(pair: Pair) -> LSN:
    return LSN.parse(pair.pg_query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                                   (pair.pg.dbname,))[0][0])


def erp_checkpoint(pair: Pair) -> LSN:
    """The crm_to_erp position the target (MariaDB) holds."""
    row = pair.my_query(f"SELECT position FROM `{pair.state_schema}`.checkpoint WHERE stream = 'crm_to_erp'")
    return LSN.parse(json.loads(row[0][0])["lsn"])


def writers(pair: Pair, first_id: int, ops: int, rate: float, sides: tuple[str, ...] = ("crm", "erp")) -> list[Writer]:
    """Started writers with ids from `first_id` (crm) and ERP_BASE + `first_id` (erp). Several rounds of
    writers share a side, so each checks only its own rows (`tolerate_outages` relaxes the whole-table check;
    the writes go direct and do not fail)."""
    out = []
    for seed, side in enumerate(sides):
        w = Writer(side, pair.pg if side == "crm" else pair.maria, ops=ops, rate=rate, seed=first_id + seed,
                   tolerate_outages=True)
        w.next_id = first_id + (ERP_BASE if side == "erp" else 0)
        w.start()
        out.append(w)
    return out


def run_until_exit(pair: Pair, *args: str) -> tuple[int, str]:
    result = pair.cli("run", *args, check=False, timeout=90)
    return result.returncode, result.stdout + result.stderr


def dump_threads(pair: Pair) -> list[tuple]:
    return [tuple(r) for r in pair.my_query(
        "SELECT id, user, command, time FROM information_schema.PROCESSLIST "
        "WHERE command LIKE 'Binlog Dump%%' AND user = %s", (pair.maria.user,))]


# ------------------------------------------------------------------------------------------------
# 1. a hung target plus a stop: resume, no exit 79, no re-sync


@pytest.mark.parametrize("stop", ["kill9", "sigterm"])
def test_hung_target_then_stop_resumes_without_resync(pair: Pair, erp_proxy: TcpProxy, stop: str) -> None:
    pair.start()
    first = writers(pair, 1, ops=150, rate=60)
    wait_until(lambda: flowing(pair), 60, "both directions applying")
    join_writers(*first)
    assert_converged_and_once(pair, tuple(first))
    # everything read acknowledged, echoes included: the state in which psycopg2 used to confirm the
    # keepalives' WAL end on its own
    now = LSN.parse(pair.pg_query("SELECT pg_current_wal_insert_lsn()::text")[0][0])
    wait_until(lambda: slot_lsn(pair) >= now, 30, "the slot confirmed up to the current WAL")

    # MariaDB hangs (connections open, no bytes); MariaDB keeps taking writes from its own clients,
    # PostgreSQL writes WAL that publishes nothing for longer than psycopg2's status interval
    erp_proxy.set_mode("blackhole")
    hung_at = time.monotonic()
    during = writers(pair, 50_000, ops=100, rate=20, sides=("erp",))
    join_writers(*during)
    while time.monotonic() - hung_at < BLACKHOLE_SECONDS:
        pair.pg_query("INSERT INTO noise (payload) SELECT repeat('x', 200) FROM generate_series(1, 200)")
        time.sleep(0.2)
    checkpoint = erp_checkpoint(pair)
    assert slot_lsn(pair) <= checkpoint, (
        f"the slot was confirmed to {slot_lsn(pair)} past the target's checkpoint {checkpoint} while the target hung")

    slow_stop = None
    assert pair.proc is not None
    if stop == "sigterm":
        t0 = time.monotonic()
        pair.proc.send_signal(signal.SIGTERM)
        try:
            pair.proc.wait(5)
        except subprocess.TimeoutExpired:
            slow_stop = time.monotonic() - t0
            pair.kill()
    else:
        pair.kill()
    assert slot_lsn(pair) <= erp_checkpoint(pair), "the slot was confirmed past the checkpoint at the stop"

    erp_proxy.set_mode("pass")  # the network is back: the dead daemon's held connections close
    wait_until(lambda: not erp_proxy.links(), 30, "the old daemon's MariaDB connections closed")
    pair.start()
    resumed_at = time.monotonic()
    after = writers(pair, 100_000, ops=100, rate=40)
    join_writers(*after)
    rows = assert_converged_and_once(pair, (*first, *during, *after))
    print(f"{stop}: resumed and converged {time.monotonic() - resumed_at:.1f} s after the restart "
          f"({len(rows)} rows)")
    assert "older than slot" not in pair.log() and pair.proc is not None and pair.proc.poll() is None
    assert len(rows) >= 250
    pair.stop()
    assert slow_stop is None, (f"SIGTERM took over 5 s while MariaDB hung (killed after {slow_stop:.1f} s): a stop "
                               f"must break off the hung apply session")


def test_postgresql_shutdown_during_a_target_hang_is_held_up_at_most_briefly(pair: Pair, erp_proxy: TcpProxy,
                                                                            pg_server) -> None:
    """A shutting-down walsender waits until its WAL end is confirmed, and we confirm only what the
    target committed: with the target hung, the WAL reader must let go of the connection
    (SHUTDOWN_WAIT_LIMIT, 5 s) rather than hold PostgreSQL's shutdown for the whole hang."""
    pair.start()
    pair.pg_query("INSERT INTO item VALUES (1, 'crm', 0, 'x')")
    pair.my_query("INSERT INTO items VALUES (%s, 'erp', 0, 'y')", (ERP_BASE,))
    wait_until(lambda: flowing(pair), 60, "both directions applying")
    erp_proxy.set_mode("blackhole")
    for _ in range(10):  # WAL the hung target has not confirmed (nothing mapped in it)
        pair.pg_query("INSERT INTO noise (payload) SELECT repeat('x', 200) FROM generate_series(1, 200)")
        time.sleep(0.2)
    t0 = time.monotonic()
    try:
        pg_server.restart()
    finally:
        pg_server.start()
    took = time.monotonic() - t0
    print(f"PostgreSQL restart during a target hang took {took:.1f} s")
    erp_proxy.set_mode("pass")
    pair.pg_query("INSERT INTO item VALUES (2, 'crm', 0, 'after')")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM items WHERE id < %s", (ERP_BASE,))[0][0] == 2, 90,
               "row 2 applied after the hang and the restart")
    assert pair.proc is not None and pair.proc.poll() is None, pair.log()[-3000:]
    assert "shutting down?" in pair.log(), pair.log()[-3000:]
    assert took < 15, f"PostgreSQL's shutdown was held up {took:.1f} s by the daemon during a target hang"
    pair.stop()


def test_each_database_blackholed_under_load_recovers_by_itself(pair: Pair, erp_proxy: TcpProxy,
                                                                 crm_proxy: TcpProxy) -> None:
    """A partition in front of each database in turn (scaled down to 10 s), then each one refusing
    and resetting connections for 3 s, while both sides write: once the network is back both
    directions catch up on their own, nothing lost or doubled."""
    pair.start()
    load = writers(pair, 1, ops=1600, rate=40)  # about 40 s on each side
    wait_until(lambda: flowing(pair), 60, "both directions applying")
    recovered = {}
    faults: list[tuple[str, TcpProxy, Mode]] = [("erp", erp_proxy, "blackhole"), ("crm", crm_proxy, "blackhole"),
                                                ("erp refused", erp_proxy, "refuse"), ("crm refused", crm_proxy, "refuse")]
    for name, proxy, mode in faults:
        proxy.set_mode(mode)  # refuse: every connection reset, new ones too (a server that went away)
        time.sleep(10 if mode == "blackhole" else 3)
        proxy.set_mode("pass")
        t0 = time.monotonic()
        before = {d: pair.metric("replicator_rows_applied_total", direction=d) for d in ("crm_to_erp", "erp_to_crm")}
        wait_until(lambda: all(pair.metric("replicator_rows_applied_total", direction=d) > before[d]
                               for d in before), 60, f"both directions applying again after the {name} blackhole")
        recovered[name] = time.monotonic() - t0
    join_writers(*load)
    t0 = time.monotonic()
    rows = assert_converged_and_once(pair, tuple(load))
    print("applying again after the fault ended: " + ", ".join(f"{k} {v:.1f} s" for k, v in recovered.items())
          + f"; converged {time.monotonic() - t0:.1f} s after the writers stopped ({len(rows)} rows)")
    assert "older than slot" not in pair.log()
    pair.stop()


# ------------------------------------------------------------------------------------------------
# 2. a genuinely lost range still fails closed


def test_slot_advanced_by_hand_past_mapped_changes_stops_with_79(pair: Pair) -> None:
    pair.start()
    pair.pg_query("INSERT INTO item VALUES (1, 'crm', 0, 'before')")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM items")[0][0] == 1, what="row 1 applied")
    pair.stop()
    pair.pg_query("INSERT INTO item VALUES (2, 'crm', 0, 'lost when the slot is advanced')")
    # the test servers commit asynchronously: advance until the slot is past row 2's commit
    target = LSN.parse(pair.pg_query("SELECT pg_current_wal_insert_lsn()::text")[0][0])

    def advanced() -> bool:
        pair.pg_query("SELECT pg_replication_slot_advance(%s, pg_current_wal_flush_lsn())", (pair.pg.dbname,))
        return slot_lsn(pair) >= target
    wait_until(advanced, 30, "the slot advanced by hand past row 2")

    check = pair.cli("check", check=False)
    assert check.returncode == EXIT_OPERATOR, check.stdout + check.stderr
    assert "older than slot" in check.stdout, check.stdout
    for args in ((), ("--skip-check",)):  # the preflight and the stream itself
        code, out = run_until_exit(pair, *args)
        assert code == EXIT_OPERATOR, out
        assert "older than slot" in out and pair.pg.dbname in out, out
    assert [r[0] for r in pair.my_query("SELECT id FROM items")] == [1]


# ------------------------------------------------------------------------------------------------
# 3. a clean stop leaves no binlog dump thread


def test_clean_stop_leaves_no_binlog_dump_thread(pair: Pair) -> None:
    pair.start()
    pair.my_query("INSERT INTO items VALUES (%s, 'erp', 0, 'x')", (ERP_BASE,))
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM item")[0][0] == 1, what="row applied")
    assert dump_threads(pair), "no dump thread while running: the test would prove nothing"
    assert pair.stop() == 0
    t0 = time.monotonic()
    wait_until(lambda: not dump_threads(pair), 3, "the dump thread to end after a clean stop")
    print(f"dump thread gone {time.monotonic() - t0:.2f} s after the daemon exited")


# ------------------------------------------------------------------------------------------------
# 4. `check` reports lost positions, with exit 79 like `run`


def test_check_fails_on_a_purged_checkpoint_binlog(pair: Pair) -> None:
    pair.start()
    pair.my_query("INSERT INTO items VALUES (%s, 'erp', 0, 'x')", (ERP_BASE,))
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM item")[0][0] == 1, what="row applied")
    assert pair.stop() == 0
    ok = pair.cli("check", check=False)
    assert ok.returncode == 0 and "is still available (binlog" in ok.stdout, ok.stdout + ok.stderr
    needed = json.loads(pair.pg_query("SELECT position FROM replicator.checkpoint WHERE stream = 'erp_to_crm'")
                        [0][0])["file"]
    for _ in range(3):
        pair.my_query("FLUSH BINARY LOGS")
    newest = pair.my_query("SHOW MASTER STATUS")[0][0]

    def purged() -> bool:  # MariaDB keeps a file until its binlog checkpoint is written: try again
        pair.my_query(f"PURGE BINARY LOGS TO '{newest}'")
        return [r[0] for r in pair.my_query("SHOW BINARY LOGS")] == [newest]
    wait_until(purged, what=f"binlogs purged up to {newest}")

    check = pair.cli("check", check=False)
    assert check.returncode == EXIT_OPERATOR, check.stdout + check.stderr
    assert "FAIL" in check.stdout and needed in check.stdout and "re-sync" in check.stdout, check.stdout
    code, out = run_until_exit(pair)
    assert code == EXIT_OPERATOR and needed in out, out


def test_dropped_slot_exits_79_in_check_and_run(pair: Pair) -> None:
    pair.start()
    pair.pg_query("INSERT INTO item VALUES (1, 'crm', 0, 'x')")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM items")[0][0] == 1, what="row applied")
    assert pair.stop() == 0
    wait_until(lambda: pair.pg_query("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                     (pair.pg.dbname,)) == [(False,)], what="slot released")
    pair.pg_query("SELECT pg_drop_replication_slot(%s)", (pair.pg.dbname,))
    check = pair.cli("check", check=False)
    assert check.returncode == EXIT_OPERATOR, check.stdout + check.stderr
    code, out = run_until_exit(pair)
    assert code == EXIT_OPERATOR and "re-sync" in out, out
