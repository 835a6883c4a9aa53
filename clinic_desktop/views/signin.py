"""The sign-in window and the first-start setup wizard.

This module is imported before anything is on screen, so it imports only QtWidgets and the
light helpers in :mod:`common`; services are imported inside the slots that need them.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from clinic_desktop.views.common import FieldErrors, icon, plain_label


class SignInWindow(QWidget):
    """User name + password. Emits ``submitted(username, password)``; the app checks them."""

    submitted = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Clinic Desk - Sign in")
        self.setObjectName("signInWindow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.resize(460, 400)

        card = QWidget()
        card.setObjectName("signInCard")
        brand = QLabel("Clinic Desk")
        brand.setObjectName("brand")
        brand.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.clinic_label = plain_label("", "hint")
        self.clinic_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.username = QLineEdit()
        self.username.setPlaceholderText("User name")
        self.username.setAccessibleName("User name")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("Password")
        self.password.setAccessibleName("Password")
        self.sign_in_button = QPushButton("Sign in")
        self.sign_in_button.setDefault(True)
        self.sign_in_button.setProperty("primary", True)
        self.sign_in_button.setToolTip("Sign in (Enter)")
        self.message = plain_label("", "fieldError")
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Sign-in message")
        self.status = plain_label("Opening the clinic's records...", "hint")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("&User name", self.username)
        form.addRow("&Password", self.password)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(12)
        inner.addWidget(brand)
        inner.addWidget(self.clinic_label)
        inner.addLayout(form)
        inner.addWidget(self.message)
        inner.addWidget(self.sign_in_button)
        inner.addWidget(self.status)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(40, 30, 40, 30)
        outer.addStretch(1)
        outer.addWidget(card)
        outer.addStretch(1)

        self.username.returnPressed.connect(self.password.setFocus)
        self.password.returnPressed.connect(self._submit)
        self.sign_in_button.clicked.connect(self._submit)
        self.setTabOrder(self.username, self.password)
        self.setTabOrder(self.password, self.sign_in_button)
        self.set_ready(False)

    def set_ready(self, ready: bool, clinic_name: str = "") -> None:
        """Enable the form once the store is open (it opens after the window shows)."""
        self.sign_in_button.setEnabled(ready)
        self.username.setEnabled(ready)
        self.password.setEnabled(ready)
        if ready:
            self.status.clear()
            self.clinic_label.setText(clinic_name)
            self.username.setFocus()

    def set_busy(self, busy: bool) -> None:
        """While the server checks the password: no second submit, say what is happening."""
        self.sign_in_button.setEnabled(not busy)
        self.status.setText("Signing in..." if busy else "")

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.password.selectAll()
        self.password.setFocus()

    def reset(self) -> None:
        self.message.clear()
        self.password.clear()
        self.username.selectAll()
        self.username.setFocus()

    def _submit(self) -> None:
        if not self.sign_in_button.isEnabled():
            return
        if not self.username.text().strip():
            self.show_message("Enter your user name.")
            self.username.setFocus()
            return
        self.message.clear()
        self.submitted.emit(self.username.text().strip(), self.password.text())


class SetupWizard(QWizard):
    """First start: either a new clinic on this computer (the clinic, this desk's code and
    the first administrator), or joining the clinic's server with an enrolment code.

    ``on_finish(values)`` runs the service; it returns field messages to show (the wizard
    stays open) or ``None`` when the desk is ready. ``values()["mode"]`` says which path.
    """

    PAGE_MODE, PAGE_CLINIC, PAGE_ADMIN, PAGE_JOIN = range(4)

    FIELDS = (
        "clinic_name",
        "currency",
        "desk_code",
        "admin_username",
        "admin_full_name",
        "password",
    )

    def __init__(
        self,
        on_finish: Callable[[dict[str, str]], dict[str, str] | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Clinic Desk - First start")
        self.setObjectName("setupWizard")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setWindowIcon(icon("app"))
        self._on_finish = on_finish
        self.errors = FieldErrors()
        self.inputs: dict[str, QLineEdit | QComboBox] = {}

        mode = QWizardPage()
        mode.setTitle("Welcome to Clinic Desk")
        mode.setSubTitle("How will this workstation work?")
        mode_layout = QVBoxLayout(mode)
        self.new_clinic = QRadioButton("Start a &new clinic on this computer")
        self.new_clinic.setChecked(True)
        self.join_server = QRadioButton(
            "&Join the clinic's server (an administrator gives you an enrolment code)"
        )
        for widget in (self.new_clinic, self.join_server):
            mode_layout.addWidget(widget)
        mode_layout.addStretch(1)

        clinic = QWizardPage()
        clinic.setTitle("Your clinic")
        clinic.setSubTitle("This prints on tokens, prescriptions and receipts.")
        form = QFormLayout(clinic)
        self._line(form, "clinic_name", "Clinic &name", "e.g. Green Valley Clinic")
        currency = QComboBox()
        currency.setEditable(True)
        currency.addItems(["USD", "EUR", "GBP", "INR", "KES", "NGN", "PKR", "ZAR", "AED", "JPY"])
        self.inputs["currency"] = currency
        self.errors.add_row(form, "&Currency", "currency", currency)
        self._line(form, "desk_code", "&Desk code", "One to three letters, e.g. A")
        self.inputs["desk_code"].setMaxLength(3)  # type: ignore[union-attr]
        hint = plain_label(
            "Each workstation has its own desk code. It goes into the token, patient and "
            "invoice numbers this desk makes (e.g. token A-014).",
            "hint",
        )
        hint.setWordWrap(True)
        form.addRow(hint)

        admin = QWizardPage()
        admin.setTitle("First administrator")
        admin.setSubTitle("This account manages users, prices and settings.")
        admin_form = QFormLayout(admin)
        self._line(admin_form, "admin_full_name", "Full &name", "")
        self._line(admin_form, "admin_username", "&User name", "e.g. admin")
        self._line(admin_form, "password", "&Password", "At least 10 characters")
        self.inputs["password"].setEchoMode(QLineEdit.EchoMode.Password)  # type: ignore[union-attr]
        self.general = plain_label("", "fieldError")
        self.general.setWordWrap(True)
        admin_form.addRow(self.general)

        join = QWizardPage()
        join.setTitle("Join the clinic's server")
        join.setSubTitle("This desk downloads the clinic's records and then works offline too.")
        join_form = QFormLayout(join)
        self._line(join_form, "server_url", "&Server address", "https://clinic.example.org")
        self._line(join_form, "enrolment_code", "&Enrolment code", "from the administrator")
        self._line(join_form, "join_desk_code", "&Desk code", "One to three letters, e.g. B")
        self.inputs["join_desk_code"].setMaxLength(3)  # type: ignore[union-attr]
        self._line(join_form, "workstation_name", "&Workstation name", "e.g. Front desk 2")
        self.join_general = plain_label("", "fieldError")
        self.join_general.setWordWrap(True)
        join_form.addRow(self.join_general)

        self.setPage(self.PAGE_MODE, mode)
        self.setPage(self.PAGE_CLINIC, clinic)
        self.setPage(self.PAGE_ADMIN, admin)
        self.setPage(self.PAGE_JOIN, join)
        self.setStartId(self.PAGE_MODE)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Finish")

    def nextId(self) -> int:
        current = self.currentId()
        if current == self.PAGE_MODE:
            return self.PAGE_JOIN if self.join_server.isChecked() else self.PAGE_CLINIC
        if current == self.PAGE_CLINIC:
            return self.PAGE_ADMIN
        return -1

    def _line(self, form: QFormLayout, name: str, caption: str, placeholder: str) -> None:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        self.inputs[name] = edit
        self.errors.add_row(form, caption, name, edit)

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, widget in self.inputs.items():
            text = widget.currentText() if isinstance(widget, QComboBox) else widget.text()
            out[name] = text if name == "password" else text.strip()
        out["mode"] = "join" if self.join_server.isChecked() else "new"
        return out

    def accept(self) -> None:
        problems = self._on_finish(self.values())
        if not problems:
            super().accept()
            return
        rest = self.errors.show(problems)
        if self.join_server.isChecked():
            self.join_general.setText("\n".join(rest))
            return
        self.general.setText("\n".join(rest))
        clinic_fields = {"clinic_name", "currency", "desk_code"}
        if clinic_fields.intersection(problems) and self.currentId() == self.PAGE_ADMIN:
            self.back()


def shortcut_text(seq: str) -> str:
    """A shortcut as the platform spells it, for tooltips and hints."""
    return QKeySequence(seq).toString(QKeySequence.SequenceFormat.NativeText)


class ChangePasswordDialog(QDialog):
    """Current password, new password twice; ``change(old, new)`` runs the service and raises
    its :class:`ValidationError` / :class:`AuthenticationFailed` for display here."""

    def __init__(self, change: Callable[[str, str], None], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Choose a new password")
        self.setObjectName("changePassword")
        self._change = change
        self.errors = FieldErrors()
        form = QFormLayout(self)
        intro = plain_label("Your password was reset. Choose your own new password.", "hint")
        intro.setWordWrap(True)
        form.addRow(intro)
        self.old = QLineEdit()
        self.new = QLineEdit()
        self.repeat = QLineEdit()
        for edit in (self.old, self.new, self.repeat):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.errors.add_row(form, "&Current password", "old_password", self.old)
        self.errors.add_row(form, "&New password", "new_password", self.new)
        self.errors.add_row(form, "&Repeat it", "repeat", self.repeat)
        self.general = plain_label("", "fieldError")
        self.general.setWordWrap(True)
        form.addRow(self.general)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        from clinic_desktop.services.errors import ClinicError, ValidationError

        if self.new.text() != self.repeat.text():
            self.errors.show({"repeat": "The two new passwords differ."})
            return
        try:
            self._change(self.old.text(), self.new.text())
        except ValidationError as exc:
            self.general.setText("\n".join(self.errors.show(exc.fields)))
            return
        except ClinicError as exc:
            self.errors.clear()
            self.general.setText(str(exc))
            return
        super().accept()
