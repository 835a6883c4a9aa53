"""The application survives PySide6 6.12's lost references to True/None on Python 3.11."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from clinic_desktop.views import refcount_guard


class _Pinger(QObject):
    ping = Signal(float)


def test_lost_references_are_replaced_before_they_run_out(qtbot: object) -> None:
    pinger = _Pinger()
    pinger.ping.connect(lambda _value: None)
    refcount_guard.top_up()
    for _ in range(20_000):  # each emit may drop a reference to True (PySide6 6.12, 3.11)
        pinger.ping.emit(1.0)
    refcount_guard.top_up()
    for singleton in (None, True, False):
        assert sys.getrefcount(singleton) >= refcount_guard.FLOOR
