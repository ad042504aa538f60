"""admin/status.py without servers: the health verdict, the text, the JSON, the metrics endpoint, and the
binlog retention margin (sources/binlogretention.py)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from replicator.admin import status as st
from replicator.sources.binlogretention import UNLIMITED, BinlogRetention, margin_seconds


def _dir(name: str = "crm_to_erp", **kw: Any) -> st.DirectionStatus:
    base: dict[str, Any] = dict(name=name, running=True, since="2026-12-06T09:00:00+00:00", holder="10.0.0.5",
                                checkpoint="0/16B3748", source_position="0/16B3748", behind_bytes=0,
                                last_applied="2026-12-06T09:10:00+00:00", checkpoint_written=None, parked_rows=0,
                                lag_seconds=0.02, rows_per_second=120.0, queue_depth=0.0, streaming=True)
    base.update(kw)
    return st.DirectionStatus(**base)


def _pg(**kw: Any) -> st.SourceStatus:
    return st.SourceStatus("crm", "postgresql", **{"slot": "replicator", "wal_status": "reserved",
                                                   "retained_wal_bytes": 1000, "safe_wal_bytes": None, **kw})


def _maria(**kw: Any) -> st.SourceStatus:
    return st.SourceStatus("erp", "mariadb", **{"binlog_files": 3, "checkpoint_file": "b.000003",
                                                "files_before_checkpoint": 2, "expire_seconds": 864000.0,
                                                "margin_seconds": 864000.0, **kw})


UP = st.DaemonView(True, "http://127.0.0.1:9187/metrics", 0.0, "2026-12-06T08:00:00+00:00")
DOWN = st.DaemonView(False, "http://127.0.0.1:9187/metrics", error="daemon not reachable at ...: refused")


def test_healthy() -> None:
    state, reasons = st.judge([_dir(), _dir("erp_to_crm")], [_pg(), _maria()], UP, 60)
    assert (state, reasons) == (st.HEALTHY, [])


def test_stopped_when_no_daemon_holds_either_direction() -> None:
    ds = [_dir(running=False, lag_seconds=None), _dir("erp_to_crm", running=False, lag_seconds=None)]
    state, reasons = st.judge(ds, [_pg(), _maria()], DOWN, 60)
    assert state == st.STOPPED and reasons[0] == "no daemon holds either direction"


@pytest.mark.parametrize("direction, source, why", [
    (_dir(running=False), _pg(), "crm_to_erp: no daemon holds this direction"),
    (_dir(streaming=False), _pg(), "crm_to_erp: stopped on an error"),
    (_dir(lag_seconds=75.0), _pg(), "crm_to_erp: lag 75.0 s is over 60 s"),
    (_dir(parked_rows=4), _pg(), "crm_to_erp: 4 parked row(s)"),
    (_dir(dead_letter_rows=3), _pg(), "crm_to_erp: 3 change(s) wait in the dead-letter queue"),
    (_dir(errors=("source crm: RetriableError: refused",)), _pg(), "crm_to_erp: source crm: RetriableError"),
    (_dir(), _pg(wal_status="unreserved"), "crm: slot replicator wal_status is unreserved"),
    (_dir(), _pg(safe_wal_bytes=1000), "crm: slot replicator is 1000 bytes of WAL from invalidation"),
    (_dir(), _maria(margin_seconds=3600.0), "erp: binlog b.000003 may be purged in 3600 s"),
])
def test_degraded(direction: st.DirectionStatus, source: st.SourceStatus, why: str) -> None:
    sources = [source, _maria()] if source.kind == "postgresql" else [_pg(), source]
    state, reasons = st.judge([direction, _dir("erp_to_crm")], sources, UP, 60)
    assert state == st.DEGRADED
    assert any(r.startswith(why) for r in reasons), reasons


def test_unlimited_binlog_and_unlimited_slot_are_healthy() -> None:
    state, _ = st.judge([_dir(), _dir("erp_to_crm")], [_pg(safe_wal_bytes=None), _maria(margin_seconds=UNLIMITED)],
                        UP, 60)
    assert state == st.HEALTHY


def test_drift_found_by_verify_is_degraded() -> None:
    view = st.DaemonView(True, "u", verify_rows_differing=3.0, verify_last_complete="2026-12-06T08:00:00+00:00")
    state, reasons = st.judge([_dir(), _dir("erp_to_crm")], [_pg(), _maria()], view, 60)
    assert state == st.DEGRADED and reasons == ["verify found 3 differing row(s)"]


def test_text_says_when_the_daemon_is_down() -> None:
    ds = (_dir(running=False, lag_seconds=None, rows_per_second=None, queue_depth=None, streaming=None),
          _dir("erp_to_crm", running=False, lag_seconds=None, rows_per_second=None, queue_depth=None, streaming=None))
    status = st.Status(st.STOPPED, ("no daemon holds either direction",), DOWN, ds, (_pg(), _maria()))
    text = st.render(status)
    assert text.startswith("replicator: stopped")
    assert "what the databases hold" in text
    assert "lag              daemon not reachable" in text
    assert "crm_to_erp: not running" in text
    assert "2 older file(s) go first; purgeable in 10.0 days" in text
    data = json.loads(status.to_json())
    assert data["state"] == 2 and data["state_name"] == "stopped"
    assert data["directions"][0]["running"] is False and data["daemon"]["reachable"] is False
    assert data["sources"][1]["margin_seconds"] == 864000.0


def test_text_of_a_running_daemon() -> None:
    status = st.Status(st.HEALTHY, (), UP, (_dir(), _dir("erp_to_crm")), (_pg(), _maria()))
    text = st.render(status)
    assert "crm_to_erp: running since 2026-12-06T09:00:00+00:00 (held from 10.0.0.5)" in text
    assert "lag              0.020 s" in text and "rows/s           120" in text
    assert "safe WAL left unlimited" in text
    assert "verify: 0 differing row(s)" in text


def test_metrics_url() -> None:
    class C:
        metrics_address, metrics_port = "0.0.0.0", 9187
    assert st.metrics_url(C()) == "http://127.0.0.1:9187/metrics"  # type: ignore[arg-type]
    C.metrics_address = "::1"
    assert st.metrics_url(C()) == "http://[::1]:9187/metrics"  # type: ignore[arg-type]


def test_scrape_reads_the_daemon_endpoint() -> None:
    body = (b'# TYPE replicator_lag_seconds gauge\nreplicator_lag_seconds{direction="crm_to_erp"} 0.25\n'
            b'# TYPE replicator_rows_applied_total counter\n'
            b'replicator_rows_applied_total{direction="crm_to_erp",table="a",op="insert"} 10\n'
            b'replicator_rows_applied_total{direction="crm_to_erp",table="b",op="insert"} 5\n')

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        samples = st.scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
    assert st._value(samples, "replicator_lag_seconds", direction="crm_to_erp") == 0.25
    assert st._value(samples, "replicator_rows_applied_total", direction="crm_to_erp") == 15
    assert st._value(samples, "replicator_queue_depth", direction="crm_to_erp") is None


def test_binlog_margin() -> None:
    day = 86400.0
    assert margin_seconds(10 * day, None, 1000.0) == 10 * day  # the current file: the clock has not started
    assert margin_seconds(10 * day, 1000.0, 1000.0 + day) == 9 * day
    assert margin_seconds(day, 0.0, 2 * day) == 0.0  # due: purged at the next rotation
    assert margin_seconds(0, 0.0, 2 * day) == UNLIMITED
    assert margin_seconds(day, None, 0.0, present=False) == 0.0
    r = BinlogRetention(("b.000001", "b.000002", "b.000003"), "b.000002", 3600.0, 1000.0, 1600.0)
    assert (r.present, r.files_before, r.margin_seconds) == (True, 1, 3000.0)
    gone = BinlogRetention(("b.000004",), "b.000002", 3600.0, None, 1600.0)
    assert (gone.present, gone.files_before, gone.margin_seconds) == (False, 0, 0.0)


def test_sync_lines_keep_a_space_after_a_long_mapping_name() -> None:
    syncs = (st.SyncStatus("products", "done", 3, 3), st.SyncStatus("customer_custom", "copying", 5, 10))
    status = st.Status(st.HEALTHY, (), UP, (_dir(syncs=syncs), _dir("erp_to_crm")), (_pg(), _maria()))
    lines = st.render(status).splitlines()
    # before: "sync customer_customcopying" (the name ran into the state past 12 characters)
    assert "  sync products    done 3/3 rows" in lines
    assert "  sync customer_custom copying 5/10 rows 50%" in lines
    assert "  parked rows      0" in lines  # the label column the sync lines line up with
