"""stream/channel: the bounded hand-off between a direction's reader and applier threads."""
from __future__ import annotations

import threading
import time

from replicator.stream.channel import Channel


def test_items_come_out_in_order_all_at_once() -> None:
    chan = Channel(max_rows=100)
    stop = threading.Event()
    for i in range(5):
        assert chan.put(i, 1, stop)
    assert chan.rows() == 5 and not chan.empty()
    assert chan.take_all(0) == [0, 1, 2, 3, 4]
    assert chan.empty() and chan.rows() == 0


def test_it_is_bounded_by_rows_not_items_and_a_full_put_waits_for_the_taker() -> None:
    chan = Channel(max_rows=10)
    stop = threading.Event()
    assert chan.put("big", 10, stop)  # one item can fill it
    done = threading.Event()

    def writer() -> None:
        chan.put("next", 1, stop)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    assert not done.wait(0.2), "a put into a full channel went through"
    assert chan.take_all(0) == ["big"]
    assert done.wait(2.0)
    t.join()
    assert chan.take_all(0) == ["next"]


def test_an_item_larger_than_the_bound_still_goes_into_an_empty_channel() -> None:
    chan = Channel(max_rows=2)
    assert chan.put("huge chunk", 50, threading.Event())
    assert chan.rows() == 50


def test_a_stop_ends_a_waiting_put_with_false() -> None:
    chan = Channel(max_rows=1)
    stop = threading.Event()
    chan.put("x", 1, stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert chan.put("y", 1, stop) is False
    assert time.monotonic() - started < 2.0
    assert chan.take_all(0) == ["x"]


def test_the_end_of_the_stream_gets_through_a_full_channel() -> None:
    chan = Channel(max_rows=1)
    chan.put("x", 1, threading.Event())
    chan.put_final("end")
    assert chan.take_all(0) == ["x", "end"]


def test_take_all_waits_for_the_first_item_up_to_its_timeout() -> None:
    chan = Channel(max_rows=10)
    started = time.monotonic()
    assert chan.take_all(0.1) == []
    assert time.monotonic() - started >= 0.09
    threading.Timer(0.05, lambda: chan.put("late", 1, threading.Event())).start()
    assert chan.take_all(2.0) == ["late"]


def test_a_waiting_taker_wakes_at_the_first_put_not_at_its_timeout() -> None:
    chan = Channel(max_rows=10)
    got: list[list[object]] = []
    t = threading.Thread(target=lambda: got.append(chan.take_all(30)))
    t.start()
    deadline = time.monotonic() + 5
    while not chan._takers and time.monotonic() < deadline:  # the taker is waiting
        time.sleep(0.01)
    started = time.monotonic()
    chan.put("x", 1, threading.Event())
    t.join(5)
    assert got == [["x"]] and time.monotonic() - started < 5


def test_the_row_count_is_the_sum_of_what_waits_and_starts_over_when_taken() -> None:
    chan = Channel(max_rows=100)
    stop = threading.Event()
    chan.put("a", 3, stop)
    chan.put("b", 40, stop)
    assert chan.rows() == 43
    assert chan.take_all(0) == ["a", "b"] and chan.rows() == 0
    chan.put("c", 1, stop)
    assert chan.rows() == 1
