"""The main window after sign-in: the role's page, menus, status bar and the idle lock.

A user with several roles switches between their pages from the Role menu (Ctrl+1..4);
pages are built on first use, and a page keeps its unsaved form content while another one is
shown or while the window is locked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from clinic_desktop.views.common import icon, make_action, plain_label, show_info

if TYPE_CHECKING:
    from clinic_desktop.services.context import Actor, Desk
    from clinic_desktop.store.open import OpenedStore
    from clinic_desktop.views.application import ClinicApp

log = logging.getLogger(__name__)

ROLE_ORDER = ("receptionist", "doctor", "billing", "admin")
ROLE_TITLES = {
    "receptionist": "Reception",
    "doctor": "Doctor",
    "billing": "Billing",
    "admin": "Administration",
}


class DeskEvents(QObject):
    """Signals windows use to tell each other what changed on this desk."""

    queue_changed = Signal()
    patients_changed = Signal()
    visit_completed = Signal(str)
    bills_changed = Signal()
    settings_changed = Signal()
    users_changed = Signal()
    sync_state = Signal(str)


@dataclass
class ViewContext:
    """What a page needs: the desk, the signed-in person and the shared signals."""

    app: ClinicApp
    actor: Actor
    events: DeskEvents

    @property
    def desk(self) -> Desk:
        assert self.app.desk is not None
        return self.app.desk

    @property
    def store(self) -> OpenedStore:
        assert self.app.store is not None
        return self.app.store


class RolePage(QWidget):
    """Base of the four role windows. Subclasses fill :meth:`actions` for menus/toolbar."""

    role = ""

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__()
        self.ctx = ctx

    def actions_for_menu(self) -> list[QAction]:
        """The page's commands (with shortcuts); the shell shows them in a menu + toolbar."""
        return []

    def on_shown(self) -> None:
        """Called each time the page becomes the visible one (refresh lists here)."""


class IdleWatcher(QObject):
    """Application-wide event filter: any key, click, wheel or mouse move restarts the timer."""

    idle = Signal()
    _ACTIVITY = frozenset(
        {
            QEvent.Type.KeyPress,
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseMove,
            QEvent.Type.Wheel,
            QEvent.Type.TouchBegin,
        }
    )

    def __init__(self, minutes: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.idle.emit)
        self.set_minutes(minutes)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def set_minutes(self, minutes: float) -> None:
        self.timer.setInterval(max(1, int(minutes * 60_000)))
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in self._ACTIVITY and self.timer.isActive():
            self.timer.start()
        return False


class LockPage(QWidget):
    """Shown instead of the page while locked: nothing of the patient work is visible."""

    unlock_requested = Signal(str)
    switch_user_requested = Signal()

    def __init__(self, full_name: str) -> None:
        super().__init__()
        self.setObjectName("lockPage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        card = QWidget()
        card.setObjectName("lockCard")
        card.setMaximumWidth(420)
        title = QLabel("Locked")
        title.setObjectName("brand")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        who = plain_label(f"Signed in as {full_name}. Enter your password to continue.", "hint")
        who.setWordWrap(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("Password")
        self.password.setAccessibleName("Password to unlock")
        self.message = plain_label("", "fieldError")
        self.unlock_button = QPushButton(icon("lock"), "Unlock")
        self.unlock_button.setDefault(True)
        self.unlock_button.setProperty("primary", True)
        self.switch_button = QPushButton(icon("signout"), "Sign out (switch user)")
        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(10)
        for widget in (title, who, self.password, self.message, self.unlock_button):
            inner.addWidget(widget)
        inner.addWidget(self.switch_button)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.password.returnPressed.connect(self._unlock)
        self.unlock_button.clicked.connect(self._unlock)
        self.switch_button.clicked.connect(self.switch_user_requested.emit)

    def _unlock(self) -> None:
        self.unlock_requested.emit(self.password.text())


class Shell(QMainWindow):
    """One window per signed-in person; its central page follows the chosen role."""

    signed_out = Signal()

    def __init__(self, app: ClinicApp, actor: Actor) -> None:
        super().__init__()
        self.setObjectName("shell")
        self.setWindowIcon(icon("app"))
        self.resize(1280, 800)
        self.ctx = ViewContext(app=app, actor=actor, events=DeskEvents())
        self.actor = actor
        self.roles = [r for r in ROLE_ORDER if actor.has(r)]
        self.pages: dict[str, RolePage] = {}
        self.current_role = ""
        self.locked = False
        self._disabled_actions: list[QAction] = []
        self._closing_for_sign_out = False

        self.page_stack = QStackedWidget()
        self.lock_page = LockPage(actor.full_name)
        self.lock_page.unlock_requested.connect(self.try_unlock)
        self.lock_page.switch_user_requested.connect(self.sign_out)
        self.central = QStackedWidget()
        self.central.addWidget(self.page_stack)
        self.central.addWidget(self.lock_page)
        self.setCentralWidget(self.central)

        self.toolbar = QToolBar("Actions")
        self.toolbar.setObjectName("pageToolbar")
        self.toolbar.setMovable(False)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(self.toolbar)
        self._build_menus()
        self._build_status_bar()

        from clinic_desktop.views import gateway

        self.idle = IdleWatcher(gateway.idle_lock_minutes(self.ctx.desk), self)
        self.idle.idle.connect(self.lock)
        self.ctx.events.settings_changed.connect(self._settings_changed)
        self.ctx.events.sync_state.connect(self.sync_label.setText)
        bridge = app.sync
        if bridge.connected:
            from clinic_desktop.views.sync_bridge import describe

            if bridge.last_status is not None:
                self.sync_label.setText(describe(bridge.last_status))
            else:
                self.sync_label.setText("Connecting to the server...")
        bridge.status_text.connect(self.sync_label.setText)
        bridge.rows_changed.connect(self._rows_arrived)
        bridge.snapshot_progress.connect(self.show_download_progress)

        if self.roles:
            self.switch_role(self.roles[0])

    # ------------------------------------------------------------------ chrome
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.board_action = make_action(
            self,
            "Waiting-room &board",
            self.open_board,
            "Ctrl+Shift+B",
            "board",
            "Open the waiting-room board window (for a TV)",
        )
        self.lock_action = make_action(self, "&Lock now", self.lock, "Ctrl+L", "lock")
        self.sign_out_action = make_action(
            self, "&Sign out", self.sign_out, "Ctrl+Shift+Q", "signout"
        )
        for action in (self.board_action, self.lock_action, self.sign_out_action):
            file_menu.addAction(action)

        self.role_menu = bar.addMenu("&Role")
        self.role_actions: dict[str, QAction] = {}
        for n, role in enumerate(self.roles, start=1):
            action = make_action(
                self,
                ROLE_TITLES[role],
                lambda r=role: self.switch_role(r),  # type: ignore[misc]
                f"Ctrl+{n}",
            )
            action.setCheckable(True)
            self.role_menu.addAction(action)
            self.role_actions[role] = action
        self.role_menu.setEnabled(len(self.roles) > 1)

        self.page_menu: QMenu = bar.addMenu("&Actions")
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(
            make_action(
                self,
                "&Keyboard shortcuts",
                self.show_shortcuts,
                QKeySequence.StandardKey.HelpContents,
            )
        )
        self.about_action = make_action(self, "&About Clinic Desk", self.show_about)
        help_menu.addAction(self.about_action)

    def about_text(self) -> str:
        """What the About box says: the version comes from the one place it is written."""
        from clinic_desktop import __version__

        return (
            f"Clinic Desk {__version__}\n\n"
            "Front desk, consultation and billing for a clinic; works offline and syncs "
            "with the clinic's server.\n\n"
            f"Desk {self.ctx.desk.desk_code}"
        )

    def show_about(self) -> None:
        show_info(self, self.about_text(), "About Clinic Desk")

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        roles = ", ".join(ROLE_TITLES[r] for r in self.roles) or "no role"
        self.user_label = plain_label(f"{self.actor.full_name} ({roles})")
        self.user_label.setAccessibleName("Signed-in user")
        self.desk_label = plain_label(f"Desk {self.ctx.desk.desk_code}")
        self.desk_label.setAccessibleName("Desk")
        self.sync_label = plain_label("Standalone: not connected to a server")
        self.sync_label.setAccessibleName("Sync state")
        status.addWidget(self.user_label)
        status.addWidget(self.desk_label)
        status.addPermanentWidget(self.sync_label)
        # The first download of a new workstation (or one after a long absence) shows here.
        self.download_bar = QProgressBar()
        self.download_bar.setAccessibleName("Downloading the clinic's records")
        self.download_bar.setFormat("Downloading records %v of %m")
        self.download_bar.setMaximumWidth(260)
        self.download_bar.hide()
        status.addPermanentWidget(self.download_bar)

    # ------------------------------------------------------------------ roles
    def _make_page(self, role: str) -> RolePage:
        # Imported here so sign-in never waits for the role windows' imports.
        if role == "receptionist":
            from clinic_desktop.views.reception import ReceptionWindow

            return ReceptionWindow(self.ctx)
        if role == "doctor":
            from clinic_desktop.views.doctor import DoctorWindow

            return DoctorWindow(self.ctx)
        if role == "billing":
            from clinic_desktop.views.billing import BillingWindow

            billing = BillingWindow(self.ctx)
            if getattr(getattr(self.ctx.app, "sync", None), "connected", False):
                # Only a desk with a server can take Stripe payments (QtWebEngine loads here).
                try:
                    from clinic_desktop.payments.checkout_dialog import attach_if_connected

                    billing.online_flow = attach_if_connected(billing, self.ctx.app)
                except Exception as exc:  # cash and card keep working whatever happens here
                    log.warning("online payment not available: %s", type(exc).__name__)
            return billing
        from clinic_desktop.views.admin import AdminWindow

        return AdminWindow(self.ctx)

    def page(self) -> RolePage | None:
        return self.pages.get(self.current_role)

    def switch_role(self, role: str) -> RolePage:
        if role not in self.roles:
            raise ValueError(f"{role!r} is not one of this user's roles")
        page = self.pages.get(role)
        if page is None:
            page = self._make_page(role)
            self.pages[role] = page
            self.page_stack.addWidget(page)
        self.current_role = role
        self.page_stack.setCurrentWidget(page)
        for name, action in self.role_actions.items():
            action.setChecked(name == role)
        self.page_menu.clear()
        self.toolbar.clear()
        for action in page.actions_for_menu():
            self.page_menu.addAction(action)
            if not action.icon().isNull():
                self.toolbar.addAction(action)
        self.page_menu.setTitle(f"&{ROLE_TITLES[role]}")
        self.setWindowTitle(f"Clinic Desk - {ROLE_TITLES[role]} - {self.actor.full_name}")
        page.on_shown()
        return page

    # ------------------------------------------------------------------ lock
    def lock(self) -> None:
        """Hide the work behind the password page; forms keep their content underneath."""
        if self.locked:
            return
        self.locked = True
        self.idle.timer.stop()
        self._cancel_open_dialogs()
        self._disabled_actions = [a for a in self.findChildren(QAction) if a.isEnabled()]
        for action in self._disabled_actions:
            action.setEnabled(False)
        self.menuBar().setEnabled(False)
        self.toolbar.setEnabled(False)
        self.lock_page.password.clear()
        self.lock_page.message.clear()
        self.central.setCurrentWidget(self.lock_page)
        self.lock_page.password.setFocus()

    def _cancel_open_dialogs(self) -> None:
        """A message or dialog left open over the work (an allergy warning, a refund) would
        stay readable over the lock: cancel it. Forms on the pages keep their content."""
        for widget in QApplication.topLevelWidgets():
            if not isinstance(widget, QDialog) or not widget.isVisible():
                continue
            owner = widget.parentWidget()
            while owner is not None and owner is not self:
                owner = owner.parentWidget()
            if owner is self:
                widget.reject()

    def try_unlock(self, password: str) -> bool:
        from clinic_desktop.services.errors import ClinicError
        from clinic_desktop.views import gateway

        try:
            gateway.verify_unlock(self.ctx.desk, self.actor, password)
        except ClinicError as exc:
            self.lock_page.message.setText(str(exc))
            self.lock_page.password.selectAll()
            return False
        self.locked = False
        for action in self._disabled_actions:
            action.setEnabled(True)
        self._disabled_actions = []
        self.menuBar().setEnabled(True)
        self.toolbar.setEnabled(True)
        self.lock_page.password.clear()
        self.central.setCurrentWidget(self.page_stack)
        self.idle.timer.start()
        page = self.page()
        if page is not None:
            page.setFocus()
        return True

    def _rows_arrived(self, changes: dict[str, list[str]]) -> None:
        """Rows from other desks arrived: refresh the lists that show them."""
        from clinic_desktop.views import sync_bridge

        kinds = set(changes)
        events = self.ctx.events
        if kinds & sync_bridge.QUEUE_ENTITIES:
            events.queue_changed.emit()
        if kinds & sync_bridge.PATIENT_ENTITIES:
            events.patients_changed.emit()
        if kinds & sync_bridge.BILL_ENTITIES:
            events.bills_changed.emit()
        if kinds & sync_bridge.USER_ENTITIES:
            events.users_changed.emit()
        if kinds & sync_bridge.SETTINGS_ENTITIES:
            events.settings_changed.emit()

    def _settings_changed(self) -> None:
        from clinic_desktop.views import gateway

        self.idle.set_minutes(gateway.idle_lock_minutes(self.ctx.desk))

    # ------------------------------------------------------------------ misc
    def open_board(self) -> None:
        from clinic_desktop.views.board import BoardWindow

        board = BoardWindow(self.ctx.desk)
        self.ctx.events.queue_changed.connect(board.refresh)
        board.show()
        self.ctx.app.boards.append(board)

    def show_download_progress(self, done: int, total: int) -> None:
        """Snapshot progress from the sync worker: a bar while rows arrive, gone when done."""
        if total <= 0 or done >= total:
            self.download_bar.hide()
            return
        self.download_bar.setMaximum(total)
        self.download_bar.setValue(done)
        self.download_bar.show()

    def show_shortcuts(self) -> None:
        lines = []
        for action in self.findChildren(QAction):
            if action.shortcut().isEmpty() or not action.text():
                continue
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            lines.append(f"{keys:<16} {action.text().replace('&', '')}")
        show_info(self, "\n".join(sorted(set(lines))), "Keyboard shortcuts")

    def sign_out(self) -> None:
        self._closing_for_sign_out = True
        self.idle.stop()
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.idle.stop()
        bridge = self.ctx.app.sync
        for signal, slot in (
            (bridge.status_text, self.sync_label.setText),
            (bridge.rows_changed, self._rows_arrived),
            (bridge.snapshot_progress, self.show_download_progress),
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)
        super().closeEvent(event)
        self.signed_out.emit()


def bind(button: QPushButton, action: QAction) -> None:
    """Make a button trigger ``action`` and mirror its text, tooltip and enabled state."""
    button.setText(action.text().replace("&", ""))
    button.setIcon(action.icon())
    button.setToolTip(action.toolTip())
    button.clicked.connect(action.trigger)
    action.changed.connect(lambda: button.setEnabled(action.isEnabled()))
    button.setEnabled(action.isEnabled())


def later(callback: Callable[[], object], ms: int = 0) -> None:
    QTimer.singleShot(ms, callback)
