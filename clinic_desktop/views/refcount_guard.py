"""Keeps ``None``/``True``/``False`` alive under PySide6 6.12 on Python 3.11.

PySide6 6.12 drops one reference to ``None`` on every void Qt method call and one to
``True`` on every ``Signal.emit()``. On Python 3.12+ those objects are immortal and nothing
happens; on 3.11 the count eventually reaches zero and the interpreter aborts
("Fatal Python error: none_dealloc") — after hours of ordinary use at a desk. The guard
checks the counts on a timer and, when one runs low, holds a block of extra references, so
the lost ones are never the last ones.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, QTimer

FLOOR = 2_000_000  # references kept in hand; ~250 are lost per 100k-row sync
BLOCK = 4_000_000  # added at once when below the floor (32 MB of list slots at most)
CHECK_MS = 5_000

_ballast: list[list[object]] = []


def top_up() -> None:
    """Hold more references to any of the singletons whose count fell below the floor.

    Each block is itself pinned (one extra reference nobody releases), so it is never freed,
    not even at interpreter exit: freeing it would hand back references the bug already took,
    and the count would reach zero during shutdown instead.
    """
    for singleton in (None, True, False):
        if sys.getrefcount(singleton) < FLOOR:
            block: list[object] = [singleton] * BLOCK
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(block))
            _ballast.append(block)


class RefcountGuard(QObject):
    """Runs :func:`top_up` now and every few seconds for the life of the application."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        top_up()
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_MS)
        self._timer.timeout.connect(top_up)
        self._timer.start()
