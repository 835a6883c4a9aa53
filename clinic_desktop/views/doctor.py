"""Doctor: my queue, call next, the patient's header and history, the consultation form, the
prescription builder, sign + print, complete the visit.

Keys: F5 call next, F6 start the consultation, Ctrl+S save, Ctrl+I add the medicine line,
Ctrl+Shift+S sign and print the prescription, Ctrl+Return complete the visit.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QDate, QStringListModel, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateEdit,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
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
    section_label,
    show_error,
)
from clinic_desktop.views.printing_ui import print_or_save
from clinic_desktop.views.shell import RolePage, ViewContext

if TYPE_CHECKING:
    from clinic_desktop.views.gateway import PatientHeader, QueueRow, RxLine

log = logging.getLogger(__name__)

STATUS_NAMES = {
    "waiting": "Waiting",
    "called": "Called",
    "in_consultation": "With me",
    "completed": "Done",
}


def _editable_combo(items: list[str], name: str) -> QComboBox:
    box = QComboBox()
    box.setEditable(True)
    box.addItems(items)
    box.setCurrentIndex(-1)
    box.setAccessibleName(name)
    box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    return box


class ConsultationForm(QWidget):
    """Complaint, vitals, examination, ICD-10 diagnoses, advice and follow-up."""

    VITALS = (
        ("bp_systolic", "BP systolic", "mmHg"),
        ("bp_diastolic", "BP diastolic", "mmHg"),
        ("pulse", "Pulse", "/min"),
        ("temperature_c", "Temperature", "°C"),
        ("weight_kg", "Weight", "kg"),
        ("height_cm", "Height", "cm"),
        ("spo2", "SpO2", "%"),
    )

    def __init__(self, desk_getter: object) -> None:
        super().__init__()
        self.errors = FieldErrors()
        self.complaint = QPlainTextEdit()
        self.complaint.setFixedHeight(60)
        self.complaint.setTabChangesFocus(True)
        self.examination = QPlainTextEdit()
        self.examination.setFixedHeight(70)
        self.examination.setTabChangesFocus(True)
        self.advice = QPlainTextEdit()
        self.advice.setFixedHeight(60)
        self.advice.setTabChangesFocus(True)
        self.vitals: dict[str, QLineEdit] = {}
        vitals_box = QWidget()
        grid = QGridLayout(vitals_box)
        grid.setContentsMargins(0, 0, 0, 0)
        for n, (name, caption, unit) in enumerate(self.VITALS):
            edit = QLineEdit()
            edit.setMaximumWidth(90)
            edit.setAccessibleName(caption)
            edit.setPlaceholderText(unit)
            self.vitals[name] = edit
            label = QLabel(caption)
            label.setBuddy(edit)
            error = plain_label("", "fieldError")
            error.setVisible(False)
            grid.addWidget(label, (n // 4) * 2, (n % 4) * 2)
            grid.addWidget(edit, (n // 4) * 2, (n % 4) * 2 + 1)
            grid.addWidget(error, (n // 4) * 2 + 1, (n % 4) * 2, 1, 2)
            self.errors._labels[name] = error
            self.errors._fields[name] = edit
        self.icd_search = QLineEdit()
        self.icd_search.setPlaceholderText("Search ICD-10: code or words, e.g. 'htn' or 'J06'")
        self.icd_model = QStringListModel(self)
        self.icd_completer = QCompleter(self.icd_model, self)
        self.icd_completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.icd_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.icd_search.setCompleter(self.icd_completer)
        self.icd_search.textEdited.connect(self._icd_typed)
        self.icd_completer.activated.connect(self._icd_chosen)
        self.icd_search.returnPressed.connect(self._icd_enter)
        self.diagnoses = QListWidget()
        self.diagnoses.setFixedHeight(70)
        self.diagnoses.setAccessibleName("Diagnoses")
        remove = QPushButton("Remove diagnosis")
        remove.clicked.connect(self._remove_diagnosis)
        self.follow_up_on = QCheckBox("Follow-up on")
        self.follow_up = QDateEdit()
        self.follow_up.setCalendarPopup(True)
        self.follow_up.setDisplayFormat("yyyy-MM-dd")
        self.follow_up.setDate(QDate.currentDate().addDays(7))
        self.follow_up.setEnabled(False)
        self.follow_up_on.toggled.connect(self.follow_up.setEnabled)
        follow = QHBoxLayout()
        follow.addWidget(self.follow_up_on)
        follow.addWidget(self.follow_up)
        follow.addStretch(1)
        follow_box = QWidget()
        follow_box.setLayout(follow)

        form = QFormLayout(self)
        self.errors.add_row(form, "&Complaint", "complaint", self.complaint)
        form.addRow("Vitals", vitals_box)
        self.errors.add_row(form, "E&xamination", "examination", self.examination)
        self.errors.add_row(form, "&Diagnosis (ICD-10)", "diagnosis_codes", self.icd_search)
        diag = QHBoxLayout()
        diag.addWidget(self.diagnoses, 1)
        diag.addWidget(remove, 0, Qt.AlignmentFlag.AlignTop)
        form.addRow("", diag)
        self.errors.add_row(form, "&Advice", "advice", self.advice)
        self.errors.add_row(form, "&Follow-up", "follow_up_date", follow_box, buddy=False)
        order = [
            self.complaint,
            *self.vitals.values(),
            self.examination,
            self.icd_search,
            self.diagnoses,
            self.advice,
            self.follow_up_on,
            self.follow_up,
        ]
        for a, b in itertools.pairwise(order):
            QWidget.setTabOrder(a, b)

    # ICD-10 completer
    def _icd_typed(self, text: str) -> None:
        options = gateway.search_icd10(text) if len(text.strip()) >= 2 else []
        self.icd_model.setStringList([f"{code} {title}" for code, title in options])

    def _icd_chosen(self, text: str) -> None:
        code, _, title = text.partition(" ")
        self.add_diagnosis(code, title)
        QTimer.singleShot(0, self.icd_search.clear)

    def _icd_enter(self) -> None:
        entries = self.icd_model.stringList()
        if entries:
            self._icd_chosen(entries[0])

    def add_diagnosis(self, code: str, title: str) -> None:
        for n in range(self.diagnoses.count()):
            if self.diagnoses.item(n).data(Qt.ItemDataRole.UserRole) == code:
                return
        item = QListWidgetItem(f"{code}  {title}")
        item.setData(Qt.ItemDataRole.UserRole, code)
        self.diagnoses.addItem(item)

    def _remove_diagnosis(self) -> None:
        row = self.diagnoses.currentRow()
        if row >= 0:
            self.diagnoses.takeItem(row)

    def codes(self) -> list[str]:
        return [
            str(self.diagnoses.item(n).data(Qt.ItemDataRole.UserRole))
            for n in range(self.diagnoses.count())
        ]

    def values(self) -> dict[str, object]:
        out: dict[str, object] = {
            "complaint": self.complaint.toPlainText(),
            "examination": self.examination.toPlainText(),
            "advice": self.advice.toPlainText(),
            "diagnosis_codes": self.codes(),
            "follow_up_date": (
                self.follow_up.date().toPython() if self.follow_up_on.isChecked() else None
            ),
        }
        for name, edit in self.vitals.items():
            out[name] = edit.text().strip()
        return out

    def load(self, record: gateway.ConsultationView) -> None:
        self.errors.clear()
        self.complaint.setPlainText(record.complaint)
        self.examination.setPlainText(record.examination)
        self.advice.setPlainText(record.advice)
        for name, edit in self.vitals.items():
            edit.setText(record.vitals.get(name, ""))
        self.diagnoses.clear()
        for code, title in record.diagnoses:
            self.add_diagnosis(code, title)
        self.follow_up_on.setChecked(record.follow_up_date is not None)
        if record.follow_up_date is not None:
            self.follow_up.setDate(QDate(record.follow_up_date))


class PrescriptionBuilder(QWidget):
    """Medicine lines with autocomplete and presets, kept as the visit's draft prescription.

    Each added line is stored in the draft at once (so a lock or a crash loses nothing) and
    checked against the patient's allergies; favourites are the doctor's earlier signed
    prescriptions, copied in with one click.
    """

    def __init__(self, page: DoctorWindow) -> None:
        super().__init__()
        self.page = page
        self.draft_id: str | None = None
        self.lines: list[RxLine] = []
        presets = gateway.prescription_presets()
        self.medicine = QLineEdit()
        self.medicine.setPlaceholderText("Medicine (type to search the catalogue)")
        self.medicine.setAccessibleName("Medicine")
        self.med_model = QStringListModel(self)
        self.med_options: dict[str, gateway.MedicineChoice] = {}
        self.med_completer = QCompleter(self.med_model, self)
        self.med_completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.medicine.setCompleter(self.med_completer)
        self.medicine.textEdited.connect(self._medicine_typed)
        self.med_completer.activated.connect(self._medicine_chosen)
        self.chosen: gateway.MedicineChoice | None = None
        self.strength = QLineEdit()
        self.strength.setAccessibleName("Strength")
        self.form = QLineEdit()
        self.form.setAccessibleName("Form")
        self.dose = _editable_combo(presets["dose"], "Dose")
        self.frequency = _editable_combo(presets["frequency"], "Frequency")
        for n, meaning in enumerate(presets["frequency_meaning"]):
            self.frequency.setItemData(n, meaning, Qt.ItemDataRole.ToolTipRole)
        self.duration = _editable_combo(presets["duration"], "Duration")
        self.route = _editable_combo(presets["route"], "Route")
        self.quantity = QLineEdit()
        self.quantity.setAccessibleName("Quantity")
        self.instructions = QLineEdit()
        self.instructions.setPlaceholderText("e.g. after food")
        self.instructions.setAccessibleName("Instructions")
        self.add_button = QPushButton("Add medicine  (Ctrl+I)")
        self.add_button.clicked.connect(self.add_line)
        self.remove_button = QPushButton("Remove line")
        self.remove_button.clicked.connect(self.remove_line)
        self.model: RowsModel[RxLine] = RowsModel(
            [
                Column(
                    "Medicine",
                    lambda r: " ".join(x for x in (r.medicine, r.strength, r.form) if x),
                ),
                Column("Dose", lambda r: r.dose),
                Column("Frequency", lambda r: r.frequency),
                Column("Duration", lambda r: r.duration),
                Column("Route", lambda r: r.route),
                Column("Qty", lambda r: r.quantity),
                Column("Instructions", lambda r: r.instructions),
            ],
            self,
        )
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Prescription lines")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        configure_table(self.table, (0, 6))
        self.status = plain_label("No prescription yet.", "hint")
        self.favourites = QComboBox()
        self.favourites.setAccessibleName("Favourite templates")
        self.favourites.setToolTip("Your earlier prescriptions: apply one as a template")
        self.apply_fav = QPushButton("Apply favourite")
        self.apply_fav.clicked.connect(self.apply_favourite)

        entry = QGridLayout()
        medicine_label = QLabel("&Medicine")
        medicine_label.setBuddy(self.medicine)
        entry.addWidget(medicine_label, 0, 0)
        entry.addWidget(self.medicine, 0, 1, 1, 3)
        entry.addWidget(QLabel("Strength"), 0, 4)
        entry.addWidget(self.strength, 0, 5)
        entry.addWidget(QLabel("Form"), 0, 6)
        entry.addWidget(self.form, 0, 7)
        entry.addWidget(QLabel("Dose"), 1, 0)
        entry.addWidget(self.dose, 1, 1)
        entry.addWidget(QLabel("Frequency"), 1, 2)
        entry.addWidget(self.frequency, 1, 3)
        entry.addWidget(QLabel("Duration"), 1, 4)
        entry.addWidget(self.duration, 1, 5)
        entry.addWidget(QLabel("Route"), 1, 6)
        entry.addWidget(self.route, 1, 7)
        entry.addWidget(QLabel("Quantity"), 2, 0)
        entry.addWidget(self.quantity, 2, 1)
        entry.addWidget(QLabel("Instructions"), 2, 2)
        entry.addWidget(self.instructions, 2, 3, 1, 3)
        entry.addWidget(self.add_button, 2, 6, 1, 2)
        fav_row = QHBoxLayout()
        fav_row.addWidget(QLabel("Favourites"))
        fav_row.addWidget(self.favourites, 1)
        fav_row.addWidget(self.apply_fav)
        fav_row.addStretch(1)
        fav_row.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.addLayout(entry)
        layout.addWidget(self.table, 1)
        layout.addLayout(fav_row)
        layout.addWidget(self.status)
        order = [
            self.medicine,
            self.strength,
            self.form,
            self.dose,
            self.frequency,
            self.duration,
            self.route,
            self.quantity,
            self.instructions,
            self.add_button,
        ]
        for a, b in itertools.pairwise(order):
            QWidget.setTabOrder(a, b)
        self.instructions.returnPressed.connect(self.add_line)

    # autocomplete
    def _medicine_typed(self, text: str) -> None:
        self.chosen = None
        if len(text.strip()) < 2:
            self.med_model.setStringList([])
            return
        options = gateway.search_medicines(self.page.ctx.desk, text)
        self.med_options = {o.label: o for o in options}
        self.med_model.setStringList(list(self.med_options))

    def _medicine_chosen(self, label: str) -> None:
        option = self.med_options.get(label)
        if option is None:
            return
        self.choose(option)

    def choose(self, option: gateway.MedicineChoice) -> None:
        """Fill the line from a catalogue entry (what picking from the completer does)."""
        self.chosen = option
        QTimer.singleShot(0, lambda: self.medicine.setText(option.name))
        self.medicine.setText(option.name)
        self.strength.setText(option.strength)
        self.form.setText(option.form)
        if option.route:
            self.route.setCurrentText(option.route)
        self.dose.setFocus()

    def current_line(self) -> RxLine:
        name = self.medicine.text().strip()
        chosen = self.chosen if self.chosen and self.chosen.name == name else None
        return gateway.RxLine(
            medicine=name,
            medicine_id=chosen.id if chosen else None,
            strength=self.strength.text().strip(),
            form=self.form.text().strip(),
            dose=self.dose.currentText().strip(),
            frequency=self.frequency.currentText().strip(),
            duration=self.duration.currentText().strip(),
            route=self.route.currentText().strip(),
            quantity=self.quantity.text().strip(),
            instructions=self.instructions.text().strip(),
        )

    def show_draft(self, draft: gateway.DraftView | None) -> None:
        self.draft_id = draft.prescription_id if draft and draft.status == "draft" else None
        self.lines = list(draft.lines) if draft and draft.status == "draft" else []
        self.model.set_rows(self.lines)
        if draft is None:
            self.status.setText("No prescription yet.")
        elif draft.status == "signed":
            self.status.setText(
                f"Signed (revision {draft.revision}). Adding a medicine starts an amendment."
            )
        else:
            self.status.setText(f"{len(self.lines)} medicine(s). Draft: not signed.")

    def add_line(self) -> bool:
        line = self.current_line()
        if not line.medicine:
            self.status.setText("Type a medicine name first.")
            self.medicine.setFocus()
            return False
        visit = self.page.visit
        if visit is None:
            return False
        try:
            if self.draft_id is None:
                self.show_draft(
                    gateway.ensure_draft(self.page.ctx.desk, self.page.ctx.actor, visit.visit_id)
                )
            assert self.draft_id is not None
            item_id, warnings = gateway.add_line(
                self.page.ctx.desk, self.page.ctx.actor, self.draft_id, line
            )
            if warnings and not self.page.confirm_allergy(warnings):
                gateway.remove_line(self.page.ctx.desk, self.page.ctx.actor, item_id)
            draft = gateway.get_draft(self.page.ctx.desk, self.page.ctx.actor, self.draft_id)
        except ValidationError as exc:
            self.status.setText(str(exc))
            return False
        except ClinicError as exc:
            show_error(self, exc)
            return False
        self.show_draft(draft)
        for edit in (self.medicine, self.strength, self.form, self.quantity, self.instructions):
            edit.clear()
        for box in (self.dose, self.frequency, self.duration, self.route):
            box.setCurrentIndex(-1)
            box.setEditText("")
        self.chosen = None
        self.medicine.setFocus()
        return True

    def remove_line(self) -> None:
        row = self.table.currentIndex().row()
        if not 0 <= row < len(self.lines):
            return
        draft = attempt(
            self,
            gateway.remove_line,
            self.page.ctx.desk,
            self.page.ctx.actor,
            self.lines[row].item_id,
        )
        if draft is not None:
            self.show_draft(draft)

    def clear(self) -> None:
        self.show_draft(None)

    def load_favourites(self) -> None:
        self.favourites.clear()
        try:
            options = gateway.favourites(self.page.ctx.desk, self.page.ctx.actor)
        except ClinicError:
            options = []
        for fav in options:
            self.favourites.addItem(fav.summary, fav.prescription_id)
        self.apply_fav.setEnabled(bool(options))

    def apply_favourite(self) -> None:
        source = self.favourites.currentData()
        visit = self.page.visit
        if source is None or visit is None:
            return
        try:
            if self.draft_id is None:
                self.show_draft(
                    gateway.ensure_draft(self.page.ctx.desk, self.page.ctx.actor, visit.visit_id)
                )
            assert self.draft_id is not None
            draft, warnings = gateway.apply_favourite(
                self.page.ctx.desk, self.page.ctx.actor, self.draft_id, str(source)
            )
        except ClinicError as exc:
            show_error(self, exc)
            return
        self.show_draft(draft)
        if warnings:
            self.page.confirm_allergy(warnings, ask=False)


class DoctorWindow(RolePage):
    role = "doctor"

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__(ctx)
        self.setObjectName("doctorWindow")
        self.visit: QueueRow | None = None
        self.patient: PatientHeader | None = None
        self.last_pdf: Path | None = None
        self.signed_rx_id: str | None = None
        self.last_allergy_warning = ""

        # --- queue
        self.queue_model: RowsModel[QueueRow] = RowsModel(
            [
                Column("Token", lambda v: v.token),
                Column("Patient", lambda v: v.patient_name),
                Column("Status", lambda v: STATUS_NAMES.get(v.status, v.status)),
                Column("", lambda v: "★" if v.priority else ""),
            ],
            self,
        )
        self.queue_view = QTableView()
        self.queue_view.setModel(self.queue_model)
        self.queue_view.setAccessibleName("My queue")
        self.queue_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.queue_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.queue_view.verticalHeader().setVisible(False)
        configure_table(self.queue_view, (1,))
        self.queue_view.doubleClicked.connect(lambda _i: self.open_selected())
        self.call_button = QPushButton("Call next  (F5)")
        self.call_button.setProperty("primary", True)
        self.call_button.clicked.connect(self.call_next)
        self.start_button = QPushButton("Start consultation  (F6)")
        self.start_button.clicked.connect(self.start_consultation)
        self.queue_hint = plain_label("", "hint")
        self.queue_hint.setWordWrap(True)
        left = QWidget()
        l_layout = QVBoxLayout(left)
        l_layout.setContentsMargins(0, 0, 0, 0)
        l_layout.addWidget(section_label("My queue today"))
        l_layout.addWidget(self.queue_view, 1)
        l_layout.addWidget(self.call_button)
        l_layout.addWidget(self.start_button)
        l_layout.addWidget(self.queue_hint)

        # --- patient header
        self.header = plain_label("No patient. Press F5 to call the next token.", "patientHeader")
        self.header.setWordWrap(True)
        self.header.setAccessibleName("Patient")
        self.allergy = plain_label("", "allergyBanner")
        self.allergy.setWordWrap(True)
        self.allergy.setAccessibleName("Allergies")
        self.allergy.setVisible(False)

        # --- tabs
        self.form = ConsultationForm(self)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        self.builder = PrescriptionBuilder(self)
        self.history = QTextBrowser()
        self.history.setOpenLinks(False)
        self.history.setAccessibleName("History")
        self.tabs = QTabWidget()
        self.tabs.addTab(scroll, "Consultation")
        self.tabs.addTab(self.builder, "Prescription")
        self.tabs.addTab(self.history, "History")
        self.save_button = QPushButton("Save  (Ctrl+S)")
        self.save_button.clicked.connect(self.save)
        self.sign_button = QPushButton("Sign && print prescription  (Ctrl+Shift+S)")
        self.sign_button.clicked.connect(self.sign_and_print)
        self.complete_button = QPushButton("Complete visit  (Ctrl+Enter)")
        self.complete_button.setProperty("primary", True)
        self.complete_button.clicked.connect(self.complete_visit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.sign_button)
        buttons.addStretch(1)
        buttons.addWidget(self.complete_button)
        self.message = plain_label("", "hint")
        self.message.setWordWrap(True)

        right = QWidget()
        r_layout = QVBoxLayout(right)
        r_layout.setContentsMargins(0, 0, 0, 0)
        r_layout.addWidget(self.header)
        r_layout.addWidget(self.allergy)
        r_layout.addWidget(self.tabs, 1)
        r_layout.addWidget(self.message)
        r_layout.addLayout(buttons)
        self.work_area = right

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([330, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 6)
        layout.addWidget(splitter)

        self.call_action = make_action(self, "&Call next", self.call_next, "F5", "call-next")
        self.start_action = make_action(
            self, "&Start consultation", self.start_consultation, "F6", "patient"
        )
        self.save_action = make_action(self, "Sa&ve", self.save, "Ctrl+S")
        self.add_line_action = make_action(
            self, "&Add medicine line", self.builder.add_line, "Ctrl+I", "add"
        )
        self.sign_action = make_action(
            self, "Sign and &print prescription", self.sign_and_print, "Ctrl+Shift+S", "sign"
        )
        self.complete_action = make_action(
            self, "C&omplete visit", self.complete_visit, "Ctrl+Return", "complete"
        )
        for action in self.actions_for_menu():
            self.addAction(action)
        self.timer = QTimer(self)
        self.timer.setInterval(3000)
        self.queue_poll = BackgroundPoll(
            lambda: gateway.doctor_queue(self.ctx.desk, self.ctx.actor),
            self._show_queue,
            self._poll_failed,
            self,
        )
        self.timer.timeout.connect(self.queue_poll.request)
        self.ctx.events.queue_changed.connect(self.refresh_queue)
        self._set_work_enabled(False)

    def _poll_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ClinicError):
            self.queue_hint.setText(str(exc))
        else:
            log.warning("refresh failed: %s", type(exc).__name__)

    def actions_for_menu(self) -> list[QAction]:
        return [
            self.call_action,
            self.start_action,
            self.save_action,
            self.add_line_action,
            self.sign_action,
            self.complete_action,
        ]

    def on_shown(self) -> None:
        self.timer.start()
        self.refresh_queue()

    def _set_work_enabled(self, enabled: bool) -> None:
        self.tabs.setEnabled(enabled)
        for button in (self.save_button, self.sign_button, self.complete_button):
            button.setEnabled(enabled)
        for action in (
            self.save_action,
            self.add_line_action,
            self.sign_action,
            self.complete_action,
        ):
            action.setEnabled(enabled)

    # ------------------------------------------------------------------ queue
    def refresh_queue(self) -> None:
        try:
            rows = gateway.doctor_queue(self.ctx.desk, self.ctx.actor)
        except ClinicError as exc:
            self.queue_hint.setText(str(exc))
            return
        self._show_queue(rows)

    def _show_queue(self, rows: list[QueueRow]) -> None:
        if rows != self.queue_model.rows():
            self.queue_model.set_rows(rows)
        waiting = sum(1 for r in rows if r.status == "waiting")
        self.queue_hint.setText(f"{waiting} waiting.")

    def call_next(self) -> None:
        if self.visit is not None and self.visit.status == "in_consultation":
            show_error(self, "Complete the current visit before calling the next token.")
            return
        try:
            called = gateway.call_next(self.ctx.desk, self.ctx.actor)
        except ClinicError as exc:
            show_error(self, exc)
            return
        if called is None:
            self.message.setText("Nobody is waiting in your queue.")
            return
        self.visit = called
        self.ctx.events.queue_changed.emit()
        self.refresh_queue()
        self._show_patient(called)
        self.message.setText(f"Called {called.token}. Press F6 when the patient comes in.")

    def open_selected(self) -> None:
        index = self.queue_view.currentIndex()
        row = self.queue_model.row(index.row()) if index.isValid() else None
        if row is not None and row.status in ("called", "in_consultation"):
            self.visit = row
            self._show_patient(row)
            if row.status == "in_consultation":
                self._load_consultation()

    def start_consultation(self) -> None:
        if self.visit is None:
            self.open_selected()
        if self.visit is None:
            show_error(self, "Call a token first (F5).")
            return
        if self.visit.status == "called":
            started = attempt(
                self,
                gateway.start_consultation,
                self.ctx.desk,
                self.ctx.actor,
                self.visit.visit_id,
            )
            if started is None:
                return
            self.visit = started
            self.ctx.events.queue_changed.emit()
        self._load_consultation()

    def _show_patient(self, visit: QueueRow) -> None:
        header = attempt(
            self, gateway.patient_header, self.ctx.desk, self.ctx.actor, visit.patient_id
        )
        if header is None:
            return
        self.patient = header
        self.header.setText(
            f"{visit.token}  ·  {header.name}  ·  {header.age_sex}  ·  {header.number}"
        )
        if header.allergies.strip():
            self.allergy.setText(f"⚠ ALLERGIES: {header.allergies}")
            self.allergy.setObjectName("allergyBanner")
        else:
            self.allergy.setText("No known allergies recorded.")
            self.allergy.setObjectName("noAllergy")
        self.allergy.style().unpolish(self.allergy)
        self.allergy.style().polish(self.allergy)
        self.allergy.setVisible(True)

    def _load_consultation(self) -> None:
        assert self.visit is not None
        record = attempt(
            self, gateway.consultation, self.ctx.desk, self.ctx.actor, self.visit.visit_id
        )
        if record is None:
            return
        self.form.load(record)
        self.builder.show_draft(
            attempt(self, gateway.current_draft, self.ctx.desk, self.ctx.actor, self.visit.visit_id)
        )
        self.builder.load_favourites()
        self.signed_rx_id = None
        self.last_pdf = None
        history = attempt(
            self,
            gateway.history_html,
            self.ctx.desk,
            self.ctx.actor,
            self.visit.patient_id,
            self.visit.visit_id,
        )
        self.history.setHtml(history or "")
        self._set_work_enabled(True)
        self.tabs.setCurrentIndex(0)
        self.form.complaint.setFocus()
        self.message.setText("Consultation started.")

    # ------------------------------------------------------------------ allergy
    def confirm_allergy(self, warnings: list[str], *, ask: bool = True) -> bool:
        """Show the allergy warning; with ``ask`` the doctor decides whether to go ahead."""
        box = QMessageBox(self)
        box.setObjectName("allergyWarning")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Allergy warning")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText("\n".join(warnings))
        if ask:
            box.setInformativeText("Prescribe it anyway?")
            box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
            box.setDefaultButton(QMessageBox.StandardButton.No)
        self.last_allergy_warning = "\n".join(warnings)
        return box.exec() == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ save / sign / complete
    def save(self) -> bool:
        if self.visit is None:
            return False
        try:
            gateway.record_consultation(
                self.ctx.desk, self.ctx.actor, self.visit.visit_id, self.form.values()
            )
        except ValidationError as exc:
            rest = self.form.errors.show(exc.fields)
            self.tabs.setCurrentIndex(0)
            self.message.setText("\n".join(rest) or "Please correct the marked fields.")
            return False
        except ClinicError as exc:
            show_error(self, exc)
            return False
        self.form.errors.clear()
        self.message.setText("Saved.")
        return True

    def sign_and_print(self) -> Path | None:
        """Save the consultation, sign the draft (after any allergy warning) and print it."""
        if self.visit is None or self.patient is None:
            return None
        if self.builder.draft_id is None or not self.builder.lines:
            self.tabs.setCurrentWidget(self.builder)
            self.message.setText("Add at least one medicine to the prescription.")
            return None
        if not self.save():
            return None
        desk, actor, rx_id = self.ctx.desk, self.ctx.actor, self.builder.draft_id
        try:
            try:
                signed = gateway.sign_prescription(desk, actor, rx_id, acknowledge_allergy=False)
            except ClinicError as exc:
                warnings = gateway.allergy_refusal(exc)
                if warnings is None:
                    raise
                if not self.confirm_allergy(warnings):
                    return None
                signed = gateway.sign_prescription(desk, actor, rx_id, acknowledge_allergy=True)
        except ClinicError as exc:
            show_error(self, exc)
            return None
        self.signed_rx_id = signed.prescription_id
        self.builder.show_draft(signed)
        from clinic_desktop.printing.documents import A4, prescription_html

        html = prescription_html(gateway.prescription_document(desk, actor, signed.prescription_id))
        pdf = print_or_save(
            self, html, A4, f"prescription-{self.visit.token}", self.ctx.app.pdf_dir
        )
        self.last_pdf = pdf
        self.message.setText("Prescription signed." + (f" Saved to {pdf}." if pdf else ""))
        return pdf

    def complete_visit(self) -> bool:
        if self.visit is None:
            return False
        if not self.save():
            return False
        if self.builder.draft_id is not None and self.builder.lines:
            if not confirm_discard(self):
                return False
            if (
                attempt(
                    self,
                    gateway.discard_draft,
                    self.ctx.desk,
                    self.ctx.actor,
                    self.builder.draft_id,
                )
                is None
            ):
                return False
            self.builder.clear()
        done = attempt(
            self, gateway.finish_consultation, self.ctx.desk, self.ctx.actor, self.visit.visit_id
        )
        if done is None:
            return False
        self.ctx.events.visit_completed.emit(self.visit.visit_id)
        self.ctx.events.queue_changed.emit()
        self.message.setText(f"Visit {self.visit.token} completed and sent to billing.")
        self.visit = None
        self.patient = None
        self.header.setText("No patient. Press F5 to call the next token.")
        self.allergy.setVisible(False)
        self.form.load(gateway.ConsultationView.empty())
        self.builder.clear()
        self.history.clear()
        self._set_work_enabled(False)
        self.refresh_queue()
        return True


def confirm_discard(parent: QWidget) -> bool:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Unsigned prescription")
    box.setText(
        "The prescription has medicines that are not signed. Complete the visit without them?"
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes
