"""`latest` by a column, an update against a delete of the same row (rules.decide_against_delete): the
surviving row's column against the delete's commit time, in whole seconds; the updating direction and
the deleting direction name the same winner from the same two facts (Hypothesis)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from replicator import compare
from replicator.conflicts.rules import decide_against_delete
from replicator.mapping.model import ConflictRule

RULE = ConflictRule("latest", column="changed")
T = datetime(2026, 12, 6, 9, 0, 0, tzinfo=timezone.utc)


def both(stamp: object, delete_time: datetime | None, updating: str = "crm", first: str = "crm") -> tuple[str, str]:
    """The winner as the updating direction (update_missing) and as the deleting direction (delete_differs)
    name it."""
    deleting = "erp" if updating == "crm" else "crm"
    by_update = decide_against_delete(RULE, updating, deleting, first, deleting=deleting, stamp=stamp,
                                      stamp_kind=compare.TIMESTAMP, delete_time=delete_time)
    by_delete = decide_against_delete(RULE, deleting, updating, first, deleting=deleting, stamp=stamp,
                                      stamp_kind=compare.TIMESTAMP, delete_time=delete_time)
    return by_update.winner, by_delete.winner


@pytest.mark.parametrize("stamp, winner", [
    (T + timedelta(seconds=2), "crm"),  # the update's column is later: the row stays
    (T - timedelta(seconds=2), "erp"),  # the delete is later: gone
    (T + timedelta(microseconds=900_000), "crm"),  # within the same second: the first connection
    ((T + timedelta(hours=1)).replace(tzinfo=None), "crm"),  # a column without a zone is read as UTC
    ((T - timedelta(hours=1)).replace(tzinfo=None), "erp"),
    (None, "erp"),  # NULL is older than any time
    (date(2026, 12, 7), "crm"),  # a DATE column: its midnight
])
def test_the_later_of_the_column_and_the_delete_wins_in_both_directions(stamp: object, winner: str) -> None:
    assert both(stamp, T) == (winner, winner)


def test_the_first_connection_wins_when_the_delete_time_is_unknown_or_the_column_is_not_a_time() -> None:
    assert both(T + timedelta(hours=1), None, first="erp") == ("erp", "erp")
    d = decide_against_delete(RULE, "crm", "erp", "crm", deleting="erp", stamp=7, stamp_kind=compare.OTHER,
                              delete_time=T)
    assert d.winner == "crm" and "not a time" in d.detail


def test_the_detail_names_who_was_later() -> None:
    d = decide_against_delete(RULE, "erp", "crm", "crm", deleting="erp", stamp=T - timedelta(hours=1),
                              stamp_kind=compare.TIMESTAMP, delete_time=T)
    assert (d.winner, d.detail) == ("erp", "erp's delete is later than crm's changed")


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
       st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
       st.sampled_from(["crm", "erp"]), st.sampled_from(["crm", "erp"]), st.booleans())
def test_both_directions_always_name_the_same_winner(stamp: datetime, deleted: datetime, updating: str,
                                                     first: str, aware: bool) -> None:
    value = stamp.replace(tzinfo=timezone.utc) if aware else stamp
    a, b = both(value, deleted.replace(tzinfo=timezone.utc), updating, first)
    assert a == b
