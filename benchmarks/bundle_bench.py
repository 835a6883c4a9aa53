"""Installer figures (issue 6): bundle size, build time, start-up of the bundle vs source.

- Build: ``pyinstaller`` on the checked-in spec into a fresh work and dist folder (PyInstaller's
  own per-user binary cache stays, as on a build machine). ``--reuse`` skips the build and
  measures ``dist/clinic-desktop`` as it is.
- Size: apparent size of the one-folder bundle (symbolic links counted once), the largest
  files, and optionally (``--naive``) the size of a naive one-folder bundle of a PySide6 +
  QtWebEngine "hello" program built the same way, for the ratio.
- Start-up: wall time from spawning the process until the sign-in window has painted
  (``CLINIC_DESK_EXIT_WHEN_SHOWN``), on a set-up store, offscreen: the bundled executable
  against ``python -c 'clinic_desktop.app.main'`` from the source tree. The first run after
  the build is reported on its own (coldest file cache this machine allows without dropping
  the kernel's caches); then runs alternate between the two so caches favour neither.

    .venv/bin/python benchmarks/bundle_bench.py [--reuse] [--naive] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "installer" / "clinic-desktop.spec"
MARKER = "SIGN_IN_SHOWN"
EXE = "clinic-desktop.exe" if sys.platform == "win32" else "clinic-desktop"

SOURCE_APP = """
import sys
from clinic_desktop.app import main
sys.exit(main(["--data-dir", sys.argv[1]]))
"""

NAIVE = """
import sys
from PySide6.QtWidgets import QApplication
from PySide6.QtWebEngineWidgets import QWebEngineView
app = QApplication(sys.argv)
view = QWebEngineView()
"""


def size_mb(folder: Path) -> float:
    files = (p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return round(sum(p.stat().st_size for p in files) / 1024 / 1024, 1)


def largest(folder: Path, count: int = 5) -> list[dict[str, object]]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    files.sort(key=lambda p: p.stat().st_size, reverse=True)
    return [
        {"file": str(p.relative_to(folder)), "mb": round(p.stat().st_size / 1024 / 1024, 1)}
        for p in files[:count]
    ]


def build(spec: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(out / "dist"),
            "--workpath",
            str(out / "work"),
            str(spec),
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return round(time.perf_counter() - started, 1)


def build_naive(out: Path) -> tuple[float, float]:
    out.mkdir(parents=True, exist_ok=True)
    script = out / "naive.py"
    script.write_text(NAIVE, encoding="utf-8")
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--onedir",
            "--log-level",
            "WARN",
            "--distpath",
            str(out / "dist"),
            "--workpath",
            str(out / "work"),
            "--specpath",
            str(out),
            str(script),
        ],
        cwd=out,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return size_mb(out / "dist" / "naive"), round(time.perf_counter() - started, 1)


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
    subprocess.run([sys.executable, "-c", script, str(data_dir)], env=env, check=True, cwd=ROOT)


def time_once(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Milliseconds from spawning ``command`` until it reports the sign-in window painted."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == MARKER:
            elapsed = time.perf_counter() - started
            break
    else:
        proc.wait()
        raise RuntimeError(f"{command[0]} ended without showing its window ({proc.returncode})")
    proc.wait(timeout=60)
    return elapsed * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="measure dist/clinic-desktop")
    parser.add_argument("--naive", action="store_true", help="also build a naive bundle")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bundle-bench-"))
    result: dict[str, object] = {"benchmark": "installer bundle", "spec": str(SPEC.name)}
    try:
        if args.reuse:
            bundle = ROOT / "dist" / "clinic-desktop"
            result["build_seconds"] = None
        else:
            result["build_seconds"] = build(SPEC, work / "app")
            bundle = work / "app" / "dist" / "clinic-desktop"
        bundle_mb = size_mb(bundle)
        result["bundle_mb"] = bundle_mb
        result["largest_files"] = largest(bundle)
        if args.naive:
            naive_mb, naive_s = build_naive(work / "naive")
            result["naive_bundle_mb"] = naive_mb
            result["naive_build_seconds"] = naive_s
            result["size_ratio_to_naive"] = round(bundle_mb / naive_mb, 2)

        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update(
            {
                "QT_QPA_PLATFORM": "offscreen",
                "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
                "XDG_DATA_HOME": str(work / "keyring"),
                "QT_LOGGING_RULES": "qt.qpa.*=false",
            }
        )
        data_dir = work / "desk"
        setup_store(data_dir, env)
        run_env = dict(env, CLINIC_DESK_EXIT_WHEN_SHOWN="1")
        bundled = [str(bundle / EXE), "--data-dir", str(data_dir)]
        source = [sys.executable, "-c", SOURCE_APP, str(data_dir)]

        first_bundle = time_once(bundled, run_env, work)
        first_source = time_once(source, run_env, ROOT)
        from_bundle: list[float] = []
        from_source: list[float] = []
        for _ in range(args.runs):
            from_bundle.append(time_once(bundled, run_env, work))
            from_source.append(time_once(source, run_env, ROOT))
        result["start_to_sign_in_ms"] = {
            "first_run_after_build": {
                "bundle": round(first_bundle, 1),
                "source": round(first_source, 1),
            },
            "bundle": {
                "median": round(statistics.median(from_bundle), 1),
                "min": round(min(from_bundle), 1),
            },
            "source": {
                "median": round(statistics.median(from_source), 1),
                "min": round(min(from_source), 1),
            },
            "runs": args.runs,
        }
        result["start_ratio_bundle_to_source"] = round(
            statistics.median(from_bundle) / statistics.median(from_source), 2
        )
        result["machine"] = {"cpus": os.cpu_count(), "platform": sys.platform}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
