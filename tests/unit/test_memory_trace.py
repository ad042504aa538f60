"""stream/memory: the off-by-default allocation trace (REPLICATOR_TRACE_MEMORY) and malloc_trim."""
from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

from replicator.stream import memory


def test_tracing_is_off_unless_a_positive_interval_is_set() -> None:
    assert memory.interval_from_env({}) == 0.0
    assert memory.interval_from_env({memory.ENV: ""}) == 0.0
    assert memory.interval_from_env({memory.ENV: "0"}) == 0.0
    assert memory.interval_from_env({memory.ENV: "-5"}) == 0.0
    assert memory.interval_from_env({memory.ENV: "soon"}) == 0.0  # a warning, not a crash
    assert memory.interval_from_env({memory.ENV: " 2.5 "}) == 2.5


def test_a_dump_names_the_growing_line(tmp_path: Path) -> None:
    was_tracing = tracemalloc.is_tracing()
    out = tmp_path / "trace.txt"
    trace = memory.MemoryTrace(60, threading.Event(), str(out))
    try:
        trace.dump()
        held = [bytearray(1000) for _ in range(2000)]  # ~2 MB allocated on this line
        trace.dump()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    text = out.read_text()
    assert text.count("memory: rss") == 2
    grown = text.split("grown since the first dump:")[1]
    first = grown.splitlines()[1]
    assert "test_memory_trace.py" in first and float(first.split()[0]) >= 2.0, grown
    assert len(held) == 2000


def test_trim_and_rss_are_harmless_to_call() -> None:
    assert isinstance(memory.trim(), bool)
    assert memory.rss_bytes() > 0


def test_the_trimmer_trims_until_stopped() -> None:
    stop = threading.Event()
    trimmer = memory.Trimmer(stop, seconds=0.01)
    t = threading.Thread(target=trimmer.run, daemon=True)
    t.start()
    deadline = 0
    while trimmer.trims < 3 and deadline < 500 and memory._trim is not None:
        stop.wait(0.01)
        deadline += 1
    stop.set()
    t.join(2)
    assert not t.is_alive()
    assert trimmer.trims >= 3 or memory._trim is None  # glibc: it ran; elsewhere it returns at once
