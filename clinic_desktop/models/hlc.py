"""Hybrid logical clock.

Timestamps are strings that sort lexicographically in causal order, so both SQLite and
PostgreSQL can compare them with plain ``<`` and the sync protocol can ship them as JSON.
Format: 15-digit milliseconds since the epoch, 6-digit counter, node id, joined by ``-``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_MS_WIDTH = 15
_COUNTER_WIDTH = 6
# Stamps live in 48-character columns (``updated_at``, ``hlc``): 15 + 1 + 6 + 1 + 25. A device
# id is a 36-character UUID; its first 25 characters (21 hex digits) still tell devices apart
# for tie-breaking.
MAX_NODE = 25


def format_hlc(millis: int, counter: int, node: str) -> str:
    """Render the parts of an HLC timestamp as its sortable string (at most 48 characters)."""
    return f"{millis:0{_MS_WIDTH}d}-{counter:0{_COUNTER_WIDTH}d}-{node[:MAX_NODE]}"


def parse_hlc(stamp: str) -> tuple[int, int, str]:
    """Split a timestamp made by :func:`format_hlc` back into its parts."""
    millis, counter, node = stamp.split("-", 2)
    return int(millis), int(counter), node


class HybridLogicalClock:
    """Issues monotonic timestamps even when the wall clock jumps back.

    ``observe`` folds in timestamps seen from other devices so that a change made after
    seeing a remote one always sorts after it.
    """

    def __init__(self, node: str, wall_ms: Callable[[], int] | None = None) -> None:
        self._node = node
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._millis = 0
        self._counter = 0
        self._lock = threading.Lock()

    @property
    def node(self) -> str:
        return self._node

    def now(self) -> str:
        """A new timestamp, later than every one issued or observed before."""
        with self._lock:
            wall = self._wall_ms()
            if wall > self._millis:
                self._millis, self._counter = wall, 0
            else:
                self._counter += 1
            return format_hlc(self._millis, self._counter, self._node)

    def observe(self, stamp: str | None) -> None:
        """Advance past a timestamp received from elsewhere."""
        if not stamp:
            return
        millis, counter, _ = parse_hlc(stamp)
        with self._lock:
            if millis > self._millis or (millis == self._millis and counter > self._counter):
                self._millis, self._counter = millis, counter
