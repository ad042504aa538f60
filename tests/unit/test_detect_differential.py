"""The conflict check as it is against the check it replaced (tests/unit/detect_reference.py, detect.py
at 6905239): on random runs of routed changes against random target states, both write the same rows
(values of the same classes), record the same conflicts and read the same locked rows. Where the target
lets a checked update run leave out the fields none of its rows changed (detect3: `_Check._narrowed`),
the rows written are the old ones less those fields, which held the locked row's own values: the same
target rows after every run, the same conflicts, the same keys read."""
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

    def __init__(self, side: str, rows: dict[int, dict[str, Any]], narrow: bool = False):
        self.narrow = narrow  # whether the check may leave unchanged fields out of an update run's write
        self.stream = self.direction = "crm_to_erp" if side == "erp" else "erp_to_crm"
        types, dialect = (PG_COLS, "postgresql") if side == "crm" else (MY_COLS, "mariadb")
        self.info = {c: ColumnInfo(c, t, dialect, 2 if c == "credit" else None) for c, t in types.items()}
        self.rows = {i: dict(r) for i, r in rows.items()}
        self.asked: list[Any] = []
        self.rereading = False

    def column_info(self, table: TableRef) -> dict[str, ColumnInfo]:
        return self.info

    def updates_at_once(self, table: TableRef, key_columns: Any, columns: Any, rows: int) -> bool:
        return self.narrow

    def compares_exactly(self, table: Any, column: str) -> bool:
        return False  # no SQL here: the optimistic conditional write is never taken (see test_optimistic_write)

    def leaves_out_required(self, table: TableRef, columns: Any) -> bool:
        return not self.narrow

    def read_rows(self, table: TableRef, key_columns: Any, columns: Any, keys: Any) -> list[tuple[Any, ...]]:
        # (a narrowed run's read of the rest of a row, `_Check._whole_row`, marked as such)
        self.asked.append((table, tuple(key_columns), tuple(columns), list(keys), self.rereading))
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


def run_check(cls: Any, mset: Any, s: dict[str, Any], recorded: list[Conflict], narrow: bool = False,
              states: list[Any] | None = None) -> tuple[Any, ...]:
    """What the check wrote, recorded and read, run by run; `states`: the target's rows after each run."""
    source = s["source"]
    target = Target("erp" if source == "crm" else "crm", s["rows"], narrow)
    det = cls(mset, source, None, syncing=lambda: s["syncing"])
    table = PG_T if source == "crm" else MY_T
    routed = []
    for op, before, after in s["changes"]:
        change = RowChange(table, op, None if op is Op.INSERT else before, None if op is Op.DELETE else after)
        routed += route(mset, source, change, datetime(2026, 1, 3))
    written = []
    recorded.clear()
    whole_row = detect._Check._whole_row

    def rereading(check: Any, r: TargetChange, row: Any) -> Any:
        target.rereading = True
        try:
            return whole_row(check, r, row)
        finally:
            target.rereading = False
    for run in group_runs(routed):  # type: ignore[arg-type]
        if not run.checked:
            continue
        if narrow:
            detect._Check._whole_row = rereading  # type: ignore[method-assign]
        try:
            out = det.resolve(target, run, list(run.rows.values()))
        finally:
            detect._Check._whole_row = whole_row  # type: ignore[method-assign]
        written.append([_change(tc) for tc in out])
        for tc in out:  # what the next run finds
            k = tc.key[0]
            if run.op is Op.DELETE:
                target.rows.pop(k, None)
            elif k in target.rows or isinstance(k, int) and k in IDS:
                target.rows.setdefault(k, {"id": k, **{c: None for c in (*POOL, "status")}}).update(tc.values)
        if states is not None:
            states.append(_typed(target.rows))
    if narrow:
        return written, [_conflict(c) for c in recorded], target.asked
    return written, [_conflict(c) for c in recorded], [x[:4] for x in target.asked]


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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=scenario())
def test_leaving_unchanged_fields_out_writes_and_decides_the_same(msets: dict[str, Any], s: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[Conflict] = []
    monkeypatch.setattr(store, "record", lambda applier, conflicts: recorded.extend(conflicts))
    mset = msets[s["rule"]]
    new_states: list[Any] = []
    old_states: list[Any] = []
    new = run_check(detect.Detector, mset, s, recorded, True, new_states)
    old = run_check(detect_reference.Detector, mset, s, recorded, False, old_states)
    assert new_states == old_states  # the target's rows after every run
    assert new[1] == old[1]  # the conflicts, in order
    for new_run, old_run in zip(new[0], old[0], strict=True):
        assert len(new_run) == len(old_run)
        for (tc, values, key, expect), (otc, ovalues, okey, oexpect) in zip(new_run, old_run):
            # the same row, its written fields a subset of the old write's, each the same value and class
            assert (tc.op, tc.key, key, expect) == (otc.op, otc.key, okey, oexpect)
            assert set(tc.values) <= set(otc.values)
            assert _typed({c: otc.values[c] for c in tc.values}) == values
    # the same rows locked: the old reads, in order, and (narrowed runs only) a conflict's read of the rest
    # of one row its run had read and locked already
    rereads = [x for x in new[2] if x[4]]
    assert [(x[0], x[1], x[3]) for x in new[2] if not x[4]] == [(t, k, keys) for t, k, _, keys in old[2]]
    assert all(len(x[3]) == 1 for x in rereads)


def test_the_scenarios_reach_every_branch(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a vacuous comparison: the random scenarios above do find conflicts of every kind and write rows."""
    recorded: list[Conflict] = []
    monkeypatch.setattr(store, "record", lambda applier, conflicts: recorded.extend(conflicts))
    kinds: set[str] = set()
    writes = narrowed = rereads = 0

    @settings(max_examples=300, deadline=None, database=None)
    @given(s=scenario())
    def collect(s: dict[str, Any]) -> None:
        nonlocal writes, narrowed, rereads
        written, conflicts, _ = run_check(detect.Detector, msets[s["rule"]], s, recorded)
        kinds.update(c[0].kind for c in conflicts)
        writes += sum(len(w) for w in written)
        written, _, asked = run_check(detect.Detector, msets[s["rule"]], s, recorded, True)
        narrowed += sum(1 for w in written for tc, *_ in w if tc.op is Op.UPDATE and len(tc.values) < 8)
        rereads += sum(1 for x in asked if x[4])
    collect()
    assert {"update_differs", "update_missing", "delete_differs", "delete_missing", "insert_exists"} <= kinds, kinds
    assert writes > 0
    assert narrowed > 0 and rereads > 0, (narrowed, rereads)  # rows written narrowed; conflicts in such runs
