"""How long a direction waits before it tries again after a retriable error, by cause.

A deadlock or a serialization failure is not an outage: the other transaction won, ours was rolled
back, and running it again at once almost always succeeds (on a busy ERP they are routine). So the
first few of them in a row are retried at once, after a few milliseconds of jitter so that two
writers that collided do not collide again in step. Anything else (a dropped connection, a server
restarting), or a conflict that keeps coming back, waits with exponential back-off. A successful
commit proves the path works again, and so does a session that streamed for a minute (an idle
source has nothing to commit): the back-off starts over from the initial delay.

Every wait is on the daemon's stop Event, so SIGTERM ends it at once.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

# the values of the `cause` label of replicator_retries_total (bounded)
DEADLOCK, SERIALIZATION, LOCK_TIMEOUT, OTHER = "deadlock", "serialization", "lock_timeout", "other"
CAUSES = (DEADLOCK, SERIALIZATION, LOCK_TIMEOUT, OTHER)
CONFLICTS = frozenset({DEADLOCK, SERIALIZATION, LOCK_TIMEOUT})  # retried at once

# a session that streamed this long had recovered, even if an idle source gave it nothing to commit
WORKED_SECONDS = 60.0

_MARIADB = {1213: DEADLOCK, 1205: LOCK_TIMEOUT}  # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
_SQLSTATE = {"40P01": DEADLOCK, "40001": SERIALIZATION, "55P03": LOCK_TIMEOUT}
# the server's own words, for errors that reach us re-raised without the driver's exception
_TEXT = (("deadlock", DEADLOCK), ("could not serialize", SERIALIZATION), ("lock wait timeout", LOCK_TIMEOUT))


def cause_of(exc: BaseException) -> str:
    """The cause label of a retriable error.

    The appliers re-raise the driver's exception as RetriableError (`from None`, so it stays in
    __context__): its MariaDB error number or PostgreSQL SQLSTATE decides, read by attribute so the
    driver types stay in the appliers; the message text is the fallback."""
    seen: BaseException | None = exc
    for _ in range(4):  # the chain is one or two deep; never loop on a cycle
        if seen is None:
            break
        code = getattr(seen, "pgcode", None)
        if isinstance(code, str) and code in _SQLSTATE:
            return _SQLSTATE[code]
        args = getattr(seen, "args", ())
        if args and isinstance(args[0], int) and args[0] in _MARIADB:
            return _MARIADB[args[0]]
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    for words, cause in _TEXT:
        if words in text:
            return cause
    return OTHER


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float  # the first back-off wait (config reconnect_initial_seconds)
    max_seconds: float  # the longest (config reconnect_max_seconds)
    immediate: int = 3  # conflicts in a row retried at once before they back off too
    jitter_seconds: float = 0.05  # an immediate retry waits up to this long, at random


class Backoff:
    """One direction's retry state. Not thread-safe: the direction's supervising thread owns it."""

    def __init__(self, policy: RetryPolicy, stop: threading.Event,
                 rand: Callable[[], float] = random.random):
        self.policy = policy
        self.stop = stop
        self._rand = rand
        self._delay = policy.initial_seconds
        self._conflicts = 0  # conflicts since the last successful commit

    def committed(self) -> None:
        """A target transaction committed: the next error starts from the beginning."""
        self._delay = self.policy.initial_seconds
        self._conflicts = 0

    def next_delay(self, cause: str) -> float:
        """Seconds to wait before the next attempt after an error of `cause`."""
        p = self.policy
        if cause in CONFLICTS and self._conflicts < p.immediate:
            self._conflicts += 1
            return p.jitter_seconds * self._rand()
        delay = self._delay
        self._delay = min(self._delay * 2, p.max_seconds)
        return delay * (0.9 + 0.2 * self._rand())  # spread reconnects of many instances

    def wait(self, seconds: float, alive: Callable[[], None] | None = None) -> bool:
        """Wait on the stop Event; True when the wait ran out, False when stopping. `alive` is
        called about every second (the watchdog: waiting out an outage is healthy, not hung)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return not self.stop.is_set()
            if self.stop.wait(min(1.0, left)):
                return False
            if alive is not None:
                alive()
