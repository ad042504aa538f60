"""The conflict check's optimistic conditional write (`_Check._optimistic`) against the full check alone,
without servers: a fake target whose `update_unchanged` is a model of the SQL (a row is written where every
compared field holds the old value of the same class, `==` -- stricter than `Detector.equal`, as the SQL is),
returning the rows it did not write (PostgreSQL's RETURNING) or, when one was not written, the whole run
(MariaDB's affected-row count). On tests/unit/test_detect_differential.py's random runs and target states:
the same target rows after every run and the same conflicts. Which runs qualify, and that a qualifying run
is one statement with no locked read, below. tests/integration/test_optimistic_write.py holds the SQL."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from replicator.appliers.base import Run, group_runs
from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.conflicts import detect, store
from replicator.conflicts.model import Conflict
from replicator.mapping.router import route

from tests.unit import test_detect_differential as diff
from tests.unit.test_detect_differential import msets, run_check, scenario  # noqa: F401  (msets: a fixture)

# every column but the JSON one: the model's "same class and ==" is exact for these values (never for a dict:
# {"a": True} == {"a": 1}), and so stricter than Detector.equal, as the SQL is
EXACT = {"name", "phone", "credit", "code", "changed", "status"}


class FastDetector(detect.Detector):
    """The detector as Applier.apply asks it: the fast path may write (`write=True`)."""

    def resolve(self, applier: Any, run: Run, rows: list[TargetChange], write: bool = True) -> list[TargetChange]:
        return super().resolve(applier, run, rows, write)


class FastTarget(diff.Target):
    """diff.Target with the conditional write, as a model."""

    whole_run = False  # MariaDB: a run not written whole goes to the full check whole
    calls: list[tuple[int, int]] = []  # (rows asked, rows left) per call

    def __init__(self, side: str, rows: dict[int, dict[str, Any]], narrow: bool = False):
        super().__init__(side, rows, True)

    def compares_exactly(self, table: TableRef, column: str) -> bool:
        return column in EXACT

    def update_unchanged(self, run: Run, rows: list[TargetChange], compared: tuple[str, ...]) -> list[TargetChange] | None:
        left = []
        for r in rows:
            stored = self.rows.get(r.key[0])
            expect = r.expect or {}
            if stored is None or not all(
                    stored[c].__class__ is expect[c].__class__ and stored[c] == expect[c] for c in compared):
                left.append(r)
                continue
            stored.update(r.values)  # (as run_check writes a checked row: its values, the key as it is)
        self.calls.append((len(rows), len(left)))
        return (list(rows) if left and self.whole_run else left)


def aligned(mset: Any, s: dict[str, Any]) -> dict[str, Any]:
    """The scenario with each target row the scenario left out holding what the source saw before its first
    update of it (in target terms, as routed): the usual case, where the fast path writes (random rows seldom
    match)."""
    rows = dict(s["rows"])
    table = diff.PG_T if s["source"] == "crm" else diff.MY_T
    for op, before, after in s["changes"]:
        if op is not Op.UPDATE:
            continue
        for tc in route(mset, s["source"], RowChange(table, op, before, after), datetime(2026, 1, 3)):
            k = tc.key[0]
            if tc.op is Op.UPDATE and tc.expect and k.__class__ is int and k not in rows:
                rows[k] = {"id": k, **{c: None for c in (*diff.POOL, "status")}, **tc.expect}
    return {**s, "rows": rows}


@pytest.mark.parametrize("whole_run", [False, True], ids=["postgresql", "mariadb"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=scenario())
def test_the_fast_path_leaves_the_rows_and_conflicts_of_the_full_check(
        msets: dict[str, Any], s: dict[str, Any], monkeypatch: pytest.MonkeyPatch, whole_run: bool) -> None:
    recorded: list[Conflict] = []
    monkeypatch.setattr(store, "record", lambda applier, conflicts: recorded.extend(conflicts))
    mset = msets[s["rule"]]
    s = aligned(mset, s)
    full_states: list[Any] = []
    full = run_check(detect.Detector, mset, s, recorded, True, full_states)
    fast_states: list[Any] = []
    with monkeypatch.context() as patch:  # (this example only: the fixture's patches last for all of them)
        patch.setattr(diff, "Target", FastTarget)
        patch.setattr(FastTarget, "whole_run", whole_run)
        fast = run_check(FastDetector, mset, s, recorded, True, fast_states)
    assert fast_states == full_states  # the target's rows after every run
    assert fast[1] == full[1]  # the conflicts, in order


def test_the_scenarios_take_the_fast_path(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: the scenarios above write rows by the fast path, and send others to the full check."""
    monkeypatch.setattr(store, "record", lambda applier, conflicts: None)
    monkeypatch.setattr(diff, "Target", FastTarget)
    FastTarget.calls = []

    @settings(max_examples=1500, deadline=None, database=None)
    @given(s=scenario())
    def collect(s: dict[str, Any]) -> None:
        run_check(FastDetector, msets[s["rule"]], aligned(msets[s["rule"]], s), [], True)
    collect()
    assert sum(n - left for n, left in FastTarget.calls) > 0  # rows written by the fast path
    assert sum(left for _, left in FastTarget.calls) > 0  # rows left to the full check


# ---------------------------------------------------------------- which runs qualify

T = TableRef("erpdb", "acct")


def _rows(changed: list[dict[str, Any]], expect: dict[str, Any] | None = None) -> list[TargetChange]:
    return [TargetChange(T, Op.UPDATE, ("id",), (k,), {"id": k, **v},
                         expect={"id": k, **(expect if expect is not None else {c: "old" for c in v})},
                         mapping="acct", source_key=(k,)) for k, v in enumerate(changed, 1)]


def _check(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch, changes: list[TargetChange],
           syncing: bool = False) -> FastTarget:
    monkeypatch.setattr(store, "record", lambda applier, conflicts: None)
    FastTarget.calls = []
    target = FastTarget("erp", {k: {"id": k, **{c: "old" for c in (*diff.POOL, "status")}} for k in (1, 2, 3)})
    det = FastDetector(msets["manual"], "crm", None, syncing=lambda: syncing)
    for run in group_runs(changes):
        det.resolve(target, run, list(run.rows.values()))  # type: ignore[arg-type]
    return target


def test_a_qualifying_run_is_one_statement_without_a_locked_read(msets: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = _check(msets, monkeypatch, _rows([{"name": "n1"}, {"name": "n2"}]))
    assert FastTarget.calls == [(2, 0)] and target.asked == []
    assert target.rows[1]["name"] == "n1" and target.rows[2]["name"] == "n2"
    # one row differs: only it is read (locked) and checked
    target = _check(msets, monkeypatch, _rows([{"name": "n1"}, {"name": "n2"}], {"name": "other"})[:1]
                    + _rows([{"name": "n1"}, {"name": "n2"}])[1:])
    assert FastTarget.calls == [(2, 1)] and [a[3] for a in target.asked] == [[(1,)]]


@pytest.mark.parametrize("why, changes, syncing", [
    ("rows changing different fields", _rows([{"name": "n"}, {"phone": "p"}], {"name": "old", "phone": "old"}), False),
    ("a compared column not exact in SQL (here: JSON)", _rows([{"doc": "d"}]), False),
    ("a sync under way", _rows([{"name": "n"}]), True),
    ("two keys naming one target row (1 and '1' of an integer key)",
     _rows([{"name": "n"}]) + [TargetChange(T, Op.UPDATE, ("id",), ("1",), {"id": "1", "name": "m"},
                                            expect={"id": "1", "name": "old"}, mapping="acct", source_key=("1",))],
     False),
])
def test_runs_that_do_not_qualify_take_the_full_check(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                      why: str, changes: list[TargetChange], syncing: bool) -> None:
    target = _check(msets, monkeypatch, changes, syncing)
    assert FastTarget.calls == [], why
    assert target.asked, why


def test_the_linkers_check_never_writes(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """resolve without `write` (mapping/links.py `_checked`, which writes what comes back itself): the full
    check, every row returned as decided."""
    monkeypatch.setattr(store, "record", lambda applier, conflicts: None)
    FastTarget.calls = []
    target = FastTarget("erp", {k: {"id": k, **{c: "old" for c in (*diff.POOL, "status")}} for k in (1, 2, 3)})
    det = FastDetector(msets["manual"], "crm", None)
    for run in group_runs(_rows([{"name": "n1"}, {"name": "n2"}])):
        out = detect.Detector.resolve(det, target, run, list(run.rows.values()))  # type: ignore[arg-type]
        assert [r.values["name"] for r in out] == ["n1", "n2"]
    assert FastTarget.calls == [] and target.asked


def test_an_owned_field_is_written_as_it_is(msets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A field in `values` without `expect` (router.with_owned) is not compared; the run still qualifies."""
    changes = [TargetChange(T, Op.UPDATE, ("id",), (1,), {"id": 1, "name": "n", "phone": "mine"},
                            expect={"id": 1, "name": "old"}, mapping="acct", source_key=(1,))]
    compared: list[tuple[str, ...]] = []
    real = FastTarget.update_unchanged

    def spy(self: FastTarget, run: Run, rows: list[TargetChange], cols: tuple[str, ...]) -> Any:
        compared.append(cols)
        return real(self, run, rows, cols)
    monkeypatch.setattr(FastTarget, "update_unchanged", spy)
    target = _check(msets, monkeypatch, changes)
    assert compared == [("name",)] and target.rows[1]["phone"] == "mine" and target.asked == []
