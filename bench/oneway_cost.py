"""The CPU cost per row of the one-way apply path, in process, without servers: routing (`route` of
bench/detect_cost.py's update workload through a one-way mapping, one change at a time and as the apply loop
routes 100-row source transactions) and the MariaDB applier's row literals
(`myliteral.Formatter.statements` of the routed rows, datetimes naive UTC as its converters make them). CPU time (process_time, min of --repeat), and Python
calls per row counted by cProfile (deterministic).

With `--code DIR` the same is measured for another checkout, in alternating child processes, so that
machine load hits both alike:

    git archive BASE replicator | tar -x -C /tmp/base && python bench/oneway_cost.py --code /tmp/base
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


def measure(direction: str, rows: int, repeat: int) -> dict[str, float]:
    sys.path.insert(1, str(Path(__file__).resolve().parent))
    import pymysql

    import detect_cost
    from replicator.appliers.myliteral import Formatter
    from replicator.mapping.router import route

    bench = detect_cost.Bench(argparse.Namespace(direction=direction, rows=rows, batch=100))
    mset = bench.mappings(direction)
    when = detect_cost.datetime(2026, 1, 1, tzinfo=detect_cost.timezone.utc)
    src = bench.src

    def routing() -> list[Any]:
        out: list[Any] = []
        for ch in bench.changes:
            out.extend(route(mset, src, ch, when))
        return out
    try:
        from replicator.mapping.router import route_all
    except ImportError:  # an older checkout: what its apply loop did with a multi-row transaction
        def route_all(mset: Any, side: str, changes: Any, commit_time: Any) -> list[Any]:
            return [tc for ch in changes for tc in route(mset, side, ch, commit_time)]
    txns = [bench.changes[i:i + 100] for i in range(0, len(bench.changes), 100)]

    def routing_100() -> list[Any]:  # the apply loop's routing of 100-row source transactions
        out: list[Any] = []
        for txn in txns:
            out.extend(route_all(mset, src, txn, when))
        return out
    routed = routing()
    assert repr(routing_100()) == repr(routed)
    columns = list(routed[0].values)
    # as the MariaDB applier's converters hand them over: an aware datetime as naive UTC (mariadb._utc_naive)
    utc = detect_cost.timezone.utc
    values = [[v.astimezone(utc).replace(tzinfo=None) if isinstance(v, detect_cost.datetime) and v.tzinfo else v
               for v in (tc.values[c] for c in columns)] for tc in routed]
    conn = pymysql.connections.Connection(defer_connect=True, charset="utf8mb4")
    conn.server_status = 0  # backslash escapes (the server default)
    fmt = Formatter(conn)

    def literals() -> None:
        fmt.statements("INSERT INTO t VALUES ", "", values)

    out: dict[str, float] = {}
    for name, fn in (("route", routing), ("route_100", routing_100), ("literals", literals)):
        out[name + "_us"] = min(_cpu(fn) for _ in range(repeat)) * 1e6 / rows
        out[name + "_calls"] = _calls(fn) / rows
    return out


def _cpu(fn: Callable[[], Any]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def _calls(fn: Callable[[], Any]) -> int:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    return int(pstats.Stats(prof).total_calls)  # type: ignore[attr-defined]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--direction", choices=["crm_to_erp", "erp_to_crm"], default="erp_to_crm")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="alternating child processes per checkout")
    p.add_argument("--code", type=Path, help="another checkout to compare with")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, str(args.child))
        print(json.dumps(measure(args.direction, args.rows, args.repeat)))
        return
    codes = {"this": ROOT} | ({"other": args.code.resolve()} if args.code else {})
    got: dict[str, list[dict[str, float]]] = {k: [] for k in codes}
    for _ in range(args.rounds):
        for name, code in codes.items():
            r = subprocess.run([sys.executable, __file__, "--child", str(code), "--direction", args.direction,
                                "--rows", str(args.rows), "--repeat", str(args.repeat)],
                               check=True, capture_output=True, text=True)
            got[name].append(json.loads(r.stdout))
    for name, runs in got.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{args.direction} {name} ({codes[name]}): route {med['route_us']:.2f} us/row "
              f"{med['route_calls']:.1f} calls/row; route in 100-row transactions {med['route_100_us']:.2f} us/row "
              f"{med['route_100_calls']:.1f} calls/row; MariaDB literals {med['literals_us']:.2f} us/row "
              f"{med['literals_calls']:.1f} calls/row (median of {len(runs)} processes, each the min of "
              f"{args.repeat})")


if __name__ == "__main__":
    main()
