"""bench/procstat.py: the process figures bench/peers.py and bench/twoway.py report (RSS of a process tree, CPU
seconds, the slope of an RSS series). The benchmark scripts themselves need servers; these parts do not."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import procstat  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_slope_is_the_least_squares_fit() -> None:
    assert procstat.slope([(0, 10.0), (1, 12.0), (2, 14.0)]) == pytest.approx(2.0)
    assert procstat.slope([(0, 1.0), (1, 3.0), (2, 2.0), (3, 4.0)]) == pytest.approx(0.8)
    assert procstat.slope([(5, 1.0)]) is None
    assert procstat.slope([(1, 1.0), (1, 2.0)]) is None  # no spread in x


def test_tree_rss_counts_children() -> None:
    # a child holding ~40 MB: the tree's RSS grows by about that much, the parent's own VmRSS does not
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; b = bytearray(40 << 20); "
                              "b[::4096] = b'x' * len(b[::4096]); print('ok', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ok"
        assert child.pid in procstat.descendants(os.getpid())
        own = procstat.status_kb(os.getpid(), "VmRSS") / 1024
        tree = procstat.tree_rss_mb([os.getpid()])
        assert tree - own >= 40
        assert procstat.tree_rss_mb([child.pid]) >= 40
    finally:
        child.kill()
        child.wait()
    assert procstat.status_kb(child.pid, "VmRSS") == 0  # gone: 0, no error


def test_cpu_seconds_grow_with_work() -> None:
    before = procstat.cpu_seconds(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    assert procstat.cpu_seconds(os.getpid()) - before >= 0.2  # clock ticks: 10 ms resolution


def test_rss_series_summary() -> None:
    series = procstat.RssSeries(lambda: [os.getpid()], interval=0.02).start()
    time.sleep(0.2)
    series.stop()
    s = series.summary()
    assert s["samples"] is not None and s["samples"] >= 3
    assert s["first_mb"] is not None and s["peak_mb"] is not None and s["peak_mb"] >= s["first_mb"] > 0
    series.samples = [(0.0, 100.0), (30.0, 100.0), (60.0, 101.0), (90.0, 102.0), (120.0, 103.0)]
    s = series.summary()
    assert s["slope_second_half_mb_per_min"] == pytest.approx(2.0)  # 101 -> 103 over 60 s
    assert s["peak_mb"] == 103.0 and s["first_mb"] == 100.0 and s["last_mb"] == 103.0


def test_tree_cpu_counts_live_and_reaped_children() -> None:
    # a parent that runs one child burning ~0.3 s of CPU and waits for it, then sleeps: the child is gone,
    # its CPU stays in the tree through the parent's reaped-children time
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time; subprocess.run([sys.executable, '-c', "
        "'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass']); "
        "print('ok', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ok"
        assert procstat.descendants(parent.pid) == [parent.pid]  # the child has exited
        assert procstat.tree_cpu_seconds(parent.pid) >= 0.3 > procstat.cpu_seconds(parent.pid)
    finally:
        parent.kill()
        parent.wait()
    assert procstat.tree_cpu_seconds(parent.pid) == 0.0  # gone
