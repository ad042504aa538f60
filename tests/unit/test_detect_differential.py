"""The conflict check as it is against the check it replaced (tests/unit/detect_reference.py, detect.py
at 6905239): on random runs of routed changes against random target states, both write the same rows
(values of the same classes), record the same conflicts and read the same locked rows."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replicator.appliers.base import group_runs
from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.compare import ColumnInfo
from replicator.conflicts import detect, store
from replicator.conflicts.model import Conflict
from replicator.mapping.router import route

from tests.unit import detect_reference
from tests.unit.test_conflict_rules import MY_COLS, PG_COLS, mappings

PG_T, MY_T = TableRef("public", "acct"), TableRef("erpdb", "acct")
T1, T2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)

# small pools, so that a target value often equals the old or the new one, in another shape or not
POOL = {
    "name": ["a", "b", None, "a  "], "phone": ["0", "1", None], "credit": [Decimal("1.00"), Decimal("2.50"), 1, 2.5, None],
    "code": ["X", "X  ", "Y"], "doc": [{"a": 1, "b": 2}, '{"b": 2, "a": 1}', None],
    "changed": [T1, T2, T1.replace(tzinfo=None), T2.replace(tzinfo=None), None],
}
STATUS = {"crm": ["active", "closed"], "erp": ["A", "C"]}
IDS = [1, 2, 3]


def values(side: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({**{c: st.sampled_from(v) for c, v in POOL.items()},
                                  "status": st.sampled_from(STATUS[side])})


@st.composite
def scenario(draw: Any) -> dict[str, Any]:
    source = draw(st.sampled_from(["crm", "erp"]))
    target = "erp" if source == "crm" else "crm"
    changes = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from([Op.UPDATE, Op.UPDATE, Op.UPDATE, Op.INSERT, Op.DELETE]))
        i = draw(st.sampled_from(IDS))
        k = draw(st.sampled_from([i, i, i, Decimal(i), str(i), i == 1]))  # the key as the source may carry it
        before = {"id": k, **draw(values(source))}
        after = {"id": k, **draw(values(source))}
        changes.append((op, before, after))
    # the target's rows: absent or random; the key as the target's driver may give it back
    rows = {}
    for i in IDS:
        if draw(st.booleans()):
            key = draw(st.sampled_from([i, i, Decimal(i), str(i)]))
            rows[i] = {"id": key, **draw(values(target))}
    rule = draw(st.sampled_from(["manual", "{priority: crm}", "{priority: erp}", "{latest: {column: changed}}",
                                 "latest"]))
    return {"source": source, "changes": changes, "rows": rows, "rule": rule, "syncing": draw(st.booleans())}


class Target:
    """The part of an applier the detector uses, over a dict of rows; remembers what it was asked."""

    def __init__(self, side: str, rows: dict[int, dict[str, Any]]):
        self.stream = self.direction = "crm_to_erp" if side == "erp" else "erp_to_crm"
        types, dialect = (PG_COLS, "postgresql") if side == "crm" else (MY_COLS, "mariadb")
        self.info = {c: ColumnInfo(c, t, dialect, 2 if c == "credit" else None) for c, t in types.items()}
        self.rows = {i: dict(r) for i, r in rows.items()}
        self.asked: list[Any] = []

    def column_info(self, table: TableRef) -> dict[str, ColumnInfo]:
        return self.info

    def read_rows(self, table: TableRef, key_columns: Any, columns: Any, keys: Any) -> list[tuple[Any, ...]]:
        self.asked.append((table, tuple(key_columns), tuple(columns), list(keys)))
        wanted = {k[0] for k in keys}
        return [(r["id"], *(r[c] for c in columns)) for i, r in self.rows.items() if i in wanted]


def _typed(v: Any) -> Any:
    if isinstance(v, dict):
        return sorted(((k, _typed(x)) for k, x in v.items()), key=repr)
    if isinstance(v, (tuple, list)):
        return [_typed(x) for x in v]
    return (type(v).__name__, repr(v))


def _change(tc: TargetChange) -> Any:
    return (tc, _typed(tc.values), _typed(tc.key), _typed(tc.expect))


def _conflict(c: Conflict) -> Any:
    return (c, _typed(c.source_value), _typed(c.target_value))


def run_check(cls: Any, mset: Any, s: dict[str, Any], recorded: list[Conflict]) -> tuple[Any, ...]:
    source = s["source"]
    target = Target("erp" if source == "crm" else "crm", s["rows"])
    det = cls(mset, source, None, syncing=lambda: s["syncing"])
    table = PG_T if source == "crm" else MY_T
    routed = []
    for op, before, after in s["changes"]:
        change = RowChange(table, op, None if op is Op.INSERT else before, None if op is Op.DELETE else after)
        routed += route(mset, source, change, datetime(2026, 1, 3))
    written = []
    recorded.clear()
    for run in group_runs(routed):  # type: ignore[arg-type]
        if not run.checked:
            continue
        out = det.resolve(target, run, list(run.rows.values()))
        written.append([_change(tc) for tc in out])
        for tc in out:  # what the next run finds
            k = tc.key[0]
            if run.op is Op.DELETE:
                target.rows.pop(k, None)
            elif k in target.rows or isinstance(k, int) and k in IDS:
                target.rows.setdefault(k, {"id": k, **{c: None for c in (*POOL, "status")}}).update(tc.values)
    return written, [_conflict(c) for c in recorded], target.asked


@pytest.fixture(scope="module")
def msets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {rule: mappings(tmp_path_factory.mktemp("m"), rule)
            for rule in ["manual", "{priority: crm}", "{priority: erp}", "{latest: {column: changed}}", "latest"]}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=scenario())
def test_the_check_decides_and_records_what_the_old_one_did(msets: dict[str, Any], s: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[Conflict] = []
    monkeypatch.setattr(store, "record", lambda applier, conflicts: recorded.extend(conflicts))
    mset = msets[s["rule"]]
    new = run_check(detect.Detector, mset, s, recorded)
    old = run_check(detect_reference.Detector, mset, s, recorded)
    assert new == old


def test_the_scenarios_reach_every_branch(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a vacuous comparison: the random scenarios above do find conflicts of every kind and write rows."""
    recorded: list[Conflict] = []
    monkeypatch.setattr(store, "record", lambda applier, conflicts: recorded.extend(conflicts))
    kinds: set[str] = set()
    writes = 0

    @settings(max_examples=300, deadline=None, database=None)
    @given(s=scenario())
    def collect(s: dict[str, Any]) -> None:
        nonlocal writes
        written, conflicts, _ = run_check(detect.Detector, msets[s["rule"]], s, recorded)
        kinds.update(c[0].kind for c in conflicts)
        writes += sum(len(w) for w in written)
    collect()
    assert {"update_differs", "update_missing", "delete_differs", "delete_missing", "insert_exists"} <= kinds, kinds
    assert writes > 0
