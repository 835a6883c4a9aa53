"""The ``clinic-desktop`` command (DESIGN.md section 8).

Imports here are kept to the standard library and ``config`` so that ``--version`` answers
at once and the sign-in window appears quickly; Qt, SQLAlchemy and SQLCipher load only on the
path that needs them. Expected failures (no keyring, wrong key, bad settings) print one
plain line and exit non-zero; nobody sees a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from clinic_desktop import __version__
from clinic_desktop.config import ConfigError, resolve_data_dir

PROG = "clinic-desktop"
PACKAGE_DIR = Path(__file__).resolve().parent
EXIT_OK = 0
EXIT_FAILED = 1  # expected, explained failure (keyring, key, settings, validation)
EXIT_UNEXPECTED = 3  # a bug: named by type and place only
EXIT_USAGE = 2  # argparse's own code for bad arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Clinic Desk: front desk, consultation and billing for a clinic.",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder of this workstation's encrypted store and settings "
        "(default: the per-user data folder, or $CLINIC_DESK_DATA_DIR)",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version and exit (opens nothing)"
    )
    parser.add_argument(
        "--allow-insecure-local-server",
        action="store_true",
        help="demo only: accept a plain http:// server address on this machine's loopback "
        "(127.0.0.1, localhost); production servers use https://",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--load-demo",
        action="store_true",
        help="fill the store in DIR with the demo clinic, print the demo sign-ins and exit",
    )
    action.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation (store, windows, web view) and exit 0, or name the failure",
    )
    return parser


def _fail(message: str, stream: TextIO) -> None:
    print(f"{PROG}: {message}", file=stream)


def _explained(exc: BaseException) -> str | None:
    """The person-readable message of an expected failure, or ``None`` for a bug."""
    if isinstance(exc, ConfigError):
        return str(exc)
    # Only loaded modules can have raised these; checking sys.modules keeps imports lazy.
    store_engine = sys.modules.get("clinic_desktop.store.engine")
    if store_engine is not None and isinstance(exc, store_engine.StoreError):
        return str(exc)
    errors = sys.modules.get("clinic_desktop.services.errors")
    if errors is not None and isinstance(exc, errors.ClinicError):
        return str(exc)
    return None


def _where(exc: BaseException) -> str:
    """Type and code location of an unexpected error; never its message (may hold data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{PACKAGE_DIR}" in f.filename]
    picked = [*ours[-3:], frames[-1]] if ours and ours[-1] is not frames[-1] else ours[-3:]
    place = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(picked or frames))
    return f"{type(exc).__name__} at {place}" if place else type(exc).__name__


def _load_demo(data_dir: Path, out: TextIO) -> int:
    if importlib.util.find_spec("faker") is None:
        _fail(
            "the demo clinic needs the Faker package, which is not installed. Install the "
            "'demo' extra: pip install 'clinic-desk[demo]' (or: make demo).",
            sys.stderr,
        )
        return EXIT_FAILED
    from clinic_desktop.demo import load_demo, sign_in_table

    summary = load_demo(data_dir, progress=lambda text: print(text, file=sys.stderr))
    print(f"Demo clinic loaded into {data_dir}", file=out)
    print(summary.describe(), file=out)
    print("", file=out)
    print(sign_in_table(summary), file=out)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    if args.version:
        print(f"{PROG} {__version__}")
        return EXIT_OK
    data_dir = resolve_data_dir(args.data_dir)
    if args.load_demo:
        return _load_demo(data_dir, sys.stdout)
    if args.self_test:
        from clinic_desktop.selftest import run as run_self_test

        return int(run_self_test(data_dir))
    from clinic_desktop.views.application import run_gui

    return int(run_gui(data_dir, allow_insecure_local_server=args.allow_insecure_local_server))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``clinic-desktop``; returns the process exit code."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = _explained(exc)
        if message is not None:
            _fail(message, sys.stderr)
            return EXIT_FAILED
        _fail(
            f"stopped by an unexpected error ({_where(exc)}). Please report this line to support.",
            sys.stderr,
        )
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    raise SystemExit(main())
