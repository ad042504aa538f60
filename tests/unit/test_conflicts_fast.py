"""The fast paths of the conflict check give the same answers as the general ones they shortcut."""
from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st

from replicator import compare
from replicator.changes import LSN, UNCHANGED, Op, RowChange, TableRef, TargetChange, Transaction
from replicator.compare import ColumnInfo
from replicator.conflicts import detect
from replicator.conflicts.clock import CommitClock
from replicator.conflicts.detect import Detector
from replicator.errors import RowError
from replicator.mapping import router
from replicator.mapping.model import Flow, load_mappings

from tests.unit.test_conflict_rules import mappings
from tests.unit.mapsets import make_config


def test_with_values_keeps_every_other_field() -> None:
    # every field set to a value of its own: a field added to TargetChange but not passed on by
    # _with_values would come back as its default and differ from dataclasses.replace
    kw: dict[str, Any] = {f.name: object() for f in dataclasses.fields(TargetChange)}
    r = TargetChange(**kw)
    values = {"a": 1}
    assert detect._with_values(r, values) == dataclasses.replace(r, values=values)


zones = st.one_of(st.none(), st.just(timezone.utc),
                  st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))))
moments = st.datetimes(min_value=datetime(1970, 1, 3), max_value=datetime(9990, 1, 1))


# no deadline: each example loads a mapping file, which a loaded machine once took over 200 ms for
@settings(deadline=None)
@given(a=moments, b=moments, za=zones, zb=zones, same=st.booleans(),
       precision=st.sampled_from([None, 6, 3, 0]), dialect=st.sampled_from(["postgresql", "mariadb"]))
def test_timestamp_equality_agrees_with_the_canonical_forms(tmp_path_factory: Any, a: datetime, b: datetime,
                                                            za: Any, zb: Any, same: bool, precision: Any,
                                                            dialect: str) -> None:
    a = a.replace(tzinfo=za)
    if same:  # the same instant, spelled in another zone or naive (UTC)
        utc = a.astimezone(timezone.utc) if za is not None else a.replace(tzinfo=timezone.utc)
        b = utc.astimezone(zb) if zb is not None else utc.replace(tzinfo=None)
    else:
        b = b.replace(tzinfo=zb)
    det = Detector(mappings(tmp_path_factory.mktemp("m"), "latest"), "crm")
    data_type = "timestamp with time zone" if dialect == "postgresql" else "datetime"
    info = {"t": ColumnInfo("t", data_type, dialect, precision=precision)}
    rule = compare.rule_for(info["t"], None, "t")
    assert det.equal(info, "t")(a, b) == compare.values_equal(rule, a, b)


# ---------------------------------------------------------------- routing a two-way update in one pass

TWO_WAY = """\
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields:
      id: ~
      name: {transform: [trim, lower, null_if_empty]}
      phone: ~
      status: {map: [{crm: active, erp: A}, {crm: closed, erp: C}]}
      credit: {owner: crm}
      code: {null_if: {crm: 0}}
      ratio: ~
"""
PG_ACCT = TableRef("public", "acct")
texts = st.sampled_from(["a", " A ", "", "b", None])
row_values = st.fixed_dictionaries({
    "id": st.sampled_from([1, 2, None]), "name": texts, "phone": texts,
    "status": st.sampled_from(["active", "closed", "other", None]), "credit": st.sampled_from([0, 1, 1.0, True]),
    "code": st.sampled_from([0, 1, 0.0, False]), "ratio": st.sampled_from([0.5, float("nan"), 1, None]),
    "extra": st.integers(0, 1)})


def _rows(draw: Any) -> dict[str, Any]:
    row = dict(draw(row_values))
    for c in list(row):
        how = draw(st.sampled_from(["keep"] * 30 + ["unchanged", "missing"]))
        if how == "unchanged":
            row[c] = UNCHANGED
        elif how == "missing":
            del row[c]
    return row


@st.composite
def updates(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    before = _rows(draw)
    after = _rows(draw) if draw(st.booleans()) else {**before, **draw(row_values)}
    return before, after


_FLOWS: list[Flow] = []


def _flow(tmp_path_factory: Any) -> Flow:
    if not _FLOWS:  # loaded once: Hypothesis calls the test many times
        config = make_config(tmp_path_factory.mktemp("m"))
        config.mappings_dir.mkdir()
        (config.mappings_dir / "m.yaml").write_text(TWO_WAY)
        flow = load_mappings(config).by_name["acct"].flow("crm")
        assert flow is not None
        _FLOWS.append(flow)
    return _FLOWS[0]


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except RowError as exc:
        return ("error", str(exc))


@given(update=updates())
def test_one_pass_two_way_update_equals_the_general_path(tmp_path_factory: Any,
                                                         update: tuple[dict[str, Any], dict[str, Any]]) -> None:
    flow = _flow(tmp_path_factory)
    before, after = update
    change = RowChange(PG_ACCT, Op.UPDATE, before, after)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    compiled = router._compiled(flow)
    assert compiled.fields is not None and not compiled.linked
    fast = _outcome(lambda: router._two_way_update(flow, compiled, change, after, when))
    general = _outcome(lambda: router._two_way(flow, change, after, when))
    if fast is not None:
        assert fast == general
        if isinstance(fast, list):  # built without __init__: the same class and instance dict, in field order
            assert [(type(f), list(f.__dict__.items())) for f in fast] == \
                [(type(g), list(g.__dict__.items())) for g in general]
    plain = all(c in before and c in after and UNCHANGED not in (before[c], after[c]) for c in TWO_WAY_COLUMNS)
    if plain and before["id"] is not None and before["id"] == after["id"] and not isinstance(general, tuple):
        assert fast is not None  # the usual update takes the one-pass path (an error: the general one)
    # and route() gives what the general path gives
    assert _outcome(lambda: router.route_flow(flow, change, stream=True, commit_time=when)) == general


TWO_WAY_COLUMNS = ("id", "name", "phone", "status", "credit", "code", "ratio")


def test_a_plain_update_takes_the_one_pass_path(tmp_path_factory: Any) -> None:
    flow = _flow(tmp_path_factory)
    before = {"id": 1, "name": " Ann ", "phone": "1", "status": "active", "credit": 5, "code": 0, "ratio": 0.5}
    after = {**before, "phone": "2", "status": "closed"}
    change = RowChange(PG_ACCT, Op.UPDATE, before, after)
    fast = router._two_way_update(flow, router._compiled(flow), change, after, None)
    assert fast == router._two_way(flow, change, after, None)
    assert fast is not None and len(fast) == 1
    tc = fast[0]
    assert isinstance(tc, TargetChange)
    # the changed fields, the key and the owned field; expect: the old row in target terms, less the owned
    assert tc.values == {"id": 1, "phone": "2", "status": "C", "credit": 5}
    assert tc.expect == {"id": 1, "name": "ann", "phone": "1", "status": "A", "code": None, "ratio": 0.5}


PLAIN_TWO_WAY = """\
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id, region]}
    erp: {table: acct, key: [id, region]}
    fields:
      id: ~
      region: ~
      name: ~
      phone: ~
      credit: {owner: crm}
      ratio: ~
"""
PLAIN_COLUMNS = ("id", "region", "name", "phone", "credit", "ratio")
plain_values = st.fixed_dictionaries({
    "id": st.sampled_from([1, 2, None]), "region": st.sampled_from(["eu", "us"]), "name": texts, "phone": texts,
    "credit": st.sampled_from([0, 1, 1.0, True, Decimal("1.0")]), "ratio": st.sampled_from([0.5, float("nan"), 1, None]),
    "extra": st.integers(0, 1)})
_PLAIN_FLOWS: list[Flow] = []


def _plain_flow(tmp_path_factory: Any) -> Flow:
    if not _PLAIN_FLOWS:
        config = make_config(tmp_path_factory.mktemp("m"))
        config.mappings_dir.mkdir()
        (config.mappings_dir / "m.yaml").write_text(PLAIN_TWO_WAY)
        mset = load_mappings(config)
        flow = mset.by_name["acct"].flow("crm")
        assert flow is not None
        _PLAIN_FLOWS.append(flow)
    return _PLAIN_FLOWS[0]


@st.composite
def plain_updates(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    def one() -> dict[str, Any]:
        row = dict(draw(plain_values))
        for c in list(row):
            how = draw(st.sampled_from(["keep"] * 30 + ["unchanged", "missing"]))
            if how == "unchanged":
                row[c] = UNCHANGED
            elif how == "missing":
                del row[c]
        return row
    before = one()
    after = one() if draw(st.booleans()) else {**before, **draw(plain_values)}
    return before, after


@given(update=plain_updates())
def test_a_plain_two_way_update_goes_straight_to_the_one_pass_path(tmp_path_factory: Any,
                                                                update: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # route() takes a two-way UPDATE straight to _two_way_update (compiled.direct): the same TargetChanges
    # as _route_general, field by field and in order; and _two_way_update agrees with _two_way
    flow = _plain_flow(tmp_path_factory)
    compiled = router._compiled(flow)
    assert compiled.direct
    before, after = update
    change = RowChange(PG_ACCT, Op.UPDATE, before, after)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fast = _outcome(lambda: router._two_way_update(flow, compiled, change, after, when))
    general = _outcome(lambda: router._two_way(flow, change, after, when))
    if fast is not None:
        assert fast == general
        if isinstance(fast, list):
            assert [(type(f), list(f.__dict__.items())) for f in fast] == \
                [(type(g), list(g.__dict__.items())) for g in general]
            assert [(list(f.values.items()), list((f.expect or {}).items())) for f in fast] == \
                [(list(g.values.items()), list((g.expect or {}).items())) for g in general]
    plain = all(c in before and c in after and UNCHANGED not in (before[c], after[c]) for c in PLAIN_COLUMNS)
    if plain and before["id"] is not None and (before["id"], before["region"]) == (after["id"], after["region"]):
        assert fast is not None
    mset_routes = {("crm", PG_ACCT): [flow]}
    routed = _outcome(lambda: router.route(_Routes(mset_routes), "crm", change, when))  # type: ignore[arg-type]
    assert routed == _outcome(lambda: router._route_general(flow, change, True, when))
    if isinstance(routed, list):
        assert [list(r.__dict__.items()) for r in routed] == \
            [list(r.__dict__.items()) for r in router._route_general(flow, change, True, when)]


class _Routes:
    """The part of a MappingSet that route() reads."""

    def __init__(self, routes: dict[Any, Any]):
        self.routes = routes


# ---------------------------------------------------------------- the commit clock's short path

T1, T2, T3 = TableRef("public", "a"), TableRef("public", "b"), TableRef("public", "c")


def _txn(n: int, when: datetime, *changes: RowChange) -> Transaction:
    return Transaction(str(n), LSN(n), when, changes)


def test_clock_records_every_table_of_a_transaction_by_its_own_key() -> None:
    clock = CommitClock({("crm", T1): ("id",), ("crm", T2): ("a", "b"), ("erp", T1): ("id",)})
    t1, t2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    eq = lambda a, b: a == b  # noqa: E731
    clock.saw("crm", _txn(1, t1, RowChange(T1, Op.UPDATE, {"id": 1, "v": 0}, {"id": 1, "v": 1}),
                          RowChange(T2, Op.INSERT, None, {"a": 1, "b": "x", "v": 2}),
                          RowChange(T3, Op.INSERT, None, {"id": 1, "v": 3}),  # not a two-way table
                          RowChange(T1, Op.INSERT, None, {"id": Decimal(2), "v": 4})))
    clock.saw("crm", _txn(2, t2, RowChange(T2, Op.DELETE, {"a": 1, "b": "x", "v": 2}, None),
                          RowChange(T1, Op.UPDATE, None, {"id": 1, "v": 5})))
    assert clock.wait_for("crm", T1, (1,), "v", 5, eq, timeout=0) == t2
    assert clock.wait_for("crm", T1, (1,), "v", 1, eq, timeout=0) is None  # the latest edit only
    assert clock.wait_for("crm", T1, (2,), "v", 4, eq, timeout=0) == t1  # a Decimal key as the applier spells it
    assert clock.wait_for("crm", T2, (1, "x"), "", None, eq, timeout=0, deleted=True) == t2
    assert clock.wait_for("crm", T3, (1,), "v", 3, eq, timeout=0) is None
    assert clock.wait_for("erp", T1, (1,), "v", 5, eq, timeout=0) is None  # the other side's record
    # a new TableRef per event (the binlog reader's), and a table of another schema with the same name
    clock.saw("crm", _txn(3, t1, RowChange(TableRef("public", "a"), Op.UPDATE, None, {"id": 3, "v": 6}),
                          RowChange(TableRef("other", "a"), Op.UPDATE, None, {"id": 4, "v": 7}),
                          RowChange(TableRef("public", "a"), Op.UPDATE, None, {"id": 5, "v": 8})))
    assert clock.wait_for("crm", T1, (3,), "v", 6, eq, timeout=0) == t1
    assert clock.wait_for("crm", T1, (5,), "v", 8, eq, timeout=0) == t1
    assert clock.wait_for("crm", TableRef("other", "a"), (4,), "v", 7, eq, timeout=0) is None


def test_clock_wakes_a_waiting_direction_when_the_edit_is_read() -> None:
    clock = CommitClock({("erp", T1): ("id",)})
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(
        clock.wait_for("erp", T1, (7,), "v", 1, lambda a, b: a == b, timeout=30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not clock._waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert clock._waiting == 1
    clock.saw("erp", _txn(1, when, RowChange(T1, Op.UPDATE, {"id": 7, "v": 0}, {"id": 7, "v": 1})))
    waiter.join(10)
    assert got == [when] and clock._waiting == 0


def test_a_reloaded_catalog_is_not_compared_by_the_old_one(tmp_path_factory: Any) -> None:
    det = Detector(mappings(tmp_path_factory.mktemp("m"), "latest"), "crm")
    padded = {"id": ColumnInfo("id", "int", "mariadb"), "code": ColumnInfo("code", "char", "mariadb")}
    assert det.table(padded, ("id",)).eq("code")("X  ", "X")  # CHAR: trailing blanks do not count
    assert det.table(padded, ("id",)) is det.table(padded, ("id",))  # kept per catalog
    reloaded = {"id": ColumnInfo("id", "int", "mariadb"), "code": ColumnInfo("code", "varchar", "mariadb")}
    assert not det.table(reloaded, ("id",)).eq("code")("X  ", "X")  # the column became a VARCHAR


def test_route_finds_a_table_by_equality_whatever_it_cached_by_identity(tmp_path_factory: Any) -> None:
    flow = _plain_flow(tmp_path_factory)
    mset = _Routes({("crm", PG_ACCT): (flow,)})
    row = {"id": 1, "region": "eu", "name": "a", "phone": "b", "credit": 1, "ratio": 0.5}
    for table in (PG_ACCT, TableRef("public", "acct"), PG_ACCT):  # cached by id, a new equal object, cached
        change = RowChange(table, Op.UPDATE, row, {**row, "name": "b"})
        assert router.route(mset, "crm", change) == router._route_general(flow, change, True, None)  # type: ignore[arg-type]
        assert router.route(mset, "erp", change) == []  # type: ignore[arg-type]  # the same object, the other side
    other = RowChange(TableRef("public", "other"), Op.UPDATE, row, row)
    assert router.route(mset, "crm", other) == []  # type: ignore[arg-type]


# ---------------------------------------------------------------- a uniform run's columns


def _gathered(rows: list[TargetChange]) -> list[str]:
    """_Check.run's own gathering of a run's columns, row by row (the path a non-uniform run takes)."""
    cols: dict[str, None] = {}
    for r in rows:
        for c in r.expect or {}:
            cols[c] = None
        for c in r.values:
            cols[c] = None
    return list(cols)


names = st.sampled_from(["id", "a", "b", "c", "owned"])


@st.composite
def checked_changes(draw: Any) -> list[TargetChange]:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from([Op.UPDATE, Op.UPDATE, Op.INSERT, Op.DELETE]))
        expect_cols = draw(st.lists(names, unique=True))
        values_cols = ["id", *draw(st.lists(names.filter(lambda c: c != "id"), unique=True))]
        checked = draw(st.booleans())
        out.append(TargetChange(PG_ACCT, op, ("id",), (draw(st.integers(1, 3)),), {c: 1 for c in values_cols},
                                expect={c: 0 for c in expect_cols} if checked else None,
                                mapping=draw(st.sampled_from(["m1", "m2"]))))
    return out


@given(changes=checked_changes())
def test_a_uniform_run_names_exactly_the_columns_its_rows_name(changes: list[TargetChange]) -> None:
    from replicator.appliers.base import group_runs

    for run in group_runs(changes):
        assert run.uniform == (run.checked and run.op is Op.UPDATE)
        if run.uniform:
            rows = list(run.rows.values())
            assert _gathered(rows) == list(run.columns)
            for m in ("m1", "m2"):  # the detector checks a run mapping by mapping
                part = [r for r in rows if r.mapping == m]
                if part:
                    assert _gathered(part) == list(run.columns)


_UNOWNED: list[Flow] = []


@given(update=plain_updates())
def test_a_flow_without_owned_fields_routes_an_update_as_the_general_path(
        tmp_path_factory: Any, update: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # no owned field: _two_way_update keeps no dict of every new value (only with_owned reads it)
    if not _UNOWNED:
        config = make_config(tmp_path_factory.mktemp("m"))
        config.mappings_dir.mkdir()
        (config.mappings_dir / "m.yaml").write_text(PLAIN_TWO_WAY.replace("credit: {owner: crm}", "credit: ~"))
        flow = load_mappings(config).by_name["acct"].flow("crm")
        assert flow is not None and not flow.owned_targets
        _UNOWNED.append(flow)
    flow = _UNOWNED[0]
    before, after = update
    change = RowChange(PG_ACCT, Op.UPDATE, before, after)
    fast = _outcome(lambda: router._two_way_update(flow, router._compiled(flow), change, after, None))
    general = _outcome(lambda: router._two_way(flow, change, after, None))
    if fast is not None:
        assert fast == general
        if isinstance(fast, list):
            assert [list(f.__dict__.items()) for f in fast] == [list(g.__dict__.items()) for g in general]
            assert [(list(f.values.items()), list((f.expect or {}).items())) for f in fast] == \
                [(list(g.values.items()), list((g.expect or {}).items())) for g in general]
    plain = all(c in before and c in after and UNCHANGED not in (before[c], after[c]) for c in PLAIN_COLUMNS)
    if plain and before["id"] is not None and (before["id"], before["region"]) == (after["id"], after["region"]):
        assert fast is not None


UNPLANNED_TWO_WAY = """\
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    fields:
      id: ~
      name: {erp: full_name}
      phone: ~
      status: ~
      credit: ~
      code: ~
      ratio: ~
"""
_UNPLANNED_FLOWS: list[Flow] = []


def _unplanned_flow(tmp_path_factory: Any) -> Flow:
    if not _UNPLANNED_FLOWS:
        config = make_config(tmp_path_factory.mktemp("m"))
        config.mappings_dir.mkdir()
        (config.mappings_dir / "m.yaml").write_text(UNPLANNED_TWO_WAY)
        flow = load_mappings(config).by_name["acct"].flow("crm")
        assert flow is not None
        _UNPLANNED_FLOWS.append(flow)
    return _UNPLANNED_FLOWS[0]


@settings(max_examples=400, deadline=None)
@given(update=updates())
def test_the_unrolled_field_pass_equals_the_loop_and_the_general_path(
        tmp_path_factory: Any, update: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """A two-way flow without plans or owned fields takes `_field_pass`'s function made for it: the same
    TargetChange -- expect and changed fields in the same order -- or None as the loop it replaces, and
    what the general path gives (NaN, 1 against 1.0 and True, UNCHANGED and missing columns drawn)."""
    flow = _unplanned_flow(tmp_path_factory)
    compiled = router._compiled(flow)
    assert compiled.field_pass is not None
    looped = dataclasses.replace(compiled, field_pass=None)
    before, after = update
    # a NaN of its own on the new side (the strategy's one object would be `is` the old one)
    after = {c: float("nan") if isinstance(v, float) and v != v else v for c, v in after.items()}
    change = RowChange(PG_ACCT, Op.UPDATE, before, after)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fast = router._two_way_update(flow, compiled, change, after, when)
    loop = router._two_way_update(flow, looped, change, after, when)
    assert (fast is None) == (loop is None)
    if fast is not None and loop is not None:
        assert [(type(f), repr(list(f.__dict__.items()))) for f in fast] == \
            [(type(g), repr(list(g.__dict__.items()))) for g in loop]
        general = _outcome(lambda: router._two_way(flow, change, after, when))
        assert repr(fast) == repr(general)
        for tc in fast:
            assert isinstance(tc, TargetChange) and tc.expect is not None
            assert list(tc.expect) == ["id", "full_name", "phone", "status", "credit", "code", "ratio"]


@settings(max_examples=400, deadline=None)
@given(update=updates(), key_moves=st.booleans())
def test_the_unrolled_update_equals_the_field_pass_and_the_loop(
        tmp_path_factory: Any, update: tuple[dict[str, Any], dict[str, Any]], key_moves: bool) -> None:
    """`_update_one` (the whole of `_two_way_update` made for a flow without plans or owned fields) against
    `_two_way_update` with only `_field_pass` and with the loop: the same TargetChange, instance dict and
    `values`/`expect` in the same order, [] for NOTHING and None alike; and route() / route_all() give what
    the general path gives (NaN, 1 against 1.0 and True, UNCHANGED and missing columns, a moved key)."""
    flow = _unplanned_flow(tmp_path_factory)
    compiled = router._compiled(flow)
    assert compiled.update_one is not None
    passed = dataclasses.replace(compiled, update_one=None)
    looped = dataclasses.replace(compiled, update_one=None, field_pass=None)
    before, after = update
    after = {c: float("nan") if isinstance(v, float) and v != v else v for c, v in after.items()}
    if key_moves and isinstance(after.get("id"), int):
        after["id"] += 1
    change = RowChange(PG_ACCT, Op.UPDATE, before, after)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def shown(fn: Any) -> Any:
        got = _outcome(fn)
        if isinstance(got, list):
            return [(type(t), repr(list(t.__dict__.items())), repr(list(t.values.items())),
                     repr(list((t.expect or {}).items()))) for t in got]
        return got
    one = compiled.update_one(after, before, when)
    fast = shown(lambda: router._two_way_update(flow, compiled, change, after, when))
    assert fast == shown(lambda: router._two_way_update(flow, passed, change, after, when))
    assert fast == shown(lambda: router._two_way_update(flow, looped, change, after, when))
    assert (one is None) == (fast is None) and (one is router.NOTHING) == (fast == [])
    general = shown(lambda: router._two_way(flow, change, after, when))
    if fast is not None:
        assert fast == general
    routes = _Routes({("crm", PG_ACCT): [flow]})
    assert shown(lambda: router.route(routes, "crm", change, when)) == general  # type: ignore[arg-type]
    assert shown(lambda: router.route_all(routes, "crm", [change, change], when)) == \
        (general * 2 if isinstance(general, list) else general)  # type: ignore[arg-type]


def _qualify_by_row(rows: list[TargetChange], names: Any, compared: frozenset[str], owned: frozenset[str],
                    int_key: bool) -> bool:
    """73190fc's loop in `_Check._optimistic`."""
    for r in rows:
        expect = r.expect
        if r.values.keys() != names or expect is None or not compared <= expect.keys() \
                or (owned and not owned.isdisjoint(expect.keys())) \
                or (int_key and r.key[0].__class__ is not int):
            return False
    return True


_COLS = ["id", "a", "b", "c"]


@settings(max_examples=500, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), int_key=st.booleans(),
       compared=st.frozensets(st.sampled_from(_COLS[1:])), owned=st.frozensets(st.sampled_from(_COLS[1:])))
def test_a_run_qualifies_for_the_conditional_write_as_the_row_loop_decides(
        data: Any, n: int, int_key: bool, compared: frozenset[str], owned: frozenset[str]) -> None:
    subsets = st.lists(st.sampled_from(_COLS), unique=True)
    shape = data.draw(subsets) if data.draw(st.booleans()) else None  # most runs of one shape qualify
    rows = []
    for i in range(n):
        if shape is not None and data.draw(st.integers(0, 9)):
            values = {c: 1 for c in shape}
            expect = {c: 0 for c in (*compared, *data.draw(subsets)) if c not in owned}
            key = (i,) if data.draw(st.integers(0, 9)) else data.draw(st.sampled_from([(str(i),), (True,)]))
        else:
            values = {c: 1 for c in data.draw(subsets)}
            expect = data.draw(st.one_of(st.none(), subsets.map(lambda cs: {c: 0 for c in cs})))
            key = data.draw(st.sampled_from([(i,), (str(i),), (True,), (i, "x")]))
        rows.append(TargetChange(T1, Op.UPDATE, ("id",), key, values, expect=expect))
    names = rows[0].values.keys()
    got = detect._all_qualify(rows, names, compared, owned, int_key)
    assert got == _qualify_by_row(rows, names, compared, owned, int_key)
    _QUALIFIED.append(got)


_QUALIFIED: list[bool] = []


def test_the_qualifying_differential_met_both_answers() -> None:
    # (after the test above in this module's order) it drew runs of both kinds
    assert True in _QUALIFIED and False in _QUALIFIED
