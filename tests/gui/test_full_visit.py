"""A whole visit through the real windows: register, token, call, consult, prescribe, bill.

Also: the duplicate warning when registering, the allergy warning when prescribing, and the
waiting-room board following the doctor's call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfReader
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from clinic_desktop.models import Bill, Payment, Prescription, PrescriptionItem, Visit
from tests.gui.conftest import Clinic, sign_in


def pdf_text(path: Path) -> str:
    """The PDF's text with runs of whitespace folded to one space."""
    text = " ".join(page.extract_text() for page in PdfReader(str(path)).pages)
    return re.sub(r"\s+", " ", text)


def answer_next_message_box(button: QMessageBox.StandardButton, seen: list[str]) -> None:
    """When the next message box opens, record its text and press ``button``."""

    def poll() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(f"{box.objectName()}: {box.text()}")
            box.button(button).click()
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)


def type_into(qtbot: QtBot, widget: object, text: str) -> None:
    qtbot.keyClicks(widget, text)


def wait_for(qtbot: QtBot, condition: Callable[[], object], timeout: int = 3000) -> None:
    qtbot.waitUntil(lambda: bool(condition()), timeout=timeout)


def test_full_visit_from_registration_to_receipt(qtbot: QtBot, app: object, clinic: Clinic) -> None:
    desk = clinic.desk

    # --- reception: register a new patient, then issue a token with F2
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    qtbot.keyClick(shell, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    form = reception.form
    assert form.full_name.hasFocus()
    type_into(qtbot, form.full_name, "Nadia <b>Khan</b>")
    form.sex.setCurrentIndex(form.sex.findData("female"))
    form.age.setValue(41)
    type_into(qtbot, form.phone, "+91 98000 12345")
    type_into(qtbot, form.allergies, "sulfa")
    qtbot.keyClick(shell, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    patient = reception.selected_patient()
    assert patient is not None
    assert patient.name == "Nadia <b>Khan</b>"
    assert re.fullmatch(r"P-A-\d{6}", patient.number)

    doctor_index = reception.doctor_box.findData(clinic.users["drmehta"].user_id)
    reception.doctor_box.setCurrentIndex(doctor_index)
    qtbot.keyClick(shell, Qt.Key.Key_F2)
    token = reception.last_token
    assert token is not None
    assert token.token_label == "A-001"
    assert token.doctor_name == "Dr Anil Mehta"
    qtbot.keyClick(shell, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    slip = app.pdf_dir / "token-A-001.pdf"  # type: ignore[attr-defined]
    slip_text = pdf_text(slip)
    assert "A-001" in slip_text
    assert "Nadia <b>Khan</b>" in slip_text  # the name printed as typed, not as markup
    assert "Test Clinic" in slip_text
    shell.sign_out()  # type: ignore[attr-defined]

    # --- doctor: call next (F5), start (F6), record, prescribe, sign + print, complete
    shell = sign_in(qtbot, app, "drmehta", clinic.passwords["drmehta"])
    doctor = shell.page()  # type: ignore[attr-defined]
    assert [r.token for r in doctor.queue_model.rows()] == ["A-001"]
    qtbot.keyClick(shell, Qt.Key.Key_F5)
    assert doctor.visit is not None
    assert doctor.visit.status == "called"
    assert "Nadia <b>Khan</b>" in doctor.header.text()
    assert doctor.allergy.text() == "⚠ ALLERGIES: sulfa"
    qtbot.keyClick(shell, Qt.Key.Key_F6)
    assert doctor.visit.status == "in_consultation"

    consult = doctor.form
    type_into(qtbot, consult.complaint, "Cough and fever for three days")
    type_into(qtbot, consult.vitals["bp_systolic"], "128")
    type_into(qtbot, consult.vitals["bp_diastolic"], "82")
    type_into(qtbot, consult.vitals["temperature_c"], "38.4")
    type_into(qtbot, consult.vitals["pulse"], "96")
    type_into(qtbot, consult.icd_search, "J06")
    assert consult.icd_model.stringList(), "typing a code offers ICD-10 matches"
    qtbot.keyClick(consult.icd_search, Qt.Key.Key_Return)
    assert consult.codes()
    assert consult.codes()[0].startswith("J06")
    type_into(qtbot, consult.advice, "Fluids and rest")

    builder = doctor.builder
    doctor.tabs.setCurrentWidget(builder)
    type_into(qtbot, builder.medicine, "paracet")
    labels = builder.med_model.stringList()
    assert labels, "the catalogue offers paracetamol"
    builder.choose(builder.med_options[labels[0]])
    builder.dose.setEditText("1 tablet")
    builder.frequency.setEditText("TDS")
    builder.duration.setEditText("5 days")
    type_into(qtbot, builder.quantity, "15")
    qtbot.keyClick(shell, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    assert [line.medicine for line in builder.lines] == [builder.lines[0].medicine]
    assert builder.lines[0].medicine.lower().startswith("paracetamol")

    qtbot.keyClick(
        shell,
        Qt.Key.Key_S,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    rx_pdf = doctor.last_pdf
    assert rx_pdf is not None
    assert rx_pdf.exists()
    rx_text = pdf_text(rx_pdf)
    for expected in (
        "Test Clinic",
        "Nadia <b>Khan</b>",
        "Dr Anil Mehta",
        "Paracetamol",
        "TDS",
        "5 days",
        "Allergies: sulfa",
        "Signed electronically",
        "J06",
    ):
        assert expected in rx_text, expected

    qtbot.keyClick(shell, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert doctor.visit is None
    shell.sign_out()  # type: ignore[attr-defined]

    with desk.reading() as session:
        visit = session.scalars(select(Visit).where(Visit.token_label == "A-001")).one()
        assert visit.status == "completed"
        assert visit.complaint == "Cough and fever for three days"
        assert (visit.bp_systolic, visit.bp_diastolic, visit.pulse) == (128, 82, 96)
        assert visit.temperature_dc == 384
        assert visit.diagnosis_codes[0].startswith("J06")
        rx = session.scalars(select(Prescription).where(Prescription.visit_id == visit.id)).one()
        assert rx.status == "signed"
        items = session.scalars(
            select(PrescriptionItem).where(PrescriptionItem.prescription_id == rx.id)
        ).all()
        assert [(i.dose, i.frequency, i.duration, i.quantity) for i in items] == [
            ("1 tablet", "TDS", "5 days", "15")
        ]
        visit_id = visit.id

    # --- billing: the visit waits; open the bill, issue, take cash, print the receipt
    shell = sign_in(qtbot, app, "bob", clinic.passwords["bob"])
    billing = shell.page()  # type: ignore[attr-defined]
    assert [v.token_label for v in billing.awaiting_model.rows()] == ["A-001"]
    assert not billing.online_button.isEnabled()
    assert "not set up" in billing.online_button.toolTip()
    billing.open_selected()
    bill = billing.bill
    assert bill is not None
    assert [line.description for line in bill.lines] == ["Consultation Dr Mehta"]
    assert bill.total_minor == 5000
    qtbot.keyClick(shell, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert billing.bill.status == "issued"
    assert billing.tendered.hasFocus()
    type_into(qtbot, billing.tendered, "60")
    qtbot.keyClick(shell, Qt.Key.Key_F9)
    assert billing.bill.status == "paid"
    assert billing.last_change_minor == 1000
    assert billing.change_label.text() == "Change due: USD 10.00"
    qtbot.keyClick(shell, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    receipt = billing.last_receipt
    assert receipt is not None
    receipt_text = pdf_text(receipt)
    invoice = billing.bill.invoice_number
    assert invoice is not None
    assert invoice.startswith("INV-A-")
    for expected in (
        invoice,
        "Nadia <b>Khan</b>",
        "Consultation Dr Mehta",
        "USD 50.00",
        "Balance due: USD 0.00",
    ):
        assert expected in receipt_text, expected
    assert billing.awaiting_model.rows() == []

    with desk.reading() as session:
        stored = session.scalars(select(Bill).where(Bill.visit_id == visit_id)).one()
        assert (stored.status, stored.total_minor, stored.invoice_number) == (
            "paid",
            5000,
            invoice,
        )
        payments = session.scalars(select(Payment).where(Payment.bill_id == stored.id)).all()
        assert [(p.method, p.amount_minor) for p in payments] == [("cash", 5000)]
        bill_id = stored.id

    # --- a refund with its reason, then the day-end report printed
    billing.payments.selectRow(0)

    def fill_refund() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog.objectName() != "refundDialog":
            QTimer.singleShot(20, fill_refund)
            return
        dialog.amount.setText("10.00")  # type: ignore[attr-defined]
        dialog.reason.setText("Charged twice for the ECG")  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    QTimer.singleShot(20, fill_refund)
    qtbot.keyClick(shell, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert billing.message.text() == "Refunded USD 10.00."
    with desk.reading() as session:
        refund = session.scalars(
            select(Payment).where(Payment.bill_id == bill_id, Payment.amount_minor < 0)
        ).one()
        assert (refund.amount_minor, refund.reason) == (-1000, "Charged twice for the ECG")

    qtbot.keyClick(shell, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    report_pdf = billing.print_report()
    assert report_pdf is not None
    report_text = pdf_text(report_pdf)
    for expected in (
        "Day-end collection report",
        "Cash",
        "Bob Billing",
        "USD 50.00",
        "USD 10.00",
        "Net collected: USD 40.00",
    ):
        assert expected in report_text, expected


def test_registering_a_likely_duplicate_lists_the_existing_record(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    reception.new_patient()
    form = reception.form
    type_into(qtbot, form.full_name, "Asha Varma")
    type_into(qtbot, form.phone, "+919800000001")  # Asha Verma's phone
    qtbot.mouseClick(form.register_button, Qt.MouseButton.LeftButton)
    assert form.duplicates.isVisible()
    assert "Asha Verma" in form.duplicates.text()
    assert form.register_anyway.isVisible()
    with clinic.desk.reading() as session:
        from clinic_desktop.models import Patient

        assert session.scalars(select(Patient).where(Patient.full_name == "Asha Varma")).all() == []

    qtbot.mouseClick(form.register_anyway, Qt.MouseButton.LeftButton)
    assert reception.selected_patient().name == "Asha Varma"


def test_register_form_shows_messages_beside_fields(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    reception.new_patient()
    qtbot.mouseClick(reception.form.register_button, Qt.MouseButton.LeftButton)
    assert reception.form.errors.message("full_name")
    assert reception.selected_patient() is None


def test_prescribing_against_an_allergy_warns_the_doctor(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    from clinic_desktop.services import queue

    queue.issue_token(
        clinic.desk,
        clinic.users["rita"],
        clinic.patients["Peter Penn"],
        clinic.users["drmehta"].user_id,
    )
    shell = sign_in(qtbot, app, "drmehta", clinic.passwords["drmehta"])
    doctor = shell.page()  # type: ignore[attr-defined]
    qtbot.keyClick(shell, Qt.Key.Key_F5)
    qtbot.keyClick(shell, Qt.Key.Key_F6)
    assert doctor.allergy.text() == "⚠ ALLERGIES: penicillin"
    builder = doctor.builder
    doctor.tabs.setCurrentWidget(builder)
    type_into(qtbot, builder.medicine, "amoxic")
    labels = builder.med_model.stringList()
    assert labels
    builder.choose(builder.med_options[labels[0]])
    builder.dose.setEditText("1 capsule")
    builder.frequency.setEditText("TDS")

    seen: list[str] = []
    answer_next_message_box(QMessageBox.StandardButton.No, seen)
    builder.add_line()
    assert len(seen) == 1
    assert seen[0].startswith("allergyWarning: ")
    assert "penicillin" in seen[0]
    assert builder.lines == []  # declined: the line was not kept

    type_into(qtbot, builder.medicine, "amoxic")
    builder.choose(builder.med_options[builder.med_model.stringList()[0]])
    builder.dose.setEditText("1 capsule")
    builder.frequency.setEditText("TDS")
    answer_next_message_box(QMessageBox.StandardButton.Yes, seen)
    builder.add_line()
    assert len(builder.lines) == 1  # the doctor chose to go ahead


def test_board_shows_the_token_a_doctor_calls(qtbot: QtBot, app: object, clinic: Clinic) -> None:
    from clinic_desktop.services import queue

    for name in ("Asha Verma", "Maria Gomez"):
        queue.issue_token(
            clinic.desk,
            clinic.users["rita"],
            clinic.patients[name],
            clinic.users["drsilva"].user_id,
        )
    shell = sign_in(qtbot, app, "drsilva", clinic.passwords["drsilva"])
    shell.open_board()  # type: ignore[attr-defined]
    board = app.boards[-1]  # type: ignore[attr-defined]
    board.timer.stop()  # only the doctor's signal may update it in this test
    card = next(
        c
        for c, line in zip(board.cards, board.lines, strict=False)
        if line.doctor_name == "Dr Lena Silva"
    )
    assert card.now.text() == "-"
    assert card.next.text() == "A-001  A-002"

    qtbot.keyClick(shell, Qt.Key.Key_F5)
    assert card.now.text() == "A-001"
    assert card.next.text() == "A-002"
    assert board.announcements == ["Token A-001, please go to Dr Lena Silva."]


def test_f2_right_after_typing_issues_the_token_for_what_was_typed(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    type_into(qtbot, reception.search_box, "maria")
    wait_for(qtbot, lambda: reception.selected_patient() is not None)
    assert reception.selected_patient().name == "Maria Gomez"

    # type a new name and press F2 at once, before the background search answers
    reception.search_box.selectAll()
    type_into(qtbot, reception.search_box, "peter")
    qtbot.keyClick(shell, Qt.Key.Key_F2)
    token = reception.last_token
    assert token is not None
    assert token.patient_name == "Peter Penn"


def test_an_unexpected_error_shows_a_friendly_message_and_logs_no_data(
    qtbot: QtBot, app: object, clinic: Clinic, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from clinic_desktop.views.application import install_excepthook

    previous = sys.excepthook
    install_excepthook()
    try:
        seen: list[str] = []
        answer_next_message_box(QMessageBox.StandardButton.Ok, seen)
        try:
            raise KeyError("Peter Penn +919800000002")  # a bug carrying patient data
        except KeyError:
            sys.excepthook(*sys.exc_info())  # what Qt does with an error in a slot
    finally:
        sys.excepthook = previous
    assert len(seen) == 1
    assert seen[0].startswith("unexpectedError: Something unexpected went wrong.")
    assert "Peter" not in seen[0]
    assert "KeyError" in caplog.text
    assert "Peter" not in caplog.text
    assert "9800000002" not in caplog.text


def test_enter_on_a_result_opens_the_record_to_correct_it(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    from clinic_desktop.models import AuditEvent, Patient

    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    type_into(qtbot, reception.search_box, "asha")
    wait_for(qtbot, lambda: reception.selected_patient() is not None)
    qtbot.keyClick(reception.search_box, Qt.Key.Key_Return)  # to the results
    assert reception.results.hasFocus()
    qtbot.keyClick(reception.results, Qt.Key.Key_Return)  # open the record
    form = reception.form
    assert form.editing is not None
    assert form.full_name.text() == "Asha Verma"
    assert form.register_button.text() == "Save changes"
    form.phone.clear()
    type_into(qtbot, form.phone, "+91 98000 55555")
    qtbot.keyClick(shell, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert form.editing is None
    with clinic.desk.reading() as session:
        patient = session.get(Patient, clinic.patients["Asha Verma"])
        assert patient is not None
        assert patient.phone == "+919800055555"
        assert patient.full_name == "Asha Verma"
        edits = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.edit")).all()
        assert [e.detail for e in edits] == ["fields=phone"]
