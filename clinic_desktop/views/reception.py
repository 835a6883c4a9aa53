"""Reception: find or register a patient, issue a token, watch and arrange today's queue.

Keyboard path for a known patient: type part of the name, phone or number (results follow
each keystroke and the first match is selected), press F2: the token is issued for the doctor
in the doctor picker (last used by default; Alt+1..9 picks a doctor) and the slip is printed
on request. Ctrl+F returns to the search box, Ctrl+N opens the registration form.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, QObject, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clinic_desktop.services.errors import ClinicError, ValidationError
from clinic_desktop.views import gateway
from clinic_desktop.views.common import (
    BackgroundPoll,
    Column,
    FieldErrors,
    RowsModel,
    attempt,
    configure_table,
    make_action,
    plain_label,
    run_in_background,
    section_label,
    show_error,
)
from clinic_desktop.views.printing_ui import print_or_save
from clinic_desktop.views.shell import RolePage, ViewContext

if TYPE_CHECKING:
    from clinic_desktop.views.gateway import DoctorRef, PatientRow, QueueRow

log = logging.getLogger(__name__)

RESULT_LIMIT = 25  # a screenful; more precise typing beats scrolling
PRIORITY_NAMES = {0: "", 1: "Priority", 2: "Emergency"}
STATUS_NAMES = {
    "waiting": "Waiting",
    "called": "Called",
    "in_consultation": "With doctor",
    "completed": "Done",
    "cancelled": "Cancelled",
    "no_show": "No-show",
}


class SearchRunner(QObject):
    """Runs patient searches off the UI thread, newest query wins.

    While one search runs, later keystrokes only replace the pending query, so the worker
    never falls behind the typist and stale results are never shown.
    """

    results = Signal(str, list, float)  # query, rows, started (perf_counter)
    failed = Signal(str)

    def __init__(self, search: Callable[[str], list[PatientRow]], parent: QObject | None = None):
        super().__init__(parent)
        self._search = search
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._busy = False
        self._pending: tuple[str, float] | None = None

    def request(self, query: str) -> None:
        self._pending = (query, time.perf_counter())
        if not self._busy:
            self._next()

    def _next(self) -> None:
        if self._pending is None:
            return
        query, started = self._pending
        self._pending = None
        self._busy = True

        def done(rows: list[PatientRow]) -> None:
            self._busy = False
            if self._pending is None:  # newer keystrokes make this answer stale
                self.results.emit(query, rows, started)
            self._next()

        def failed(exc: BaseException) -> None:
            self._busy = False
            self.failed.emit(str(exc) if isinstance(exc, ClinicError) else "Search failed.")
            if not isinstance(exc, ClinicError):
                log.error("patient search failed: %s", type(exc).__name__)
            self._next()

        run_in_background(lambda: self._search(query), done, failed, pool=self._pool)

    def wait_idle(self, timeout_ms: int = 5000) -> bool:
        return self._pool.waitForDone(timeout_ms)


class RegisterForm(QGroupBox):
    """The register-patient form; messages appear under the fields they concern."""

    def __init__(self) -> None:
        super().__init__("Register a new patient")
        self.errors = FieldErrors()
        outer = QVBoxLayout(self)
        form = QFormLayout()
        outer.addLayout(form)
        outer.addStretch(1)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.full_name = QLineEdit()
        self.full_name.setMaxLength(200)
        self.sex = QComboBox()
        for value, text in (
            ("", "Choose..."),
            ("female", "Female"),
            ("male", "Male"),
            ("other", "Other"),
            ("unknown", "Unknown"),
        ):
            self.sex.addItem(text, value)
        self.dob = QDateEdit()
        self.dob.setCalendarPopup(True)
        self.dob.setDisplayFormat("yyyy-MM-dd")
        self.dob.setMinimumDate(QDate(1900, 1, 1))
        self.dob.setSpecialValueText("not known")
        self.dob.setDate(self.dob.minimumDate())
        self.age = QSpinBox()
        self.age.setRange(-1, 130)
        self.age.setSpecialValueText("not given")
        self.age.setValue(-1)
        self.age.setSuffix(" years")
        self.phone = QLineEdit()
        self.address = QLineEdit()
        self.emergency_name = QLineEdit()
        self.emergency_phone = QLineEdit()
        self.allergies = QLineEdit()
        self.allergies.setPlaceholderText("e.g. penicillin, peanuts (leave empty if none)")
        self.blood_group = QComboBox()
        self.blood_group.addItems(["", "A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"])
        self.notes = QPlainTextEdit()
        self.notes.setFixedHeight(54)
        self.errors.add_row(form, "Full &name", "full_name", self.full_name)
        self.errors.add_row(form, "&Sex", "sex", self.sex)
        self.errors.add_row(form, "Date of &birth", "date_of_birth", self.dob)
        self.errors.add_row(form, "or &age", "age", self.age)
        self.errors.add_row(form, "&Phone", "phone", self.phone)
        self.errors.add_row(form, "Add&ress", "address", self.address)
        self.errors.add_row(
            form, "Emergency contact", "emergency_contact_name", self.emergency_name
        )
        self.errors.add_row(
            form, "Emergency phone", "emergency_contact_phone", self.emergency_phone
        )
        self.errors.add_row(form, "Aller&gies", "allergies", self.allergies)
        self.errors.add_row(form, "Blood group", "blood_group", self.blood_group)
        self.errors.add_row(form, "Notes", "notes", self.notes)
        self.duplicates = plain_label("", "warningBanner")
        self.duplicates.setWordWrap(True)
        self.duplicates.setVisible(False)
        self.duplicates.setAccessibleName("Possible duplicate patients")
        self.general = plain_label("", "fieldError")
        self.general.setWordWrap(True)
        self.register_button = QPushButton("Register")
        self.register_button.setProperty("primary", True)
        self.register_button.setToolTip("Register the patient (Ctrl+S)")
        self.register_anyway = QPushButton("Register anyway")
        self.register_anyway.setVisible(False)
        self.register_anyway.setToolTip("These are different people: register a new record")
        self.clear_button = QPushButton("Clear")
        buttons = QHBoxLayout()
        buttons.addWidget(self.register_button)
        buttons.addWidget(self.register_anyway)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        form.addRow(self.duplicates)
        form.addRow(self.general)
        form.addRow(buttons)
        self.clear_button.clicked.connect(self.clear)
        for a, b in (
            (self.full_name, self.sex),
            (self.sex, self.dob),
            (self.dob, self.age),
            (self.age, self.phone),
            (self.phone, self.address),
            (self.address, self.emergency_name),
            (self.emergency_name, self.emergency_phone),
            (self.emergency_phone, self.allergies),
            (self.allergies, self.blood_group),
            (self.blood_group, self.notes),
            (self.notes, self.register_button),
        ):
            QWidget.setTabOrder(a, b)
        self.notes.setTabChangesFocus(True)
        self.editing: gateway.PatientRecord | None = None
        self._loaded: dict[str, object] = {}

    def values(self) -> dict[str, object]:
        dob: date | None = None
        if self.dob.date() != self.dob.minimumDate():
            dob = self.dob.date().toPython()  # type: ignore[assignment]
        return {
            "full_name": self.full_name.text(),
            "sex": self.sex.currentData() or "",
            "date_of_birth": dob,
            "age_years": self.age.value() if self.age.value() >= 0 else None,
            "phone": self.phone.text(),
            "address": self.address.text(),
            "emergency_contact_name": self.emergency_name.text(),
            "emergency_contact_phone": self.emergency_phone.text(),
            "allergies": self.allergies.text(),
            "blood_group": self.blood_group.currentText(),
            "notes": self.notes.toPlainText(),
        }

    def load(self, record: gateway.PatientRecord) -> None:
        """Fill the form with an existing patient to edit (Save then sends only changes)."""
        self.clear()
        self.editing = record
        self.setTitle(f"Edit patient {record.number}")
        self.register_button.setText("Save changes")
        self.register_button.setToolTip("Save the changed fields (Ctrl+S)")
        self.full_name.setText(record.name)
        index = self.sex.findData(record.sex)
        self.sex.setCurrentIndex(max(index, 0))
        if record.date_of_birth is not None and not record.dob_estimated:
            self.dob.setDate(QDate(record.date_of_birth))
        elif record.age_years is not None:
            self.age.setValue(record.age_years)
        self.phone.setText(record.phone)
        self.address.setText(record.address)
        self.emergency_name.setText(record.emergency_contact_name)
        self.emergency_phone.setText(record.emergency_contact_phone)
        self.allergies.setText(record.allergies)
        self.blood_group.setCurrentText(record.blood_group)
        self.notes.setPlainText(record.notes)
        self._loaded = self.values()

    def changes(self) -> dict[str, object]:
        """Only what the person changed since :meth:`load` (precise sync merges)."""
        now = self.values()
        return {k: v for k, v in now.items() if self._loaded.get(k) != v}

    def show_duplicates(self, matches: list[PatientRow]) -> None:
        lines = [f"{m.name} · {m.number} · {m.phone} · {m.age_sex}" for m in matches[:5]]
        self.duplicates.setText(
            "This patient may already be registered:\n"
            + "\n".join(lines)
            + "\nSelect the existing record in the search list, or choose Register anyway."
        )
        self.duplicates.setVisible(True)
        self.register_anyway.setVisible(True)

    def clear(self) -> None:
        self.editing = None
        self._loaded = {}
        self.setTitle("Register a new patient")
        self.register_button.setText("Register")
        self.register_button.setToolTip("Register the patient (Ctrl+S)")
        self.errors.clear()
        for edit in (
            self.full_name,
            self.phone,
            self.address,
            self.emergency_name,
            self.emergency_phone,
            self.allergies,
        ):
            edit.clear()
        self.notes.clear()
        self.sex.setCurrentIndex(0)
        self.blood_group.setCurrentIndex(0)
        self.dob.setDate(self.dob.minimumDate())
        self.age.setValue(-1)
        self.hide_duplicates()
        self.general.clear()

    def hide_duplicates(self) -> None:
        self.duplicates.clear()
        self.duplicates.setVisible(False)
        self.register_anyway.setVisible(False)


class ReceptionWindow(RolePage):
    role = "receptionist"

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__(ctx)
        self.setObjectName("receptionWindow")
        self.last_token: gateway.TokenView | None = None

        # --- search
        self.search_box = QLineEdit()
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Find patient: name, phone or patient number  (Ctrl+F)")
        self.search_box.setAccessibleName("Find patient")
        self.search_box.setClearButtonEnabled(True)
        self.search_status = plain_label("", "hint")
        self.results_model: RowsModel[PatientRow] = RowsModel(
            [
                Column("Name", lambda p: p.name),
                Column("Number", lambda p: p.number),
                Column("Phone", lambda p: p.phone),
                Column("Age / sex", lambda p: p.age_sex),
            ],
            self,
        )
        self.results = self._table(self.results_model, "Search results")
        # Fixed widths: measuring every cell on each keystroke's results costs tens of ms.
        header = self.results.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column, width in ((1, 110), (2, 130), (3, 80)):
            self.results.setColumnWidth(column, width)
        self.results.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.results.verticalHeader().setDefaultSectionSize(28)
        self.results.doubleClicked.connect(lambda _i: self.issue_token())
        self.results.activated.connect(lambda _i: self.edit_selected())
        self.runner = SearchRunner(
            lambda q: gateway.search_patients(self.ctx.desk, self.ctx.actor, q, RESULT_LIMIT), self
        )
        self.runner.results.connect(self._show_results)
        self.runner.failed.connect(self.search_status.setText)
        self.search_box.textChanged.connect(self._query_changed)
        self.search_box.returnPressed.connect(self._search_enter)
        self.last_latency_ms: float | None = None
        self.results_query = ""  # the text the results on screen answer

        # --- token
        self.doctor_box = QComboBox()
        self.doctor_box.setAccessibleName("Doctor for the token")
        self.doctor_box.setToolTip("Doctor for new tokens (Alt+1..9 picks a doctor)")
        self.priority_box = QComboBox()
        self.priority_box.addItem("Normal", 0)
        self.priority_box.addItem("Priority", 1)
        self.priority_box.addItem("Emergency", 2)
        self.priority_box.setAccessibleName("Token priority")
        self.issue_button = QPushButton("Issue token  (F2)")
        self.issue_button.setProperty("primary", True)
        self.issue_button.setToolTip("Issue a token for the selected patient (F2)")
        self.issue_button.clicked.connect(self.issue_token)
        self.selected_label = plain_label("No patient selected", "sectionTitle")
        self.selected_label.setWordWrap(True)
        self.allergy_label = plain_label("", "allergyBanner")
        self.allergy_label.setVisible(False)
        self.token_label = plain_label("", "hint")
        self.print_slip_button = QPushButton("Print slip  (Ctrl+P)")
        self.print_slip_button.setEnabled(False)
        self.print_slip_button.clicked.connect(self.print_last_slip)

        token_box = QGroupBox("Token")
        token_layout = QFormLayout(token_box)
        token_layout.addRow(self.selected_label)
        token_layout.addRow(self.allergy_label)
        token_layout.addRow("&Doctor", self.doctor_box)
        token_layout.addRow("P&riority", self.priority_box)
        row = QHBoxLayout()
        row.addWidget(self.issue_button)
        row.addWidget(self.print_slip_button)
        token_layout.addRow(row)
        token_layout.addRow(self.token_label)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(section_label("Find a patient"))
        left_layout.addWidget(self.search_box)
        left_layout.addWidget(self.search_status)
        left_layout.addWidget(self.results, 1)
        left_layout.addWidget(token_box)

        # --- register + queue tabs
        self.form = RegisterForm()
        self.form.register_button.clicked.connect(lambda: self.register(allow_duplicate=False))
        self.form.register_anyway.clicked.connect(lambda: self.register(allow_duplicate=True))
        self.queue_doctor = QComboBox()
        self.queue_doctor.setAccessibleName("Queue of doctor")
        self.queue_doctor.currentIndexChanged.connect(lambda _i: self.refresh_queue())
        self.queue_model: RowsModel[QueueRow] = RowsModel(
            [
                Column("Token", lambda v: v.token),
                Column("Patient", lambda v: v.patient_name),
                Column("Doctor", lambda v: v.doctor_name),
                Column("Status", lambda v: STATUS_NAMES.get(v.status, v.status)),
                Column("Priority", lambda v: PRIORITY_NAMES.get(v.priority, "")),
                Column("Arrived", lambda v: v.arrived),
            ],
            self,
        )
        self.queue_view = self._table(self.queue_model, "Today's queue", (1, 2))
        queue_page = QWidget()
        q_layout = QVBoxLayout(queue_page)
        top = QHBoxLayout()
        top.addWidget(QLabel("Doctor"))
        top.addWidget(self.queue_doctor, 1)
        q_layout.addLayout(top)
        q_layout.addWidget(self.queue_view, 1)
        buttons = QHBoxLayout()
        self.queue_buttons: dict[str, QPushButton] = {}
        for key, text in (
            ("up", "Move up"),
            ("down", "Move down"),
            ("priority", "Priority"),
            ("no_show", "No-show"),
            ("cancel", "Cancel token"),
            ("reprint", "Reprint slip"),
        ):
            button = QPushButton(text)
            buttons.addWidget(button)
            self.queue_buttons[key] = button
        q_layout.addLayout(buttons)
        self.queue_buttons["up"].clicked.connect(lambda: self._queue_move(-1))
        self.queue_buttons["down"].clicked.connect(lambda: self._queue_move(1))
        self.queue_buttons["priority"].clicked.connect(self._queue_priority)
        self.queue_buttons["no_show"].clicked.connect(self._queue_no_show)
        self.queue_buttons["cancel"].clicked.connect(self._queue_cancel)
        self.queue_buttons["reprint"].clicked.connect(self._queue_reprint)
        self.show_cancelled = QCheckBox("Show finished and cancelled")
        self.show_cancelled.toggled.connect(lambda _c: self.refresh_queue())
        q_layout.addWidget(self.show_cancelled)

        self.tabs = QTabWidget()
        self.tabs.addTab(queue_page, "Today's queue")
        self.tabs.addTab(self.form, "Register patient")

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([560, 640])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 6)
        layout.addWidget(splitter)

        self._make_actions()
        self.results.selectionModel().currentRowChanged.connect(
            lambda *_: self._selection_changed()
        )
        self.queue_timer = QTimer(self)
        self.queue_timer.setInterval(3000)
        self.queue_poll = BackgroundPoll(
            self._fetch_queue, self._show_queue, lambda exc: None, self
        )
        self.queue_timer.timeout.connect(self.poll_queue)
        self._filter_snapshot: tuple[str | None, bool] = (None, False)
        self.ctx.events.queue_changed.connect(self.refresh_queue)
        self.ctx.events.users_changed.connect(self.load_doctors)
        self.doctors: list[DoctorRef] = []
        self.load_doctors()
        QWidget.setTabOrder(self.search_box, self.results)
        QWidget.setTabOrder(self.results, self.doctor_box)
        QWidget.setTabOrder(self.doctor_box, self.priority_box)
        QWidget.setTabOrder(self.priority_box, self.issue_button)

    # ------------------------------------------------------------------ building blocks
    def _table(
        self,
        model: RowsModel[Any],
        name: str,
        stretch: tuple[int, ...] = (0,),
    ) -> QTableView:
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

    def _make_actions(self) -> None:
        self.find_action = make_action(self, "&Find patient", self.focus_search, "Ctrl+F", "search")
        self.new_action = make_action(
            self, "&New patient", self.new_patient, "Ctrl+N", "patient-add"
        )
        self.token_action = make_action(self, "Issue &token", self.issue_token, "F2", "token")
        self.slip_action = make_action(
            self, "&Print token slip", self.print_last_slip, "Ctrl+P", "print"
        )
        self.save_action = make_action(
            self, "&Register / save patient", lambda: self.register(False), "Ctrl+S"
        )
        self.edit_action = make_action(
            self,
            "&Edit patient",
            self.edit_selected,
            "Ctrl+E",
            "patient",
            "Open the selected patient's record to correct it",
        )
        self.queue_action = make_action(
            self, "Today's &queue", lambda: self.tabs.setCurrentIndex(0), "Ctrl+Q", "history"
        )
        for action in (
            self.find_action,
            self.new_action,
            self.edit_action,
            self.token_action,
            self.slip_action,
            self.save_action,
            self.queue_action,
        ):
            self.addAction(action)
        self.doctor_keys: list[QShortcut] = []
        for n in range(1, 10):
            shortcut = QShortcut(QKeySequence(f"Alt+{n}"), self)
            shortcut.activated.connect(lambda n=n: self.pick_doctor(n - 1))
            self.doctor_keys.append(shortcut)

    def actions_for_menu(self) -> list[QAction]:
        return [
            self.find_action,
            self.new_action,
            self.edit_action,
            self.token_action,
            self.slip_action,
            self.save_action,
            self.queue_action,
        ]

    def on_shown(self) -> None:
        self.queue_timer.start()
        self.refresh_queue()
        self.focus_search()

    # ------------------------------------------------------------------ doctors
    def load_doctors(self) -> None:
        try:
            self.doctors = gateway.doctors(self.ctx.desk)
        except ClinicError as exc:
            self.search_status.setText(str(exc))
            self.doctors = []
        current = self.doctor_box.currentData()
        self.doctor_box.blockSignals(True)
        self.doctor_box.clear()
        self.queue_doctor.blockSignals(True)
        self.queue_doctor.clear()
        self.queue_doctor.addItem("All doctors", None)
        for n, doctor in enumerate(self.doctors, start=1):
            key = f"  (Alt+{n})" if n <= 9 else ""
            self.doctor_box.addItem(f"{doctor.name}{key}", doctor.id)
            self.queue_doctor.addItem(doctor.name, doctor.id)
        if current is not None:
            index = self.doctor_box.findData(current)
            if index >= 0:
                self.doctor_box.setCurrentIndex(index)
        self.doctor_box.blockSignals(False)
        self.queue_doctor.blockSignals(False)

    def pick_doctor(self, index: int) -> None:
        if 0 <= index < self.doctor_box.count():
            self.doctor_box.setCurrentIndex(index)

    # ------------------------------------------------------------------ search
    def focus_search(self) -> None:
        self.search_box.setFocus()
        self.search_box.selectAll()

    def _query_changed(self, text: str) -> None:
        if not text.strip():
            self.results_model.set_rows([])
            self.results_query = text
            self.search_status.clear()
            return
        self.runner.request(text)

    def _show_results(self, query: str, rows: list[PatientRow], started: float) -> None:
        if query != self.search_box.text():
            return
        self.results_model.set_rows(rows)
        self.results_query = query
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        self.search_status.setText(
            "No patient found. Ctrl+N registers a new one."
            if not rows
            else f"{len(rows)} found. Arrows choose, F2 issues a token."
        )
        if rows:
            self.results.selectRow(0)

    def _search_enter(self) -> None:
        if self.results_model.rowCount() and self.selected_patient() is not None:
            self.results.setFocus()
        elif self.search_box.text().strip():
            self.runner.request(self.search_box.text())

    def selected_patient(self) -> PatientRow | None:
        index = self.results.currentIndex()
        return self.results_model.row(index.row()) if index.isValid() else None

    def _selection_changed(self) -> None:
        patient = self.selected_patient()
        if patient is None:
            self.selected_label.setText("No patient selected")
            self.allergy_label.setVisible(False)
            return
        self.selected_label.setText(f"{patient.name}  ·  {patient.number}  ·  {patient.age_sex}")
        self.allergy_label.setText(f"Allergies: {patient.allergies}")
        self.allergy_label.setVisible(bool(patient.allergies.strip()))

    def select_patient(self, patient: PatientRow) -> None:
        self.results_model.set_rows([patient])
        self.results_query = self.search_box.text()
        self.results.selectRow(0)
        self._selection_changed()

    # ------------------------------------------------------------------ register
    def new_patient(self) -> None:
        if self.form.editing is not None:
            self.form.clear()
        self.tabs.setCurrentWidget(self.form)
        self.form.full_name.setFocus()

    def edit_selected(self) -> None:
        """Open the selected patient's full record (audited) into the form to correct it."""
        patient = self.selected_patient()
        if patient is None:
            self.token_label.setText("Select a patient first (Ctrl+F to search).")
            return
        record = attempt(self, gateway.open_patient, self.ctx.desk, self.ctx.actor, patient.id)
        if record is not None:
            self.form.load(record)
            self.tabs.setCurrentWidget(self.form)
            self.form.full_name.setFocus()

    def save_changes(self) -> PatientRow | None:
        record = self.form.editing
        assert record is not None
        changes = self.form.changes()
        self.form.errors.clear()
        self.form.general.clear()
        if not changes:
            self.form.general.setText("Nothing was changed.")
            return None
        try:
            patient = gateway.edit_patient(
                self.ctx.desk, self.ctx.actor, record.patient_id, changes
            )
        except ValidationError as exc:
            self.form.general.setText("\n".join(self.form.errors.show(exc.fields)))
            return None
        except ClinicError as exc:
            show_error(self, exc)
            return None
        self.form.clear()
        self.ctx.events.patients_changed.emit()
        self.select_patient(patient)
        self.token_label.setText(f"Saved the changes to {patient.name} ({patient.number}).")
        self.results.setFocus()
        return patient

    def register(self, allow_duplicate: bool) -> PatientRow | None:
        if self.tabs.currentWidget() is not self.form:
            self.new_patient()
            return None
        if self.form.editing is not None:
            return self.save_changes()
        values = self.form.values()
        self.form.errors.clear()
        self.form.general.clear()
        try:
            patient = gateway.register_patient(
                self.ctx.desk, self.ctx.actor, values, confirmed=allow_duplicate
            )
        except ValidationError as exc:
            self.form.hide_duplicates()
            rest = self.form.errors.show(exc.fields)
            self.form.general.setText("\n".join(rest))
            return None
        except ClinicError as exc:
            matches = gateway.duplicate_candidates(exc)
            if matches is None:
                show_error(self, exc)
            else:
                self.form.show_duplicates(matches)
            return None
        self.form.clear()
        self.ctx.events.patients_changed.emit()
        self.search_box.blockSignals(True)
        self.search_box.setText(patient.number)
        self.search_box.blockSignals(False)
        self.search_status.clear()
        self.select_patient(patient)
        self.token_label.setText(
            f"Registered {patient.name} as {patient.number}. F2 issues a token."
        )
        self.results.setFocus()
        return patient

    # ------------------------------------------------------------------ tokens
    def _catch_up(self) -> None:
        """F2 pressed before the answer for the latest keystrokes arrived: the list on screen
        is for older text, so search now (one fast query) rather than act on a stale row."""
        text = self.search_box.text()
        if not text.strip() or text == self.results_query:
            return
        rows = attempt(
            self, gateway.search_patients, self.ctx.desk, self.ctx.actor, text, RESULT_LIMIT
        )
        self._show_results(text, rows or [], time.perf_counter())

    def issue_token(self) -> gateway.TokenView | None:
        self._catch_up()
        patient = self.selected_patient()
        if patient is None:
            self.token_label.setText("Select a patient first (Ctrl+F to search).")
            self.focus_search()
            return None
        doctor_id = self.doctor_box.currentData()
        if doctor_id is None:
            show_error(
                self,
                "There is no doctor to issue a token for. Ask an administrator to "
                "add a user with the doctor role.",
            )
            return None
        token = attempt(
            self,
            gateway.issue_token,
            self.ctx.desk,
            self.ctx.actor,
            patient.id,
            doctor_id,
            int(self.priority_box.currentData()),
        )
        if token is None:
            return None
        self.last_token = token
        self.priority_box.setCurrentIndex(0)
        self.print_slip_button.setEnabled(True)
        self.token_label.setText(
            f"Token {token.token_label} for {token.patient_name} with {token.doctor_name}. "
            "Ctrl+P prints the slip."
        )
        self.ctx.events.queue_changed.emit()
        self.focus_search()
        return token

    def print_last_slip(self) -> None:
        if self.last_token is None:
            self.token_label.setText("Issue a token first.")
            return
        self._print_slip(self.last_token)

    def _print_slip(self, token: gateway.TokenView) -> Path | None:
        from clinic_desktop.printing.documents import SLIP, TokenSlip, token_slip_html

        slip = TokenSlip(
            clinic=gateway.clinic_header(self.ctx.desk),
            token_label=token.token_label,
            doctor_name=token.doctor_name,
            patient_name=token.patient_name,
            patient_number=token.patient_number,
            issued_at=token.issued_at,
            waiting_ahead=token.waiting_ahead,
        )
        return print_or_save(
            self, token_slip_html(slip), SLIP, f"token-{token.token_label}", self.ctx.app.pdf_dir
        )

    # ------------------------------------------------------------------ queue
    def _queue_filter(self) -> tuple[str | None, bool]:
        return self.queue_doctor.currentData(), self.show_cancelled.isChecked()

    def _fetch_queue(self) -> tuple[tuple[str | None, bool], list[QueueRow]]:
        # Runs on a pool thread: the filter is read from plain values, not widgets.
        wanted = self._filter_snapshot
        doctor, finished = wanted
        rows = gateway.today_queue(self.ctx.desk, self.ctx.actor, doctor, include_finished=finished)
        return wanted, rows

    def _show_queue(self, result: tuple[tuple[str | None, bool], list[QueueRow]]) -> None:
        wanted, rows = result
        if wanted == self._queue_filter():  # the filter did not change meanwhile
            self._apply_queue(rows)

    def poll_queue(self) -> None:
        self._filter_snapshot = self._queue_filter()
        self.queue_poll.request()

    def refresh_queue(self) -> None:
        if not self.isVisible() and self.queue_model.rowCount():
            return
        doctor, finished = self._queue_filter()
        try:
            rows = gateway.today_queue(
                self.ctx.desk, self.ctx.actor, doctor, include_finished=finished
            )
        except ClinicError as exc:
            self.search_status.setText(str(exc))
            return
        self._apply_queue(rows)

    def _apply_queue(self, rows: list[QueueRow]) -> None:
        selected = self.selected_visit()
        if rows == self.queue_model.rows():
            return
        self.queue_model.set_rows(rows)
        if selected is not None:
            for n, row in enumerate(rows):
                if row.visit_id == selected.visit_id:
                    self.queue_view.selectRow(n)

    def selected_visit(self) -> QueueRow | None:
        index = self.queue_view.currentIndex()
        return self.queue_model.row(index.row()) if index.isValid() else None

    def _queue_do(self, fn: Callable[..., object], *args: object) -> None:
        visit = self.selected_visit()
        if visit is None:
            show_error(self, "Select a token in the queue first.")
            return
        if attempt(self, fn, self.ctx.desk, self.ctx.actor, visit.visit_id, *args) is not None:
            self.ctx.events.queue_changed.emit()

    def _queue_move(self, delta: int) -> None:
        self._queue_do(gateway.move_in_queue, delta)

    def _queue_priority(self) -> None:
        visit = self.selected_visit()
        if visit is not None:
            self._queue_do(gateway.set_priority, (visit.priority + 1) % 3)

    def _queue_no_show(self) -> None:
        self._queue_do(gateway.mark_no_show)

    def _queue_cancel(self) -> None:
        self._queue_do(gateway.cancel_visit)

    def _queue_reprint(self) -> None:
        visit = self.selected_visit()
        if visit is None:
            show_error(self, "Select a token in the queue first.")
            return
        self._print_slip(gateway.token_from_row(visit, self.ctx.desk, self.ctx.actor))
