"""The admin window's settings and audit tabs work against the real services."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from clinic_desktop.services.settings import get_settings
from tests.gui.conftest import Clinic, sign_in


def test_admin_saves_idle_minutes_then_finds_that_change_in_the_audit_log(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "admin", clinic.passwords["admin"])
    page = shell.page()  # type: ignore[attr-defined]

    page.tabs.setCurrentWidget(page.settings)
    tab = page.settings
    assert tab.save_button.isEnabled()  # the service exists: the tab is editable
    assert tab.name.text() == "Test Clinic"
    tab.idle.setValue(25)
    qtbot.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    assert tab.message.text() == "Settings saved."
    assert get_settings(clinic.desk).idle_lock_minutes == 25

    # A bad value is shown beside its field and nothing is stored.
    tab.timezone.setText("Nowhere/Atlantis")
    qtbot.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    (zone_error,) = [
        label for label in tab.findChildren(QLabel) if label.accessibleName() == "Time zone error"
    ]
    assert "time zone" in zone_error.text()
    assert tab.message.text() != "Settings saved."
    assert get_settings(clinic.desk).timezone == "UTC"

    page.tabs.setCurrentWidget(page.audit)
    audit = page.audit
    everything = audit.model.rows()
    actions = {row.action for row in everything}
    assert {"settings.update", "user.create", "patient.register"} <= actions
    assert len(everything) > 3

    audit.action.setText("settings.")
    audit.refresh()
    narrowed = audit.model.rows()
    assert [(row.action, row.detail) for row in narrowed] == [
        ("settings.update", "fields=idle_lock_minutes")
    ]
    assert narrowed[0].user == "Test Admin"
