"""Active/standby against the real daemon (issue 13 part 3, stream/lease.py, docs/operations.md).

Two daemons with the same configuration (the second on another metrics port, as on a second host)
under two-way load: the second waits as a standby; kill -9 of the active one, or SIGSTOP past the
lease: the standby takes over within ha.takeover_seconds and every row version arrives exactly once
(the apply-log triggers of test_faults count every write). After SIGCONT the paused one commits
nothing more and steps down to standby.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.harness import Pair, checkout_env, wait_until
from tests.integration.test_faults import (MAPPINGS, MY_SCHEMA, NO_SYNC, PG_SCHEMA, PG_TRIGGER,
                                           assert_converged_and_once, flowing, join_writers, start_writers)

TAKEOVER = 4.0  # scaled down from the default 15 s
HA = f"ha: {{takeover_seconds: {TAKEOVER:g}}}\n"
DIRECTIONS = ("crm_to_erp", "erp_to_crm")


@pytest.fixture
def pair(make_pair):
    p = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS, NO_SYNC + HA)
    for stmt in PG_TRIGGER:
        p.pg_query(stmt)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        os.kill(p.proc.pid, signal.SIGCONT)
        p.stop()


class Standby:
    """The second daemon: same configuration but for its metrics port."""

    def __init__(self, pair: Pair):
        self.pair = pair
        self.config = pair.tmp / "standby.yaml"
        self.config.write_text(pair.config_path.read_text().replace(f"port: {pair.metrics_port}}}", "port: 0}"))
        self.log_path = pair.tmp / "standby.log"
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "replicator", "run", "--config", str(self.config),
                                      "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT, cwd=pair.tmp,
                                     env=checkout_env())
        log.close()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def count(self, text: str) -> int:
        return self.log().count(text)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def _active_lines(log: str) -> int:
    return sum(1 for line in log.splitlines() if ": active (lease epoch" in line)


def _start_both(pair: Pair) -> Standby:
    pair.start("--log-level", "info")
    wait_until(lambda: _active_lines(pair.log()) == 2, 30, "the first daemon active on both directions")
    standby = Standby(pair)
    wait_until(lambda: standby.count(": standby: ") == 2 or standby.proc.poll() is not None, 30,
               "the second daemon standing by on both directions")
    assert standby.proc.poll() is None, standby.log()[-3000:]
    assert _active_lines(standby.log()) == 0
    return standby


def _takeover_seconds(standby: Standby, since: float) -> float:
    wait_until(lambda: _active_lines(standby.log()) == 2, TAKEOVER + 20, "the standby active on both directions")
    return time.monotonic() - since


def test_kill_9_of_the_active_the_standby_takes_over_exactly_once(pair: Pair) -> None:
    standby = _start_both(pair)
    keep_going = threading.Event()
    keep_going.set()
    writers = start_writers(pair, ops=200, rate=100, keep_going=keep_going, max_ops=2000)
    try:
        wait_until(lambda: flowing(pair), 30, "rows flowing through the active daemon")
        time.sleep(1)
        t0 = time.monotonic()
        pair.kill()
        took = _takeover_seconds(standby, t0)
        print(f"\n[standby] kill -9 of the active: takeover in {took:.2f} s (ha.takeover_seconds {TAKEOVER:g})")
        assert took < TAKEOVER, f"takeover took {took:.1f} s"
        # `status` names the instance holding each direction, from the lease in the targets
        status = json.loads(pair.cli("status", "--json", check=False).stdout)
        assert {d["name"]: d["active_instance"].rsplit(":", 1)[1] for d in status["directions"]} == \
            {d: str(standby.proc.pid) for d in DIRECTIONS}
    finally:
        join_writers(*writers)
    # the new active carries on: everything converges, each row version written once
    pair.proc = standby.proc  # the harness's convergence helpers only read the databases
    assert_converged_and_once(pair, writers, 90)
    assert standby.stop() == 0


def test_sigstop_past_the_lease_fences_the_paused_active(pair: Pair) -> None:
    standby = _start_both(pair)
    keep_going = threading.Event()
    keep_going.set()
    writers = start_writers(pair, ops=200, rate=100, keep_going=keep_going, max_ops=2000)
    assert pair.proc is not None
    try:
        wait_until(lambda: flowing(pair), 30, "rows flowing through the active daemon")
        time.sleep(1)
        t0 = time.monotonic()
        os.kill(pair.proc.pid, signal.SIGSTOP)
        took = _takeover_seconds(standby, t0)
        print(f"\n[standby] SIGSTOP of the active: takeover in {took:.2f} s (lease {TAKEOVER:g} s)")
        assert took < 2 * TAKEOVER + 5, f"takeover took {took:.1f} s"
        time.sleep(2)
        os.kill(pair.proc.pid, signal.SIGCONT)
        # the paused one wakes up with its sessions ended and its epoch superseded: it stands by
        wait_until(lambda: pair.log().count(": standby: ") >= 2, 60, "the old active standing by")
        assert pair.proc.poll() is None, pair.log()[-3000:]
        assert pair.metric("replicator_role", direction="crm_to_erp") == 0
        assert pair.metric("replicator_role", direction="erp_to_crm") == 0
    finally:
        join_writers(*writers)
    assert_converged_and_once(pair, writers, 90)
    assert pair.stop() == 0
    assert standby.stop() == 0
