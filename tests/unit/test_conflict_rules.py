"""Deciding conflicts: both directions reach the same decision from the same inputs (Hypothesis), and the
detector finds conflicts in target terms without false ones from a value held in another shape."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from replicator.appliers.base import group_runs
from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.compare import ColumnInfo
from replicator.conflicts import detect, store
from replicator.conflicts.detect import Detector
from replicator.conflicts.model import Conflict
from replicator.conflicts.rules import decide
from replicator.config import Config
from replicator.mapping.model import ConflictRule, MappingSet, load_mappings
from replicator.mapping.router import route

from tests.unit.mapsets import make_config

SIDES = ("crm", "erp")

# ---------------------------------------------------------------- the same decision in both directions

stamps = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)),
)
rules = st.one_of(
    st.sampled_from(SIDES).map(lambda s: ConflictRule("priority", side=s)),
    st.just(ConflictRule("latest")),
    st.just(ConflictRule("latest", column="changed")),
    st.just(ConflictRule("manual")),
)


@given(rule=rules, first=st.sampled_from(SIDES), stamp_a=stamps, stamp_b=stamps, time_a=stamps, time_b=stamps)
def test_both_directions_name_the_same_winner(rule: ConflictRule, first: str, stamp_a: Any, stamp_b: Any,
                                              time_a: Any, time_b: Any) -> None:
    a_to_b = decide(rule, "crm", "erp", first, incoming_stamp=stamp_a, target_stamp=stamp_b,
                    incoming_time=time_a, target_time=time_b)
    b_to_a = decide(rule, "erp", "crm", first, incoming_stamp=stamp_b, target_stamp=stamp_a,
                    incoming_time=time_b, target_time=time_a)
    assert a_to_b.winner == b_to_a.winner
    assert a_to_b.winner in (("",) if rule.rule == "manual" else SIDES)


def test_latest_column_later_wins_naive_and_aware_alike() -> None:
    rule = ConflictRule("latest", column="changed")
    naive = datetime(2026, 1, 1, 12, 0, 1)
    aware = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    d = decide(rule, "crm", "erp", "erp", incoming_stamp=naive, target_stamp=aware)
    assert (d.winner, d.detail) == ("crm", "crm's changed is later")
    tie = decide(rule, "crm", "erp", "erp", incoming_stamp=aware, target_stamp=aware.replace(tzinfo=None))
    assert tie.winner == "erp" and "equal" in tie.detail
    assert decide(rule, "crm", "erp", "erp", incoming_stamp=None, target_stamp=naive).winner == "erp"


def test_latest_by_commit_time_without_the_other_time_falls_back_to_the_first_connection() -> None:
    d = decide(ConflictRule("latest"), "erp", "crm", "crm", incoming_time=datetime(2030, 1, 1))
    assert d.winner == "crm" and "not known" in d.detail
    d = decide(ConflictRule("latest"), "erp", "crm", "crm", incoming_time=datetime(2030, 1, 1),
               target_time=datetime(2029, 1, 1))
    assert d.winner == "erp"
    # whole seconds (the binlog's resolution): within one second is a tie, won by the first connection
    d = decide(ConflictRule("latest"), "erp", "crm", "crm", incoming_time=datetime(2030, 1, 1, 0, 0, 0, 900000),
               target_time=datetime(2030, 1, 1, 0, 0, 0, 100000, tzinfo=timezone.utc))
    assert d.winner == "crm" and "same second" in d.detail


# ---------------------------------------------------------------- the detector against a fake target

ACCT = """\
mappings:
  acct:
    direction: both
    conflicts: {rule}
    crm: {{table: acct, key: [id]}}
    erp: {{table: acct, key: [id]}}
    fields:
      id: ~
      name: ~
      phone: ~
      credit: ~
      code: ~
      doc: ~
      changed: ~
      status: {{map: [{{crm: active, erp: A}}, {{crm: closed, erp: C}}]}}
"""
PG_T, MY_T = TableRef("public", "acct"), TableRef("erpdb", "acct")
PG_COLS = {"id": "integer", "name": "text", "phone": "text", "credit": "numeric", "code": "character",
           "doc": "jsonb", "changed": "timestamp with time zone", "status": "text"}
MY_COLS = {"id": "int", "name": "varchar", "phone": "varchar", "credit": "decimal", "code": "char",
           "doc": "json", "changed": "datetime", "status": "char"}


class FakeTarget:
    """The part of an applier the detector uses, over a dict of rows."""

    def __init__(self, side: str, stream: str, rows: dict[int, dict[str, Any]]):
        self.side, self.stream, self.direction, self.rows = side, stream, stream, rows
        types = PG_COLS if side == "crm" else MY_COLS
        dialect = "postgresql" if side == "crm" else "mariadb"
        scale = {"credit": 2}
        self.info = {c: ColumnInfo(c, t, dialect, scale.get(c)) for c, t in types.items()}
        self.reads = 0

    def column_info(self, table: TableRef) -> dict[str, ColumnInfo]:
        return self.info

    # a write of some columns updates only those (`apply` below): any run may leave the unchanged ones out
    def updates_at_once(self, table: TableRef, key_columns: Any, columns: Any, rows: int) -> bool:
        return True

    def compares_exactly(self, table: Any, column: str) -> bool:
        return False  # no SQL here: the optimistic conditional write is never taken (see test_optimistic_write)

    def leaves_out_required(self, table: TableRef, columns: Any) -> bool:
        return False

    def read_rows(self, table: TableRef, key_columns: Any, columns: Any, keys: Any) -> list[tuple]:
        self.reads += 1
        return [(k[0], *(self.rows[k[0]][c] for c in columns)) for k in keys if k[0] in self.rows]

    def apply(self, det: Detector, changes: list[TargetChange]) -> None:
        for run in group_runs(changes):
            for tc in det.resolve(self, run, list(run.rows.values())):  # type: ignore[arg-type]
                if run.op is Op.DELETE:
                    self.rows.pop(tc.key[0], None)
                else:
                    self.rows.setdefault(tc.key[0], {}).update(tc.values)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Conflict]:
    out: list[Conflict] = []
    monkeypatch.setattr(store, "record", lambda applier, conflicts: out.extend(conflicts))
    return out


def mappings(tmp_path: Path, rule: str) -> MappingSet:
    (tmp_path / "maps").mkdir(exist_ok=True)
    config: Config = make_config(tmp_path)
    (config.mappings_dir / "m.yaml").write_text(ACCT.format(rule=rule))
    return load_mappings(config)


BASE = {"id": 1, "name": "base", "phone": "0", "credit": Decimal("1.00"), "code": "X", "doc": {"a": 1, "b": 2},
        "changed": datetime(2026, 1, 1, tzinfo=timezone.utc), "status": "active"}


def crm_row(**kw: Any) -> dict[str, Any]:
    return {**BASE, **kw}


def erp_row(**kw: Any) -> dict[str, Any]:
    # the erp's shapes: naive UTC times, a padded CHAR, JSON text in another key order, the mapped status
    row = {**BASE, "changed": datetime(2026, 1, 1), "code": "X  ", "doc": '{"b": 2, "a": 1}', "status": "A"}
    return {**row, **kw}


def race(tmp_path: Path, rule: str, crm_new: dict[str, Any], erp_new: dict[str, Any],
         crm_old: dict[str, Any] | None = None, erp_old: dict[str, Any] | None = None):
    """Both sides changed row 1 from the same old row; each direction applies the other's change."""
    mset = mappings(tmp_path, rule)
    crm_old, erp_old = crm_old or crm_row(), erp_old or erp_row()
    crm = FakeTarget("crm", "erp_to_crm", {1: dict(crm_new)})
    erp = FakeTarget("erp", "crm_to_erp", {1: dict(erp_new)})
    to_erp = route(mset, "crm", RowChange(PG_T, Op.UPDATE, crm_old, crm_new), datetime(2026, 1, 2))
    to_crm = route(mset, "erp", RowChange(MY_T, Op.UPDATE, erp_old, erp_new), datetime(2026, 1, 2))
    erp.apply(Detector(mset, "crm"), to_erp)
    crm.apply(Detector(mset, "erp"), to_crm)
    return crm.rows[1], erp.rows[1]


def test_no_false_conflict_from_shapes(tmp_path: Path, recorded: list[Conflict]) -> None:
    """Decimal against int, aware against naive, CHAR padding, JSON key order: the same values."""
    crm, erp = race(tmp_path, "manual", crm_row(phone="crm"), erp_row(name="erp", credit=1))
    assert recorded == []
    assert (crm["phone"], crm["name"], erp["phone"], erp["name"]) == ("crm", "erp", "crm", "erp")


@pytest.mark.parametrize("rule, winner", [("{priority: erp}", "erp"), ("{priority: crm}", "crm"), ("latest", "crm")])
def test_same_field_ends_equal_on_both_sides(tmp_path: Path, recorded: list[Conflict], rule: str, winner: str) -> None:
    crm, erp = race(tmp_path, rule, crm_row(name="crm"), erp_row(name="erp"))
    assert crm["name"] == erp["name"] == winner
    assert sorted((c.stream, c.kind, c.field, c.winner, c.resolution) for c in recorded) == sorted([
        ("crm_to_erp", "update_differs", "name", winner, "applied" if winner == "crm" else "kept"),
        ("erp_to_crm", "update_differs", "name", winner, "applied" if winner == "erp" else "kept"),
    ])


def test_latest_by_column_compares_in_target_terms(tmp_path: Path, recorded: list[Conflict]) -> None:
    later = datetime(2026, 1, 1, 0, 0, 5)
    crm, erp = race(tmp_path, "{latest: {column: changed}}",
                    crm_row(status="closed", name="crm", changed=datetime(2026, 1, 1, 0, 0, 1, tzinfo=timezone.utc)),
                    erp_row(name="erp", changed=later))
    assert (crm["name"], erp["name"]) == ("erp", "erp")  # the erp's edit is later
    assert (crm["status"], erp["status"]) == ("closed", "C")  # only the crm changed it: no conflict, mapped
    assert {c.winner for c in recorded} == {"erp"}


def test_manual_keeps_both_sides_and_records_pending(tmp_path: Path, recorded: list[Conflict]) -> None:
    crm, erp = race(tmp_path, "manual", crm_row(name="crm"), erp_row(name="erp"))
    assert (crm["name"], erp["name"]) == ("crm", "erp")
    assert {(c.winner, c.resolution) for c in recorded} == {("", "pending")}


def test_update_missing_is_not_resurrected_when_the_target_side_wins(tmp_path: Path, recorded: list[Conflict]) -> None:
    mset = mappings(tmp_path, "{priority: erp}")
    erp = FakeTarget("erp", "crm_to_erp", {})
    erp.apply(Detector(mset, "crm"), route(mset, "crm", RowChange(PG_T, Op.UPDATE, crm_row(), crm_row(phone="9"))))
    assert erp.rows == {}
    assert [(c.kind, c.resolution) for c in recorded] == [("update_missing", "kept")]


def test_update_missing_comes_back_whole_when_the_incoming_side_wins(tmp_path: Path, recorded: list[Conflict]) -> None:
    mset = mappings(tmp_path, "{priority: crm}")
    erp = FakeTarget("erp", "crm_to_erp", {})
    erp.apply(Detector(mset, "crm"), route(mset, "crm", RowChange(PG_T, Op.UPDATE, crm_row(), crm_row(phone="9"))))
    assert erp.rows[1]["phone"] == "9" and erp.rows[1]["name"] == "base" and erp.rows[1]["status"] == "A"


def test_delete_of_a_changed_row_and_of_a_gone_row(tmp_path: Path, recorded: list[Conflict]) -> None:
    mset = mappings(tmp_path, "{priority: erp}")
    erp = FakeTarget("erp", "crm_to_erp", {1: erp_row(phone="changed")})
    det = Detector(mset, "crm")
    erp.apply(det, route(mset, "crm", RowChange(PG_T, Op.DELETE, crm_row(), None)))
    assert 1 in erp.rows  # the erp changed it and wins: kept
    erp.rows[2] = erp_row(id=2)
    erp.apply(det, route(mset, "crm", RowChange(PG_T, Op.DELETE, crm_row(id=2), None)))
    erp.apply(det, route(mset, "crm", RowChange(PG_T, Op.DELETE, crm_row(id=3), None)))
    assert 2 not in erp.rows
    assert [(c.kind, c.target_key, c.resolution) for c in recorded] == [
        ("delete_differs", (1,), "kept"), ("delete_missing", (3,), "applied")]


def test_insert_over_an_existing_row_keeps_a_value_against_none(tmp_path: Path, recorded: list[Conflict]) -> None:
    """Both sides created the record; where one has no value, the other's is kept whatever the rule: a SuiteCRM
    account and its accounts_cstm row (one transaction) made iDempiere's partner with taxid NULL, and the tax id's
    insert lost to iDempiere's priority (docs/walkthrough-suitecrm-idempiere.md)."""
    mset = mappings(tmp_path, "{priority: erp}")
    erp = FakeTarget("erp", "crm_to_erp", {1: erp_row(name="erp", phone=None)})
    erp.apply(Detector(mset, "crm"), route(mset, "crm", RowChange(PG_T, Op.INSERT, None, crm_row(name="crm",
                                                                                                  phone="5"))))
    assert (erp.rows[1]["name"], erp.rows[1]["phone"]) == ("erp", "5")  # the name raced (erp's priority)
    assert [(c.kind, c.field) for c in recorded] == [("insert_exists", "name")]
    recorded.clear()
    erp.rows[2] = erp_row(id=2, name="erp", phone="7")
    erp.apply(Detector(mset, "crm"), route(mset, "crm", RowChange(PG_T, Op.INSERT, None, crm_row(id=2, name="erp",
                                                                                                  phone=None))))
    assert erp.rows[2]["phone"] == "7" and recorded == []  # an incoming NULL does not clear the value


def test_insert_over_an_existing_row_is_decided_field_by_field(tmp_path: Path, recorded: list[Conflict]) -> None:
    mset = mappings(tmp_path, "{priority: crm}")
    erp = FakeTarget("erp", "crm_to_erp", {1: erp_row(name="erp", phone="same")})
    erp.apply(Detector(mset, "crm"), route(mset, "crm", RowChange(PG_T, Op.INSERT, None, crm_row(name="crm", phone="same"))))
    assert erp.rows[1]["name"] == "crm"
    assert [(c.kind, c.field) for c in recorded] == [("insert_exists", "name")]
    recorded.clear()
    erp.apply(Detector(mset, "crm"), route(mset, "crm", RowChange(PG_T, Op.INSERT, None, crm_row(name="crm", phone="same"))))
    assert recorded == []  # the same values: nothing to decide, nothing written


def test_one_read_per_run_and_two_updates_of_a_row_merge(tmp_path: Path, recorded: list[Conflict]) -> None:
    mset = mappings(tmp_path, "{priority: erp}")
    erp = FakeTarget("erp", "crm_to_erp", {i: erp_row(id=i) for i in range(50)})
    changes = [tc for i in range(50) for tc in route(mset, "crm", RowChange(
        PG_T, Op.UPDATE, crm_row(id=i), crm_row(id=i, phone=f"p{i}")))]
    changes += route(mset, "crm", RowChange(PG_T, Op.UPDATE, crm_row(id=7, phone="p7"), crm_row(id=7, phone="p7", name="n")))
    erp.apply(Detector(mset, "crm"), changes)
    assert erp.reads == 1 and recorded == []
    assert erp.rows[7]["phone"] == "p7" and erp.rows[7]["name"] == "n" and erp.rows[8]["phone"] == "p8"


# ---------------------------------------------------------------- the other direction's commit times

def test_commit_clock_finds_the_edit_that_left_the_value() -> None:
    import threading
    from replicator.changes import Transaction
    from replicator.conflicts.clock import CommitClock
    clock = CommitClock({("erp", MY_T): ("id",)})
    t1, t2 = datetime(2026, 1, 1, 0, 0, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 0, 0, 9, tzinfo=timezone.utc)
    same = lambda a, b: a == b  # noqa: E731
    clock.saw("erp", Transaction("1", None, t1, (RowChange(MY_T, Op.UPDATE, None, {"id": 1, "name": "old"}),)))  # type: ignore[arg-type]
    assert clock.wait_for("erp", MY_T, (Decimal(1),), "name", "old", same, timeout=0) == t1  # keys as either side spells them
    assert clock.wait_for("erp", MY_T, (1,), "name", "new", same, timeout=0.05) is None  # not read (yet)
    later = threading.Timer(0.05, clock.saw, ("erp", Transaction(
        "2", None, t2, (RowChange(MY_T, Op.UPDATE, None, {"id": 1, "name": "new"}),))))  # type: ignore[arg-type]
    later.start()
    assert clock.wait_for("erp", MY_T, (1,), "name", "new", same, timeout=5) == t2  # waits for the reader
    clock.saw("erp", Transaction("3", None, t2, (RowChange(MY_T, Op.UPDATE, None, {"id": 2}),), echo=True))  # type: ignore[arg-type]
    assert clock.wait_for("erp", MY_T, (2,), "id", 2, same, timeout=0) is None  # our own writes are not edits


def test_latest_by_commit_time_both_directions_pick_the_later_commit(tmp_path: Path, recorded: list[Conflict]) -> None:
    from replicator.changes import Transaction
    from replicator.conflicts.clock import CommitClock
    mset = mappings(tmp_path, "latest")
    clock = CommitClock({("crm", PG_T): ("id",), ("erp", MY_T): ("id",)})
    t_crm, t_erp = datetime(2026, 1, 2, 0, 0, 5, tzinfo=timezone.utc), datetime(2026, 1, 2, 0, 0, 7)
    crm_change = RowChange(PG_T, Op.UPDATE, crm_row(), crm_row(name="crm"))
    erp_change = RowChange(MY_T, Op.UPDATE, erp_row(), erp_row(name="erp"))
    clock.saw("crm", Transaction("c", None, t_crm, (crm_change,)))  # type: ignore[arg-type]
    clock.saw("erp", Transaction("e", None, t_erp, (erp_change,)))  # type: ignore[arg-type]
    crm = FakeTarget("crm", "erp_to_crm", {1: crm_row(name="crm")})
    erp = FakeTarget("erp", "crm_to_erp", {1: erp_row(name="erp")})
    erp.apply(Detector(mset, "crm", clock), route(mset, "crm", crm_change, t_crm))
    crm.apply(Detector(mset, "erp", clock), route(mset, "erp", erp_change, t_erp))
    assert crm.rows[1]["name"] == erp.rows[1]["name"] == "erp"
    assert {(c.winner, c.detail) for c in recorded} == {("erp", "erp's commit is later")}


def test_commit_clock_remembers_long_values_by_digest() -> None:
    from replicator.changes import Transaction
    from replicator.conflicts.clock import CommitClock
    clock = CommitClock({("erp", MY_T): ("id",)})
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    long = "x" * 10_000
    clock.saw("erp", Transaction("1", None, t, (RowChange(MY_T, Op.UPDATE, None, {"id": 1, "note": long}),)))  # type: ignore[arg-type]
    same = lambda a, b: a == b  # noqa: E731
    assert clock.wait_for("erp", MY_T, (1,), "note", "x" * 10_000, same, timeout=0) == t
    assert clock.wait_for("erp", MY_T, (1,), "note", "x" * 9_999 + "y", same, timeout=0) is None


def _delayed_reader_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share: bool) -> tuple[dict, dict]:
    """The erp's reader is late: crm_to_erp does not learn the erp edit's commit time within its wait
    and decides for the first connection (crm); then the erp reader reads the erp edit (2 s later than
    the crm's) and erp_to_crm, which now knows both times, applies it."""
    from replicator.changes import Transaction
    from replicator.conflicts.clock import CommitClock
    monkeypatch.setattr(detect, "COMMIT_TIME_WAIT_SECONDS", 0.01)
    mset = mappings(tmp_path, "latest")
    clock = CommitClock({("crm", PG_T): ("id",), ("erp", MY_T): ("id",)})
    if not share:  # the old behaviour: nothing kept for the peer direction
        monkeypatch.setattr(clock, "share", lambda race, side, t_in, t_target, decision: decision)
    t_crm, t_erp = datetime(2026, 1, 2, 0, 0, 5, tzinfo=timezone.utc), datetime(2026, 1, 2, 0, 0, 7)
    crm_change = RowChange(PG_T, Op.UPDATE, crm_row(), crm_row(name="crm"))
    erp_change = RowChange(MY_T, Op.UPDATE, erp_row(), erp_row(name="erp"))
    crm = FakeTarget("crm", "erp_to_crm", {1: crm_row(name="crm")})
    erp = FakeTarget("erp", "crm_to_erp", {1: erp_row(name="erp")})
    clock.saw("crm", Transaction("c", None, t_crm, (crm_change,)))  # type: ignore[arg-type]
    erp.apply(Detector(mset, "crm", clock), route(mset, "crm", crm_change, t_crm))  # the erp's edit: not read yet
    clock.saw("erp", Transaction("e", None, t_erp, (erp_change,)))  # type: ignore[arg-type]
    crm.apply(Detector(mset, "erp", clock), route(mset, "erp", erp_change, t_erp))
    return crm.rows[1], erp.rows[1]


def test_a_late_reader_swapped_values_without_the_shared_decision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   recorded: list[Conflict]) -> None:
    crm, erp = _delayed_reader_race(tmp_path, monkeypatch, share=False)
    assert (crm["name"], erp["name"]) == ("erp", "crm")  # what the fallback alone did: the values swap sides


def test_the_peer_direction_follows_the_first_decision_of_a_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  recorded: list[Conflict]) -> None:
    crm, erp = _delayed_reader_race(tmp_path, monkeypatch, share=True)
    assert crm["name"] == erp["name"] == "crm"
    assert [(c.stream, c.winner, c.resolution) for c in recorded] == [("crm_to_erp", "crm", "applied"),
                                                                      ("erp_to_crm", "crm", "kept")]
    assert "not known" in recorded[0].detail and recorded[1].detail.startswith("as decided by the other direction")


def test_kept_decisions_match_only_their_race_are_taken_once_and_expire() -> None:
    from replicator.conflicts.clock import CommitClock, Race
    from replicator.conflicts.rules import Decision
    clock = CommitClock({}, size=2, decision_seconds=60)
    t1, t2, t3 = (datetime(2026, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in (1, 2, 3))
    race = Race.of("acct", {"crm": (1,), "erp": (Decimal(1),)}, "name")
    assert race == Race.of("acct", {"erp": (1,), "crm": (1,)}, "name")  # either direction names it alike
    d = Decision("crm", "the commit time of erp's edit is not known: crm (the first connection) wins")
    assert clock.share(race, "crm", t1, None, d) is d
    assert clock.shared(race, "crm", t1, None) is None  # not for the direction that decided it
    assert clock.shared(Race.of("acct", {"crm": (1,), "erp": (1,)}, "phone"), "erp", t2, t1) is None  # another field
    assert clock.shared(race, "erp", t3, t2) is None  # the target's edit is another one: an earlier race
    # the peer deciding at the same moment gets the first decision, not its own
    assert clock.share(race, "erp", t2, t1, Decision("erp", "erp's commit is later")) is d
    assert clock.shared(race, "erp", t2, t1) is None  # taken once
    clock.share(race, "crm", t1, None, d)
    for n in range(2):  # bounded: the oldest decision is forgotten first
        clock.share(Race.of("acct", {"crm": (n + 2,), "erp": (n + 2,)}, "name"), "crm", t1, None, d)
    assert clock.shared(race, "erp", t2, None) is None
    short = CommitClock({}, decision_seconds=0.0)  # and expire
    short.share(race, "crm", t1, None, d)
    assert short.shared(race, "erp", t2, None) is None


def _update_against_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update_later: bool,
                           erp_reader_late: bool = False) -> tuple[dict, dict]:
    """The crm updates row 1 while the erp deletes it, `latest` by commit time, 2 s apart: crm_to_erp
    finds the row gone (update_missing), erp_to_crm finds it changed (delete_differs)."""
    from replicator.changes import Transaction
    from replicator.conflicts.clock import CommitClock
    monkeypatch.setattr(detect, "COMMIT_TIME_WAIT_SECONDS", 0.01)
    mset = mappings(tmp_path, "latest")
    clock = CommitClock({("crm", PG_T): ("id",), ("erp", MY_T): ("id",)})
    t_crm = datetime(2026, 1, 2, 0, 0, 7 if update_later else 5, tzinfo=timezone.utc)
    t_erp = datetime(2026, 1, 2, 0, 0, 5 if update_later else 7)
    crm_change = RowChange(PG_T, Op.UPDATE, crm_row(), crm_row(phone="9"))
    erp_change = RowChange(MY_T, Op.DELETE, erp_row(), None)
    crm = FakeTarget("crm", "erp_to_crm", {1: crm_row(phone="9")})
    erp = FakeTarget("erp", "crm_to_erp", {})
    clock.saw("crm", Transaction("c", None, t_crm, (crm_change,)))  # type: ignore[arg-type]
    if not erp_reader_late:
        clock.saw("erp", Transaction("e", None, t_erp, (erp_change,)))  # type: ignore[arg-type]
    erp.apply(Detector(mset, "crm", clock), route(mset, "crm", crm_change, t_crm))
    if erp_reader_late:
        clock.saw("erp", Transaction("e", None, t_erp, (erp_change,)))  # type: ignore[arg-type]
    crm.apply(Detector(mset, "erp", clock), route(mset, "erp", erp_change, t_erp))
    return crm.rows, erp.rows


@pytest.mark.parametrize("update_later", [True, False])
def test_update_against_delete_the_later_commit_wins_on_both_sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   recorded: list[Conflict], update_later: bool) -> None:
    crm, erp = _update_against_delete(tmp_path, monkeypatch, update_later)
    if update_later:  # the row stays in the crm and comes back whole in the erp
        assert crm[1]["phone"] == erp[1]["phone"] == "9" and erp[1]["name"] == "base"
    else:  # deleted on both sides
        assert crm == erp == {}
    winner = "crm" if update_later else "erp"
    assert [(c.kind, c.winner, c.detail) for c in recorded] == [
        ("update_missing", winner, f"{winner}'s commit is later"), ("delete_differs", winner, f"{winner}'s commit is later")]


def test_update_against_delete_with_a_late_reader_follows_the_first_decision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[Conflict]) -> None:
    """The erp's delete is the later commit, but crm_to_erp does not learn it in time and lets the first
    connection (crm) keep the row; erp_to_crm, knowing both times, follows instead of deleting the row
    that the erp just got back."""
    crm, erp = _update_against_delete(tmp_path, monkeypatch, update_later=False, erp_reader_late=True)
    assert crm[1]["phone"] == erp[1]["phone"] == "9"
    assert [(c.kind, c.winner) for c in recorded] == [("update_missing", "crm"), ("delete_differs", "crm")]
    assert recorded[1].detail.startswith("as decided by the other direction")


def test_a_checked_update_also_writes_the_owned_fields_it_carries(tmp_path: Path, recorded: list[Conflict]) -> None:
    """`with_owned`: an update carries its side's owned fields, changed or not, so that what the target
    missed of them (the credit the erp generated when this flow created the row) arrives with the next
    change. They are not in `expect` (unchecked): the run is still grouped so that they are written."""
    (tmp_path / "maps").mkdir(exist_ok=True)
    config: Config = make_config(tmp_path)
    (config.mappings_dir / "m.yaml").write_text(
        ACCT.format(rule="latest").replace("      credit: ~\n", "      credit: {owner: erp}\n"))
    mset = load_mappings(config)
    crm = FakeTarget("crm", "erp_to_crm", {1: crm_row(credit=Decimal("0.00"))})  # missed the erp's credit
    before = erp_row(credit=Decimal("7.00"))
    change = RowChange(MY_T, Op.UPDATE, before, {**before, "name": "renamed"})
    routed = route(mset, "erp", change, datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert "credit" in routed[0].values and "credit" not in (routed[0].expect or {})
    crm.apply(Detector(mset, "erp"), routed)
    assert crm.rows[1]["name"] == "renamed"
    assert crm.rows[1]["credit"] == Decimal("7.00")
    assert recorded == []


# ---------------------------------------------------------------- a field transformed one way only

ONE_WAY = """\
mappings:
  acct:
    direction: both
    conflicts: manual
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields:
      id: ~
      name: {transform: {crm_to_erp: [trim, upper]}}
      phone: ~
"""


def one_way_mappings(tmp_path: Path) -> MappingSet:
    (tmp_path / "maps").mkdir(exist_ok=True)
    config: Config = make_config(tmp_path)
    (config.mappings_dir / "m.yaml").write_text(ONE_WAY)
    return load_mappings(config)


def test_a_one_way_transform_is_no_conflict(tmp_path: Path, recorded: list[Conflict]) -> None:
    """The crm holds ' Partner 3 ', the erp its image 'PARTNER 3' (crm_to_erp only): replication is done, so
    the erp's delete of the row, an erp edit of that field and an erp insert of the same row are no conflicts
    (as verify finds the two in agreement). Without the round trip, each was a conflict decided against a
    value nobody edited: under `latest` a tie within one second kept the crm row the erp had deleted."""
    mset = one_way_mappings(tmp_path)
    det = Detector(mset, "erp")
    crm = FakeTarget("crm", "erp_to_crm", {1: {"id": 1, "name": " Partner 3 ", "phone": "1"},
                                           2: {"id": 2, "name": " Partner 4 ", "phone": "2"},
                                           3: {"id": 3, "name": " Partner 5 ", "phone": "3"}})
    # the erp edits the name: the crm gets the erp's value, no conflict
    crm.apply(det, route(mset, "erp", RowChange(MY_T, Op.UPDATE, {"id": 2, "name": "PARTNER 4", "phone": "2"},
                                                {"id": 2, "name": "ERP NAME", "phone": "2"}), datetime(2026, 1, 2)))
    assert crm.rows[2]["name"] == "ERP NAME"
    # the erp inserts a row the crm already holds in its own shape: nothing to decide, the crm's value stays
    crm.apply(det, route(mset, "erp", RowChange(MY_T, Op.INSERT, None, {"id": 3, "name": "PARTNER 5", "phone": "3"}),
                         datetime(2026, 1, 2)))
    assert crm.rows[3]["name"] == " Partner 5 "
    # the erp deletes a row the crm holds in its own shape: deleted
    crm.apply(det, route(mset, "erp", RowChange(MY_T, Op.DELETE, {"id": 1, "name": "PARTNER 3", "phone": "1"}, None),
                         datetime(2026, 1, 2)))
    assert 1 not in crm.rows
    assert recorded == []


def test_a_one_way_transform_still_finds_a_real_edit(tmp_path: Path, recorded: list[Conflict]) -> None:
    """The crm edited the name since (' Partner 3b ', which would be 'PARTNER 3B' in the erp): a conflict."""
    mset = one_way_mappings(tmp_path)
    det = Detector(mset, "erp")
    crm = FakeTarget("crm", "erp_to_crm", {1: {"id": 1, "name": " Partner 3b ", "phone": "1"},
                                           2: {"id": 2, "name": " Partner 4b ", "phone": "2"}})
    crm.apply(det, route(mset, "erp", RowChange(MY_T, Op.DELETE, {"id": 1, "name": "PARTNER 3", "phone": "1"}, None),
                         datetime(2026, 1, 2)))
    crm.apply(det, route(mset, "erp", RowChange(MY_T, Op.UPDATE, {"id": 2, "name": "PARTNER 4", "phone": "2"},
                                                {"id": 2, "name": "ERP NAME", "phone": "2"}), datetime(2026, 1, 2)))
    assert crm.rows[1]["name"] == " Partner 3b " and crm.rows[2]["name"] == " Partner 4b "  # manual: kept
    assert sorted((c.kind, c.field, c.resolution) for c in recorded) == [
        ("delete_differs", None, "pending"), ("update_differs", "name", "pending")]
