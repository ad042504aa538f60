"""An update racing a delete of the same row under `latest` by a column (issue 9's leftovers), real
servers: the deleted row has no column value, so the surviving row's column is compared with the
delete's commit time, in whole seconds, by both directions alike (docs/conflicts.md)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.test_conflicts import N, assert_no_echo, recorded, settle, start_pair


@pytest.mark.parametrize("later", ["update", "delete"])
def test_update_against_delete_latest_by_column(make_pair, later):
    """The crm's update stamps `changed` an hour after (or before) now; the erp deletes the rows now. The
    later of the column and the delete's commit time wins on both sides: before, the first connection
    (crm) won whatever the column said."""
    pair = start_pair(make_pair, "{latest: {column: changed}}")
    sign = "+" if later == "update" else "-"
    pair.my_query("DELETE FROM acct WHERE id < 10")
    pair.pg_query(f"UPDATE acct SET phone = 'new', changed = now() {sign} interval '1 hour' WHERE id < 10")
    pair.start()
    kept = later == "update"
    settle(pair, [(i, f"base-{i}", "new" if i < 10 else "000", Decimal("1.00")) for i in range(N) if kept or i >= 10])
    winner = "crm" if kept else "erp"
    found = recorded(pair, 20)
    assert found == {("crm_to_erp", "update_missing", None, winner, "applied" if kept else "kept"): 10,
                     ("erp_to_crm", "delete_differs", None, winner, "kept" if kept else "applied"): 10}, found
    details = {d for (d,) in pair.pg_query("SELECT DISTINCT detail FROM replicator.conflicts")}
    why = "crm's changed is later than erp's delete" if kept else "erp's delete is later than crm's changed"
    assert details and all(d.endswith(why) for d in details), details  # or "as decided by the other direction: ..."
    assert_no_echo(pair, crm_to_erp=10 if kept else 0, erp_to_crm=0 if kept else 10)
