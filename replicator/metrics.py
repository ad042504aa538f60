"""Every metric replicator exports. Labels are bounded: direction, table, op, kind, side.

Never put key values or credentials in a label.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from replicator.conflicts.model import Conflict

REGISTRY = CollectorRegistry(auto_describe=True)

changes_read = Counter(
    "replicator_changes_read_total",
    "Row changes decoded from the source, before mapping.",
    ["direction", "table"],
    registry=REGISTRY,
)
transactions_applied = Counter(
    "replicator_transactions_applied_total",
    "Source transactions applied to the target and checkpointed.",
    ["direction"],
    registry=REGISTRY,
)
rows_applied = Counter(
    "replicator_rows_applied_total",
    "Rows written to the target, by operation.",
    ["direction", "table", "op"],
    registry=REGISTRY,
)
rows_missing = Counter(
    "replicator_rows_missing_total",
    "Updates or deletes whose target row did not exist (counted, not fatal).",
    ["direction", "table", "op"],
    registry=REGISTRY,
)
# Counted per transaction read back, and each of those is one target transaction (batch) of the
# opposite direction, which carries many source transactions: named for what it compares with.
loop_dropped = Counter(
    "replicator_loop_dropped_batches_total",
    "Transactions read from the source that replicator itself wrote there, dropped (loop prevention). "
    "One per target transaction (batch, heartbeats included) of the opposite direction: compare with that "
    "direction's replicator_apply_batch_rows_count, not with replicator_transactions_applied_total.",
    ["direction"],
    registry=REGISTRY,
)
zero_dates = Counter(
    "replicator_zero_dates_total",
    "MariaDB zero dates (0000-00-00, a zero month or day, the zero TIMESTAMP) and impossible dates (2024-02-30) "
    "read from the binlog, carried or not: a zero date NULL only where the field says zero_date: null, a row error "
    "where a mapping carries the column otherwise; an impossible date a row error wherever a mapping carries it.",
    ["direction", "table"],
    registry=REGISTRY,
)
source_schema_changes = Counter(
    "replicator_source_schema_changes_total",
    "A mapped source table's columns changed while streaming (ALTER TABLE) and the mapped columns still "
    "carry exactly; a change they cannot carry stops the direction (errors_total kind=schema).",
    ["direction", "table"],
    registry=REGISTRY,
)
target_schema_changes = Counter(
    "replicator_target_schema_changes_total",
    "A table the direction writes changed while streaming (ALTER TABLE), found before the commit of the first "
    "transaction written into the new shape, and the mapped columns still carry exactly: planned anew and "
    "applied again; a change they cannot carry stops the direction (errors_total kind=schema).",
    ["direction", "table"],
    registry=REGISTRY,
)
rows_filtered = Counter(
    "replicator_rows_filtered_total",
    "Source changes a mapping did not send: filtered out, gate not open, delete: ignore, a record outside "
    "the referenced mapping (replicator_rows_outside_total), a referenced record that can never get a counterpart.",
    ["direction", "table"],
    registry=REGISTRY,
)
rows_outside = Counter(
    "replicator_rows_outside_total",
    "Source changes of a row keyed by a record (`references:` on its key, or a fold's parent) whose record exists "
    "in the source but outside the referenced mapping's slice or filter (`outside_of`; never in it, or left since): "
    "not carried, not parked. "
    "Each is logged; also counted in replicator_rows_filtered_total.",
    ["direction", "mapping", "outside_of"],
    registry=REGISTRY,
)
rows_left = Counter(
    "replicator_rows_left_total",
    "Source rows that left a mapping's filter or slice (the old row matched, the new one does not), by what "
    "the mapping's `leave:` (else its `delete:`) did to the counterpart: propagate (deleted), set (soft "
    "deleted), ignore (kept).",
    ["direction", "mapping", "action"],
    registry=REGISTRY,
)
rows_parked = Gauge(
    "replicator_parked_rows",
    "Changes waiting in <state_schema>.parked for a referenced record that has no counterpart yet.",
    ["direction"],
    registry=REGISTRY,
)
parked_oldest_age = Gauge(
    "replicator_parked_oldest_age_seconds",
    "Age of the oldest change waiting in <state_schema>.parked (0: none). A child whose parent never "
    "arrives stays forever unless its mapping has `parked: {drop_after_days: N}`.",
    ["direction"],
    registry=REGISTRY,
)
parked_dropped = Counter(
    "replicator_parked_dropped_total",
    "Parked changes dropped by their mapping's retention (`parked: {drop_after_days: N}`); each is logged.",
    ["direction", "mapping"],
    registry=REGISTRY,
)
fold_refused = Counter(
    "replicator_fold_refused_total",
    "Changes of a fold mapping refused because a parent has several child rows of the type its one column carries.",
    ["direction", "mapping"],
    registry=REGISTRY,
)
links_created = Counter(
    "replicator_links_created_total",
    "Pairs of linked records created: by crosswalk insert, or by natural key match.",
    ["direction", "mapping", "how"],
    registry=REGISTRY,
)
truncates_ignored = Counter(
    "replicator_truncates_ignored_total",
    "Source TRUNCATEs not propagated because the mapping says `truncate: ignore`.",
    ["direction", "table"],
    registry=REGISTRY,
)
lag_seconds = Gauge(
    "replicator_lag_seconds",
    "Now minus the source commit time of the last applied transaction.",
    ["direction"],
    registry=REGISTRY,
)
source_clock_skew = Gauge(
    "replicator_source_clock_skew_seconds",
    "The source server's clock minus the daemon's, as last sampled (replicator_lag_seconds subtracts it).",
    ["direction"],
    registry=REGISTRY,
)
last_applied_timestamp = Gauge(
    "replicator_last_applied_timestamp_seconds",
    "Unix time of the source commit of the last applied transaction.",
    ["direction"],
    registry=REGISTRY,
)
class Stamp:
    """`gauge.set_to_current_time()` at most every `interval` seconds. The binlog reader stamps
    replicator_last_event_timestamp_seconds on every event except the rows of mapped tables (stamped at
    each chunk instead) and GTID events (their transaction's boundary follows): a single-row
    transaction's Xid event. Stamping every event through the gauge's lock took about 5% of the reader
    thread in the erp_to_crm burst profile. Alerts read it on a scale of tens of seconds."""

    def __init__(self, gauge: Any, interval: float = 0.1):
        self.gauge = gauge
        self.interval = interval
        self._last = 0.0

    def __call__(self) -> None:
        now = time.time()
        if now - self._last >= self.interval:
            self.gauge.set(now)
            self._last = now


def adder(child: Any) -> Any:
    """`child.inc` of a Counter's labelled child for a per-transaction hot path (the binlog reader's rows read):
    the child's value's own `inc` (its lock and addition) when prometheus_client has one, without
    `Counter.inc`'s two checks, which cannot fail there (a labelled child is observable; the caller never
    adds a negative amount) and its exemplar argument (never given). Else `child.inc` itself."""
    inc = getattr(getattr(child, "_value", None), "inc", None)
    return inc if callable(inc) and getattr(child, "_type", None) == "counter" else child.inc


last_event_timestamp = Gauge(
    "replicator_last_event_timestamp_seconds",
    "Unix time at which the source last sent anything (events or keepalives).",
    ["direction"],
    registry=REGISTRY,
)
batch_seconds = Histogram(
    "replicator_apply_batch_duration_seconds",
    "Time to apply and commit one target batch.",
    ["direction"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
batch_rows = Histogram(
    "replicator_apply_batch_rows",
    "Rows in one committed target batch.",
    ["direction"],
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
    registry=REGISTRY,
)
errors = Counter(
    "replicator_errors_total",
    "Errors by kind (config, schema, retriable, row, fatal, source_lost, checkpoint, decode).",
    ["direction", "kind"],
    registry=REGISTRY,
)
connection_up = Gauge(
    "replicator_connection_up",
    "1 while the connection is established, else 0.",
    ["side", "role"],
    registry=REGISTRY,
)
queue_depth = Gauge(
    "replicator_queue_depth",
    "Decoded chunks waiting between the source reader and the applier.",
    ["direction"],
    registry=REGISTRY,
)
slot_retained_bytes = Gauge(
    "replicator_slot_retained_wal_bytes",
    "WAL retained by the replication slot (current LSN minus restart_lsn).",
    ["side"],
    registry=REGISTRY,
)
slot_safe_wal_bytes = Gauge(
    "replicator_slot_safe_wal_bytes",
    "Bytes left before the slot is invalidated by max_slot_wal_keep_size (-1 if unlimited).",
    ["side"],
    registry=REGISTRY,
)
retries = Counter(
    "replicator_retries_total",
    "Retriable errors a direction tried again after, by cause (deadlock, serialization, lock_timeout, other).",
    ["direction", "cause"],
    registry=REGISTRY,
)
binlog_retention_margin = Gauge(
    "replicator_binlog_retention_margin_seconds",
    "Seconds until MariaDB purges the binlog file the checkpoint needs (binlog_expire_logs_seconds minus the "
    "age of the oldest binlog file that is not older than it); -1 when binlogs never expire.",
    ["side"],
    registry=REGISTRY,
)
running = Gauge(
    "replicator_direction_running",
    "1 while the direction streams, 0 when stopped on an error.",
    ["direction"],
    registry=REGISTRY,
)
mapping_reload_failures = Counter(
    "replicator_mapping_reload_failures_total",
    "Mapping reloads refused because the new files were invalid.",
    registry=REGISTRY,
)
mapping_reload_timestamp = Gauge(
    "replicator_mapping_last_reload_timestamp_seconds",
    "Unix time of the last successful mapping load.",
    registry=REGISTRY,
)

# -- initial sync (replicator.sync.driver)
sync_rows = Counter(
    "replicator_sync_rows_total",
    "Rows a sync (initial or on-demand copy) has read from the source and applied through the mapping.",
    ["direction", "mapping"],
    registry=REGISTRY,
)
sync_rows_skipped = Counter(
    "replicator_sync_rows_skipped_total",
    "Rows a sync read from the source that are outside the mapping's slice or filter: not copied.",
    ["direction", "mapping"],
    registry=REGISTRY,
)
sync_rows_estimated = Gauge(
    "replicator_sync_rows_estimated",
    "Rows the running sync expects to copy (the source table's row estimate).",
    ["direction", "mapping"],
    registry=REGISTRY,
)
sync_running = Gauge(
    "replicator_sync_running",
    "1 while a sync of the mapping runs in this direction.",
    ["direction", "mapping"],
    registry=REGISTRY,
)
sync_errors = Counter(
    "replicator_sync_errors_total",
    "Errors of a sync's reader: retriable (the session backs off and resumes the copy) or fatal (the daemon stops).",
    ["direction", "kind"],
    registry=REGISTRY,
)
sync_completed_timestamp = Gauge(
    "replicator_sync_last_completed_timestamp_seconds",
    "Unix time the last sync of the mapping finished in this direction.",
    ["direction", "mapping"],
    registry=REGISTRY,
)

# -- verification (replicator.verify.command)
verify_rows_differing = Gauge(
    "replicator_verify_rows_differing",
    "Rows the last complete verification found missing or different (after re-checking), by target table.",
    ["table"],
    registry=REGISTRY,
)
verify_rows_checked = Counter(
    "replicator_verify_rows_checked_total",
    "Source rows compared with their counterpart by verification.",
    ["table"],
    registry=REGISTRY,
)
verify_last_complete = Gauge(
    "replicator_verify_last_complete_timestamp_seconds",
    "Unix time the last verification of every mapping completed.",
    registry=REGISTRY,
)
verify_seconds = Gauge(
    "replicator_verify_duration_seconds",
    "How long the last complete verification took.",
    registry=REGISTRY,
)
rows_repaired = Counter(
    "replicator_verify_rows_repaired_total",
    "Rows `verify --repair` wrote to make the sides agree, by target table.",
    ["table"],
    registry=REGISTRY,
)

# -- conflicts (replicator.conflicts): both sides edited one record before either edit reached the other
conflicts = Counter(
    "replicator_conflicts_total",
    "Conflicts decided while applying, by target table, kind (update_differs, ...) and resolution "
    "(applied, kept, pending).",
    ["direction", "table", "kind", "resolution"],
    registry=REGISTRY,
)
conflict_checks_skipped = Counter(
    "replicator_conflict_checks_skipped_total",
    "Two-way updates written whole and unchecked because the source sent no full old row (PostgreSQL "
    "without REPLICA IDENTITY FULL): a concurrent edit of another field may be overwritten. `check` names "
    "the tables and `setup` fixes them.",
    ["direction", "table"],
    registry=REGISTRY,
)
conflicts_pending = Gauge(
    "replicator_conflicts_pending",
    "Conflicts of `conflicts: manual` fields waiting for `replicator conflicts resolve`, by target table "
    "(refreshed by the housekeeping pass).",
    ["table"],
    registry=REGISTRY,
)
conflicts_oldest_pending = Gauge(
    "replicator_conflicts_oldest_pending_timestamp_seconds",
    "Unix time the oldest conflict still pending was detected, by target table (refreshed with "
    "replicator_conflicts_pending; no sample when none is pending).",
    ["table"],
    registry=REGISTRY,
)
conflicts_trimmed = Counter(
    "replicator_conflicts_trimmed_total",
    "Conflict records deleted by the retention (conflicts.retention_days), by side.",
    ["side"],
    registry=REGISTRY,
)

# -- active/standby (replicator.stream.lease)
role = Gauge(
    "replicator_role",
    "1 while this instance applies the direction (active), 0 while it waits as a standby.",
    ["direction"],
    registry=REGISTRY,
)

# -- the dead-letter queue (replicator.stream.deadletter): rows quarantined by `on_error: quarantine`
dead_letter_rows = Gauge(
    "replicator_dead_letter_rows",
    "Changes waiting in <state_schema>.dead_letter of the target, by direction and target table: rows "
    "the target rejected and later changes of the same rows queued behind them (`replicator dlq`).",
    ["direction", "table"],
    registry=REGISTRY,
)


def count_conflicts(direction: str, found: "Sequence[Conflict]") -> None:
    """Count conflicts a direction decided. Labels are the target table, kind and resolution: never a key."""
    for c in found:
        conflicts.labels(direction, str(c.table), c.kind, c.resolution).inc()


def serve(address: str, port: int) -> None:
    """Serve /metrics in a daemon thread."""
    import errno

    from replicator.errors import ConfigError, FatalError

    try:
        start_http_server(port, addr=address, registry=REGISTRY)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            # the usual cause: the same configuration started twice (the socket allows address reuse,
            # so a lingering connection of a stopped daemon does not get here)
            raise FatalError(
                f"metrics port {address}:{port} is already in use: another replicator instance is probably "
                f"running with this configuration; stop it first (or give this one its own metrics.port)"
            ) from None
        raise ConfigError(f"cannot serve metrics on {address}:{port}: {exc.strerror}",
                          hint="pick a free port in metrics.port") from None
