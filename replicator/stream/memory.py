"""Where the daemon's memory goes, and handing freed heap back to the system.

`MemoryTrace` is a diagnostic, off by default: with REPLICATOR_TRACE_MEMORY=SECONDS in the daemon's
environment it starts `tracemalloc` and, every SECONDS, appends the RSS, the traced total and the
largest allocation sites by line to REPLICATOR_TRACE_MEMORY_FILE (default: the log). tracemalloc costs
CPU on every allocation, so it is never on unless asked for; the figures in docs/performance.md were
found with it.

`trim` hands the free pages at the top and in the middle of glibc's heap back to the kernel
(malloc_trim(0)). CPython frees a large transient structure (the decoded rows of a 1M-row source
transaction, a catch-up batch) into its allocator but glibc keeps the pages: without it the RSS stays at
the high-water mark of the largest batch ever seen. On other C libraries it does nothing.

`tune_gc` sets the cyclic garbage collector for a long-running stream. CPython's defaults (a young
collection every 700 net container allocations, a full one every 100 young ones) suit short scripts: the
daemon allocates several objects per row change, keeps tens of thousands of them alive for a while (the
channel's read-ahead, the commit clock's remembered rows) and makes almost no reference cycles, so the
collector kept re-scanning live objects for nothing. Measured with the collector's own callbacks
(bench/run.py, single-row bursts): 23-31% of the daemon's CPU with two-way mappings, 9-15% one-way. With
`gc.freeze()` after start-up (the modules, mappings and catalogs, never garbage, leave the generations) and
a young generation of GC_THRESHOLD[0], that share falls to a few percent. Rows are freed by reference
counting, not by the collector: the RSS does not depend on these thresholds (docs/performance.md).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time
import tracemalloc
from typing import Callable

log = logging.getLogger(__name__)

ENV = "REPLICATOR_TRACE_MEMORY"
ENV_FILE = "REPLICATOR_TRACE_MEMORY_FILE"
TOP = 25


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_trim = _load_trim()


def trim() -> bool:
    """Give freed heap pages back to the kernel (glibc); True if anything was released."""
    return bool(_trim(0)) if _trim is not None else False


def rss_bytes() -> int:
    """This process's resident set size now (Linux), 0 where /proc is not there."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def interval_from_env(environ: dict[str, str] | None = None) -> float:
    """The dump interval asked for in the environment; 0: off (unset, empty, not a positive number)."""
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    try:
        seconds = float(raw) if raw else 0.0
    except ValueError:
        log.warning("%s=%r is not a number of seconds: memory tracing stays off", ENV, raw)
        return 0.0
    return seconds if seconds > 0 else 0.0


def report(snapshot: tracemalloc.Snapshot, first: tracemalloc.Snapshot | None = None, top: int = TOP) -> str:
    """The RSS, the traced total (now and its peak) and the `top` allocation sites by line; with `first`,
    also the `top` sites that grew most since then (what a slow leak looks like)."""
    stats = snapshot.statistics("lineno")
    traced = sum(s.size for s in stats)
    peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    lines = [f"memory: rss {rss_bytes() / 1e6:.1f} MB, traced {traced / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB) "
             f"in {len(stats)} sites"]
    for s in stats[:top]:
        frame = s.traceback[0]
        lines.append(f"  {s.size / 1e6:8.2f} MB {s.count:9d} blocks  {frame.filename}:{frame.lineno}")
    if first is not None:
        lines.append("  grown since the first dump:")
        for d in snapshot.compare_to(first, "lineno")[:top]:
            frame = d.traceback[0]
            lines.append(f"  {d.size_diff / 1e6:+8.2f} MB {d.count_diff:+9d} blocks  {frame.filename}:{frame.lineno}")
    return "\n".join(lines)


class MemoryTrace:
    """The side job: one dump every `seconds` until `stop` is set."""

    def __init__(self, seconds: float, stop: threading.Event, path: str | None = None):
        self.seconds = seconds
        self.stop = stop
        self.path = path
        self.first: tracemalloc.Snapshot | None = None
        if not tracemalloc.is_tracing():
            tracemalloc.start(1)

    def dump(self) -> None:
        snapshot = tracemalloc.take_snapshot()
        text = f"{time.strftime('%H:%M:%S')} {report(snapshot, self.first)}\n"
        if self.first is None:
            self.first = snapshot
        if self.path:
            with open(self.path, "a") as f:
                f.write(text)
        else:
            log.info("%s", text.rstrip())

    def run(self) -> None:
        while not self.stop.wait(self.seconds):
            self.dump()
        self.dump()


# young generation / young collections per middle one / middle ones per full one (CPython: 700, 10, 10). A
# young collection walks the objects allocated since the last one that are still alive, and there are many
# more of them than the threshold: CPython counts allocations minus *any* container freed, and the applier
# frees whole batches of old transactions at a time, so the count falls back while the reader's young objects
# pile up. At 10,000 a single-row erp_to_crm burst of 200,000 rows spent ~0.3-0.4 s in ~35 young collections
# of ~10 ms (gc.callbacks; docs/performance.md "fast11: erp_to_crm"); at 50,000 ~0.03 s: in-flight
# transactions mostly die before a collection sees them. The stream makes almost no reference cycles, and the
# rare one (an exception's traceback) is still found young, within 50,000 allocations.
GC_THRESHOLD = (50_000, 50, 50)


def tune_gc(threshold: tuple[int, int, int] = GC_THRESHOLD) -> None:
    """Called once, when start-up is done and before the stream starts: what exists now lives as long as
    the process, so it is frozen out of the collector's scans; then the thresholds for a stream."""
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(*threshold)


TRIM_SECONDS = 10.0  # malloc_trim walks the heap: a few ms for ~100 MB, so every few seconds costs nothing


class Trimmer:
    """The side job that calls `trim` every TRIM_SECONDS: the RSS follows what is in use, not the most
    ever used (a catch-up batch, a large source transaction, the heap holes left by a steady FIFO)."""

    def __init__(self, stop: threading.Event, seconds: float = TRIM_SECONDS):
        self.stop = stop
        self.seconds = seconds
        self.trims = 0

    def run(self) -> None:
        if _trim is None:
            return
        while not self.stop.wait(self.seconds):
            trim()
            self.trims += 1
