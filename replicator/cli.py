"""Command line: the only place that exits.

    replicator check --config replicator.yaml
    replicator setup --config replicator.yaml [--print-sql] [--reset]
    replicator run   --config replicator.yaml
    replicator explain --config replicator.yaml --mapping NAME --side SIDE (--key K[,K2] | --row JSON) [--json]
    replicator sync    --config replicator.yaml [--mapping NAME ...]
    replicator verify  --config replicator.yaml [--mapping NAME ...] [--repair]
    replicator status  --config replicator.yaml [--json] [--max-lag SECONDS]
    replicator conflicts --config replicator.yaml [--mapping M] [--key K] [--since 1h] [--pending] [--json]
    replicator conflicts --config replicator.yaml resolve ID --take SIDE
    replicator conflicts --config replicator.yaml trim
    replicator dlq --config replicator.yaml [list|show ID|retry|skip] [--mapping M] [--key K] [--all] [--force] [--json]
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from replicator.stream.pipeline import MappingHolder

from replicator import __version__, metrics
from replicator.stream import sdnotify
from replicator.verify import command as verify
from replicator.config import Config, load
from replicator.connect import DRIVER_ERRORS, mysql_message
from replicator.errors import (EXIT_CONFIG, EXIT_FATAL, EXIT_OK, EXIT_OPERATOR, CheckpointError, ConfigError,
                               ReplicatorError, RetriableError, SourceLostError)
from replicator.mapping.model import MappingSet, load_mappings

log = logging.getLogger("replicator")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replicator", description="Two-way CDC between PostgreSQL and MariaDB.")
    p.add_argument("--version", action="version", version=f"replicator {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("run", "start the daemon"), ("check", "preflight: settings, privileges, catalogs"),
                       ("setup", "create publication, slot, state tables; record start positions")):
        c = sub.add_parser(name, help=text)
        c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
        c.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
        if name == "setup":
            c.add_argument("--print-sql", action="store_true", help="print the SQL instead of running it")
            c.add_argument("--reset", nargs="?", const="all", metavar="STREAM",
                           help="move a stream's checkpoint (e.g. crm_to_erp; default: all) to the source's "
                                "current position, skipping pending changes; then re-sync with `replicator sync`")
        if name == "run":
            c.add_argument("--skip-check", action="store_true", help="start without the preflight checks")
    c = sub.add_parser("sync", help="copy existing rows through the mappings (consistent with the stream)")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    c.add_argument("--mapping", action="append", metavar="NAME", help="only this mapping (repeatable; default: all)")
    c.add_argument("--skip-check", action="store_true", help="start without the preflight checks")
    c = sub.add_parser("verify", help="compare both sides through the mappings; --repair fixes the differences")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    verify.add_arguments(c)
    c = sub.add_parser("status", help="where each direction and source stands; exit 0 healthy, 1 degraded, 2 stopped")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    c.add_argument("--json", action="store_true", help="print a JSON object")
    c.add_argument("--max-lag", type=float, default=60.0, metavar="SECONDS",
                   help="lag above this is degraded (default: %(default)s)")
    c.add_argument("--sample", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between the two reads of the daemon's metrics for rows/s (default: %(default)s)")
    c = sub.add_parser("explain", help="what one row becomes on the other side and why (writes nothing)")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    c.add_argument("--mapping", required=True, help="the mapping's name")
    c.add_argument("--side", required=True, help="the side the row comes from (a connection name)")
    row = c.add_mutually_exclusive_group(required=True)
    row.add_argument("--key", help="read the row from SIDE's database by the mapping's key (K or K1,K2); a fold "
                     "through a link table (fold.via) takes its parent's key")
    row.add_argument("--row", help="use this JSON object as the row instead of reading it")
    c.add_argument("--json", action="store_true", help="print a JSON object")
    c.add_argument("--offline", action="store_true", help="connect to nothing: counterparts are not looked up")
    c = sub.add_parser("conflicts", help="list recorded conflicts; `resolve ID --take SIDE` settles a pending one")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    from replicator.admin.conflicts import add_arguments as conflict_arguments

    conflict_arguments(c)
    c = sub.add_parser("scaffold", help="print a draft mapping for two tables, read from both live catalogs")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    c.add_argument("--table", action="append", required=True, metavar="SIDE=TABLE",
                   help="a table of each side, e.g. --table crm=public.customer --table erp=customers")
    c.add_argument("--name", help="the mapping's name (default: the second table's name)")
    c = sub.add_parser("crosswalk", help="rename: move a crosswalk pair to a record's new key (daemon stopped)")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    from replicator.admin.crosswalk import add_arguments as crosswalk_arguments

    crosswalk_arguments(c)
    c = sub.add_parser("dlq", help="the dead-letter queue: list, show ID, retry or skip quarantined rows")
    c.add_argument("--config", "-c", default="replicator.yaml", help="configuration file (default: %(default)s)")
    c.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    from replicator.admin.dlq import add_arguments as dlq_arguments

    dlq_arguments(c)
    return p


def _scaffold(config: Config, args: argparse.Namespace) -> int:
    from replicator.mapping.scaffold import draft, mapping_name, read_table

    tables = dict(t.split("=", 1) for t in args.table if "=" in t)
    names = [c.name for c in config.connections]
    if len(args.table) != 2 or set(tables) != set(names):
        raise ConfigError(f"scaffold takes one --table SIDE=TABLE per side: --table {names[0]}=... "
                          f"--table {names[1]}=...")
    a, b = (read_table(c, c.name, tables[c.name], "public" if c.kind == "postgresql" else c.database)
            for c in config.connections)
    print(draft(args.name or mapping_name(b.table.name), a, b), end="")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        config = load(args.config)
        if args.command == "status":  # reads state only: works while the mapping files are being fixed
            return _status(config, args)
        if args.command == "scaffold":  # writes the first mapping: needs none
            return _scaffold(config, args)
        mappings = load_mappings(config)
        if args.command == "check":
            return _check(config, mappings)
        if args.command == "setup":
            return _setup(config, mappings, args)
        if args.command == "explain":
            return _explain(config, mappings, args)
        if args.command == "conflicts":
            from replicator.admin import conflicts

            return conflicts.command(args, config, mappings, sys.stdout)
        if args.command == "crosswalk":
            from replicator.admin import crosswalk

            moved = crosswalk.rename(config, mappings, args.mapping, args.side, args.old, args.new)
            print(crosswalk.render(moved, [c.name for c in config.connections]), end="")
            return EXIT_OK
        if args.command == "dlq":
            from replicator.admin import dlq

            return dlq.command(args, config, mappings, sys.stdout)
        if args.command in ("sync", "verify"):
            unknown = [n for n in args.mapping or [] if n not in mappings.by_name]
            if unknown:
                raise ConfigError(f"no mapping named {unknown[0]!r}; the mappings are "
                                  f"{', '.join(m.name for m in mappings.mappings)}")
        if args.command == "sync":
            return _sync(config, mappings, args)
        if args.command == "verify":
            return verify.command(args, config, mappings, sys.stdout)
        return _run(config, mappings, skip_check=args.skip_check)
    except ConfigError as exc:
        metrics.errors.labels("-", exc.kind).inc()
        print(f"replicator: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (SourceLostError, CheckpointError) as exc:
        print(f"replicator: {exc.kind} error: {exc}", file=sys.stderr)
        return EXIT_OPERATOR
    except ReplicatorError as exc:
        print(f"replicator: {exc.kind} error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except DRIVER_ERRORS as exc:
        # a server lost in the middle of a command (restarted, killed our session) where no layer below turned
        # the driver's error into ours: the server's words, not a traceback (which --log-level debug shows)
        log.debug("database error", exc_info=True)
        orig = getattr(exc, "orig", None) or exc
        print(f"replicator: database error: {mysql_message(orig)}; the command did not finish", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        return EXIT_OK


def _check(config: Config, mappings: MappingSet) -> int:
    from replicator.admin.preflight import failures, lost_position, run_checks

    findings = run_checks(config, mappings)
    findings += _conflict_tables(config, mappings, raise_unreachable=False)
    for f in findings:
        print(f)
    bad = failures(findings)
    warned = [f for f in findings if f.warning]
    print(f"\n{len(findings) - len(bad) - len(warned)} ok, " + (f"{len(warned)} warnings, " if warned else "")
          + f"{len(bad)} failed")
    if lost_position(findings):
        return EXIT_OPERATOR  # as `run` exits on it: a lost position is not a configuration error
    return EXIT_CONFIG if bad else EXIT_OK


def _conflict_tables(config: Config, mappings: MappingSet, raise_unreachable: bool) -> list[Any]:
    """The conflicts table where two-way mappings write (replicator.admin.conflicts.table_findings)."""
    from replicator.admin.conflicts import table_findings

    try:
        return table_findings(config, mappings)
    except RetriableError:
        if raise_unreachable:
            raise
        return []  # run_checks already reported the unreachable server
    except ReplicatorError:
        return []  # likewise (a login refused is reported by run_checks)


def _setup(config: Config, mappings: MappingSet, args: argparse.Namespace) -> int:
    from replicator.admin.provision import describe, setup

    if args.print_sql:
        print(describe(config, mappings))
        return EXIT_OK
    setup(config, mappings, reset=args.reset)
    return EXIT_OK


def _explain(config: Config, mappings: MappingSet, args: argparse.Namespace) -> int:
    from replicator.admin.conflicts import recent_for_row
    from replicator.mapping.explain import run

    print(run(config, mappings, mapping=args.mapping, side=args.side, key=args.key, row=args.row,
              as_json=args.json, offline=args.offline, conflicts=recent_for_row))
    return EXIT_OK


def _status(config: Config, args: argparse.Namespace) -> int:
    from replicator.admin.status import collect, render

    st = collect(config, max_lag=args.max_lag, sample_seconds=args.sample)
    print(st.to_json() if args.json else render(st))
    return st.state  # 0 healthy, 1 degraded, 2 stopped


def _daemon_running(config: Config) -> bool:
    """True when a replicator daemon holds a stream's session lock in its target."""
    from replicator.appliers import make_applier
    from replicator.errors import FatalError
    from replicator.loopguard import stream_name

    a, b = config.connections
    for source, target in ((a, b), (b, a)):
        applier = make_applier(target, stream_name(source.name, target.name), "")
        applier.connect()
        try:
            applier.lock(fail_fast=True)
        except FatalError:
            return True
        finally:
            applier.close()  # the session lock goes with the session
    return False


def _sync(config: Config, mappings: MappingSet, args: argparse.Namespace) -> int:
    """Request the copies; a running daemon performs them, otherwise the streams run here until done."""
    from replicator.stream.pipeline import Daemon, MappingHolder
    from replicator.sync.progress import SyncMonitor
    from replicator.sync.state import request

    wanted = request(config, mappings, args.mapping)
    monitor = SyncMonitor(config, wanted)
    names = ", ".join(sorted({m for _t, _s, m in wanted}))
    if _daemon_running(config):
        print(f"sync of {names} requested; the running daemon copies the rows (Ctrl-C stops watching, "
              f"not the copy)")
        monitor.watch(sys.stdout)
        return EXIT_OK
    stopping = threading.Event()
    if not args.skip_check:
        refused = _preflight(config, mappings, stopping)
        if refused is not None:
            return refused
    # only what was asked for: mappings never copied before wait for `run` (or a `sync` without --mapping)
    from dataclasses import replace

    daemon = Daemon(replace(config, sync=replace(config.sync, on_first_run=False)), MappingHolder(mappings))
    for direction in daemon.directions:
        direction.shapes.check_first = not args.skip_check

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping; the copy resumes from its last chunk next time", signum)
        stopping.set()
        daemon.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"sync of {names}: no daemon is running, so this process streams until the copy is done")
    daemon.start()

    def finished() -> BaseException | None:
        if daemon.errors:
            return daemon.errors[0]
        if stopping.is_set() or not any(t.is_alive() for t in daemon.threads):
            return KeyboardInterrupt()
        return None

    error = monitor.watch(sys.stdout, finished)
    if error is None:
        # children copied before their parent's pair existed (the other direction made it) are parked:
        # both directions retry them once the copies are done; then say what still waits
        from replicator.sync.progress import parked_lines, still_parked, wait_settled

        error = wait_settled(lambda: all(d.sync.parked_settled for d in daemon.directions), finished)
        if error is None:
            for text in parked_lines(still_parked(config)):
                print(text)
    daemon.shutdown()
    if error is None:
        return EXIT_OK
    if isinstance(error, KeyboardInterrupt):
        print("replicator: sync interrupted; `replicator sync` or `replicator run` resumes it", file=sys.stderr)
        return EXIT_FATAL
    return _exit_for(error)


def _exit_for(exc: BaseException) -> int:
    kind = getattr(exc, "kind", type(exc).__name__)
    print(f"replicator: stopped on {kind} error: {exc}", file=sys.stderr)
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    return EXIT_OPERATOR if isinstance(exc, (SourceLostError, CheckpointError)) else EXIT_FATAL


def _preflight(config: Config, mappings: MappingSet, stop: threading.Event) -> int | None:
    """Run the checks, waiting (with back-off) while a server is unreachable; the exit code on
    failures (79 when a source lost a stored position, 78 otherwise), None when all passed."""
    from replicator.admin.preflight import failures, lost_position, run_checks

    delay = config.reconnect_initial_seconds
    while not stop.is_set():
        try:
            findings = run_checks(config, mappings, raise_unreachable=True)
            findings += _conflict_tables(config, mappings, raise_unreachable=True)
            bad = failures(findings)
            break
        except RetriableError as exc:
            log.warning("preflight: %s; retrying in %.1f s", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, config.reconnect_max_seconds)
    else:
        return None
    for f in bad:
        print(f, file=sys.stderr)
    if not bad:
        return None
    print("replicator: preflight failed; fix the above (`replicator check` lists everything)", file=sys.stderr)
    return EXIT_OPERATOR if lost_position(findings) else EXIT_CONFIG


def _reload(config: Config, holder: "MappingHolder") -> None:
    """Validate the mapping files against both catalogs, then swap; on any error keep the old ones."""
    from replicator.admin.preflight import failures, run_checks

    try:
        mappings = load_mappings(config)
        bad = failures(run_checks(config, mappings, catalog_only=True))
        if bad:
            raise ConfigError("; ".join(f"{f.side}: {f.what}" for f in bad))
    except ReplicatorError as exc:
        metrics.mapping_reload_failures.inc()
        log.error("mapping reload refused, the running mappings stay in force: %s", exc)
        return
    holder.swap(mappings)
    metrics.mapping_reload_timestamp.set_to_current_time()
    log.info("mappings reloaded: %d mapping(s)", len(mappings.mappings))


def _run(config: Config, mappings: MappingSet, skip_check: bool) -> int:
    from replicator.stream import memory
    from replicator.stream.pipeline import Daemon, MappingHolder

    stopping = threading.Event()
    reload_requested = threading.Event()
    trace_seconds = memory.interval_from_env()
    # started before the daemon allocates anything, so its structures are traced from the start
    tracer = memory.MemoryTrace(trace_seconds, stopping, os.environ.get(memory.ENV_FILE)) if trace_seconds else None
    holder = MappingHolder(mappings)
    daemon = Daemon(config, holder)
    for direction in daemon.directions:  # the start-up check's refusals waived: the stream's recheck too
        direction.shapes.check_first = not skip_check

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        sdnotify.notify("STOPPING=1")
        stopping.set()
        daemon.stop.set()

    def on_hup(_signum: int, _frame: object) -> None:
        reload_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    metrics.serve(config.metrics_address, config.metrics_port)
    metrics.mapping_reload_timestamp.set_to_current_time()
    if not skip_check:
        refused = _preflight(config, mappings, stopping)
        if refused is not None:
            return refused
    if stopping.is_set():
        return EXIT_OK
    memory.tune_gc()
    daemon.start()
    if tracer is not None:
        daemon.start_side_job("memory-trace", tracer.run)
    daemon.start_side_job("memory-trim", memory.Trimmer(daemon.stop).run)
    from replicator.stream.retention import RetentionMonitor

    daemon.start_side_job("binlog-retention", RetentionMonitor(config, daemon.stop).run)
    if config.verify.every_seconds > 0:
        from replicator.verify.periodic import PeriodicVerifier

        daemon.start_side_job("verify", PeriodicVerifier(config, holder, daemon.stop).run)
    if config.conflicts.housekeeping_seconds > 0:
        from replicator.admin.conflicts import Housekeeping

        daemon.start_side_job("conflicts", Housekeeping(config, daemon.stop).run)
    sdnotify.notify("READY=1")
    interval = sdnotify.watchdog_interval()
    last_ping = 0.0

    def poll() -> None:
        nonlocal last_ping
        if reload_requested.is_set():
            reload_requested.clear()
            sdnotify.notify("RELOADING=1")
            _reload(config, holder)
            sdnotify.notify("READY=1")
        now = time.monotonic()
        if interval and now - last_ping >= interval and daemon.healthy(within=interval * 2):
            sdnotify.notify("WATCHDOG=1")
            last_ping = now

    daemon.wait(poll)
    if daemon.errors:
        return _exit_for(daemon.errors[0])
    return EXIT_OK
