"""Application start: style, the sign-in window first, then the store, then the role window.

Start-up order is chosen for speed: only QtWidgets and the sign-in window are imported before
the window is on screen; the encrypted store (SQLAlchemy, SQLCipher, migrations) opens in a
worker right after, and the role windows are imported only after someone signs in.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from clinic_desktop.views.common import apply_style, run_in_background, settle_heap
from clinic_desktop.views.signin import SetupWizard, SignInWindow
from clinic_desktop.views.sync_bridge import SyncBridge

if TYPE_CHECKING:
    from clinic_desktop.services.context import Actor, Desk
    from clinic_desktop.store.open import OpenedStore
    from clinic_desktop.views import gateway
    from clinic_desktop.views.shell import Shell

log = logging.getLogger(__name__)

# Benchmarks set this to time "process start -> sign-in window painted" and exit there.
EXIT_WHEN_SHOWN_ENV = "CLINIC_DESK_EXIT_WHEN_SHOWN"


def install_excepthook() -> None:
    """Unexpected errors are logged by type and place only (no values, so no patient data)
    and shown as a friendly message; the application keeps running."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        frames = traceback.extract_tb(tb)
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-6:]))
        log.error("unexpected error %s at %s", exc_type.__name__, where)
        if QApplication.instance() is None:
            return
        try:
            from clinic_desktop.services.errors import ClinicError

            text = (
                str(exc)
                if isinstance(exc, ClinicError)
                else "Something unexpected went wrong. Your last action may not have been "
                "saved; please check it. The problem was written to the log for support."
            )
        except Exception:
            text = "Something unexpected went wrong."
        box = QMessageBox(QApplication.activeWindow())
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Clinic Desk")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(text)
        box.setObjectName("unexpectedError")
        box.exec()

    sys.excepthook = hook


class _FirstPaint(QObject):
    """Calls back once, when the watched window has painted for the first time."""

    def __init__(self, window: QWidget, callback: Any) -> None:
        super().__init__(window)
        self._callback = callback
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self._callback)
        return False


class ClinicApp(QObject):
    """Drives the flow: store -> (setup) -> sign-in -> role window -> lock / sign-out."""

    def __init__(self, data_dir: Path, app: QApplication) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.app = app
        self.store: OpenedStore | None = None
        self.desk: Desk | None = None
        self.shell: Shell | None = None
        self.wizard: SetupWizard | None = None
        self.exit_code = 0
        # Plain http:// to the server only where a test or a demo set-up says so.
        self.allow_insecure_server = False
        # Where documents go without asking (tests, kiosks); None shows print/save dialogs.
        self.pdf_dir: Path | None = None
        self.boards: list[QWidget] = []  # waiting-room boards outlive a sign-out
        self.sign_in = SignInWindow()
        self.sign_in.submitted.connect(self._sign_in)
        self.sync = SyncBridge()

    # ------------------------------------------------------------------ start
    def start(self, *, open_in_background: bool = True) -> None:
        self.sign_in.show()
        if os.environ.get(EXIT_WHEN_SHOWN_ENV):
            _FirstPaint(self.sign_in, self._exit_for_benchmark)
            return
        if open_in_background:
            run_in_background(self._open, self._opened, self._open_failed)
        else:
            try:
                self._opened(self._open())
            except Exception as exc:
                self._open_failed(exc)

    def _exit_for_benchmark(self) -> None:
        print("SIGN_IN_SHOWN", flush=True)
        self.app.quit()

    def _open(self) -> OpenedStore:
        from clinic_desktop.store.open import open_store

        store = open_store(self.data_dir)
        # Import the services here, in the worker, while the sign-in window is already up:
        # the main thread then never waits for them.
        import clinic_desktop.views.gateway  # noqa: F401

        return store

    def _opened(self, store: OpenedStore) -> None:
        from clinic_desktop.store.open import desk_for

        self.store = store
        self.desk = desk_for(store)
        if self.desk is None:
            self._run_setup()
        else:
            self._ready()

    def _open_failed(self, exc: BaseException) -> None:
        from clinic_desktop.store.engine import StoreError

        if isinstance(exc, StoreError):
            text = str(exc)
        else:
            log.error("store open failed: %s", type(exc).__name__)
            text = (
                "The clinic's records could not be opened. Please contact support; "
                "the details are in the log."
            )
        box = QMessageBox(self.sign_in)
        box.setObjectName("storeError")
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Clinic Desk cannot open its records")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(text)
        box.finished.connect(lambda _r: self._quit(1))
        box.open()
        self.store_error_box = box

    def _quit(self, code: int) -> None:
        self.exit_code = code
        self.app.exit(code)

    def _ready(self) -> None:
        assert self.desk is not None
        from clinic_desktop.views import gateway

        assert self.store is not None
        if not self.sync.connected:
            try:
                self.sync.start(self.store, self.desk, allow_insecure=self.allow_insecure_server)
            except Exception as exc:  # the desk works standalone whatever sync does
                log.warning("sync could not start: %s", type(exc).__name__)
        self.sign_in.set_ready(True, gateway.clinic_header(self.desk).name)
        self.sign_in.show()
        self.sign_in.raise_()
        self.sign_in.activateWindow()

    # ------------------------------------------------------------------ first start
    def _run_setup(self) -> None:
        self.sign_in.hide()
        self.wizard = SetupWizard(self._create_clinic)
        self.wizard.finished.connect(self._setup_finished)
        self.wizard.show()

    def _create_clinic(self, values: dict[str, str]) -> dict[str, str] | None:
        from clinic_desktop.services.errors import ClinicError, ValidationError
        from clinic_desktop.views import gateway

        assert self.store is not None
        try:
            if values.get("mode") == "join":
                self.desk = gateway.join_server(
                    self.store, values, allow_insecure=self.allow_insecure_server
                )
            else:
                self.desk = gateway.setup_clinic(self.store, values)
        except ValidationError as exc:
            return exc.fields
        except ClinicError as exc:
            return {"": str(exc)}
        except Exception as exc:  # network and server answers: say what, never a traceback
            message = gateway.sync_error_text(exc)
            if message is None:
                raise
            return {"": message}
        return None

    def _setup_finished(self, result: int) -> None:
        if self.desk is None:
            self._quit(0)  # the wizard was closed without creating a clinic
            return
        self._ready()
        if self.wizard is not None:
            self.sign_in.username.setText(self.wizard.values()["admin_username"])
            self.sign_in.password.setFocus()

    # ------------------------------------------------------------------ sign-in
    def _sign_in(self, username: str, password: str) -> None:
        from clinic_desktop.services.errors import ClinicError
        from clinic_desktop.views import gateway

        assert self.desk is not None
        desk, transport = self.desk, self.sync.transport
        if transport is None:  # standalone: a local check, instant
            try:
                self._signed_in(gateway.sign_in_anywhere(desk, None, username, password))
            except ClinicError as exc:
                self.sign_in.show_message(str(exc))
            return
        # With a server the check goes over the network first: keep the window responsive.
        self.sign_in.set_busy(True)

        def failed(exc: BaseException) -> None:
            self.sign_in.set_busy(False)
            if isinstance(exc, ClinicError):
                self.sign_in.show_message(str(exc))
            else:
                log.error("sign-in failed: %s", type(exc).__name__)
                self.sign_in.show_message("Signing in failed; please try again.")

        def done(result: gateway.SignInResult) -> None:
            self.sign_in.set_busy(False)
            self._signed_in(result)

        run_in_background(
            lambda: gateway.sign_in_anywhere(desk, transport, username, password), done, failed
        )

    def _signed_in(self, result: gateway.SignInResult) -> None:
        from clinic_desktop.views import gateway

        assert self.desk is not None
        actor = result.actor
        if gateway.must_change_password(self.desk, actor) and not self._new_password(actor):
            self.sign_in.reset()
            return
        if result.tokens is not None:
            self.sync.set_tokens(result.tokens)
        self.open_shell(actor)

    def _new_password(self, actor: Actor) -> bool:
        """After an admin reset, the person picks their own password before anything else."""
        from clinic_desktop.views.signin import ChangePasswordDialog

        assert self.desk is not None
        desk = self.desk
        dialog = ChangePasswordDialog(
            lambda old, new: gateway_change(desk, actor, old, new), self.sign_in
        )
        return dialog.exec() == ChangePasswordDialog.DialogCode.Accepted

    def open_shell(self, actor: Actor) -> Shell:
        from clinic_desktop.views.shell import Shell

        assert self.store is not None
        assert self.desk is not None
        self.shell = Shell(self, actor)
        self.shell.signed_out.connect(self._signed_out)
        self.shell.show()
        self.sign_in.hide()
        self.sign_in.reset()
        settle_heap()
        return self.shell

    def _signed_out(self) -> None:
        self.sync.set_tokens(None)
        if self.shell is not None:
            self.shell.deleteLater()
            self.shell = None
        self.sign_in.show()
        self.sign_in.reset()

    def replace_store(self, store: OpenedStore) -> None:
        """After a restore the store is a new object; everything re-reads from it."""
        from clinic_desktop.store.open import desk_for

        self.store = store
        self.desk = desk_for(store)


def gateway_change(desk: Desk, actor: Actor, old: str, new: str) -> None:
    from clinic_desktop.views import gateway

    gateway.change_own_password(desk, actor, old, new)


# A thread waiting for the GIL asks its holder to let go after this long (CPython's default
# is 5 ms). With the sync worker applying a first download, the default let the window stall
# past 50 ms; at 1 ms the longest stall measured 23 ms (benchmarks/sync_stall_bench.py,
# 100,000 rows), with no loss of sync speed.
UI_SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """Keep the window responsive while worker threads run Python code."""
    sys.setswitchinterval(UI_SWITCH_INTERVAL_S)


def run_gui(data_dir: Path, *, allow_insecure_local_server: bool = False) -> int:
    """Run the desktop application on the store in ``data_dir``; returns the exit code.

    ``allow_insecure_local_server`` lets a demo reach a plain-http server on loopback only.
    """
    tune_interpreter()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Clinic Desk")
    app.setOrganizationName("Clinic Desk")
    apply_style(app)
    install_excepthook()
    from clinic_desktop.views.refcount_guard import RefcountGuard

    guard = RefcountGuard(app)  # noqa: F841  (lives as the application's child)
    controller = ClinicApp(data_dir, app)
    controller.allow_insecure_server = allow_insecure_local_server
    controller.start()
    code = app.exec()
    controller.sync.stop()
    if controller.store is not None:
        controller.store.close()
    return controller.exit_code or code
