"""The hand-over between a direction's reader and its applier, without servers: per single-row transaction.

Reader side: `Direction._read` over a source that yields N prepared single-row UPDATE transactions of a
two-way table, each seen by the commit clock and put into the channel. Applier side: `Direction._apply_loop`
taking them out, routing them through a one-table mapping and batching them (the fake applier of
tests/unit/test_pipeline.py writes nothing). Prints CPU microseconds per transaction (min of 3; noisy on a
loaded machine) and Python calls per transaction counted by cProfile (deterministic), each side apart. The
sources, the router's flows and the appliers are measured by bench/reader_cost.py and bench/detect_cost.py.
With --code DIR (repeatable) other checkouts are measured too, each in its own process, this one last:

    git -C /work/main archive BASE replicator | tar -x -C /tmp/base
    python bench/handover_cost.py --code /tmp/base
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import cProfile, pstats, sys, tempfile, threading, time
code, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path[:0] = [code, root]  # the daemon's code from `code`; the test fakes from this checkout
from datetime import datetime, timedelta, timezone
from pathlib import Path
from replicator.changes import LSN, Op, RowChange, Transaction
from replicator.conflicts.clock import CommitClock
from replicator.errors import RetriableError
from replicator.stream import lease
from replicator.stream.channel import Channel
from tests.unit import test_pipeline as tp
from tests.unit.test_mapping import CUSTOMER

lease.prove = lambda db, stream, epoch: None  # as the unit tests do: the lease always holds
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
tmp = Path(tempfile.mkdtemp())
(tmp / "maps").mkdir()
config = tp.make_config(tmp)
mset = tp.load(config, tp.YAML)
txns = [Transaction(str(j), LSN(j + 1), T0 + timedelta(seconds=j),
                    (RowChange(CUSTOMER, Op.UPDATE, {"id": j % 1000, "name": f"a{j}"},
                               {"id": j % 1000, "name": f"b{j}"}),))
        for j in range(n)]


class Source(tp.FakeSource):
    def transactions(self):
        return iter(txns)


def read():
    d = tp.direction(config, mset, queue_rows=10 * n, max_rows=1000, max_ms=60_000)
    chan = Channel(10 * n)
    clock = CommitClock({("crm", CUSTOMER): ("id",)})
    started = time.process_time()
    d._read(Source([]), chan, clock)
    return time.process_time() - started, chan


def apply(chan):
    d = tp.direction(config, mset, queue_rows=10 * n, max_rows=1000, max_ms=60_000)
    applier = tp.FakeApplier([], d.stop, None, False)
    started = time.process_time()
    try:  # every transaction, then the reader's end of the stream
        d._apply_loop(applier, Source([]), chan, d.mappings.current()[0], LSN(0))
    except RetriableError:
        pass
    assert sum(applier.txn_rows) == n, applier.txn_rows
    return time.process_time() - started


def calls(fn, *args):
    prof = cProfile.Profile()
    prof.enable()
    fn(*args)
    prof.disable()
    return pstats.Stats(prof).total_calls / n


reader = min(read()[0] for _ in range(3))
applier = min(apply(read()[1]) for _ in range(3))
reader_calls = calls(read)
applier_calls = calls(apply, read()[1])
print(f"  {code}: reader {reader * 1e6 / n:.2f} us CPU, {reader_calls:.1f} calls per transaction; "
      f"applier {applier * 1e6 / n:.2f} us CPU, {applier_calls:.1f} calls per transaction")
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--txns", type=int, default=20_000)
    p.add_argument("--code", type=Path, action="append", default=[], metavar="DIR",
                   help="also measure the daemon code in DIR (repeatable); this checkout is measured last")
    args = p.parse_args()
    print(f"{args.txns} single-row update transactions of a one-table mapping, through the channel")
    for tree in [str(c.resolve()) for c in args.code] + [str(ROOT)]:
        subprocess.run([sys.executable, "-c", CHILD, tree, str(ROOT), str(args.txns)], check=True)


if __name__ == "__main__":
    main()
