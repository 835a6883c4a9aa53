"""``clinic-desktop --self-test``: prove an installation works, without a display.

Run by the installer's tests on the built bundle (where no Python or virtual environment is
on the path) and by support staff on a clinic PC. Each step exercises a part that a broken
bundle typically loses: the SQLCipher driver, the migration scripts shipped as data, the
resources, the Qt platform plugins, and QtWebEngine's helper process and its resources.

The store is a throw-away one in a temporary folder; the person's own data folder and its
keyring entries are never opened. Success prints one line and returns 0; a failure prints
``self-test FAILED at <step>: <reason>`` and returns the step's own non-zero code.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

    from clinic_desktop.store.open import OpenedStore

#: Exit code per step, so a script can tell what broke without parsing text.
STEP_CODES: dict[str, int] = {
    "keyring": 2,
    "store": 3,
    "migrations": 4,
    "resources": 5,
    "sign-in window": 6,
    "web view": 7,
}
WEB_VIEW_TIMEOUT_S = 60.0
_CANARY = "SELFTEST-CANARY-7f3a9c"
_PAGE_TITLE = "clinic-desk-selftest"


class StepFailed(Exception):
    """A step did not work; the message says what a support person should look at."""


@dataclass
class Report:
    """What the steps found, for the one-line summary."""

    facts: list[str] = field(default_factory=list)

    def add(self, fact: str) -> None:
        self.facts.append(fact)


def _emit(line: str, *, error: bool = False) -> None:
    """Print one line; a windowed Windows build has no console (stdout is None)."""
    stream = sys.stderr if error else sys.stdout
    if stream is not None:
        print(line, file=stream, flush=True)


def _force_headless() -> None:
    """The self-test never needs a screen; Chromium's sandbox cannot start as root."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")


# ------------------------------------------------------------------------------------ keyring


def _memory_keyring() -> KeyringBackend:
    """A keyring that lives only in this process, for the throw-away self-test store.

    Never used for a real store: ``open_store`` for the person's data goes through the
    application, which refuses when no keyring service is available.
    """
    from keyring.backend import KeyringBackend

    class SelfTestMemoryKeyring(KeyringBackend):
        priority = 1

        def __init__(self) -> None:
            super().__init__()
            self._secrets: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self._secrets.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self._secrets[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self._secrets.pop((service, username), None)

    return SelfTestMemoryKeyring()


def _choose_keyring(report: Report) -> None:
    import keyring

    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        report.add(f"keyring {type(keyring.get_keyring()).__name__} (PYTHON_KEYRING_BACKEND)")
        return
    keyring.set_keyring(_memory_keyring())
    report.add("keyring in-memory (self-test store only)")


# -------------------------------------------------------------------------------------- store


def _open_store(data_dir: Path, report: Report) -> OpenedStore:
    from clinic_desktop.store.engine import StoreError
    from clinic_desktop.store.open import open_store

    try:
        store = open_store(data_dir)
    except StoreError as exc:
        raise StepFailed(str(exc)) from exc
    with store.engine.connect() as conn:
        cipher = conn.exec_driver_sql("PRAGMA cipher_version").scalar()
    if not cipher:
        store.close()
        raise StepFailed("the database driver is not SQLCipher; the store would be clear text")
    report.add(f"store encrypted (SQLCipher {cipher})")
    return store


def _check_migrations(store: OpenedStore, report: Report) -> None:
    from sqlalchemy import delete, insert

    from clinic_desktop.models import SyncState
    from clinic_desktop.store import migrate

    head = migrate.head_revision()
    with store.engine.connect() as conn:
        current = migrate.current_revision(conn)
    if current != head:
        raise StepFailed(f"store is at revision {current}, expected {head}")
    # A row written through the ORM must not appear in the file's bytes.
    with store.engine.begin() as conn:
        conn.execute(insert(SyncState).values(key="selftest", value=_CANARY))
    with store.engine.begin() as conn:
        conn.execute(delete(SyncState).where(SyncState.key == "selftest"))
    store.close()
    raw = b"".join(
        p.read_bytes() for p in store.path.parent.glob(store.path.name + "*") if p.is_file()
    )
    if _CANARY.encode() in raw:
        raise StepFailed("a value written to the store is readable in the file: not encrypted")
    report.add(f"schema {head}")


# ---------------------------------------------------------------------------------- resources


def _check_resources(report: Report) -> Path:
    from clinic_desktop.services.catalogues import resources_dir

    root = resources_dir()
    needed = ["style.qss", "icons/app.svg", "icd10.tsv", "medicines.csv"]
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise StepFailed(f"missing in {root}: {', '.join(missing)}")
    report.add("resources ok")
    return root


# -------------------------------------------------------------------------------------- Qt


def _application() -> Any:
    # QtWebEngine must be imported before the QApplication exists.
    import PySide6.QtWebEngineWidgets  # noqa: F401
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "clinic-desktop"])
    return app


def _render_sign_in(app: Any, report: Report) -> None:
    """Build the real sign-in window with the real style sheet and paint it offscreen."""
    from clinic_desktop.views.common import apply_style
    from clinic_desktop.views.signin import SignInWindow

    apply_style(app)
    window = SignInWindow()
    try:
        window.show()
        app.processEvents()
        image = window.grab().toImage()
        if image.isNull() or image.width() < 100 or image.height() < 100:
            raise StepFailed("the sign-in window painted nothing")
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in (10, 200)}
        if len(colours) < 2:
            raise StepFailed("the sign-in window painted a blank image")
        report.add(f"sign-in window {image.width()}x{image.height()}")
    finally:
        window.close()
        window.deleteLater()


def _load_web_page(app: Any, folder: Path, report: Report) -> None:
    """Load a local file in a QWebEngineView and wait for ``loadFinished(True)``.

    The Checkout dialog's module is imported first: it needs Qt modules (QtQuick) that a
    lean bundle might leave out, and the cashier must not be the first to find out.
    """
    from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QTimer, QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView

    import clinic_desktop.payments.checkout_dialog  # noqa: F401

    page = folder / "selftest.html"
    page.write_text(
        f"<!doctype html><html><head><title>{_PAGE_TITLE}</title></head>"
        "<body><p>Clinic Desk web view self-test</p></body></html>",
        encoding="utf-8",
    )
    view = QWebEngineView()
    loop = QEventLoop()
    outcome: dict[str, bool] = {}

    def finished(ok: bool) -> None:
        outcome["ok"] = ok
        loop.quit()

    view.loadFinished.connect(finished)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    started = time.perf_counter()
    try:
        view.resize(400, 300)
        view.show()
        view.load(QUrl.fromLocalFile(str(page)))
        timer.start(int(WEB_VIEW_TIMEOUT_S * 1000))
        if "ok" not in outcome:
            loop.exec()
        if "ok" not in outcome:
            raise StepFailed(f"no loadFinished within {WEB_VIEW_TIMEOUT_S:.0f} s")
        if not outcome["ok"]:
            raise StepFailed("the local test page failed to load (loadFinished(False))")
        title = view.title()
        if title != _PAGE_TITLE:
            raise StepFailed(f"the page loaded but its title reads {title!r}")
        report.add(f"web view loaded a local page in {time.perf_counter() - started:.1f} s")
    finally:
        timer.stop()
        view.close()
        view.deleteLater()
        # Delete the page now, not at exit: the profile must outlive its pages.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()


# -------------------------------------------------------------------------------------- run


@contextmanager
def _scratch(parent: Path | None) -> Iterator[Path]:
    """A temporary folder (inside ``parent`` when given), removed afterwards."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix="clinic-selftest-", dir=str(parent) if parent is not None else None
    ) as tmp:
        yield Path(tmp)


def _step(name: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except StepFailed:
        raise
    except Exception as exc:  # any other error in a step is reported, not a traceback
        raise StepFailed(f"{type(exc).__name__}: {exc}") from exc


def run(data_dir: Path | None = None) -> int:
    """Run every step; ``data_dir`` only chooses where the throw-away folder is made."""
    _force_headless()
    from clinic_desktop import __version__

    started = time.perf_counter()
    report = Report()
    step = "keyring"
    try:
        with _scratch(data_dir) as scratch:
            step = "keyring"
            _step(step, lambda: _choose_keyring(report))
            step = "store"
            store = _step(step, lambda: _open_store(scratch / "store", report))
            try:
                step = "migrations"
                _step(step, lambda: _check_migrations(store, report))
            finally:
                store.close()
                _forget_keys(scratch / "store")
            step = "resources"
            _step(step, lambda: _check_resources(report))
            app = _step("sign-in window", _application)
            step = "sign-in window"
            _step(step, lambda: _render_sign_in(app, report))
            step = "web view"
            _step(step, lambda: _load_web_page(app, scratch, report))
    except StepFailed as exc:
        _emit(f"self-test FAILED at {step}: {exc}", error=True)
        return STEP_CODES[step]
    elapsed = time.perf_counter() - started
    _emit(f"self-test OK: clinic-desktop {__version__}; {'; '.join(report.facts)}; {elapsed:.1f} s")
    return 0


def _forget_keys(store_dir: Path) -> None:
    """Remove the throw-away store's keyring entries (matters with a file keyring)."""
    from clinic_desktop.store.keys import forget_keys

    try:
        forget_keys(store_dir)
    except Exception as exc:  # leaving a stale entry for a deleted folder is harmless
        _emit(f"self-test: could not remove the temporary keyring entries ({exc})", error=True)


if __name__ == "__main__":
    raise SystemExit(run(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
