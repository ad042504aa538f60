"""route_flow's shortcut for plain flows (router._Plain) gives exactly what the general path gives: the same
TargetChanges field by field (values in the same column order), the same errors, on random rows through flows
with value maps, transforms, null_if, owners, constants, defaults, insert_only, composite and renamed keys,
filters and links (the last two never take the shortcut)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from replicator.changes import UNCHANGED, Op, RowChange, TableRef, TargetChange
from replicator.errors import RowError
from replicator.mapping import router
from replicator.mapping.model import Flow, MappingSet

from tests.unit.mapsets import load, make_config

MAPPINGS = """\
mappings:
  acct:
    direction: {direction}
    crm: {{table: acct, key: [id]}}
    erp: {{table: acct, key: [id]}}
    fields:
      id: ~
      name: {{transform: [trim, lower, null_if_empty]}}
      phone: ~
      status: {{map: [{{crm: active, erp: A}}, {{crm: closed, erp: C}}], unmapped: pass}}
      credit: {{owner: crm}}
      code: {{null_if: {{crm: 0, erp: -1}}}}
      ratio: ~
      country: {{default: DE}}
      made: {{insert_only: true}}
  pair:
    direction: {direction}
    crm: {{table: pair, key: [a, b]}}
    erp: {{table: pair, key: [b, a_id]}}
    fields:
      a: {{erp: a_id}}
      b: ~
      v: {{crm: v_crm, erp: v_erp}}
      origin: {{crm: ~, constant: crm}}
      code: {{map: [{{crm: 1, erp: X}}], unmapped: error}}
  filtered:
    direction: {direction}
    crm: {{table: filtered, key: [id]}}
    erp: {{table: filtered, key: [id]}}
    filter: {{{filtered}: {{kind: {{eq: x}}}}}}
    fields:
      id: ~
      kind: ~
  linked:
    direction: {direction}
    crm: {{table: linked, key: [id]}}
    erp: {{table: linked, key: [nr]}}
    link: {{natural: [vat], crosswalk: true}}
    fields:
      vat: ~
      parent: {{references: parent}}
  parent:
    direction: {direction}
    crm: {{table: parent, key: [id]}}
    erp: {{table: parent, key: [id]}}
    fields:
      id: ~
"""
COLUMNS = {"acct": ("id", "name", "phone", "status", "credit", "code", "ratio", "country", "made"),
           "pair": ("a", "a_id", "b", "v_crm", "v_erp", "code"),
           "filtered": ("id", "kind"), "linked": ("id", "nr", "vat", "parent"),
           "parent": ("id",)}
KEYS = {"id", "a", "a_id", "b", "nr"}
USUAL = {("name", "acct"): st.one_of(st.none(), st.text(max_size=5)), ("code", "pair"): st.sampled_from([1, "X"])}
_FLOWS: dict[str, list[Flow]] = {}
_MSETS: dict[str, MappingSet] = {}


def _flows(tmp_path_factory: Any, direction: str) -> list[Flow]:
    if direction not in _FLOWS:  # loaded once: Hypothesis calls the tests many times
        config = make_config(tmp_path_factory.mktemp("m"))
        config.mappings_dir.mkdir()
        mset = _MSETS[direction] = load(config, MAPPINGS, direction=direction,
                                        filtered=direction.replace("both", "crm_to_erp"))
        _FLOWS[direction] = [f for m in mset.mappings for f in m.flows]
    return _FLOWS[direction]


values = st.one_of(st.sampled_from([None, 0, 1, -1, 0.0, 1.0, float("nan"), True, False, "", " A ", "active",
                                    "closed", "x", "X", Decimal("0"), Decimal("1.50"), b"\x00",
                                    datetime(2026, 1, 1, tzinfo=timezone.utc), UNCHANGED]),
                   st.integers(), st.text(max_size=5))


@st.composite
def rows(draw: Any, table: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    usual = draw(st.booleans())  # every column there, keys set: the rows the shortcut takes
    for c in COLUMNS[table] + ("extra",):
        how = "key-ish" if usual and c in KEYS else draw(st.sampled_from(
            ["value"] * 12 + ["key-ish"] + ([] if usual else ["missing"])))
        if how == "missing":
            continue
        if usual and (c, table) in USUAL:  # a value the field's transform or map takes
            row[c] = draw(USUAL[c, table])
            continue
        row[c] = draw(st.integers(1, 3)) if how == "key-ish" else draw(values)
    return row


@st.composite
def changes(draw: Any) -> tuple[str, RowChange]:
    table = draw(st.sampled_from(sorted(COLUMNS)))
    op = draw(st.sampled_from([Op.INSERT, Op.UPDATE, Op.UPDATE, Op.DELETE]))
    after = draw(rows(table))
    before = draw(st.one_of(st.none(), st.just({}), rows(table), st.just(dict(after))))
    if op is Op.INSERT:
        before = None
    if op is Op.DELETE:
        before, after = before if before is not None else after, None
    return table, RowChange(TableRef("s", table), op, before, after)


def _outcome(fn: Any) -> Any:
    """What a call gives, in a form that compares every field of every result (values in column order)."""
    try:
        routed = fn()
    except RowError as exc:
        return ("RowError", str(exc), exc.table, exc.key, exc.column)
    except Exception as exc:  # noqa: BLE001 -- any other error must be the same one too
        return (type(exc).__name__, str(exc))
    out = []
    for r in routed:
        d = dict(vars(r))
        d["values"] = list(d["values"].items())
        out.append((type(r).__name__, repr(d)))  # repr: a NaN equals itself, 1 is not True
    return out


def _check(flows: list[Flow], table: str, change: RowChange, stream: bool) -> None:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for flow in flows:
        if flow.source.table.name != table:
            continue
        fast = _outcome(lambda: router.route_flow(flow, change, stream=stream, commit_time=when))
        general = _outcome(lambda: router._route_general(flow, change, stream, when))
        assert fast == general


@settings(max_examples=400, deadline=None)  # a loaded machine is no failure
@given(case=changes(), direction=st.sampled_from(["crm_to_erp", "erp_to_crm"]), stream=st.booleans())
def test_one_way_shortcut_equals_the_general_path(tmp_path_factory: Any, case: tuple[str, RowChange],
                                                  direction: str, stream: bool) -> None:
    table, change = case
    _check(_flows(tmp_path_factory, direction), table, change, stream)


@settings(max_examples=200, deadline=None)
@given(case=changes())
def test_two_way_flows_take_it_only_outside_the_stream(tmp_path_factory: Any, case: tuple[str, RowChange]) -> None:
    table, change = case
    flows = _flows(tmp_path_factory, "both")
    _check(flows, table, change, stream=False)  # sync, verify, explain: every field, no expect
    _check(flows, table, change, stream=True)  # the stream: the two-way paths, untouched


def test_the_usual_row_takes_the_shortcut_and_builds_the_same_target_change(tmp_path_factory: Any) -> None:
    flow = next(f for f in _flows(tmp_path_factory, "crm_to_erp") if f.mapping == "acct")
    row = {"id": 1, "name": " Ann ", "phone": "1", "status": "closed", "credit": 5, "code": 0, "ratio": 0.5,
           "country": None, "made": 7, "extra": 1}
    change = RowChange(TableRef("public", "acct"), Op.UPDATE, dict(row, phone="0"), row)
    plain = router._plain(flow)
    assert plain.usable
    fast = plain.route(change)
    assert fast is not None and fast == router._route_general(flow, change, True, None)
    tc = fast[0]
    assert isinstance(tc, TargetChange)
    assert tc == TargetChange(flow.target.table, Op.UPDATE, ("id",), (1,), tc.values,
                              insert_only=frozenset({"made"}))
    assert list(tc.values.items()) == [("id", 1), ("name", "ann"), ("phone", "1"), ("status", "C"),
                                       ("credit", 5), ("code", -1), ("ratio", 0.5), ("country", "DE"),
                                       ("made", 7)]
    # a composite key spelled in another order, a constant, a map: the shortcut too
    pair = next(f for f in _flows(tmp_path_factory, "crm_to_erp") if f.mapping == "pair")
    row = {"a": 1, "b": 2, "v_crm": "v", "code": 1}
    change = RowChange(TableRef("public", "pair"), Op.INSERT, None, row)
    fast = router._plain(pair).route(change)
    assert fast is not None and fast == router._route_general(pair, change, True, None)
    assert isinstance(fast[0], TargetChange)
    assert fast[0].key == (2, 1) and fast[0].values == {"a_id": 1, "b": 2, "v_erp": "v", "origin": "crm",
                                                        "code": "X"}
    # a Flow's shortcut lives in its __dict__: invisible to equality and dataclasses.replace
    assert router._PLAIN in flow.__dict__ and dataclasses.replace(flow) == flow
    assert router._PLAIN not in dataclasses.replace(flow).__dict__


@pytest.mark.parametrize("mapping", ["filtered", "linked", "parent"])
def test_filters_links_and_referenced_mappings_never_take_it(tmp_path_factory: Any, mapping: str) -> None:
    flow = next(f for f in _flows(tmp_path_factory, "crm_to_erp") if f.mapping == mapping)
    assert not router._plain(flow).usable



@settings(max_examples=300, deadline=None)
@given(case=changes(), direction=st.sampled_from(["crm_to_erp", "erp_to_crm", "both"]))
def test_route_of_a_stream_change_equals_the_general_path_of_its_flows(tmp_path_factory: Any,
                                                                       case: tuple[str, RowChange],
                                                                       direction: str) -> None:
    """`route` takes route_flow's shortcut itself for a one-way table of one flow: the same TargetChanges and
    errors as the general path of every flow of the table (a two-way flow: `route_flow`, untouched)."""
    table, change = case
    flows = _flows(tmp_path_factory, direction)
    mset = _MSETS[direction]
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for side in ("crm", "erp"):
        for (s, ref), table_flows in mset.routes.items():
            if s != side or ref.name != table:
                continue
            moved = dataclasses.replace(change, table=ref)

            def general(fs: tuple[Flow, ...] = table_flows, ch: RowChange = moved) -> list[Any]:
                return [r for f in fs for r in (router._route_general(f, ch, True, when) if f.conflicts is None
                                                 else router.route_flow(f, ch, True, when))]
            assert _outcome(lambda: router.route(mset, side, moved, when)) == _outcome(general)
    assert flows


@settings(max_examples=300, deadline=None)
@given(cases=st.lists(changes(), max_size=8), direction=st.sampled_from(["crm_to_erp", "erp_to_crm", "both"]),
       side=st.sampled_from(["crm", "erp"]), shared=st.booleans())
def test_route_all_is_route_of_each_change_in_order(tmp_path_factory: Any, cases: list[tuple[str, RowChange]],
                                                    direction: str, side: str, shared: bool) -> None:
    """A multi-row transaction routed at once: the same TargetChanges (and the same error) as `route` of each
    change in turn; the tables as one object per table (as a source hands them over) or a new one per row."""
    _flows(tmp_path_factory, direction)
    mset = _MSETS[direction]
    refs = {name: TableRef("public" if side == "crm" else "erpdb", name) for name in COLUMNS}
    moved = [dataclasses.replace(ch, table=refs[t] if shared else TableRef(refs[t].schema, t)) for t, ch in cases]
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert _outcome(lambda: router.route_all(mset, side, moved, when)) == \
        _outcome(lambda: [r for ch in moved for r in router.route(mset, side, ch, when)])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), shared=st.booleans())
def test_route_all_takes_a_two_way_update_straight_to_the_fast_path_and_routes_it_as_route(
        tmp_path_factory: Any, data: Any, shared: bool) -> None:
    """A transaction of UPDATEs of a two-way table with its full old rows, some fields changed (what the WAL
    reader hands over for REPLICA IDENTITY FULL): `route_all`'s own way to `_two_way_update` gives the
    TargetChanges -- commit time, expect, changed fields -- of `route` of each change."""
    _flows(tmp_path_factory, "both")
    mset = _MSETS["both"]
    ref = TableRef("public", "acct")
    moved = []
    for _ in range(data.draw(st.integers(1, 6))):
        before = data.draw(rows("acct").filter(lambda r: all(c in r for c in COLUMNS["acct"])))
        after = dict(before)
        for c in data.draw(st.lists(st.sampled_from(COLUMNS["acct"][1:]), max_size=3)):
            after[c] = data.draw(USUAL.get((c, "acct"), values))
        moved.append(RowChange(ref if shared else TableRef("public", "acct"), Op.UPDATE, before, after))
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    got = _outcome(lambda: router.route_all(mset, "crm", moved, when))
    assert got == _outcome(lambda: [r for ch in moved for r in router.route(mset, "crm", ch, when)])


def test_route_all_s_two_way_fast_path_is_taken(tmp_path_factory: Any) -> None:
    """The test above reaches it: the usual acct update becomes one checked TargetChange with the commit time."""
    _flows(tmp_path_factory, "both")
    flow = next(f for f in _MSETS["both"].routes[("crm", TableRef("public", "acct"))])
    assert router._compiled(flow).direct
    before = {"id": 1, "name": "ann", "phone": "1", "status": "active", "credit": 5, "code": 1, "ratio": 0.5,
              "country": "DE", "made": 7}
    change = RowChange(TableRef("public", "acct"), Op.UPDATE, before, dict(before, phone="2"))
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    [tc] = router.route_all(_MSETS["both"], "crm", [change], when)
    assert isinstance(tc, TargetChange) and tc.commit_time == when and tc.values["phone"] == "2"
    assert tc.expect is not None and tc.expect["phone"] == "1"
