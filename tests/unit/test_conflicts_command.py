"""`replicator conflicts`: arguments, output, resolve's errors and the housekeeping pass, against fake
databases (the store's SQL is in test_conflicts_store.py; real servers in
tests/integration/test_conflicts_store.py)."""
from __future__ import annotations

import io
import json
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from replicator import metrics
from replicator.admin import conflicts as cmd
from replicator.cli import main
from replicator.config import load
from replicator.conflicts import store
from replicator.conflicts.model import APPLIED, MANUAL, PENDING, PRIORITY, RESOLVED, UPDATE_DIFFERS
from replicator.errors import EXIT_CONFIG, ConfigError
from tests.unit.test_cli import GOOD, MAPPING

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def rec(side: str, id: int, **kw: Any) -> store.Recorded:
    base = dict(side=side, id=id, detected_at=NOW - timedelta(minutes=id), stream="crm_to_erp" if side == "erp"
                else "erp_to_crm", mapping="customers", kind=UPDATE_DIFFERS, target_table=f"{side}.customers",
                target_key=(42,), source_key=(42,), field="name", source_value="from-source",
                target_value="held-here", rule=MANUAL, winner="", resolution=PENDING, detail="",
                source_commit_time=None, resolved_at=None, resolved_by=None)
    base.update(kw)
    return store.Recorded(**base)


class FakeDb:
    def __init__(self, name: str, records: list[store.Recorded], has_table: bool = True):
        self.conn = SimpleNamespace(name=name, kind="postgresql" if name == "crm" else "mariadb",
                                    state_schema="replicator")
        self.records = records
        self.has_table = has_table
        self.commits = 0
        self.resolved: list[tuple[list[int], str]] = []
        self.trimmed_before: datetime | None = None

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass

    def commit_untracked(self) -> None:
        self.commits += 1


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store functions the command uses, answered from FakeDb.records."""
    def list_conflicts(db: FakeDb, since: Any = None, mapping: Any = None, keys: Any = (), pending_only: bool = False,
                       limit: int = 100) -> list[store.Recorded]:
        out = [r for r in db.records if (since is None or r.detected_at >= since)
               and (mapping is None or r.mapping == mapping)
               and (not keys or tuple(r.target_key) in keys or tuple(r.source_key) in keys)
               and (not pending_only or r.resolution == PENDING)]
        return sorted(out, key=lambda r: r.detected_at, reverse=True)[:limit]

    def mark(db: FakeDb, ids: list[int], by: str, at: Any = None) -> int:
        db.resolved.append((list(ids), by))
        return len(ids)

    def trim(db: FakeDb, before: datetime) -> int:
        db.trimmed_before = before
        n = len([r for r in db.records if r.detected_at < before and r.resolution != PENDING])
        db.records = [r for r in db.records if not (r.detected_at < before and r.resolution != PENDING)]
        return n

    def pending(db: FakeDb) -> dict[str, tuple[int, datetime]]:
        out: dict[str, tuple[int, datetime]] = {}
        for r in db.records:
            if r.resolution == PENDING:
                n, first = out.get(r.target_table, (0, r.detected_at))
                out[r.target_table] = (n + 1, min(first, r.detected_at))
        return out

    monkeypatch.setattr(store, "exists", lambda db: db.has_table)
    monkeypatch.setattr(store, "list_conflicts", list_conflicts)
    monkeypatch.setattr(store, "get", lambda db, i: next((r for r in db.records if r.id == i), None))
    monkeypatch.setattr(store, "mark_resolved", mark)
    monkeypatch.setattr(store, "pending_of_row", lambda db, m, tk, sk: [r.id for r in db.records
                                                                       if r.resolution == PENDING])
    monkeypatch.setattr(store, "trim", trim)
    monkeypatch.setattr(store, "pending_by_table", pending)


@pytest.fixture
def config(tmp_path: Path) -> Any:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "customers.yaml").write_text(MAPPING)
    path = tmp_path / "replicator.yaml"
    path.write_text(GOOD)
    return load(path)


def databases(config: Any, crm: list[store.Recorded], erp: list[store.Recorded], has_table: bool = True
              ) -> cmd.Databases:
    dbs = {"crm": FakeDb("crm", crm, has_table), "erp": FakeDb("erp", erp, has_table)}
    return cmd.Databases(config, lambda _c, side: dbs[side])


def args(**kw: Any) -> SimpleNamespace:
    base = dict(action="list", id=None, take=None, mapping=None, key=None, since=None, pending=False, json=False,
                limit=50)
    base.update(kw)
    return SimpleNamespace(**base)


# ---------------------------------------------------------------- arguments


def test_since_durations_and_times() -> None:
    assert cmd.parse_since("1h", NOW) == NOW - timedelta(hours=1)
    assert cmd.parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert cmd.parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert cmd.parse_since("2026-12-06T09:00", NOW) == datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
    with pytest.raises(ConfigError, match="--since 'yesterday': give a duration"):
        cmd.parse_since("yesterday", NOW)


def test_key_candidates_try_integers_and_text() -> None:
    from decimal import Decimal
    # an integer column's 42, a numeric column's (iDempiere's numeric(10) keys are stored as decimals), the text
    assert cmd.key_candidates("42") == ((42,), (Decimal("42"),), ("42",))
    assert cmd.key_candidates("7.50") == ((Decimal("7.50"),), ("7.50",))
    # a text with commas may also be a one-column key ("Doe, John": ERPNext's names), tried whole
    assert cmd.key_candidates("a,7") == (("a", 7), ("a", Decimal("7")), ("a", "7"), ("a,7",))
    assert cmd.key_candidates(" Doe, John ") == (("Doe", "John"), ("Doe, John",))
    # a uuid column's key (Twenty's): `dlq list` printed twenty:30303030-... and `--key` with it matched nothing
    import uuid
    u = "30303030-0000-4000-8000-000000000002"
    assert cmd.key_candidates(u) == ((uuid.UUID(u),), (u,))
    # a JSON array gives the parts of a key whose values hold commas
    assert cmd.key_candidates('["Acme, Inc.", 2]') == (("Acme, Inc.", 2), ("Acme, Inc.", Decimal("2")),
                                                       ("Acme, Inc.", "2"))
    with pytest.raises(ConfigError, match="separated by commas"):
        cmd.key_candidates("7,")
    for bad in ('["a", [1]]', "[]", '["a", null]', "[1,", "[true, 2]"):
        with pytest.raises(ConfigError, match="JSON array"):
            cmd.key_candidates(bad)


def test_refs() -> None:
    assert cmd.parse_ref("erp:17", ["crm", "erp"]) == cmd.Ref("erp", 17)
    assert cmd.parse_ref("17", ["crm", "erp"]) == cmd.Ref(None, 17)
    for bad in ("sap:1", "erp:x", "x"):
        with pytest.raises(ConfigError, match="conflict id"):
            cmd.parse_ref(bad, ["crm", "erp"])


# ---------------------------------------------------------------- listing


def test_list_merges_both_databases_newest_first(config: Any, fake_store: None) -> None:
    out = io.StringIO()
    dbs = databases(config, [rec("crm", 1), rec("crm", 5)], [rec("erp", 3, source_value=Decimal("1.50"),
                                                                 target_value=None)])
    assert cmd.list_command(args(), config, out, dbs) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["ID", "DETECTED", "(UTC)", "DIRECTION", "MAPPING", "KIND", "KEY", "(crm)", "FIELD",
                                "CRM", "VALUE", "ERP", "VALUE", "RULE", "OUTCOME"]
    assert [line.split()[0] for line in lines[1:]] == ["crm:1", "erp:3", "crm:5"]
    erp_line = lines[2]
    # erp decided crm_to_erp: the value crm carried is the source value, erp's the target value
    assert "1.50" in erp_line and "NULL" in erp_line and "pending" in erp_line


def test_list_json_lines_keep_both_sides_values(config: Any, fake_store: None) -> None:
    out = io.StringIO()
    dbs = databases(config, [], [rec("erp", 2, rule=PRIORITY, winner="crm", resolution=APPLIED,
                                     source_value=Decimal("2.10"), target_value="x")])
    cmd.list_command(args(json=True), config, out, dbs)
    (line,) = out.getvalue().splitlines()
    got = json.loads(line)
    assert got["id"] == "erp:2" and got["direction"] == "crm_to_erp" and got["decided_in"] == "erp"
    assert got["crm_value"] == "2.10" and got["erp_value"] == "x"
    assert got["winner"] == "crm" and got["resolution"] == APPLIED and got["key"] == {"crm": [42], "erp": [42]}
    assert got["detected_at"].startswith("2026-12-06T09:58")


def test_list_filters_reach_the_store(config: Any, fake_store: None) -> None:
    out = io.StringIO()
    dbs = databases(config, [rec("crm", 1, target_key=(7,), source_key=(7,)), rec("crm", 2, resolution=RESOLVED)],
                    [rec("erp", 300)])
    cmd.list_command(args(key="7", json=True), config, out, dbs)
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == ["crm:1"]
    out = io.StringIO()
    cmd.list_command(args(pending=True, since="2026-12-06T09:00", json=True), config, out, dbs)  # NOW - 1h: not the wall clock
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == ["crm:1"]


def test_list_without_the_table_says_run_setup(config: Any, fake_store: None) -> None:
    with pytest.raises(ConfigError, match="run `replicator setup`"):
        cmd.list_command(args(), config, io.StringIO(), databases(config, [], [], has_table=False))


def test_empty_listing(config: Any, fake_store: None) -> None:
    out = io.StringIO()
    cmd.list_command(args(), config, out, databases(config, [], []))
    assert out.getvalue() == "no conflicts recorded (for these filters)\n"


# ---------------------------------------------------------------- resolve


def test_resolve_errors(config: Any, fake_store: None) -> None:
    from replicator.mapping.model import load_mappings

    mset = load_mappings(config)
    dbs = databases(config, [rec("crm", 4)], [rec("erp", 4), rec("erp", 9, resolution=RESOLVED, resolved_by="ann",
                                                                 resolved_at=NOW)])
    cases = [
        (args(action="resolve", id="erp:4"), "resolve needs --take"),
        (args(action="resolve", take="crm"), "needs the conflict's id"),
        (args(action="resolve", id="erp:77", take="crm"), "no conflict 77 in erp"),
        (args(action="resolve", id="4", take="crm"), "exists in both databases: say crm:4 or erp:4"),
        (args(action="resolve", id="erp:9", take="crm"), "erp:9 is not pending: it was resolved by ann"),
    ]
    for a, text in cases:
        with pytest.raises(ConfigError, match=text):
            cmd.resolve_command(a, config, mset, io.StringIO(), dbs)


def test_resolve_takes_the_side_then_marks_both_databases(config: Any, fake_store: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from replicator.mapping.model import load_mappings

    taken: list[tuple[str, str]] = []
    monkeypatch.setattr(cmd, "take_side", lambda c, m, r, take, out: taken.append((r.ref, take)) or 1)
    crm, erp = [rec("crm", 4)], [rec("erp", 8)]
    dbs = databases(config, crm, erp)
    out = io.StringIO()
    assert cmd.resolve_command(args(action="resolve", id="erp:8", take="crm"), config, load_mappings(config), out,
                               dbs, user="ann") == 0
    assert taken == [("erp:8", "crm")]
    assert dbs["crm"].resolved == [([4], "ann")] and dbs["erp"].resolved == [([8], "ann")]
    assert dbs["crm"].commits == dbs["erp"].commits == 1
    assert out.getvalue() == "resolved crm:4, erp:8: both sides have crm's row (1 row(s) written, by ann)\n"


def test_cli_unknown_id_exits_78_with_one_line(config: Any, fake_store: None, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dbs = {"crm": FakeDb("crm", []), "erp": FakeDb("erp", [])}
    monkeypatch.setattr(cmd, "_open", lambda _c, side: dbs[side])
    code = main(["conflicts", "--config", str(config.file), "resolve", "erp:5", "--take", "erp"])
    out, err = capsys.readouterr()
    assert code == EXIT_CONFIG
    assert err == "replicator: configuration error: no conflict 5 in erp (`replicator conflicts` lists them)\n"
    code = main(["conflicts", "--config", str(config.file), "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "" and err == ""


# ---------------------------------------------------------------- housekeeping


def test_housekeeping_trims_by_retention_and_refreshes_pending_gauges(config: Any, fake_store: None) -> None:
    old = NOW - timedelta(days=31)
    dbs = {"crm": FakeDb("crm", [rec("crm", 1, detected_at=old, resolution=APPLIED), rec("crm", 2)]),
           "erp": FakeDb("erp", [rec("erp", 3, detected_at=old), rec("erp", 4, detected_at=NOW)])}
    hk = cmd.Housekeeping(config, threading.Event(), lambda _c, side: dbs[side])
    assert hk.run_once(NOW) == {"crm": 1, "erp": 0}  # a pending record stays, however old
    assert dbs["crm"].trimmed_before == NOW - timedelta(days=30)
    assert metrics.REGISTRY.get_sample_value("replicator_conflicts_pending", {"table": "crm.customers"}) == 1
    assert metrics.REGISTRY.get_sample_value("replicator_conflicts_pending", {"table": "erp.customers"}) == 2
    assert metrics.REGISTRY.get_sample_value("replicator_conflicts_oldest_pending_timestamp_seconds",
                                             {"table": "erp.customers"}) == old.timestamp()
    dbs["erp"].records = []  # resolved meanwhile: the gauge drops to 0, the oldest-pending sample goes
    hk.run_once(NOW)
    assert metrics.REGISTRY.get_sample_value("replicator_conflicts_pending", {"table": "erp.customers"}) == 0
    assert metrics.REGISTRY.get_sample_value("replicator_conflicts_oldest_pending_timestamp_seconds",
                                             {"table": "erp.customers"}) is None


def test_housekeeping_failure_is_counted_not_raised(config: Any, fake_store: None) -> None:
    from replicator.errors import RetriableError

    def broken(_c: Any, side: str) -> Any:
        raise RetriableError("erp is down")

    before = metrics.REGISTRY.get_sample_value("replicator_errors_total",
                                               {"direction": "conflicts", "kind": "retriable"}) or 0
    assert cmd.Housekeeping(config, threading.Event(), broken).run_once(NOW) == {}
    assert metrics.REGISTRY.get_sample_value("replicator_errors_total",
                                             {"direction": "conflicts", "kind": "retriable"}) == before + 1


def test_trim_command_runs_the_housekeeping_once(config: Any, fake_store: None) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=40)
    dbs = {"crm": FakeDb("crm", [rec("crm", 1, detected_at=old, resolution=APPLIED)]), "erp": FakeDb("erp", [])}
    out = io.StringIO()
    assert cmd.trim_command(config, out, lambda _c, side: dbs[side]) == 0
    assert out.getvalue() == "trimmed conflict records older than 30 days: 1 in crm, 0 in erp\n"
    assert dbs["crm"].records == []


def test_trim_command_reports_failures(config: Any, fake_store: None) -> None:
    from replicator.errors import RetriableError

    def broken(_c: Any, side: str) -> Any:
        raise RetriableError("erp is down")

    with pytest.raises(RetriableError, match="erp is down"):
        cmd.trim_command(config, io.StringIO(), broken)


def test_explain_shows_the_rows_conflicts_from_the_reader(config: Any) -> None:
    from replicator.mapping.explain import run
    from replicator.mapping.model import load_mappings

    seen: list[tuple[str, list[tuple]]] = []
    recent = [cmd.as_dict(rec("erp", 3, source_value="crm-name", target_value="erp-name"), ["crm", "erp"])]

    def reader(_config: Any, mapping: str, keys: Any) -> list[dict[str, Any]]:
        seen.append((mapping, list(keys)))
        return recent

    text = run(config, load_mappings(config), mapping="customers", side="crm", row='{"id": 42}', conflicts=reader,
               offline=True)
    assert "conflicts" not in text and seen == []  # --offline connects to nothing, conflicts included
    text = run(config, load_mappings(config), mapping="customers", side="crm", row='{"id": 42}', conflicts=reader)
    assert seen[0] == ("customers", [(42,), (42,)])
    assert text.splitlines()[-2:] == [
        "recent conflicts of this row (1, newest first; `replicator conflicts --key` lists more):",
        '  erp:3 2026-12-06 09:57:00 crm_to_erp update_differs name: crm "crm-name", erp "erp-name"; manual: pending']

    def broken(*_a: Any) -> Any:
        raise RuntimeError("permission denied for table conflicts\nDETAIL: ...")

    text = run(config, load_mappings(config), mapping="customers", side="crm", row='{"id": 42}', conflicts=broken)
    assert text.splitlines()[-1] == "conflicts: cannot read them: permission denied for table conflicts"
    nothing = run(config, load_mappings(config), mapping="customers", side="crm", row='{"id": 42}',
                  conflicts=lambda *_a: [])
    assert nothing.splitlines()[-1] == "conflicts: none recorded for this row"


def test_table_findings_for_the_targets_of_two_way_mappings(config: Any, fake_store: None) -> None:
    from replicator.mapping.model import load_mappings

    dbs = {"crm": FakeDb("crm", []), "erp": FakeDb("erp", [], has_table=False)}
    found = cmd.table_findings(config, load_mappings(config), lambda _c, side: dbs[side])
    assert [str(f) for f in found] == [
        "[ok  ] crm: replicator.conflicts exists (conflicts of two-way mappings are recorded there)",
        "[FAIL] erp: replicator.conflicts is missing: conflicts of two-way mappings cannot be recorded\n"
        "        fix: run `replicator setup` (it adds the table and keeps everything else)"]


def test_resolve_without_an_id_shows_this_configurations_sides(config: Any, fake_store: None) -> None:
    """`conflicts resolve --take suitecrm` without an id answered with `erp:17 --take crm`."""
    from dataclasses import replace

    from replicator.mapping.model import MappingSet
    named = replace(config, connections=(replace(config.connections[0], name="suitecrm"),
                                         replace(config.connections[1], name="idempiere")))
    with pytest.raises(ConfigError, match=r"replicator conflicts resolve idempiere:17 --take suitecrm$"):
        cmd.resolve_command(args(action="resolve", take="suitecrm"), named, MappingSet([]), io.StringIO(),
                            databases(named, [], []))
