"""Cold start to the sign-in window on screen, against a bare PySide6 window (issue 3).

Each sample is a fresh ``python`` process started the same way: the clock runs from just
before the process is spawned until the process prints that its window painted for the first
time. The application runs its real entry point (``clinic_desktop.app.main``) on a set-up
store; ``CLINIC_DESK_EXIT_WHEN_SHOWN`` makes it print and quit at the first paint of the
sign-in window (the store then opens in a worker, after the window shows). Runs alternate
between the two kinds so disk caches favour neither. Prints JSON.

    .venv/bin/python benchmarks/startup_bench.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "SIGN_IN_SHOWN"

BARE = f"""
import sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QWidget, QVBoxLayout

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            print("{MARKER}", flush=True)
            QTimer.singleShot(0, app.quit)
        return False

app = QApplication(sys.argv[:1])
window = QWidget()
QVBoxLayout(window).addWidget(QLabel("Hello"))
window.resize(460, 400)
watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
"""

APP = """
import sys
from clinic_desktop.app import main
sys.exit(main(["--data-dir", sys.argv[1]]))
"""


def setup_store(data_dir: Path, env: dict[str, str]) -> None:
    """A set-up clinic, so the application starts on its sign-in path (not the wizard)."""
    script = """
import sys
from pathlib import Path
from clinic_desktop.services import users
from clinic_desktop.store.open import open_store
store = open_store(Path(sys.argv[1]))
users.setup_clinic(store.engine, device_id=store.device_id, audit_key=store.audit_key,
    clock=store.clock, clinic_name="Bench Clinic", currency="USD", desk_code="A",
    admin_username="admin", admin_full_name="Bench Admin", password="Bench-start-2931")
store.close()
"""
    subprocess.run([sys.executable, "-c", script, str(data_dir)], env=env, check=True)


def time_once(code: str, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == MARKER:
            elapsed = time.perf_counter() - started
            break
    else:
        proc.wait()
        raise RuntimeError(f"the process ended without showing its window (exit {proc.returncode})")
    proc.wait(timeout=30)
    return elapsed * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    env = dict(os.environ)
    env.update(
        {
            "QT_QPA_PLATFORM": env.get("QT_QPA_PLATFORM", "offscreen"),
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
            "XDG_DATA_HOME": str(work / "keyring"),
            "PYTHONPATH": str(ROOT),
            "QT_LOGGING_RULES": "qt.qpa.*=false",
        }
    )
    data_dir = work / "desk"
    setup_store(data_dir, env)
    app_env = dict(env, CLINIC_DESK_EXIT_WHEN_SHOWN="1")

    # one warm-up of each, so both start from the same (warm) file cache
    time_once(BARE, [], env)
    time_once(APP, [str(data_dir)], app_env)
    bare: list[float] = []
    app: list[float] = []
    for _ in range(args.runs):
        bare.append(time_once(BARE, [], env))
        app.append(time_once(APP, [str(data_dir)], app_env))
    result = {
        "benchmark": "cold start to sign-in window shown",
        "runs": args.runs,
        "bare_pyside6_window_ms": {
            "median": round(statistics.median(bare), 1),
            "min": round(min(bare), 1),
        },
        "clinic_desk_sign_in_ms": {
            "median": round(statistics.median(app), 1),
            "min": round(min(app), 1),
        },
        "ratio_median": round(statistics.median(app) / statistics.median(bare), 2),
        "target_ratio": 1.5,
        "platform": env["QT_QPA_PLATFORM"],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
