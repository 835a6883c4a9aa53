"""Type-ahead in the reception window over 100,000 patients (issue 3, numbers to measure).

Types real names and phone fragments into the search box of a real ``ReceptionWindow``
(offscreen), one key at a time at typing speed, and measures for every keystroke the time
until the results table shows the answer for the text typed so far. A 2 ms timer on the main
thread records the longest gap between its ticks while typing: the longest stall a person
would feel. Prints JSON.

    .venv/bin/python benchmarks/typeahead_bench.py [--patients 100000] [--words 60]

The encrypted 100,000-patient store is built (or reused) by ``search_bench.py``'s builder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# PUMP_NOTE: PySide6 6.12's static QCoreApplication.processEvents() drops a reference to None
# on every call; after ~5,000 calls the interpreter aborts ("deallocating None"). A
# QEventLoop's own processEvents() does not, so loops that pump events use that.
from PySide6.QtCore import QElapsedTimer, QEvent, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QKeyEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from benchmarks.search_bench import desk_for, open_or_build, sample_queries  # noqa: E402
from clinic_desktop.services.context import Actor  # noqa: E402
from clinic_desktop.views.common import settle_heap  # noqa: E402


class _App:
    """The bits of ``ClinicApp`` a page reads."""

    def __init__(self, desk: Any) -> None:
        self.desk = desk
        self.store = None
        self.pdf_dir = Path(tempfile.mkdtemp(prefix="typeahead-"))
        self.boards: list[Any] = []


class StallProbe:
    """Longest gap between ticks of a fast main-thread timer."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(2)
        self.clock = QElapsedTimer()
        self.longest_ms = 0.0
        self._last = 0.0
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.clock.start()
        self._last = 0.0
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        self.longest_ms = max(self.longest_ms, now - self._last)
        self._last = now

    def stop(self) -> None:
        self.timer.stop()


def type_char(widget: QWidget, char: str) -> None:
    """One key press and release carrying ``char`` (any script), as a keyboard sends it."""
    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        QApplication.sendEvent(
            widget, QKeyEvent(kind, Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, char)
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=60, help="queries to type")
    parser.add_argument("--key-interval-ms", type=int, default=90, help="typing speed")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false;qt.text.font.db=false")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    pump = QEventLoop(app).processEvents  # see PUMP_NOTE
    engine, meta = open_or_build(args.patients, encrypted=True)
    desk = desk_for(engine)
    queries = sample_queries(engine, args.words)
    rng = random.Random(3)
    texts: list[str] = []
    for kind in ("full_name", "prefix_6", "phone_fragment"):
        texts += queries[kind][: args.words // 3]
    rng.shuffle(texts)

    from clinic_desktop.views.reception import ReceptionWindow
    from clinic_desktop.views.shell import DeskEvents, ViewContext

    actor = Actor("bench-user", "bench", "Bench Reception", frozenset({"receptionist"}))
    ctx = ViewContext(app=_App(desk), actor=actor, events=DeskEvents())  # type: ignore[arg-type]
    page = ReceptionWindow(ctx)
    page.resize(1200, 800)
    page.show()
    pump()
    settle_heap()  # what the application does once the signed-in window is up

    shown: dict[str, float] = {}
    page.runner.results.connect(
        lambda query, _rows, _t: shown.__setitem__(query, time.perf_counter())
    )

    latencies: list[float] = []
    probe = StallProbe()
    probe.start()
    for text in texts:
        page.search_box.clear()
        pump()
        for n in range(1, len(text) + 1):
            typed = text[:n]
            started = time.perf_counter()
            type_char(page.search_box, text[n - 1])
            assert page.search_box.text() == typed
            deadline = started + 5.0
            while typed not in shown and time.perf_counter() < deadline:
                pump()
                time.sleep(0.0005)
            if typed in shown and shown[typed] >= started:
                latencies.append((shown[typed] - started) * 1000)
            shown.clear()
            rest = args.key_interval_ms / 1000 - (time.perf_counter() - started)
            end = time.perf_counter() + max(0.0, rest)
            while time.perf_counter() < end:
                pump()
                time.sleep(0.0005)
    probe.stop()
    page.runner.wait_idle()

    result = {
        "benchmark": "reception type-ahead",
        "patients": args.patients,
        "store": "SQLCipher (encrypted)",
        "queries_typed": len(texts),
        "keystrokes": len(latencies),
        "key_interval_ms": args.key_interval_ms,
        "keystroke_to_results_ms": {
            "median": round(statistics.median(latencies), 1),
            "p95": pct(latencies, 0.95),
            "p99": pct(latencies, 0.99),
            "max": round(max(latencies), 1),
        },
        "longest_main_thread_stall_ms": round(probe.longest_ms, 1),
        "search_runs_on": "worker thread (newest query wins)",
        "target_p95_ms": 50,
        "store_build_seconds": meta.get("build_seconds"),
    }
    print(json.dumps(result, indent=2))
    page.close()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
