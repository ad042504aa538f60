"""metrics.adder: a Counter child's add without Counter.inc's checks counts what inc counts."""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from replicator import metrics


def test_adder_counts_what_inc_counts() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_rows_total", "rows", ["direction", "table"], registry=registry)
    child = counter.labels("erp_to_crm", "s.t")
    add = metrics.adder(child)
    assert add is not child.inc  # the fast path is taken with this prometheus_client
    for n in (1, 1, 100, 0, 7):
        add(n)
        child.inc(n)
    assert registry.get_sample_value("t_rows_total", {"direction": "erp_to_crm", "table": "s.t"}) == 2 * 109
    child.reset()  # the value object stays the same: the adder keeps counting into it
    add(3)
    assert registry.get_sample_value("t_rows_total", {"direction": "erp_to_crm", "table": "s.t"}) == 3


def test_adder_of_something_else_is_its_inc() -> None:
    gauge = Gauge("t_g", "g", registry=CollectorRegistry())
    assert metrics.adder(gauge) == gauge.inc  # not a counter: its own inc

    class Plain:
        def __init__(self) -> None:
            self.n = 0

        def inc(self, amount: Any = 1) -> None:
            self.n += amount

    plain = Plain()
    metrics.adder(plain)(4)
    assert plain.n == 4
