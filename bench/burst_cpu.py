"""The daemon's own CPU seconds during bench/run.py's bursts, a figure the machine's load moves far less than
the rates: bench/run.py with its `--profile` hook (started once the daemon streams, stopped when the last
row is in) reading /proc/<pid>/stat of the daemon and its descendants instead of running py-spy.

    python bench/burst_cpu.py --direction crm_to_erp --rows 40000 --burst-txn-rows 1 --seconds 0 --rate 0 \\
        --no-both --big-rows 0 --no-upsert-baseline --no-decode [--code DIR]

Every bench/run.py argument is passed on (`--profile DIR` is added: summary.json there holds the figures);
the report ends with one line a burst: the daemon's CPU seconds, wall seconds, and the CPU seconds of the
bench's other children over the same time (the two database servers it started and its load clients: what
the target spends executing the daemon's statements is there).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procstat  # noqa: E402
import run  # noqa: E402


class CpuMeter:
    """run.Profiler's interface: CPU seconds of the daemon's process tree from start to stop."""

    def __init__(self, pid: int, out: Path, rate: int, wall: bool = False):
        self.pid = pid
        self.started = time.monotonic()
        self.cpu0, self.others0 = self._cpu()

    def _cpu(self) -> tuple[float, float]:
        daemon = set(procstat.descendants(self.pid))
        others = set(procstat.descendants(os.getpid())) - daemon - {os.getpid()}
        return (sum(procstat.cpu_seconds(p) for p in daemon), sum(procstat.cpu_seconds(p) for p in others))

    def stop(self) -> dict[str, Any]:
        cpu, others = self._cpu()
        return {"cpu_s": round(cpu - self.cpu0, 3), "others_cpu_s": round(others - self.others0, 3),
                "seconds": round(time.monotonic() - self.started, 3)}


def profile_text(profiles: dict[str, Any], top: int = 8) -> str:
    out = []
    for phase, p in profiles.items():
        out.append(f"daemon CPU {phase}: {p['cpu_s']:.2f} s in {p['seconds']:.2f} s wall; "
                   f"servers and clients {p['others_cpu_s']:.2f} s")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    run.Profiler = CpuMeter  # type: ignore[misc, assignment]
    run.profile_text = profile_text
    if "--profile" not in argv:
        argv = [*argv, "--profile", tempfile.mkdtemp(prefix="burst-cpu-")]
    return run.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
