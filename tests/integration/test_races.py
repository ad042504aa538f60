"""An application's row lock on the target, against the real daemon and real servers (issue 8, issue
15 item 2): the apply session's lock timeout fails the statement, the batch is rolled back and
retried with back-off, the log names the table, and once the lock is released every row arrives
exactly once. A SIGTERM while the apply thread waits on such a lock stops the daemon in seconds.

Tables, triggers and helpers are test_faults.py's: rows created on crm have ids below ERP_BASE,
rows created on erp from ERP_BASE up, and an apply log counts every write of each row version.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.integration.harness import wait_until
from tests.integration.test_faults import (ERP_BASE, MAPPINGS, MY_SCHEMA, NO_SYNC, PG_SCHEMA, PG_TRIGGER,
                                           assert_every_version_once, crm_rows, daemon_alive, erp_rows,
                                           wait_converged)

SHORT = "timeouts: {lock_seconds: 1, statement_seconds: 5, network_seconds: 10}\n"
LONG = "timeouts: {lock_seconds: 50, statement_seconds: 55, network_seconds: 60}\n"


def _pair(make_pair, timeouts: str):
    p = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS, NO_SYNC + timeouts)
    for stmt in PG_TRIGGER:
        p.pg_query(stmt)
    return p


@pytest.fixture
def short_pair(make_pair):
    p = _pair(make_pair, SHORT)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.stop()


@pytest.fixture
def long_pair(make_pair):
    p = _pair(make_pair, LONG)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.stop()


def _seed(pair) -> None:
    """One row from each side, replicated: the rows the application will lock on the other side."""
    pair.pg_query("INSERT INTO item (id, origin, n, payload) VALUES (1, 'crm', 1, 'a')")
    pair.my_query(f"INSERT INTO items (id, origin, n, payload) VALUES ({ERP_BASE + 1}, 'erp', 1, 'b')")
    wait_converged(pair, 60)


def _lock_on_targets(pair):
    """An application transaction on each side holding the row lock of the row the other side
    is about to change. Returns the two open connections."""
    my = pair.maria.connect(autocommit=False)
    with my.cursor() as cur:
        cur.execute("SELECT n FROM items WHERE id = 1 FOR UPDATE")
    pg = pair.pg.connect(autocommit=False)
    with pg.cursor() as cur:
        cur.execute("SELECT n FROM item WHERE id = %s FOR UPDATE", (ERP_BASE + 1,))
    return my, pg


def _timeouts_logged(pair, table: str) -> int:
    return len(re.findall(rf"timeout on {re.escape(table)}\b", pair.log()))


def test_a_row_lock_on_the_target_times_out_retries_and_applies_once_released(short_pair):
    pair = short_pair
    pair.start()
    _seed(pair)
    my, pg = _lock_on_targets(pair)
    try:
        pair.pg_query("UPDATE item SET n = 2, payload = 'a2' WHERE id = 1")
        pair.my_query(f"UPDATE items SET n = 2, payload = 'b2' WHERE id = {ERP_BASE + 1}")
        erp_table, crm_table = f"{pair.maria.dbname}.items", "public.item"
        wait_until(lambda: _timeouts_logged(pair, erp_table) >= 2 and _timeouts_logged(pair, crm_table) >= 2,
                   60, "lock timeouts on both targets, retried")
        daemon_alive(pair)
        retriable = pair.metric("replicator_errors_total", kind="retriable")
        assert retriable >= 4
        # nothing got past the locks: each side has its own change only
        assert [r[2] for r in erp_rows(pair)] == [1, 2] and [r[2] for r in crm_rows(pair)] == [2, 1]
    finally:
        my.rollback()
        my.close()
        pg.rollback()
        pg.close()
    rows = wait_converged(pair, 60)
    assert [(r[0], r[2]) for r in rows] == [(1, 2), (ERP_BASE + 1, 2)]
    assert_every_version_once(pair)
    log = pair.log()
    print(f"\n[races] lock timeouts logged: erp {_timeouts_logged(pair, erp_table)}, "
          f"crm {_timeouts_logged(pair, crm_table)}")
    assert "SQLSTATE 55P03" in log and "(1205)" in log  # classified by code, on both servers
    assert pair.stop() == 0


def _apply_waits_on_a_lock(pair) -> bool:
    """Both directions' apply sessions wait for the application's row locks."""
    maria = pair.my_query("SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
    pg = pair.pg_query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
    return maria[0][0] > 0 and pg[0][0] > 0


def test_sigterm_while_the_apply_waits_on_a_row_lock_stops_in_seconds_and_resumes(long_pair):
    pair = long_pair
    pair.start()
    _seed(pair)
    my, pg = _lock_on_targets(pair)
    try:
        pair.pg_query("UPDATE item SET n = 2, payload = 'a2' WHERE id = 1")
        pair.my_query(f"UPDATE items SET n = 2, payload = 'b2' WHERE id = {ERP_BASE + 1}")
        wait_until(lambda: _apply_waits_on_a_lock(pair), 30, "both applies to wait on the application's locks")
        t0 = time.monotonic()
        rc = pair.stop(timeout=30)
        took = time.monotonic() - t0
        print(f"\n[races] SIGTERM while waiting on a 50 s lock timeout: exit {rc} after {took:.1f} s")
        assert rc == 0, pair.log()[-3000:]
        assert took < 8, f"stop took {took:.1f} s"
    finally:
        my.rollback()
        my.close()
        pg.rollback()
        pg.close()
    pair.start()
    rows = wait_converged(pair, 60)
    assert [(r[0], r[2]) for r in rows] == [(1, 2), (ERP_BASE + 1, 2)]
    assert_every_version_once(pair)
    assert pair.stop() == 0
