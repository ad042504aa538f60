"""Process figures for the benchmarks, read from /proc: resident memory of a process tree, CPU seconds, and a
once-a-second RSS series with its slope.

The peers' daemons fork (pg_chameleon runs a read and a replay process), so memory is summed over the process
and all its descendants; for a single process that is just its own VmRSS. Only Linux /proc is used."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """pid and every process below it (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def status_kb(pid: int, key: str) -> int:
    """A /proc/PID/status field in kB (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_mb(pids: Iterable[int]) -> float:
    """Resident memory of these processes and all their descendants, MB."""
    seen: set[int] = set()
    for pid in pids:
        seen.update(descendants(pid))
    return sum(status_kb(p, "VmRSS") for p in seen) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (its threads included)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # after the command name: state is field 0, utime field 11, stime field 12 (man 5 proc: 14 and 15)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process tree so far: each live process's own (threads included) and what it
    has reaped of children that exited (cutime/cstime), so a PostgreSQL backend that ended during the
    interval still counts through the postmaster. 0 if the process is gone."""
    total = 0.0
    for p in descendants(pid):
        fields = _stat_fields(p)
        if fields is not None:  # utime, stime, cutime, cstime: fields 11-14 after the command name
            total += sum(int(f) for f in fields[11:15]) / _CLK_TCK
    return total


def reset_peak(pid: int) -> None:
    """Reset VmHWM so that it covers only what follows (Linux >= 4.0); ignored where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def slope(points: list[tuple[float, float]]) -> Optional[float]:
    """Least-squares slope of (x, y) points; None with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class RssSeries:
    """Samples the resident memory of the processes `pids()` returns (and their descendants) every
    `interval` seconds in a background thread: the first, last and peak value and the whole series."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 1.0):
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-series")
        self._t0 = 0.0

    def start(self) -> "RssSeries":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self.pids()
            if pids:
                mb = tree_rss_mb(pids)
                if mb > 0:
                    self.samples.append((time.monotonic() - self._t0, mb))
            self._stop.wait(self.interval)

    def stop(self) -> "RssSeries":
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        return self

    @property
    def peak(self) -> Optional[float]:
        return max((mb for _, mb in self.samples), default=None)

    def summary(self) -> dict[str, Optional[float]]:
        """first/last/peak MB and the slope in MB per minute, over the whole series and over its second half
        (the first seconds hold the start-up growth: imports, connections, buffers filling; growth that goes on
        after that is what "flat" is about)."""
        s = slope(self.samples)
        end = self.samples[-1][0] if self.samples else 0.0
        s2 = slope([p for p in self.samples if p[0] >= end / 2])
        return {
            "samples": len(self.samples),
            "first_mb": round(self.samples[0][1], 1) if self.samples else None,
            "last_mb": round(self.samples[-1][1], 1) if self.samples else None,
            "peak_mb": round(self.peak, 1) if self.peak is not None else None,
            "slope_mb_per_min": round(s * 60, 3) if s is not None else None,
            "slope_second_half_mb_per_min": round(s2 * 60, 3) if s2 is not None else None,
        }
