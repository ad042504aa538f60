"""The files under deploy/: example configuration, systemd unit, alert rules, dashboard, grants and
server settings. No database servers; systemd-analyze and promtool are used when installed."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator import checkpoint, errors, metrics
from replicator.conflicts import store as conflict_store
from replicator.stream import deadletter, lease
from replicator.mapping import links
from replicator.sync import state as sync
from replicator.config import load

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "replicator.service"
EXAMPLE = DEPLOY / "replicator.yaml.example"
ALERTS = DEPLOY / "alerts.yml"
DASHBOARD = DEPLOY / "dashboard.json"
CREDENTIALS = ("crm-apply", "crm-capture", "erp-apply", "erp-capture")
METRIC = re.compile(r"\breplicator_[a-z0-9_]+\b")


# --- helpers ----------------------------------------------------------------------------------


def exported_names() -> set[str]:
    """Every sample name /metrics can show, from the definitions in replicator.metrics."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


def unit_directives() -> dict[str, list[str]]:
    """`Key=value` lines of the unit file; a key given several times keeps every value."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def active_sql(path: Path) -> str:
    """The statements of a .sql file without its comments."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))


def normalize(sql: str) -> str:
    return re.sub(r"\s+", " ", sql.replace('"', "")).strip().rstrip(";").strip()


@pytest.fixture()
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    creds = tmp_path / "credentials"
    creds.mkdir()
    for name in CREDENTIALS:
        (creds / name).write_text(f"secret-{name}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    return creds


# --- example configuration ----------------------------------------------------------------------


def test_example_config_loads_with_systemd_credentials(credentials: Path) -> None:
    config = load(EXAMPLE)
    crm, erp = config.connections
    assert (crm.name, crm.kind, erp.name, erp.kind) == ("crm", "postgresql", "erp", "mariadb")
    assert crm.apply.password.value == "secret-crm-apply"
    assert crm.capture.password.value == "secret-crm-capture"
    assert erp.apply.password.value == "secret-erp-apply"
    assert erp.capture.password.value == "secret-erp-capture"
    assert crm.capture.user != crm.apply.user and erp.capture.user != erp.apply.user  # four accounts
    # the secure choices are the ones shown
    assert crm.sslmode == "verify-full" and crm.sslrootcert
    assert erp.ssl_ca and erp.ssl_verify_identity is True
    assert erp.server_id >= 1
    assert config.metrics_address == "127.0.0.1"
    assert config.mappings_dir == (EXAMPLE.parent / "mappings").resolve()
    assert config.batching.max_rows > 0 and config.heartbeat_seconds > 0
    assert config.reconnect_initial_seconds <= config.reconnect_max_seconds


def test_example_config_shows_every_key_config_py_reads() -> None:
    source = (ROOT / "replicator" / "config.py").read_text()
    keys = set(re.findall(r"""\.(?:get|section)\(\s*["']([a-z_]+)["']""", source))
    keys |= set(re.findall(r"""_positive\(\w+,\s*["']([a-z_]+)["']""", source))
    assert {"host", "max_rows", "queue_rows", "ssl_verify_identity"} <= keys  # the patterns still match
    keys |= {"password_file", "password_env", "password_credential", "capture_user"}
    keys |= {"user", "capture_password_credential"}
    text = EXAMPLE.read_text()
    missing = sorted(k for k in keys if not re.search(rf"(^|\s|#\s*){k}:", text, re.M))
    assert not missing, f"keys config.py reads but the example does not show: {missing}"


def test_example_config_names_the_units_credentials() -> None:
    referenced = set(re.findall(r"^\s*(?:capture_)?password_credential:\s*(\S+)", EXAMPLE.read_text(), re.M))
    loaded = {v.split(":", 1)[0] for v in unit_directives()["LoadCredential"]}
    assert referenced == loaded == set(CREDENTIALS)


def test_example_config_has_no_password() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    for conn in data["connections"].values():
        assert "password" not in conn and "capture_password" not in conn


# --- systemd unit -------------------------------------------------------------------------------


HARDENING = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "UMask": "0077",
    "CapabilityBoundingSet": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
}


def test_unit_service_basics() -> None:
    d = unit_directives()
    assert d["Type"] == ["notify"]
    assert d["WatchdogSec"] == ["60"]
    assert d["ExecStart"] == ["/usr/local/bin/replicator run --config /etc/replicator/replicator.yaml"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # cli.py reloads the mappings on SIGHUP
    assert d["Restart"] == ["on-failure"]
    assert d["RestartSec"] == ["10"]
    assert d["TimeoutStopSec"] == ["60"]


def test_unit_does_not_restart_on_configuration_errors() -> None:
    prevented = {int(v) for line in unit_directives()["RestartPreventExitStatus"] for v in line.split()}
    assert errors.EXIT_CONFIG == 78 and errors.EXIT_CONFIG in prevented
    operator = getattr(errors, "EXIT_OPERATOR", None)  # data-loss errors: a restart cannot help either
    if operator is not None:
        assert operator in prevented
    assert errors.EXIT_FATAL not in prevented  # other fatal errors are restarted


def test_unit_hardening() -> None:
    d = unit_directives()
    for key, value in HARDENING.items():
        assert d.get(key) == [value], f"{key}={value}"
    assert d["SystemCallFilter"][0] == "@system-service"


def test_unit_passes_passwords_as_credentials_only() -> None:
    d = unit_directives()
    for value in d["LoadCredential"]:
        name, _, path = value.partition(":")
        assert name in CREDENTIALS and path.startswith("/etc/replicator/credentials/")
    assert not any("password" in v.lower() for v in d.get("Environment", []) + d["ExecStart"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_exposure_score() -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
                            capture_output=True, text=True)
    match = re.search(r"Overall exposure level for replicator\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


# --- alert rules --------------------------------------------------------------------------------


def test_alerts_use_only_existing_metrics() -> None:
    known = exported_names()
    for rule in alert_rules():
        names = set(METRIC.findall(rule["expr"]))
        assert names or re.search(r"\bup\b", rule["expr"]), rule["alert"]
        assert names <= known, f"{rule['alert']}: unknown metric(s) {sorted(names - known)}"


def test_alerts_are_complete_and_actionable() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]
    exprs = " ".join(r["expr"] for r in rules)
    for needed in ("up{", "absent(", "replicator_direction_running == 0", "replicator_lag_seconds > 30",
                   "replicator_last_event_timestamp_seconds", "replicator_connection_up == 0",
                   "replicator_slot_retained_wal_bytes", "replicator_slot_safe_wal_bytes >= 0",
                   "replicator_mapping_reload_failures_total", 'kind="retriable"',
                   "rate(replicator_conflicts_total[5m])", "replicator_conflicts_oldest_pending_timestamp_seconds"):
        assert needed in exprs, needed
    for kind in ("source_lost", "checkpoint", "decode", "row"):
        rule = next(r for r in rules if f'kind="{kind}"' in r["expr"])
        assert rule["labels"]["severity"] == "critical"
    lag = next(r for r in rules if "replicator_lag_seconds" in r["expr"])
    assert lag["for"] == "5m"
    # echoes are normal in a two-way setup: never an alert
    assert "replicator_loop_dropped_batches_total" not in exprs


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_alerts_promtool_check() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


GiB = 1024**3
# (alert, input series, eval time, expected label sets); `_` is a missing sample
SCENARIOS: list[tuple[str, dict[str, str], str, list[dict[str, str]]]] = [
    ("ReplicatorDown", {'up{job="replicator",instance="h:9187"}': "1 1 0x6"}, "6m",
     [{"job": "replicator", "instance": "h:9187"}]),
    ("ReplicatorDown", {'up{job="replicator",instance="h:9187"}': "1x3 0 1x3"}, "6m", []),
    ("ReplicatorAbsent", {"other_metric": "1x10"}, "8m", [{"job": "replicator"}]),
    ("ReplicatorNotStreaming", {'up{job="replicator",instance="h:9187"}': "1x15"}, "12m",
     [{"job": "replicator", "instance": "h:9187"}]),
    ("ReplicatorNotStreaming", {'up{job="replicator",instance="h:9187"}': "1x15",
                                'replicator_direction_running{job="replicator",instance="h:9187",direction="crm_to_erp"}': "1x15"},
     "12m", []),
    ("ReplicatorDirectionStopped", {'replicator_direction_running{direction="crm_to_erp"}': "1 1 0x5"}, "5m",
     [{"direction": "crm_to_erp"}]),
    ("ReplicatorLagHigh", {'replicator_lag_seconds{direction="erp_to_crm"}': "40x10"}, "7m",
     [{"direction": "erp_to_crm"}]),
    ("ReplicatorLagHigh", {'replicator_lag_seconds{direction="erp_to_crm"}': "40x3 0x6"}, "8m", []),
    ("ReplicatorNoSourceEvents", {'replicator_last_event_timestamp_seconds{direction="crm_to_erp"}': "0x45"},
     "40m", [{"direction": "crm_to_erp"}]),
    ("ReplicatorNoSourceEvents", {'replicator_last_event_timestamp_seconds{direction="crm_to_erp"}': "0x45"},
     "20m", []),
    ("ReplicatorConnectionDown", {'replicator_connection_up{side="erp",role="apply"}': "1 0x5"}, "5m",
     [{"side": "erp", "role": "apply"}]),
    # an error series is born at 1 when the first error happens (no child exists at 0 before)
    ("ReplicatorSourceLost", {'replicator_errors_total{direction="crm_to_erp",kind="source_lost"}': "_ _ 1 _ _"},
     "4m", [{"direction": "crm_to_erp", "kind": "source_lost"}]),
    ("ReplicatorCheckpointError", {'replicator_errors_total{direction="erp_to_crm",kind="checkpoint"}': "_ 1 1"},
     "2m", [{"direction": "erp_to_crm", "kind": "checkpoint"}]),
    ("ReplicatorDecodeError", {'replicator_errors_total{direction="erp_to_crm",kind="decode"}': "_ 1"},
     "1m", [{"direction": "erp_to_crm", "kind": "decode"}]),
    ("ReplicatorSchemaChangeRefused", {'replicator_errors_total{direction="crm_to_erp",kind="schema"}': "_ 1"},
     "1m", [{"direction": "crm_to_erp", "kind": "schema"}]),
    ("ReplicatorRowRejected", {'replicator_errors_total{direction="erp_to_crm",kind="row"}': "_ 1"},
     "1m", [{"direction": "erp_to_crm", "kind": "row"}]),
    # two instances of one direction: one active is fine; both standing by is not
    ("ReplicatorNoActiveInstance", {'replicator_role{job="replicator",instance="a:9187",direction="crm_to_erp"}': "1x10",
                                    'replicator_role{job="replicator",instance="b:9187",direction="crm_to_erp"}': "0x10"},
     "5m", []),
    ("ReplicatorNoActiveInstance", {'replicator_role{job="replicator",instance="a:9187",direction="crm_to_erp"}': "0x10",
                                    'replicator_role{job="replicator",instance="b:9187",direction="crm_to_erp"}': "0x10"},
     "5m", [{"job": "replicator", "direction": "crm_to_erp"}]),
    # rows queued for 20 minutes; queued then retried within 5; never any
    ("ReplicatorDeadLetterRows", {'replicator_dead_letter_rows{direction="crm_to_erp",table="erp.a"}': "3x25"}, "20m",
     [{"direction": "crm_to_erp", "table": "erp.a"}]),
    ("ReplicatorDeadLetterRows", {'replicator_dead_letter_rows{direction="crm_to_erp",table="erp.a"}': "3x5 0x20"},
     "20m", []),
    ("ReplicatorDeadLetterRows", {'replicator_dead_letter_rows{direction="crm_to_erp",table="erp.a"}': "0x25"}, "20m",
     []),
    ("ReplicatorFatalError", {'replicator_errors_total{direction="erp_to_crm",kind="fatal"}': "_ 1"},
     "1m", [{"direction": "erp_to_crm", "kind": "fatal"}]),
    ("ReplicatorRetryingOften", {'replicator_errors_total{direction="crm_to_erp",kind="retriable"}': "0+1x30"},
     "25m", [{"direction": "crm_to_erp", "kind": "retriable"}]),
    ("ReplicatorRetryingOften", {'replicator_errors_total{direction="crm_to_erp",kind="retriable"}': "1x30"},
     "25m", []),
    ("ReplicatorSlotRetainedWalHigh", {'replicator_slot_retained_wal_bytes{side="crm"}': f"{20 * GiB}x20"}, "18m",
     [{"side": "crm"}]),
    ("ReplicatorSlotSafeWalLow", {'replicator_slot_safe_wal_bytes{side="crm"}': f"{GiB // 2}x5"}, "3m",
     [{"side": "crm"}]),
    ("ReplicatorSlotSafeWalLow", {'replicator_slot_safe_wal_bytes{side="crm"}': "-1x5"}, "3m", []),
    ("ReplicatorSlotSafeWalLow", {'replicator_slot_safe_wal_bytes{side="crm"}': f"{5 * GiB}x5"}, "3m", []),
    # the margin shrinks (two minutes a minute here) while nothing moves the checkpoint: below 6 h at 30m
    ("ReplicatorBinlogRetentionLow", {'replicator_binlog_retention_margin_seconds{side="erp"}': "25200-120x40"},
     "40m", [{"side": "erp"}]),
    ("ReplicatorBinlogRetentionLow", {'replicator_binlog_retention_margin_seconds{side="erp"}': "25200-120x40"},
     "15m", []),
    ("ReplicatorBinlogRetentionLow", {'replicator_binlog_retention_margin_seconds{side="erp"}': "-1x10"}, "8m", []),
    ("ReplicatorMappingReloadFailed", {"replicator_mapping_reload_failures_total": "0 0 1 1 1"}, "4m", [{}]),
    ("ReplicatorDrift", {'replicator_verify_rows_differing{table="erp.customers"}': "0 0 3"}, "2m",
     [{"table": "erp.customers"}]),
    ("ReplicatorDrift", {'replicator_verify_rows_differing{table="erp.customers"}': "0x5"}, "4m", []),
    # verification enabled, last completed at t=0+1 s: stale after two days
    ("ReplicatorVerifyStale", {"replicator_verify_last_complete_timestamp_seconds": "1x3000"}, "2900m", [{}]),
    ("ReplicatorVerifyStale", {"replicator_verify_last_complete_timestamp_seconds": "1x3000"}, "2000m", []),
    ("ReplicatorVerifyStale", {"replicator_verify_last_complete_timestamp_seconds": "0x3000"}, "2900m", []),
    ("ReplicatorSyncStalled", {'replicator_sync_running{direction="crm_to_erp",mapping="m"}': "1x40",
                               'replicator_sync_rows_total{direction="crm_to_erp",mapping="m"}': "500x40"},
     "35m", [{"direction": "crm_to_erp", "mapping": "m"}]),
    ("ReplicatorSyncStalled", {'replicator_sync_running{direction="crm_to_erp",mapping="m"}': "1x40",
                               'replicator_sync_rows_total{direction="crm_to_erp",mapping="m"}': "0+500x40"},
     "35m", []),
    # a stretch of rows outside the mapping's slice: read and skipped, not copied -- progress all the same
    ("ReplicatorSyncStalled", {'replicator_sync_running{direction="crm_to_erp",mapping="m"}': "1x40",
                               'replicator_sync_rows_total{direction="crm_to_erp",mapping="m"}': "500x40",
                               'replicator_sync_rows_skipped_total{direction="crm_to_erp",mapping="m"}': "0+500x40"},
     "35m", []),
    # one conflict a second on one table for 10 minutes: a burst; one a minute is not
    ("ReplicatorConflictBurst", {'replicator_conflicts_total{direction="crm_to_erp",table="erp.acct",'
                                 'kind="update_differs",resolution="applied"}': "0+60x20"}, "12m",
     [{"direction": "crm_to_erp", "table": "erp.acct"}]),
    ("ReplicatorConflictBurst", {'replicator_conflicts_total{direction="crm_to_erp",table="erp.acct",'
                                 'kind="update_differs",resolution="applied"}': "0+1x20"}, "12m", []),
    # the oldest pending conflict was detected at unix time 0: waiting more than an hour at 70m, not at 30m
    ("ReplicatorConflictPending", {'replicator_conflicts_oldest_pending_timestamp_seconds{table="erp.acct"}': "0x90"},
     "70m", [{"table": "erp.acct"}]),
    ("ReplicatorConflictPending", {'replicator_conflicts_oldest_pending_timestamp_seconds{table="erp.acct"}': "0x90"},
     "30m", []),
    # resolved: the sample went away
    ("ReplicatorConflictPending", {'replicator_conflicts_oldest_pending_timestamp_seconds{table="erp.acct"}': "0x30"},
     "90m", []),
    ("ReplicatorParkedRowsOld", {'replicator_parked_oldest_age_seconds{direction="crm_to_erp"}': "700000+60x50"},
     "40m", [{"direction": "crm_to_erp"}]),
    ("ReplicatorParkedRowsOld", {'replicator_parked_oldest_age_seconds{direction="crm_to_erp"}': "3600+60x50"},
     "40m", []),
]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    """promtool unit tests of every rule. Annotations are stripped: promtool compares them verbatim."""
    doc = yaml.safe_load(ALERTS.read_text())
    stripped = copy.deepcopy(doc)
    severity = {}
    for group in stripped["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
            severity[rule["alert"]] = rule["labels"]["severity"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(stripped))
    assert {s[0] for s in SCENARIOS} == set(severity), "every alert needs a scenario"
    tests = []
    for alert, series, at, expected in SCENARIOS:
        tests.append({
            "interval": "1m",
            "input_series": [{"series": name, "values": values} for name, values in series.items()],
            "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                 "exp_alerts": [{"exp_labels": {**labels, "severity": severity[alert]}}
                                                for labels in expected]}],
        })
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                       "tests": tests}))
    result = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- dashboard ----------------------------------------------------------------------------------


def test_dashboard_is_valid_and_uses_only_existing_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    known = exported_names()
    exprs = dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names <= known, f"unknown metric(s) {sorted(names - known)} in {expr}"
        used |= names
    for panel in dash["panels"]:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    # the panels the DBAs asked for
    for name in ("replicator_lag_seconds", "replicator_rows_applied_total", "replicator_transactions_applied_total",
                 "replicator_apply_batch_duration_seconds_bucket", "replicator_apply_batch_rows_bucket",
                 "replicator_loop_dropped_batches_total", "replicator_errors_total",
                 "replicator_connection_up", "replicator_queue_depth", "replicator_slot_retained_wal_bytes"):
        assert name in used, name
    assert any("histogram_quantile(0.99" in e for e in exprs) and any("histogram_quantile(0.5" in e for e in exprs)
    assert any("by (direction, op)" in e for e in exprs) and any("by (direction, kind)" in e for e in exprs)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    def concrete(expr: str) -> str:
        return expr.replace("$__rate_interval", "5m").replace("$instance", ".*")

    rules = [{"record": f"dashboard:query{i}", "expr": concrete(e)} for i, e in enumerate(dashboard_exprs())]
    (tmp_path / "dash.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "dash.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- grants and server settings -------------------------------------------------------------------


def test_postgresql_grants() -> None:
    sql = active_sql(DEPLOY / "grants-postgresql.sql")
    assert re.search(r"CREATE ROLE replicator_capture LOGIN REPLICATION PASSWORD 'CHANGE_ME", sql)
    assert re.search(r"CREATE ROLE replicator_apply LOGIN PASSWORD 'CHANGE_ME", sql)
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO replicator_apply" in sql
    # and the tables created later in that schema
    assert re.search(r"ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app\s+"
                     r"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO replicator_apply", sql)
    assert "GRANT SELECT, INSERT, UPDATE ON replicator.checkpoint TO replicator_apply" in sql
    assert "GRANT USAGE ON SCHEMA replicator TO replicator_apply" in sql
    assert not re.search(r"SUPERUSER|BYPASSRLS|GRANT ALL", sql, re.I)
    # the state tables it creates are exactly the ones `replicator setup` would create
    statements = {normalize(s) for s in sql.split(";") if s.strip()}
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON replicator.crosswalk, replicator.parked, replicator.sync " \
           "TO replicator_apply" in sql
    for ddl in (checkpoint.postgres_ddl("replicator") + links.postgres_ddl("replicator") + sync.postgres_ddl("replicator")
                + conflict_store.postgres_ddl("replicator") + deadletter.postgres_ddl("replicator")
                + lease.postgres_ddl("replicator")):
        assert normalize(ddl) in statements, ddl
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON replicator.conflicts, replicator.dead_letter TO replicator_apply" \
        in sql
    assert "pg_logical_emit_message" in (DEPLOY / "grants-postgresql.sql").read_text()


def test_mariadb_grants() -> None:
    sql = active_sql(DEPLOY / "grants-mariadb.sql")
    assert "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'replicator_capture'@'%'" in sql
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON erp.* TO 'replicator_apply'@'%'" in sql
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON replicator.* TO 'replicator_apply'@'%'" in sql
    assert "IDENTIFIED BY 'CHANGE_ME" in sql
    assert not re.search(r"\bSUPER\b|ALL PRIVILEGES|BINLOG REPLAY|GRANT OPTION", sql, re.I)
    # the apply user holds nothing server-wide
    assert not re.search(r"ON \*\.\* TO 'replicator_apply'", sql)


def settings(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("["):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("'")
    return out


def test_mariadb_server_settings() -> None:
    s = settings(DEPLOY / "mariadb-server.cnf")
    assert s["binlog_format"] == "ROW"
    assert s["binlog_row_image"] == "FULL"
    assert s["binlog_row_metadata"] == "FULL"
    assert s["log_bin"] and int(s["server_id"]) > 0 and "gtid_domain_id" in s
    assert int(s["binlog_expire_logs_seconds"]) >= 3 * 86400
    assert int(s["binlog_expire_logs_seconds"]) == int(s["expire_logs_days"]) * 86400
    # the reader's default server_id must not be the server's
    assert int(s["server_id"]) != 4242


def test_postgresql_server_settings() -> None:
    s = settings(DEPLOY / "postgresql.conf.d" / "replicator.conf")
    assert s["wal_level"] == "logical"
    assert int(s["max_replication_slots"]) >= 1 and int(s["max_wal_senders"]) >= 1
    assert s["max_slot_wal_keep_size"] and s["wal_sender_timeout"]
