"""Start, first-run setup, sign-in per role, wrong password, idle lock, disabled users."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.gui.conftest import Clinic, sign_in


def test_first_start_runs_setup_wizard_then_admin_can_sign_in(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clinic_desktop.services import passwords
    from clinic_desktop.views.application import ClinicApp

    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    qapp = QApplication.instance()
    controller = ClinicApp(tmp_path / "new-desk", qapp)  # type: ignore[arg-type]
    controller.start(open_in_background=False)
    wizard = controller.wizard
    assert wizard is not None
    assert wizard.isVisible()
    assert not controller.sign_in.isVisible()

    assert wizard.new_clinic.isChecked()  # the usual first start: a clinic on this computer
    wizard.next()
    qtbot.keyClicks(wizard.inputs["clinic_name"], "Riverside Clinic")
    wizard.inputs["currency"].setCurrentText("EUR")  # type: ignore[union-attr]
    qtbot.keyClicks(wizard.inputs["desk_code"], "c")
    wizard.next()
    qtbot.keyClicks(wizard.inputs["admin_full_name"], "Ada Admin")
    qtbot.keyClicks(wizard.inputs["admin_username"], "ada")
    qtbot.keyClicks(wizard.inputs["password"], "short")
    wizard.accept()
    # a weak password is refused beside its field; the wizard stays open
    assert wizard.isVisible()
    assert wizard.errors.message("password")
    wizard.inputs["password"].clear()
    qtbot.keyClicks(wizard.inputs["password"], "Bright-meadow-482")
    wizard.accept()
    assert not wizard.isVisible()
    assert controller.desk is not None
    assert controller.desk.desk_code == "C"
    from clinic_desktop.services import catalogues

    assert catalogues.search_medicines(controller.desk, "amoxi")  # starter catalogue loaded

    qtbot.waitUntil(controller.sign_in.isVisible)
    assert controller.sign_in.username.text() == "ada"
    assert controller.sign_in.clinic_label.text() == "Riverside Clinic"
    qtbot.keyClicks(controller.sign_in.password, "Bright-meadow-482")
    qtbot.keyClick(controller.sign_in.password, Qt.Key.Key_Return)
    shell = controller.shell
    assert shell is not None
    assert shell.current_role == "admin"
    shell.idle.stop()
    shell.close()
    controller.store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("username", "window_name", "roles"),
    [
        ("rita", "receptionWindow", ["receptionist"]),
        ("drmehta", "doctorWindow", ["doctor"]),
        ("bob", "billingWindow", ["billing"]),
        ("admin", "adminWindow", ["admin"]),
    ],
)
def test_each_role_gets_its_own_window(
    qtbot: QtBot, app: object, clinic: Clinic, username: str, window_name: str, roles: list[str]
) -> None:
    shell = sign_in(qtbot, app, username, clinic.passwords[username])
    assert shell is not None
    page = shell.page()  # type: ignore[attr-defined]
    assert page.objectName() == window_name
    assert shell.roles == roles  # type: ignore[attr-defined]
    status = shell.user_label.text()  # type: ignore[attr-defined]
    assert clinic.users[username].full_name in status
    assert shell.desk_label.text() == "Desk A"  # type: ignore[attr-defined]
    from clinic_desktop import __version__

    about = shell.about_text()  # type: ignore[attr-defined]
    assert f"Clinic Desk {__version__}" in about  # the About box shows the one version


def test_a_doctor_who_also_bills_can_switch_windows(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "drsilva", clinic.passwords["drsilva"])
    assert shell.page().objectName() == "doctorWindow"  # type: ignore[attr-defined]
    qtbot.keyClick(shell, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert shell.page().objectName() == "billingWindow"  # type: ignore[attr-defined]


def test_wrong_password_shows_a_message_and_opens_nothing(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", "not-her-password")
    assert shell is None
    window = app.sign_in  # type: ignore[attr-defined]
    assert window.isVisible()
    assert window.message.text() == "Wrong user name or password."


def test_idle_lock_hides_the_work_and_keeps_unsaved_form_content(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    page = shell.page()  # type: ignore[attr-defined]
    page.new_patient()
    qtbot.keyClicks(page.form.full_name, "Half Typed Name")
    shell.idle.set_minutes(0.001)  # type: ignore[attr-defined]  # 60 ms
    qtbot.waitUntil(lambda: shell.locked, timeout=3000)  # type: ignore[attr-defined]
    assert shell.central.currentWidget() is shell.lock_page  # type: ignore[attr-defined]
    assert not page.isVisible()

    lock = shell.lock_page  # type: ignore[attr-defined]
    qtbot.keyClicks(lock.password, "wrong-one")
    qtbot.keyClick(lock.password, Qt.Key.Key_Return)
    assert shell.locked  # type: ignore[attr-defined]
    assert lock.message.text() == "Wrong password."

    shell.idle.set_minutes(5)  # type: ignore[attr-defined]
    lock.password.clear()
    qtbot.keyClicks(lock.password, clinic.passwords["rita"])
    qtbot.keyClick(lock.password, Qt.Key.Key_Return)
    assert not shell.locked  # type: ignore[attr-defined]
    assert page.isVisible()
    assert page.form.full_name.text() == "Half Typed Name"


def test_admin_disables_a_user_who_then_cannot_sign_in(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "admin", clinic.passwords["admin"])
    admin_page = shell.page()  # type: ignore[attr-defined]
    admin_page.tabs.setCurrentWidget(admin_page.users)
    users_tab = admin_page.users
    users_tab.select_username("rita")
    assert users_tab.selected().username == "rita"
    qtbot.mouseClick(users_tab.disable_button, Qt.MouseButton.LeftButton)
    assert users_tab.message.text() == "rita disabled."
    assert users_tab.selected().state == "Disabled"

    shell.sign_out()  # type: ignore[attr-defined]
    assert app.shell is None  # type: ignore[attr-defined]
    again = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    assert again is None
    assert "disabled" in app.sign_in.message.text()  # type: ignore[attr-defined]


def test_locking_cancels_a_message_left_open_over_the_work(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    page = shell.page()  # type: ignore[attr-defined]
    box = QMessageBox(page)
    box.setText("Allergies: penicillin")
    QTimer.singleShot(50, shell.lock)  # type: ignore[attr-defined]
    box.exec()  # returns once the lock cancels it
    assert shell.locked  # type: ignore[attr-defined]
    assert not box.isVisible()
