"""Administration: users and roles, the price list, clinic settings, the audit log with its
chain check, backup and restore, and the sync tab (server, enrolment, problems, conflicts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clinic_desktop.services.errors import ClinicError, ValidationError
from clinic_desktop.views import gateway
from clinic_desktop.views.common import (
    Column,
    FieldErrors,
    RowsModel,
    attempt,
    configure_table,
    confirm,
    make_action,
    plain_label,
    run_with_progress,
    section_label,
    show_info,
)
from clinic_desktop.views.shell import ROLE_ORDER, ROLE_TITLES, RolePage, ViewContext

if TYPE_CHECKING:
    from clinic_desktop.views.gateway import AuditRow, UserRow

log = logging.getLogger(__name__)


def _table(model: Any, name: str, stretch: tuple[int, ...] = (0,)) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setAccessibleName(name)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    configure_table(view, stretch)
    view.setTabKeyNavigation(False)
    return view


def _selected(view: QTableView, model: RowsModel[Any]) -> Any:
    index = view.currentIndex()
    return model.row(index.row()) if index.isValid() else None


class UsersTab(QWidget):
    def __init__(self, page: AdminWindow) -> None:
        super().__init__()
        self.page = page
        self.model: RowsModel[UserRow] = RowsModel(
            [
                Column("User name", lambda u: u.username),
                Column("Full name", lambda u: u.full_name),
                Column("Roles", lambda u: ", ".join(ROLE_TITLES.get(r, r) for r in u.roles)),
                Column("State", lambda u: u.state),
            ],
            self,
        )
        self.table = _table(self.model, "Users", (1, 2))
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._selected())
        self.role_boxes: dict[str, QCheckBox] = {}
        roles_row = QHBoxLayout()
        for role in ROLE_ORDER:
            box = QCheckBox(ROLE_TITLES[role])
            box.setAccessibleName(f"Role {ROLE_TITLES[role]}")
            self.role_boxes[role] = box
            roles_row.addWidget(box)
        roles_row.addStretch(1)
        roles_widget = QWidget()
        roles_widget.setLayout(roles_row)
        self.username = QLineEdit()
        self.full_name = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("temporary password (changed at first sign-in)")
        self.errors = FieldErrors()
        form_box = QGroupBox("New user / roles of the selected user")
        form = QFormLayout(form_box)
        self.errors.add_row(form, "&User name", "username", self.username)
        self.errors.add_row(form, "&Full name", "full_name", self.full_name)
        self.errors.add_row(form, "&Roles", "roles", roles_widget, buddy=False)
        self.errors.add_row(form, "&Password", "password", self.password)
        self.message = plain_label("", "hint")
        self.message.setWordWrap(True)
        form.addRow(self.message)
        buttons = QHBoxLayout()
        self.create_button = QPushButton("Create user")
        self.create_button.setProperty("primary", True)
        self.roles_button = QPushButton("Save roles of selected")
        self.disable_button = QPushButton("Disable / enable")
        self.reset_button = QPushButton("Reset password...")
        self.unlock_button = QPushButton("Unlock")
        for b in (
            self.create_button,
            self.roles_button,
            self.disable_button,
            self.reset_button,
            self.unlock_button,
        ):
            buttons.addWidget(b)
        form.addRow(buttons)
        self.create_button.clicked.connect(self.create_user)
        self.roles_button.clicked.connect(self.save_roles)
        self.disable_button.clicked.connect(self.toggle_disabled)
        self.reset_button.clicked.connect(self.reset_password)
        self.unlock_button.clicked.connect(self.unlock)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(form_box)

    def refresh(self) -> None:
        try:  # lists say what is wrong in place; a dialog on every refresh would nag
            rows = gateway.list_users(self.page.ctx.desk, self.page.ctx.actor)
        except ClinicError as exc:
            self.message.setText(str(exc))
            return
        self.model.set_rows(rows)

    def selected(self) -> UserRow | None:
        return _selected(self.table, self.model)

    def select_username(self, username: str) -> None:
        for n, row in enumerate(self.model.rows()):
            if row.username == username:
                self.table.selectRow(n)

    def _selected(self) -> None:
        user = self.selected()
        if user is not None:
            for role, box in self.role_boxes.items():
                box.setChecked(role in user.roles)

    def _roles(self) -> list[str]:
        return [r for r, box in self.role_boxes.items() if box.isChecked()]

    def _run(self, fn: Callable[..., object], *args: object, done: str = "") -> bool:
        try:
            fn(self.page.ctx.desk, self.page.ctx.actor, *args)
        except ValidationError as exc:
            rest = self.errors.show(exc.fields)
            self.message.setText("\n".join(rest))
            return False
        except ClinicError as exc:
            self.message.setText(str(exc))
            return False
        self.errors.clear()
        self.message.setText(done)
        self.refresh()
        self.page.ctx.events.users_changed.emit()
        return True

    def create_user(self) -> None:
        username = self.username.text()
        if self._run(
            gateway.create_user,
            username,
            self.full_name.text(),
            self._roles(),
            self.password.text(),
            done=f"User {username.strip()} created.",
        ):
            self.username.clear()
            self.full_name.clear()
            self.password.clear()
            self.select_username(username.strip().casefold())

    def save_roles(self) -> None:
        user = self.selected()
        if user is None:
            self.message.setText("Select a user first.")
            return
        self._run(gateway.update_roles, user.user_id, self._roles(), done="Roles saved.")

    def toggle_disabled(self) -> None:
        user = self.selected()
        if user is None:
            self.message.setText("Select a user first.")
            return
        disable = not user.disabled
        verb = "disabled" if disable else "enabled again"
        if self._run(gateway.set_disabled, user.user_id, disable, done=f"{user.username} {verb}."):
            self.select_username(user.username)

    def reset_password(self) -> None:
        user = self.selected()
        if user is None:
            self.message.setText("Select a user first.")
            return
        password, ok = QInputDialog.getText(
            self,
            "Reset password",
            f"Temporary password for {user.username}:",
            QLineEdit.EchoMode.Password,
        )
        if ok:
            self._run(
                gateway.reset_password,
                user.user_id,
                password,
                done=f"Password of {user.username} reset; they choose a new one at sign-in.",
            )

    def unlock(self) -> None:
        user = self.selected()
        if user is not None:
            self._run(gateway.unlock_user, user.user_id, done=f"{user.username} unlocked.")


class PricesTab(QWidget):
    def __init__(self, page: AdminWindow) -> None:
        super().__init__()
        self.page = page
        self.model: RowsModel[Any] = RowsModel(
            [
                Column("Code", lambda p: p.code),
                Column("Service", lambda p: p.name),
                Column("Kind", lambda p: p.kind),
                Column("Doctor", lambda p: self._doctor_names.get(p.doctor_id or "", "")),
                Column(
                    "Price", lambda p: gateway.money(p.amount_minor, p.currency), align_right=True
                ),
                Column("Active", lambda p: "yes" if p.active else "no"),
            ],
            self,
        )
        self._doctor_names: dict[str, str] = {}
        self.table = _table(self.model, "Price list", (1, 3))
        self.code = QLineEdit()
        self.name = QLineEdit()
        self.kind = QComboBox()
        self.kind.addItem("Service", "service")
        self.kind.addItem("Consultation fee", "consultation")
        self.doctor = QComboBox()
        self.amount = QLineEdit()
        self.amount.setPlaceholderText("e.g. 25.00")
        self.errors = FieldErrors()
        box = QGroupBox("Add a service / change the selected price")
        form = QFormLayout(box)
        self.errors.add_row(form, "&Code", "code", self.code)
        self.errors.add_row(form, "&Name", "name", self.name)
        self.errors.add_row(form, "&Kind", "kind", self.kind)
        self.errors.add_row(form, "&Doctor (fees)", "doctor_id", self.doctor)
        self.errors.add_row(form, "&Price", "amount_minor", self.amount)
        self.message = plain_label("", "hint")
        form.addRow(self.message)
        row = QHBoxLayout()
        add = QPushButton("Add service")
        add.setProperty("primary", True)
        add.clicked.connect(self.add)
        reprice = QPushButton("Set price of selected")
        reprice.clicked.connect(self.reprice)
        toggle = QPushButton("Activate / deactivate")
        toggle.clicked.connect(self.toggle)
        for b in (add, reprice, toggle):
            row.addWidget(b)
        form.addRow(row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(box)

    def refresh(self) -> None:
        desk = self.page.ctx.desk
        try:
            doctors = gateway.doctors(desk)
            rows = gateway.price_items(desk, include_inactive=True)
        except ClinicError as exc:
            self.message.setText(str(exc))
            return
        self._doctor_names = {d.id: d.name for d in doctors}
        self.doctor.clear()
        self.doctor.addItem("(none)", None)
        for d in doctors:
            self.doctor.addItem(d.name, d.id)
        self.model.set_rows(rows)

    def _currency(self) -> str:
        settings = gateway.clinic_settings(self.page.ctx.desk)
        return settings.currency if settings else "USD"

    def _do(self, fn: Callable[[], object], done: str) -> bool:
        try:
            fn()
        except ValidationError as exc:
            rest = self.errors.show(exc.fields)
            self.message.setText("\n".join(rest))
            return False
        except ClinicError as exc:
            self.message.setText(str(exc))
            return False
        self.errors.clear()
        self.message.setText(done)
        self.refresh()
        return True

    def add(self) -> None:
        desk, actor = self.page.ctx.desk, self.page.ctx.actor

        def run() -> object:
            amount = gateway.parse_money(
                self.amount.text(), self._currency(), field="amount_minor", label="The price"
            )
            return gateway.create_price_item(
                desk,
                actor,
                self.code.text(),
                self.name.text(),
                amount,
                self.kind.currentData(),
                self.doctor.currentData(),
            )

        if self._do(run, "Service added."):
            for edit in (self.code, self.name, self.amount):
                edit.clear()

    def reprice(self) -> None:
        item = _selected(self.table, self.model)
        if item is None:
            self.message.setText("Select a service first.")
            return
        desk, actor = self.page.ctx.desk, self.page.ctx.actor

        def run() -> object:
            amount = gateway.parse_money(
                self.amount.text(), item.currency, field="amount_minor", label="The price"
            )
            return gateway.update_price_item(desk, actor, item.id, amount_minor=amount)

        self._do(run, "Price changed. Bills already made keep their price.")

    def toggle(self) -> None:
        item = _selected(self.table, self.model)
        if item is None:
            self.message.setText("Select a service first.")
            return
        desk, actor = self.page.ctx.desk, self.page.ctx.actor
        self._do(
            lambda: gateway.update_price_item(desk, actor, item.id, active=not item.active),
            "Saved.",
        )


class SettingsTab(QWidget):
    def __init__(self, page: AdminWindow) -> None:
        super().__init__()
        self.page = page
        self.errors = FieldErrors()
        self.name = QLineEdit()
        self.address = QLineEdit()
        self.phone = QLineEdit()
        self.currency = QLineEdit()
        self.currency.setReadOnly(True)
        self.currency.setToolTip("The currency is fixed once bills exist.")
        self.tax = QLineEdit()
        self.tax.setPlaceholderText("percent, e.g. 5 or 12.5")
        self.idle = QSpinBox()
        self.idle.setRange(1, 120)
        self.idle.setSuffix(" minutes")
        self.timezone = QLineEdit()
        self.desk_code = QLineEdit()
        self.desk_code.setReadOnly(True)
        self.desk_code.setToolTip(
            "The desk code is part of every number this desk has made; it is set once, at setup."
        )
        form = QFormLayout(self)
        self.errors.add_row(form, "Clinic &name", "name", self.name)
        self.errors.add_row(form, "&Address", "address", self.address)
        self.errors.add_row(form, "&Phone", "phone", self.phone)
        self.errors.add_row(form, "Currency", "currency", self.currency)
        self.errors.add_row(form, "&Tax rate", "tax_rate", self.tax)
        self.errors.add_row(form, "&Lock after idle", "idle_lock_minutes", self.idle)
        self.errors.add_row(form, "T&ime zone", "timezone", self.timezone)
        self.errors.add_row(form, "Desk code", "desk_code", self.desk_code)
        self.message = plain_label("", "hint")
        self.message.setWordWrap(True)
        form.addRow(self.message)
        self.save_button = QPushButton("Save settings")
        self.save_button.setProperty("primary", True)
        self.save_button.clicked.connect(self.save)
        form.addRow(self.save_button)
        if not gateway.settings_editable():
            self.save_button.setEnabled(False)
            self.message.setText("Changing clinic settings is not available in this version.")
            for edit in (self.name, self.address, self.phone, self.tax, self.timezone):
                edit.setReadOnly(True)
            self.idle.setReadOnly(True)

    def refresh(self) -> None:
        settings = gateway.clinic_settings(self.page.ctx.desk)
        if settings is None:
            return
        self.name.setText(settings.name)
        self.address.setText(settings.address)
        self.phone.setText(settings.phone)
        self.currency.setText(settings.currency)
        self.tax.setText(gateway.percent_text(settings.tax_rate_bp))
        self.idle.setValue(settings.idle_lock_minutes)
        self.timezone.setText(settings.timezone)
        self.desk_code.setText(self.page.ctx.desk.desk_code)

    def save(self) -> None:
        try:
            gateway.update_settings(
                self.page.ctx.desk,
                self.page.ctx.actor,
                name=self.name.text(),
                address=self.address.text(),
                phone=self.phone.text(),
                tax_rate=self.tax.text(),
                idle_lock_minutes=self.idle.value(),
                timezone=self.timezone.text(),
            )
        except ValidationError as exc:
            self.message.setText("\n".join(self.errors.show(exc.fields)))
            return
        except ClinicError as exc:
            self.message.setText(str(exc))
            return
        self.errors.clear()
        self.message.setText("Settings saved.")
        self.page.ctx.events.settings_changed.emit()


class AuditTab(QWidget):
    def __init__(self, page: AdminWindow) -> None:
        super().__init__()
        self.page = page
        self.action = QLineEdit()
        self.action.setPlaceholderText("action starts with, e.g. patient. or patient.open")
        self.action.setAccessibleName("Action filter")
        self.user = QComboBox()
        self.user.setAccessibleName("User filter")
        self.since = QDateEdit(QDate.currentDate().addDays(-7))
        self.since.setCalendarPopup(True)
        self.since.setDisplayFormat("yyyy-MM-dd")
        self.until = QDateEdit(QDate.currentDate())
        self.until.setCalendarPopup(True)
        self.until.setDisplayFormat("yyyy-MM-dd")
        self.flagged = QCheckBox("Flagged only")
        search = QPushButton("Show")
        search.clicked.connect(self.refresh)
        verify = QPushButton("Verify chain")
        verify.clicked.connect(self.verify)
        self.chain = plain_label("Chain not checked yet.", "hint")
        self.chain.setWordWrap(True)
        self.chain.setAccessibleName("Audit chain result")
        self.model: RowsModel[AuditRow] = RowsModel(
            [
                Column("When", lambda a: a.when),
                Column("User", lambda a: a.user),
                Column("Desk", lambda a: a.desk_code),
                Column("Action", lambda a: a.action),
                Column("Record", lambda a: f"{a.entity} {a.entity_id[:8]}"),
                Column("Detail", lambda a: a.detail),
                Column("Flag", lambda a: "⚑" if a.flagged else ""),
            ],
            self,
        )
        filters = QHBoxLayout()
        for w in (
            self.action,
            self.user,
            QLabel("from"),
            self.since,
            QLabel("to"),
            self.until,
            self.flagged,
            search,
        ):
            filters.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(_table(self.model, "Audit events", (5,)), 1)
        row = QHBoxLayout()
        row.addWidget(verify)
        row.addWidget(self.chain, 1)
        layout.addLayout(row)

    def load_users(self) -> None:
        try:
            users = gateway.list_users(self.page.ctx.desk, self.page.ctx.actor)
        except ClinicError:
            users = []
        self.user.clear()
        self.user.addItem("Any user", None)
        for u in users:
            self.user.addItem(u.full_name, u.user_id)

    def refresh(self) -> None:
        if not gateway.audit_listable():
            self.model.set_rows([])
            self.chain.setText(
                "Listing audit events is not available in this version; the chain check is."
            )
            return
        rows = attempt(
            self,
            gateway.audit_events,
            self.page.ctx.desk,
            self.page.ctx.actor,
            action=self.action.text().strip(),
            user_id=self.user.currentData(),
            since=self.since.date().toPython(),
            until=self.until.date().toPython(),
            flagged_only=self.flagged.isChecked(),
        )
        if rows is not None:
            self.model.set_rows(rows)

    def verify(self) -> None:
        result = attempt(self, gateway.verify_audit_chain, self.page.ctx.desk, self.page.ctx.actor)
        if result is not None:
            self.chain.setText(result)


class BackupTab(QWidget):
    def __init__(self, page: AdminWindow) -> None:
        super().__init__()
        self.page = page
        self.status = plain_label("", "hint")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Backup status")
        backup = QPushButton("Back up now")
        backup.setProperty("primary", True)
        backup.clicked.connect(self.backup_now)
        restore = QPushButton("Restore from a backup file...")
        restore.clicked.connect(self.restore)
        note = plain_label(
            "Backups are encrypted with this workstation's key: they can be restored here "
            "(or on a machine with this workstation's keyring). The current records are copied "
            "aside before a restore, so a restore can itself be undone.",
            "hint",
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(section_label("Backup and restore"))
        layout.addWidget(note)
        layout.addWidget(backup)
        layout.addWidget(restore)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.last_backup: Path | None = None

    def backup_now(self, dest: Path | None = None) -> None:
        store = self.page.ctx.store

        def done(path: Path) -> None:
            self.last_backup = path
            self.status.setText(f"Backup written: {path}")

        run_with_progress(self, "Backing up...", lambda: gateway.backup_now(store, dest), done)

    def restore(self, file: Path | None = None) -> None:
        if file is None:
            backups = str(self.page.ctx.store.data_dir / "backups")
            name, _f = QFileDialog.getOpenFileName(
                self, "Restore from backup", backups, "Clinic Desk backups (*.db)"
            )
            if not name:
                return
            file = Path(name)
        if not confirm(
            self,
            "Replace all records on this desk with the backup? Everyone is signed out afterwards.",
        ):
            return
        app = self.page.ctx.app

        def done(result: tuple[Any, Path]) -> None:
            store, safety = result
            app.replace_store(store)
            show_info(
                self, f"Restored. The previous records were kept in {safety}. Please sign in again."
            )
            self.page.window().close()

        run_with_progress(self, "Restoring...", lambda: gateway.restore_from(app.store, file), done)  # type: ignore[arg-type]


class SyncTab(QWidget):
    """Server connection, sync problems (changes the server refused), field conflicts, and
    patients registered twice on different desks."""

    def __init__(self, page: AdminWindow) -> None:
        super().__init__()
        self.page = page
        self.state = plain_label(
            "Not connected to a server: this desk works standalone.", "sectionTitle"
        )
        self.state.setWordWrap(True)
        self.state.setAccessibleName("Sync state")
        self.message = plain_label("", "hint")
        self.message.setWordWrap(True)
        self.problems: RowsModel[Any] = RowsModel(
            [
                Column("When", lambda p: p.occurred_at[:19]),
                Column("Record", lambda p: f"{p.entity_label} {p.row_id[:8]}"),
                Column("Fields", lambda p: ", ".join(p.fields)),
                Column("Reason", lambda p: p.reason),
            ],
            self,
        )
        self.conflicts: RowsModel[Any] = RowsModel(
            [
                Column("Record", lambda c: f"{c.entity_label} {c.row_id[:8]}"),
                Column("Field", lambda c: c.field),
                Column("Kept", lambda c: c.kept_value),
                Column("Lost", lambda c: c.lost_value),
            ],
            self,
        )
        self.duplicates: RowsModel[Any] = RowsModel(
            [
                Column("First", lambda d: d.first_number),
                Column("Second", lambda d: d.second_number),
                Column("Why", lambda d: d.reason),
            ],
            self,
        )
        self.problem_view = _table(self.problems, "Sync problems", (3,))
        self.conflict_view = _table(self.conflicts, "Conflicts", (2, 3))
        self.duplicate_view = _table(self.duplicates, "Possible duplicates", (2,))
        layout = QVBoxLayout(self)
        layout.addWidget(self.state)
        layout.addWidget(self.message)
        layout.addWidget(section_label("Changes the server refused"))
        layout.addWidget(self.problem_view, 1)
        row = QHBoxLayout()
        for text, slot in (
            ("Retry", self.retry),
            ("Discard (keep the server's copy)", self.discard),
        ):
            button = QPushButton(text)
            button.clicked.connect(slot)
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(section_label("Conflicting edits"))
        layout.addWidget(self.conflict_view, 1)
        row = QHBoxLayout()
        for text, slot in (("Keep result", self.keep), ("Restore lost value", self.restore)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(section_label("Same patient registered on two desks"))
        layout.addWidget(self.duplicate_view, 1)
        row = QHBoxLayout()
        merge = QPushButton("Merge second into first...")
        merge.clicked.connect(self.merge)
        row.addWidget(merge)
        row.addStretch(1)
        layout.addLayout(row)

    def refresh(self) -> None:
        desk, actor = self.page.ctx.desk, self.page.ctx.actor
        try:
            self.state.setText(gateway.sync_summary(desk))
            self.problems.set_rows(gateway.sync_problems(desk, actor))
            self.conflicts.set_rows(gateway.sync_conflicts(desk, actor))
            self.duplicates.set_rows(gateway.duplicate_pairs(desk, actor))
        except ClinicError as exc:
            self.message.setText(str(exc))

    def _act(
        self, view: QTableView, model: RowsModel[Any], fn: Callable[..., object], done: str
    ) -> None:
        row = _selected(view, model)
        if row is None:
            self.message.setText("Select a line first.")
            return
        if attempt(self, fn, self.page.ctx.desk, self.page.ctx.actor, row.id) is not None:
            self.message.setText(done)
            self.refresh()

    def retry(self) -> None:
        self._act(
            self.problem_view,
            self.problems,
            gateway.retry_problem,
            "The change will be sent again.",
        )

    def discard(self) -> None:
        self._act(
            self.problem_view,
            self.problems,
            gateway.discard_problem,
            "Discarded; the server's copy stands.",
        )

    def keep(self) -> None:
        self._act(self.conflict_view, self.conflicts, gateway.keep_conflict, "Result kept.")

    def restore(self) -> None:
        self._act(
            self.conflict_view, self.conflicts, gateway.restore_conflict, "Lost value restored."
        )

    def merge(self) -> None:
        pair = _selected(self.duplicate_view, self.duplicates)
        if pair is None:
            self.message.setText("Select a pair first.")
            return
        if not confirm(
            self,
            f"Merge {pair.second_number} into {pair.first_number}? The "
            "history of both stays with the first record.",
        ):
            return
        if (
            attempt(
                self,
                gateway.merge_duplicate,
                self.page.ctx.desk,
                self.page.ctx.actor,
                pair.first_id,
                pair.second_id,
            )
            is not None
        ):
            self.message.setText("Merged.")
            self.refresh()


class AdminWindow(RolePage):
    role = "admin"

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__(ctx)
        self.setObjectName("adminWindow")
        self.users = UsersTab(self)
        self.prices = PricesTab(self)
        self.settings = SettingsTab(self)
        self.audit = AuditTab(self)
        self.backup = BackupTab(self)
        self.sync = SyncTab(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.users, "Users")
        self.tabs.addTab(self.prices, "Price list")
        self.tabs.addTab(self.settings, "Clinic settings")
        self.tabs.addTab(self.audit, "Audit log")
        self.tabs.addTab(self.backup, "Backup")
        self.tabs.addTab(self.sync, "Sync")
        self.tabs.currentChanged.connect(lambda _i: self.on_shown())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 6)
        layout.addWidget(self.tabs)
        self._actions = [
            make_action(
                self,
                f"&{self.tabs.tabText(n)}",
                lambda n=n: self.tabs.setCurrentIndex(n),  # type: ignore[misc]
                f"Alt+{n + 1}",
                icon,
            )
            for n, icon in enumerate(("users", "report", "settings", "audit", "backup", "sync"))
        ]
        for action in self._actions:
            self.addAction(action)
        # Records that arrive by sync (e.g. the first download) refresh what is on screen.
        for signal in (
            ctx.events.users_changed,
            ctx.events.settings_changed,
            ctx.events.bills_changed,
        ):
            signal.connect(self.on_shown)

    def actions_for_menu(self) -> list[QAction]:
        return self._actions

    def on_shown(self) -> None:
        tab = self.tabs.currentWidget()
        if tab is self.users:
            self.users.refresh()
        elif tab is self.prices:
            self.prices.refresh()
        elif tab is self.settings:
            self.settings.refresh()
        elif tab is self.audit:
            self.audit.load_users()
            self.audit.refresh()
        elif tab is self.sync:
            self.sync.refresh()
