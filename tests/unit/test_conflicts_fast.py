"""The fast paths of the conflict check give the same answers as the general ones they shortcut."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, strategies as st

from replicator import compare
from replicator.changes import Op, TableRef, TargetChange
from replicator.compare import ColumnInfo
from replicator.conflicts import detect
from replicator.conflicts.detect import Detector

from tests.unit.test_conflict_rules import mappings


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
