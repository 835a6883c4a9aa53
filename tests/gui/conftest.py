"""A small clinic on a real encrypted store, and the application started on it offscreen.

The clinic is made through the services (the same calls the windows make), then the
application opens the same data folder the way ``clinic-desktop --data-dir`` does. PDFs go
to a folder instead of a print dialog (``ClinicApp.pdf_dir``), so tests can read them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.users import SetupResult
from clinic_desktop.store.open import OpenedStore
from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_USERNAME

PASSWORD = "Calm-river-2931"


@dataclass
class Clinic:
    """What the tests need to know about the seeded clinic."""

    store: OpenedStore
    desk: Desk
    admin: Actor
    users: dict[str, Actor] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)  # name -> id
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.store.data_dir


@pytest.fixture
def clinic(opened_store: OpenedStore, desk_setup: SetupResult) -> Clinic:
    """Test Clinic (USD, desk A): one user per role, a doctor who also bills, two doctors'
    fees, the medicine catalogue, and patients (one allergic to penicillin)."""
    from clinic_desktop.services import billing, catalogues, patients, users

    desk, admin = desk_setup.desk, desk_setup.admin
    world = Clinic(store=opened_store, desk=desk, admin=admin)
    world.passwords[TEST_ADMIN_USERNAME] = TEST_ADMIN_PASSWORD
    world.users[TEST_ADMIN_USERNAME] = admin
    for username, full_name, roles in (
        ("rita", "Rita Reception", ["receptionist"]),
        ("drmehta", "Dr Anil Mehta", ["doctor"]),
        ("drsilva", "Dr Lena Silva", ["doctor", "billing"]),
        ("bob", "Bob Billing", ["billing"]),
    ):
        created = users.create_user(
            desk,
            admin,
            username=username,
            full_name=full_name,
            roles=roles,
            password=PASSWORD,
            must_change_password=False,
        )
        world.users[username] = users.actor_for(created)
        world.passwords[username] = PASSWORD
    for code, name, doctor in (
        ("CONS-M", "Consultation Dr Mehta", "drmehta"),
        ("CONS-S", "Consultation Dr Silva", "drsilva"),
    ):
        billing.create_price_item(
            desk,
            admin,
            code=code,
            name=name,
            amount_minor=5000,
            kind="consultation",
            doctor_id=world.users[doctor].user_id,
        )
    billing.create_price_item(desk, admin, code="ECG", name="ECG", amount_minor=2500)
    catalogues.seed_medicines(desk, admin)
    rita = world.users["rita"]
    for name, phone, allergies in (
        ("Asha Verma", "+919800000001", ""),
        ("Peter Penn", "+919800000002", "penicillin"),
        ("Maria Gomez", "+919800000003", ""),
    ):
        patient = patients.register(
            desk,
            rita,
            patients.PatientDraft(
                full_name=name, sex="female", age_years=34, phone=phone, allergies=allergies
            ),
        )
        world.patients[name] = patient.id
    return world


@pytest.fixture
def app(qtbot: QtBot, clinic: Clinic, tmp_path: Path) -> Iterator[object]:
    """The application on the clinic's data folder, sign-in window showing and ready."""
    from PySide6.QtWidgets import QApplication

    from clinic_desktop.views.application import ClinicApp

    qapp = QApplication.instance()
    assert isinstance(qapp, QApplication)
    controller = ClinicApp(clinic.data_dir, qapp)
    controller.pdf_dir = tmp_path / "pdf"
    controller.start(open_in_background=False)
    qtbot.addWidget(controller.sign_in)
    qtbot.waitUntil(lambda: controller.sign_in.sign_in_button.isEnabled())
    yield controller
    if controller.shell is not None:
        controller.shell.idle.stop()
        controller.shell.close()
    for board in controller.boards:
        board.close()
    if controller.store is not None:
        controller.store.close()


def sign_in(qtbot: QtBot, controller: object, username: str, password: str) -> object:
    """Type the user name and password and press Enter, as a person would."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    window = controller.sign_in  # type: ignore[attr-defined]
    window.username.clear()
    qtbot.keyClicks(window.username, username)
    qtbot.keyClick(window.username, Qt.Key.Key_Return)
    qtbot.keyClicks(window.password, password)
    qtbot.keyClick(window.password, Qt.Key.Key_Return)
    shell = controller.shell  # type: ignore[attr-defined]
    if shell is not None:
        # Shortcuts reach only the active window, as on a real screen.
        shell.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is shell, timeout=2000)
    return shell
