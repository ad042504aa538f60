"""The commit clock alone: `CommitClock.saw` per single-row update transaction, and the first lookup after.

The bench's 7-column row, N single-row UPDATE transactions over K keys (each key updated N/K times, as
in bench/run.py's burst), fed to `saw` as a reader does; then one `wait_for(timeout=0)`, which for the
lazy clock indexes what is queued. Prints CPU microseconds per transaction (min of 3; noisy on a loaded
machine), Python calls per transaction counted by cProfile (deterministic), and the lookup's CPU time.
Then `saw` in place, as in the daemon: each transaction built just before it is seen and kept alive by the
clock only, the collector tuned as the daemon's. A full clock frees a forgotten transaction's objects per
saw (cold, in cache terms) and the collector walks the queued ones: that, not saw's own code, is why saw
costs more in the daemon's profile than in the first figure.
With --code DIR (repeatable) other checkouts are measured too, each in its own process, this one last:

    git -C /work/main archive BASE replicator | tar -x -C /tmp/base
    python bench/clock_cost.py --code /tmp/base [--profile tottime]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import cProfile, pstats, sys, time
code, n, k, sort = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, code)
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from replicator.changes import LSN, Op, RowChange, TableRef, Transaction
from replicator.conflicts.clock import CommitClock

T = TableRef("public", "bench_item")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def row(i, v):
    return {"id": i, "qty": v, "name": f"item {i}", "amount": Decimal(v) / 100,
            "changed_at": T0 + timedelta(seconds=v), "note": f"note {i} ".ljust(100, "x"), "seq": v}


txns = [Transaction(str(j), LSN(j), T0 + timedelta(seconds=j // k),
                    (RowChange(T, Op.UPDATE, row(j % k + 1, j // k), row(j % k + 1, j // k + 1)),))
        for j in range(n)]


def run():
    clock = CommitClock({("crm", T): ("id",)})
    started = time.process_time()
    for t in txns:
        clock.saw("crm", t)
    return time.process_time() - started, clock


best = min(run()[0] for _ in range(3))
prof = cProfile.Profile()
prof.enable()
_, clock = run()
prof.disable()
calls = pstats.Stats(prof).total_calls
started = time.process_time()
clock.wait_for("crm", T, (1,), "name", "item 1", lambda a, b: a == b, timeout=0)
lookup = time.process_time() - started
print(f"  {code}: saw {best * 1e6 / n:.2f} us CPU per transaction (min of 3), {calls / n:.1f} calls per "
      f"transaction; first lookup after them {lookup * 1e3:.1f} ms CPU")

# in place: each transaction built just before saw, as the reader decodes it, and dropped by the bench after
# (only the clock keeps it), the collector tuned as the daemon's (stream/memory.tune_gc): the forgotten
# transactions are freed inside saw, cold, and the queued ones are the collector's to walk. Measured as the
# loop's CPU with the clock minus the same loop without it (min of 3 each); the collector's share apart.
import gc
from replicator.stream import memory
del txns, clock
memory.tune_gc()
gc_spent = [0.0, 0.0]


def timed(phase, info):
    if phase == "start":
        gc_spent[1] = time.process_time()
    else:
        gc_spent[0] += time.process_time() - gc_spent[1]


gc.callbacks.append(timed)


def in_place(clock):
    gc.collect()
    gc_spent[0] = 0.0
    started = time.process_time()
    for j in range(n):
        t = Transaction(str(j), LSN(j), T0 + timedelta(seconds=j // k),
                        (RowChange(TableRef("public", "bench_item"), Op.UPDATE, row(j % k + 1, j // k),
                                   row(j % k + 1, j // k + 1)),))
        if clock is not None:
            clock.saw("crm", t)
    return time.process_time() - started, gc_spent[0]


base = min(in_place(None) for _ in range(3))
full = min(in_place(CommitClock({("crm", T): ("id",)})) for _ in range(3))
print(f"  {code}: in place, saw {(full[0] - base[0]) * 1e6 / n:.2f} us CPU per transaction, of which the "
      f"collector {(full[1] - base[1]) * 1e6 / n:.2f} us (the bench's loop alone {base[0] * 1e6 / n:.2f} us)")
if sort != "-":
    pstats.Stats(prof).sort_stats(sort).print_stats(15)
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--txns", type=int, default=50_000)
    p.add_argument("--keys", type=int, default=10_000, help="distinct keys updated in turn")
    p.add_argument("--code", type=Path, action="append", default=[], metavar="DIR",
                   help="also measure the daemon code in DIR (repeatable); this checkout is measured last")
    p.add_argument("--profile", metavar="SORT", help="print the top of a cProfile of this checkout's saw")
    args = p.parse_args()
    print(f"{args.txns} single-row update transactions over {args.keys} keys, 7 columns")
    trees = [str(c.resolve()) for c in args.code] + [str(ROOT)]
    for tree in trees:
        sort = args.profile if args.profile and tree == str(ROOT) else "-"
        subprocess.run([sys.executable, "-c", CHILD, tree, str(args.txns), str(args.keys), sort], check=True)


if __name__ == "__main__":
    main()
