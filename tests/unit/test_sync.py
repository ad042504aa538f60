"""sync: watermark windows, chunk filtering, job order and progress text (no servers).

The full algorithm against real servers is in tests/integration/test_sync.py; here the apply-side
bookkeeping is driven by hand, the way the apply loop drives it.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from replicator.changes import LSN, Op, RowChange, TableRef, TargetChange, Transaction, Watermark
from replicator.config import Config
from replicator.mapping.model import MappingSet
from replicator.sync.progress import line
from replicator.mapping.router import LinkedChange
from replicator.sync.driver import SyncDriver
from replicator.sync.snapshot import Chunk, Job, Progress, _parents_first
from replicator.sync.state import DONE, SyncRow
from tests.unit.test_mapping import CUSTOMER
from tests.unit.mapsets import load, make_config

YAML = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
  orders:
    direction: crm_to_erp
    crm: {table: orders, key: [id]}
    erp: {table: orders, key: [id]}
    fields:
      id: ~
      customer_id: {references: customers}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "maps").mkdir()
    return make_config(tmp_path)


@pytest.fixture
def mset(config: Config) -> MappingSet:
    return load(config, YAML)


@pytest.fixture
def driver(config: Config) -> SyncDriver:
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    d._snapshotter = object()  # type: ignore[assignment]  # as if a snapshotter thread were running
    return d


def txn(*items: RowChange | Watermark, echo: bool = False) -> Transaction:
    return Transaction("1", LSN(1), None, tuple(i for i in items if isinstance(i, RowChange)), echo=echo,
                       watermarks=tuple(i for i in items if isinstance(i, Watermark)))


def mark(d: SyncDriver, mark_id: str, kind: str, stream: str = "crm_to_erp") -> Watermark:
    return Watermark(stream, kind, mark_id)


def upd(key: int, name: str = "x") -> RowChange:
    return RowChange(CUSTOMER, Op.UPDATE, {"id": key, "name": "old"}, {"id": key, "name": name})


def chunk_of(mset: MappingSet, keys: list[int], done: bool = False) -> Chunk:
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    job = Job("customers", flow, None, 0)
    return Chunk(job, [{"id": k, "name": f"n{k}"} for k in keys], (keys[-1],) if keys else None, len(keys),
                 100, done)


def chunk_rows(out: list) -> list[int]:
    """Source keys of the routed chunk rows (customers is referenced by orders: linked changes)."""
    return [lc.source_key[0] for lc in out if isinstance(lc, LinkedChange)]


def start(d: SyncDriver, mset: MappingSet) -> None:
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    d.track([Job("customers", flow, None, 0)])


def test_keys_changed_since_the_sync_started_are_left_to_the_stream(driver: SyncDriver, mset: MappingSet) -> None:
    assert driver.observe(txn(upd(1))) == []  # before the sync: its row is read later, newer
    start(driver, mset)
    driver.observe(txn(upd(2), upd(3)))
    driver.observe(txn(RowChange(CUSTOMER, Op.DELETE, {"id": 4}, None)))
    high = driver.add_chunk(driver.snapshotter, chunk_of(mset, [1, 2, 3, 4, 5]))
    out = driver.observe(txn(mark(driver, high, "high")))
    assert chunk_rows(out) == [1, 5]
    assert all(lc.op is Op.INSERT and lc.change.op is Op.INSERT for lc in out if isinstance(lc, LinkedChange))
    # rows 2..4 are the stream's to carry: still the mapping's rows, counted as the copy's (none skipped)
    assert isinstance(out[-1], Progress) and (out[-1].rows_done, out[-1].rows_skipped) == (5, 0)
    assert out[-1].chunk.rows_read == 5


def test_keys_stay_excluded_for_later_chunks(driver: SyncDriver, mset: MappingSet) -> None:
    """A key changed while chunk 1 was read and applied is also left out of chunk 2 (read later):
    the stream carries every change since the start."""
    start(driver, mset)
    driver.observe(txn(upd(12)))
    first = driver.add_chunk(driver.snapshotter, chunk_of(mset, [1, 2]))
    assert chunk_rows(driver.observe(txn(mark(driver, first, "high")))) == [1, 2]
    second = driver.add_chunk(driver.snapshotter, chunk_of(mset, [11, 12, 13]))
    assert chunk_rows(driver.observe(txn(mark(driver, second, "high")))) == [11, 13]


OWNED_YAML = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name, owner: crm}
      note: ~
"""


def test_echo_rows_update_only_the_fields_this_side_owns(config: Config) -> None:
    """A row our other direction wrote into this side since the sync started exists on the other side
    (or was deleted there since, and must not come back), and the echo carried the other side's
    fields: only the fields this side owns go over, into an existing row."""
    mset = load(config, OWNED_YAML)
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    d._snapshotter = object()  # type: ignore[assignment]
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    job = Job("customers", flow, None, 0, frozenset(), frozenset({"note"}))
    d.track([job])
    d.observe(txn(upd(7), echo=True))
    d.observe(txn(RowChange(CUSTOMER, Op.DELETE, {"id": 8}, None), echo=True))
    rows = [{"id": k, "name": f"n{k}", "note": "x"} for k in (6, 7, 8)]
    out = d.observe(txn(mark(d, d.add_chunk(d.snapshotter, Chunk(job, rows, (8,), 3, 3, True)), "high")))
    routed = [tc for tc in out if isinstance(tc, TargetChange)]
    assert [(tc.key, tc.op, dict(tc.values), tc.must_exist) for tc in routed] == [
        ((6,), Op.INSERT, {"cid": 6, "customer_name": "n6", "note": "x"}, False),
        ((7,), Op.UPDATE, {"cid": 7, "customer_name": "n7"}, True),  # 8 was deleted: never copied
    ]
    # a side that owns none of the fields has nothing to bring over for such a row
    nothing = Job("customers", flow, None, 0, frozenset(), frozenset({"customer_name", "note"}))
    assert SyncDriver._echo_row(nothing, [routed[0]]) == []


def test_a_key_change_excludes_old_and_new_key(driver: SyncDriver, mset: MappingSet) -> None:
    start(driver, mset)
    driver.observe(txn(RowChange(CUSTOMER, Op.UPDATE, {"id": 1, "name": "a"}, {"id": 9, "name": "a"})))
    high = driver.add_chunk(driver.snapshotter, chunk_of(mset, [1, 2, 9]))
    assert chunk_rows(driver.observe(txn(mark(driver, high, "high")))) == [2]


def test_other_tables_and_other_streams_are_not_tracked(driver: SyncDriver, mset: MappingSet) -> None:
    start(driver, mset)
    driver.observe(txn(RowChange(TableRef("public", "orders"), Op.UPDATE, {"id": 1}, {"id": 1})))
    high = driver.add_chunk(driver.snapshotter, chunk_of(mset, [1, 2]))
    assert driver.observe(txn(mark(driver, high, "high", stream="erp_to_crm"))) == []  # not ours: still waiting
    assert chunk_rows(driver.observe(txn(mark(driver, high, "high")))) == [1, 2]


def test_a_watermark_of_an_earlier_session_is_ignored(driver: SyncDriver, mset: MappingSet) -> None:
    """After a restart the stream replays watermarks whose chunks are gone: the chunk is read again."""
    start(driver, mset)
    assert driver.observe(txn(mark(driver, "old-high", "high"))) == []


def test_nothing_is_tracked_without_a_sync(config: Config) -> None:
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    assert d.observe(txn(upd(1))) == []
    assert d._tracked == {}


def test_an_empty_last_chunk_still_records_progress(driver: SyncDriver, mset: MappingSet) -> None:
    start(driver, mset)
    high = driver.add_chunk(driver.snapshotter, chunk_of(mset, [], done=True))
    out = driver.observe(txn(mark(driver, high, "high")))
    assert len(out) == 1 and isinstance(out[0], Progress) and out[0].chunk.done


def test_room_is_bounded(driver: SyncDriver, mset: MappingSet) -> None:
    """At most OUTSTANDING chunks wait in memory; applying one makes room."""
    start(driver, mset)
    highs = [driver.add_chunk(driver.snapshotter, chunk_of(mset, [1])), driver.add_chunk(driver.snapshotter, chunk_of(mset, [2]))]
    waiter = threading.Thread(target=driver.wait_room, args=(driver.snapshotter,))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # two chunks in flight
    driver.observe(txn(mark(driver, highs[0], "high")))
    waiter.join(2)
    assert not waiter.is_alive()


def test_parents_are_copied_before_children(mset: MappingSet) -> None:
    orders = mset.by_name["orders"].flow("crm")
    customers = mset.by_name["customers"].flow("crm")
    assert orders is not None and customers is not None
    jobs = [Job("orders", orders, None, 0), Job("customers", customers, None, 0)]
    assert [j.mapping for j in _parents_first(jobs, {})] == ["customers", "orders"]  # references: customers


def test_foreign_keys_of_the_target_tables_order_the_copies(config: Config) -> None:
    """Without `references:` in the mappings, the target's foreign keys still decide: BOM lines after
    the products they point to, whatever the names' order."""
    mset = load(config, """\
mappings:
  bom_lines:
    direction: crm_to_erp
    crm: {table: bom_line, key: [id]}
    erp: {table: boms, key: [id]}
    fields: {id: ~, product_id: {erp: parent_item_id}}
  products:
    direction: crm_to_erp
    crm: {table: product, key: [id]}
    erp: {table: items, key: [id]}
    fields: {id: ~}
""")
    jobs = [Job(name, mset.by_name[name].flow("crm"), None, 0) for name in ("bom_lines", "products")]  # type: ignore[arg-type]
    fks = {TableRef("erpdb", "boms"): {TableRef("erpdb", "items")}}
    assert [j.mapping for j in _parents_first(jobs, fks)] == ["products", "bom_lines"]
    assert [j.mapping for j in _parents_first(jobs, {})] == ["bom_lines", "products"]


EXTENSION = """\
mappings:
  customer_extra:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customer_extra, key: [fk_object], optional: true}
    created_by: crm
    fields:
      id: {erp: fk_object, references: customers}
      segment: ~
      region: {owner: erp}
      since: {insert_only: true}
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
"""


def test_a_mapping_that_creates_no_rows_is_copied_after_those_that_create_rows_in_its_table(config: Config) -> None:
    """An extension mapping (created_by: crm) copied into the CRM comes after the accounts mapping copied into the
    same table, so that the accounts that copy makes are there for it to fill; into the ERP it creates its own
    rows, and the order stays as it is."""
    mset = load(config, EXTENSION)
    into_crm = [Job(n, mset.by_name[n].flow("erp"), None, 0) for n in ("customer_extra", "customers")]  # type: ignore[arg-type]
    assert [j.mapping for j in _parents_first(into_crm, {})] == ["customers", "customer_extra"]
    into_erp = [Job(n, mset.by_name[n].flow("crm"), None, 0) for n in ("customer_extra", "customers")]  # type: ignore[arg-type]
    assert [j.mapping for j in _parents_first(into_erp, {})] == ["customers", "customer_extra"]  # references


def test_the_second_side_fills_fields_without_an_owner_and_the_first_side_does_not(config: Config) -> None:
    """The second side's copy (here the ERP's: the first side is the first connection) may not write fields
    without an owner over existing rows, but fills them where the row holds NULL; not an owned field (written
    anyway), not an `insert_only: true` field (the target's once the row exists)."""
    mset = load(config, EXTENSION)
    crm, erp = config.connections
    mapping = mset.by_name["customer_extra"]
    second = SyncDriver(config, erp, crm, threading.Event())
    flow = mapping.flow("erp")
    assert flow is not None
    insert_only = second._insert_only(mapping, flow)
    assert insert_only == {"segment", "since"}
    assert second._fill(flow, insert_only) == {"segment"}
    first = SyncDriver(config, crm, erp, threading.Event())
    flow = mapping.flow("crm")
    assert flow is not None
    assert first._insert_only(mapping, flow) == frozenset() and first._fill(flow, frozenset()) == frozenset()
    resumed = first._insert_only(mapping, flow, resumed=True)
    assert resumed and first._fill(flow, resumed) == frozenset()  # a resumed first side stays insert-only


def test_progress_line() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0)
    running = SyncRow("crm_to_erp", "customers", "running", (5,), 120_000, 200_000)
    assert line(running, 14_210.4) == "customers crm_to_erp  120,000/200,000 rows   60%  14,210 rows/s  ETA 6 s"
    done = SyncRow("crm_to_erp", "customers", DONE, None, 200_000, 200_000, now, now, now + timedelta(seconds=16))
    assert line(done, None) == "customers crm_to_erp  done: 200,000 rows in 16.0 s (12,500 rows/s)"
    assert line(SyncRow("erp_to_crm", "customers", "pending", None, 0, 0), None) == (
        "customers erp_to_crm  waiting to start")
    # rows outside the mapping's slice or filter are read, not copied: counted apart; the share goes by rows read
    sliced = SyncRow("crm_to_erp", "customers", "running", (5,), 30_000, 200_000, rows_skipped=90_000)
    assert line(sliced, None) == ("customers crm_to_erp  30,000 rows, 90,000 skipped (outside the mapping's slice "
                                  "or filter), 120,000/200,000 read   60%")
    done = SyncRow("crm_to_erp", "customers", DONE, None, 3, 8, now, now, now + timedelta(seconds=1), rows_skipped=5)
    assert line(done, None) == ("customers crm_to_erp  done: 3 rows, 5 skipped (outside the mapping's slice or "
                                "filter) in 1.0 s (8 rows/s)")


def test_the_second_side_writes_unowned_fields_only_into_rows_it_creates(config: Config, mset: MappingSet) -> None:
    """customers flows both ways and crm (the first connection) is copied first: the erp copy may
    create missing CRM rows with every field, but an existing row keeps its name (no owner)."""
    crm, erp = config.connections
    d = SyncDriver(config, erp, crm, threading.Event())
    m = mset.by_name["customers"]
    assert d._insert_only(m, m.flow("erp")) == frozenset({"name"})
    first = SyncDriver(config, crm, erp, threading.Event())
    assert first._insert_only(m, m.flow("crm")) == frozenset()
    # resumed after a restart, the first side no longer knows which rows the other side brought over
    assert first._insert_only(m, m.flow("crm"), resumed=True) == frozenset({"customer_name"})
    orders = mset.by_name["orders"]  # one way: nothing was copied before it
    assert SyncDriver(config, crm, erp, threading.Event())._insert_only(orders, orders.flow("crm")) == frozenset()


def test_rows_deleted_on_the_target_meanwhile_are_not_revived(config: Config) -> None:
    """The other direction tells the copy which target rows were deleted there (not by us) since the
    copy started: the delete is on its way to this side, and copying the row would revive it."""
    mset = load(config, OWNED_YAML)
    crm, erp = config.connections
    ours, peer = SyncDriver(config, crm, erp, threading.Event()), SyncDriver(config, erp, crm, threading.Event())
    ours.peer, peer.peer = peer, ours
    ours._snapshotter = object()  # type: ignore[assignment]
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    job = Job("customers", flow, None, 0)
    ours.track([job])
    erp_table = flow.target.table
    peer.observe(txn(RowChange(erp_table, Op.DELETE, {"cid": 2, "customer_name": "b"}, None)))
    peer.observe(txn(RowChange(erp_table, Op.DELETE, {"cid": 3, "customer_name": "c"}, None), echo=True))
    rows = [{"id": k, "name": f"n{k}", "note": None} for k in (1, 2, 3)]
    out = ours.observe(txn(mark(ours, ours.add_chunk(ours.snapshotter, Chunk(job, rows, (3,), 3, 3, True)), "high")))
    assert [tc.key for tc in out if isinstance(tc, TargetChange)] == [(1,), (3,)]  # 3 was deleted by us
    ours._snapshotter = None
    ours.stop_snapshotter()  # a new session (a reconnect) keeps asking: the copy is not over
    assert erp_table in peer._watched


def test_parked_rows_are_retried_after_a_copy_until_a_round_applies_nothing(config: Config) -> None:
    """Issue 12: a child parked during a copy waits for a pair the other direction's copy makes. When a
    copy ends, both directions retry their parked rows; a retry that applied something starts another
    round (it may have made pairs the other side waits for); a round that applies nothing ends it."""
    crm, erp = config.connections
    a, b = SyncDriver(config, erp, crm, threading.Event()), SyncDriver(config, crm, erp, threading.Event())
    a.peer, b.peer = b, a
    calls: list[str] = []
    results = {"a": [2, 0], "b": [1, 0]}  # parked changes each retry takes out, in turn

    def hook(name: str):  # type: ignore[no-untyped-def]
        def retry() -> int:
            calls.append(name)
            return results[name].pop(0) if results[name] else 0
        return retry

    a.retry_parked, b.retry_parked = hook("a"), hook("b")
    for _ in range(3):  # no copy has ended: nothing to retry
        a._retry_parked()
        b._retry_parked()
    assert calls == [] and a.parked_settled and b.parked_settled
    b.parked_round += 1  # b's copy ended (SyncDriver.poll)
    assert not a.parked_settled and not b.parked_settled
    for _ in range(5):
        a._retry_parked()
        b._retry_parked()
    assert calls == ["a", "b", "a", "b"]  # each retried twice: the rounds after a's 2 and b's 1 applied rows
    assert a.parked_settled and b.parked_settled


FOLD_YAML = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: customers, key: [cid]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email}
"""


def test_a_fold_copies_a_row_whose_echo_wrote_other_columns_and_fills_only(config: Config) -> None:
    """The ERP -> CRM copy (the second side) of a fold whose parent column is in the ERP's customers: an echo of
    the customers mapping (its name) says nothing about the e-mail, so that row is copied; an echo that wrote the
    e-mail carried the CRM's value and is not. What it copies fills only."""
    mset = load(config, FOLD_YAML)
    crm, erp = config.connections
    d = SyncDriver(config, erp, crm, threading.Event())
    d._snapshotter = object()  # type: ignore[assignment]
    m = mset.by_name["customer_email"]
    flow = m.flow("erp")
    assert flow is not None
    assert d._insert_only(m, flow) == frozenset({"value"})  # the child row's value, where there is none
    table = flow.source.table
    job = Job("customer_email", flow, None, 0, d._insert_only(m, flow))
    d.track([job])

    def row(cid: int, email: str, name: str = "n") -> dict:
        return {"cid": cid, "customer_name": name, "email": email}
    d.observe(txn(RowChange(table, Op.UPDATE, row(1, "a@x", "old"), row(1, "a@x", "new")),  # the name only
                  RowChange(table, Op.UPDATE, row(2, "b@erp"), row(2, "b@crm")),  # the e-mail
                  RowChange(table, Op.INSERT, None, row(3, "c@crm")), echo=True))  # a parent created: every column
    high = d.add_chunk(d.snapshotter, Chunk(job, [row(1, "a@x", "new"), row(2, "b@crm"), row(3, "c@crm"),
                                                  row(4, "d@erp")], (4,), 4, 4, True))
    out = [c for c in d.observe(txn(Watermark("erp_to_crm", "high", high))) if isinstance(c, LinkedChange)]
    # 3: an echo whose columns are not known (an insert) is copied too, filling only (a no-op where the CRM holds
    # the value it was made from)
    assert [lc.source_key for lc in out] == [(1,), (3,), (4,)]
    assert all(lc.insert_only == frozenset({"value"}) for lc in out)


def test_a_folds_child_row_deleted_on_the_target_meanwhile_is_not_made_again(config: Config) -> None:
    """fsync14's gap: a fold into child rows makes a new child row (a new key, `generate:`), so the target key the
    copy compares for ordinary rows says nothing. The other direction tells the copy which child rows of the type
    the target deleted (by parent and slice), and the fold's applier makes none for that parent; a row of another
    type deleted for another parent keeps nothing from being copied."""
    from replicator.mapping.folds import FoldApplier
    from tests.unit.test_folds import ADDRESS, CUSTOMERS, MAPS, FakeTarget

    mset = load(config, MAPS)
    crm, erp = config.connections
    ours, peer = SyncDriver(config, erp, crm, threading.Event()), SyncDriver(config, crm, erp, threading.Event())
    ours.peer, peer.peer = peer, ours
    ours._snapshotter = object()  # type: ignore[assignment]
    flow = mset.by_name["customer_email"].flow("erp")  # the ERP's column -> the CRM's address rows
    assert flow is not None
    job = Job("customer_email", flow, None, 0)
    ours.track([job])
    peer.observe(txn(RowChange(ADDRESS, Op.DELETE, {"id": "u8", "owner_id": "c-8", "kind": "email", "value": "b"},
                               None)))
    peer.observe(txn(RowChange(ADDRESS, Op.DELETE, {"id": "u9", "owner_id": "c-9", "kind": "phone", "value": "9"},
                               None)))
    rows = [{"cust_no": k, "name": f"n{k}", "email": f"{k}@x.de"} for k in (7, 8, 9)]
    high = mark(ours, ours.add_chunk(ours.snapshotter, Chunk(job, rows, (9,), 3, 3, True)), "high", "erp_to_crm")
    changes = [c for c in ours.observe(txn(high)) if isinstance(c, LinkedChange)]
    assert len(changes) == 3 and all(c.deleted_children == {("c-8", "email"), ("c-9", "phone")} for c in changes)
    target = FakeTarget()
    fa = FoldApplier(target, "erp_to_crm", lambda ref: f"c-{ref.value}", lambda lc, ref: None,  # type: ignore[arg-type]
                     None, None)
    for c in changes:
        fa.apply(c)
    assert sorted((r["owner_id"], r["value"]) for r in target.rows[ADDRESS]) == [("c-7", "7@x.de"), ("c-9", "9@x.de")]
    assert CUSTOMERS not in peer._watched and ADDRESS in peer._watched
