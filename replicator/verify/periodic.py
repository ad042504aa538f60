"""Verification inside the daemon: every mapping compared every `verify.every_seconds`."""
from __future__ import annotations

import logging
import threading
from typing import Any

from replicator import metrics
from replicator.config import Config
from replicator.errors import ReplicatorError
from replicator.verify.report import Report, Stopped
from replicator.verify.run import Verifier

log = logging.getLogger("replicator.verify")
MAX_LISTED = 10_000  # differing rows a run keeps and re-checks (about 1 KB each); the rest are only counted


class PeriodicVerifier:
    """Verifies every mapping every `verify.every_seconds` (0: never) in a daemon thread; exports
    replicator_verify_rows_differing{table}, the time and duration of the last complete run, and logs
    differences as warnings. A failing run is logged and counted, and the next period tries again."""

    def __init__(self, config: Config, holder: Any, stop: threading.Event):
        self.config = config
        self.holder = holder
        self.stop = stop
        self._tables: set[str] = set()  # tables with a replicator_verify_rows_differing sample
        metrics.errors.labels("verify", "retriable")
        metrics.errors.labels("verify", "error")

    def run(self) -> None:
        every = self.config.verify.every_seconds
        if every <= 0:
            return
        while not self.stop.wait(every):
            self.run_once()

    def run_once(self) -> Report | None:
        verifier: Verifier | None = None
        try:
            mset, _version = self.holder.current()
            verifier = Verifier(self.config, mset, self.stop, max_listed=MAX_LISTED)
            report = verifier.run()
        except Stopped:
            return None
        except Exception as exc:
            kind = exc.kind if isinstance(exc, ReplicatorError) else "error"
            metrics.errors.labels("verify", kind).inc()
            log.warning("verification failed, trying again in %.0f s: %s", self.config.verify.every_seconds, exc)
            return None
        finally:
            if verifier is not None:
                verifier.close()
        counts = {t: 0 for t in report.tables}
        for d in report.differences:
            counts[d.table] = counts.get(d.table, 0) + 1
        for table, n in report.unlisted.items():  # beyond MAX_LISTED: as found, not re-checked
            counts[table] = counts.get(table, 0) + n
            log.warning("verify: %d more differing rows of %s not listed (a run lists at most %d)", n, table,
                        MAX_LISTED)
        for table, n in counts.items():
            metrics.verify_rows_differing.labels(table).set(n)
        for table in self._tables - set(counts):  # no longer mapped (reloaded mappings): no stale alert
            metrics.verify_rows_differing.remove(table)
        self._tables = set(counts)
        metrics.verify_last_complete.set_to_current_time()
        metrics.verify_seconds.set(report.seconds)
        for d in report.differences[:100]:
            log.warning("verify: %s", d.line())
        if len(report.differences) > 100:
            log.warning("verify: ... and %d more differing rows", len(report.differences) - 100)
        log.info("verify: %d rows checked in %.1f s, %d differing", sum(s.rows for s in report.stats.values()),
                 report.seconds, len(report.differences) + sum(report.unlisted.values()))
        return report
