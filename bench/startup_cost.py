"""Daemon start-up: seconds from spawning `replicator run` to both directions streaming (the 'streaming from'
log line bench/run.py waits for), median of N starts, for this checkout and optionally another one
(`--code DIR`), interleaved in one run so that machine load hits both alike.

    python bench/startup_cost.py --starts 5 --code /tmp/base

Each start is a full `replicator run` with its preflight (`check`), against the same servers and mapping as
bench/run.py; the daemon is stopped with SIGTERM after it streams. `--profile FILE` records the last start of
this checkout with py-spy (raw collapsed stacks).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run as benchrun
from run import DIRECTIONS, Bench, say


def one_start(bench: Bench, code: Path, profile: Path | None = None) -> float:
    daemon = bench.daemon
    assert daemon is not None
    benchrun.CODE = code
    daemon.start()
    spy = None
    if profile is not None and daemon.pid:
        spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(daemon.pid), "--rate",
                                "500", "--format", "raw", "--threads", "--idle", "--output", str(profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        at = max(daemon.wait_streaming(d) for d in DIRECTIONS)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        daemon.stop()
    return at - daemon.spawned_at


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--code", type=Path, help="another checkout to compare with (its replicator/ package)")
    p.add_argument("--profile", type=Path, help="py-spy raw stacks of this checkout's last start")
    p.add_argument("--importtime", type=Path, help="one more start of this checkout with `-X importtime`: its log")
    args = p.parse_args()
    bargs = benchrun.parse_args(["--rows", "1", "--table-rows", "1000", "--no-upsert-baseline"])
    workdir = Path(tempfile.mkdtemp(prefix="replicator-startup-"))
    bench = Bench(bargs, workdir)
    here = benchrun.ROOT
    codes = {"this": here} | ({"other": args.code.resolve()} if args.code else {})
    times: dict[str, list[float]] = {k: [] for k in codes}
    try:
        bench.start_servers()
        bench.setup()
        one_start(bench, here)  # warm the servers' caches and the page cache: not counted
        for i in range(args.starts):
            for name, code in codes.items():
                last = args.profile if name == "this" and i == args.starts - 1 else None
                times[name].append(one_start(bench, code, last))
                say(f"start {i + 1} {name}: {times[name][-1]:.3f} s")
        if args.importtime:
            os.environ["PYTHONPROFILEIMPORTTIME"] = "1"
            one_start(bench, here)
            del os.environ["PYTHONPROFILEIMPORTTIME"]
            assert bench.daemon is not None
            shutil.copy(bench.daemon.log_path, args.importtime)
    finally:
        if bench.daemon:
            bench.daemon.stop()
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for name, ts in times.items():
        print(f"{name} ({codes[name]}): median {statistics.median(ts):.3f} s of {len(ts)} starts "
              f"({', '.join(f'{t:.3f}' for t in ts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
