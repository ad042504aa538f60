"""The daemon's watch on MariaDB binlog expiry: replicator_binlog_retention_margin_seconds, refreshed
every minute for each MariaDB source, from the checkpoint its direction has stored in the target.

A side job (cli.py starts it beside the directions): a failure to measure is logged and retried at
the next round, never a reason to stop streaming. The margin only shrinks while nothing advances the
checkpoint, so once a minute is plenty for an alert measured in hours.
"""
from __future__ import annotations

import logging
import threading

from replicator import metrics
from replicator.appliers import make_applier
from replicator.changes import BinlogPosition
from replicator.config import Config, Connection
from replicator.errors import ReplicatorError
from replicator.loopguard import stream_name
from replicator.sources.binlogretention import read_retention

log = logging.getLogger(__name__)

EVERY_SECONDS = 60.0


class RetentionMonitor:
    def __init__(self, config: Config, stop: threading.Event, every: float = EVERY_SECONDS):
        self.config = config
        self.stop = stop
        self.every = every
        a, b = config.connections
        self.pairs = [(s, t) for s, t in ((a, b), (b, a)) if s.kind == "mariadb"]

    def run(self) -> None:
        while self.pairs and not self.stop.is_set():
            for source, target in self.pairs:
                self.refresh(source, target)
            self.stop.wait(self.every)

    def refresh(self, source: Connection, target: Connection) -> float | None:
        """Measure and export one source's margin; None when it cannot be measured now."""
        applier = make_applier(target, stream_name(source.name, target.name), "")
        try:
            applier.connect()
            try:
                position = applier.read_checkpoint()
            finally:
                applier.close()
            if not isinstance(position, BinlogPosition):
                return None
            margin = read_retention(source, position.file).margin_seconds
        except ReplicatorError as exc:
            log.info("binlog retention of %s not measured: %s", source.name, exc)
            return None
        metrics.binlog_retention_margin.labels(source.name).set(margin)
        return margin
