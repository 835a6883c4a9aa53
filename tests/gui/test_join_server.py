"""First start on a new workstation that joins the clinic's server (real server process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.sync.conftest import ADMIN, PASSWORD
from tests.sync.conftest import Clinic as ServerClinic


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerClinic]:
    clinic = ServerClinic(tmp_path / "server-clinic")
    yield clinic
    clinic.close()


def test_new_workstation_joins_the_server_then_its_admin_signs_in(
    qtbot: QtBot, tmp_path: Path, server: ServerClinic
) -> None:
    from clinic_desktop.views.application import ClinicApp

    controller = ClinicApp(tmp_path / "new-desk", QApplication.instance())  # type: ignore[arg-type]
    controller.allow_insecure_server = True  # the test server speaks plain http on localhost
    controller.start(open_in_background=False)
    wizard = controller.wizard
    assert wizard is not None
    try:
        qtbot.mouseClick(wizard.join_server, Qt.MouseButton.LeftButton)
        wizard.next()
        assert wizard.currentId() == wizard.PAGE_JOIN

        qtbot.keyClicks(wizard.inputs["server_url"], server.server.url)
        qtbot.keyClicks(wizard.inputs["enrolment_code"], "not-a-code")
        qtbot.keyClicks(wizard.inputs["join_desk_code"], "J")
        wizard.accept()
        assert wizard.isVisible()  # a wrong code is refused with a message
        assert wizard.join_general.text()

        wizard.inputs["enrolment_code"].clear()
        qtbot.keyClicks(wizard.inputs["enrolment_code"], server.server.enrolment_code())
        wizard.accept()
        assert not wizard.isVisible()
        assert controller.desk is not None
        assert controller.desk.desk_code == "J"
        assert controller.sync.connected

        qtbot.waitUntil(controller.sign_in.isVisible)
        qtbot.keyClicks(controller.sign_in.username, ADMIN)
        qtbot.keyClicks(controller.sign_in.password, PASSWORD)
        qtbot.keyClick(controller.sign_in.password, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: controller.shell is not None, timeout=15_000)
        shell = controller.shell
        assert shell is not None
        assert shell.current_role == "admin"
        qtbot.waitUntil(
            lambda: shell.sync_label.text().startswith(("Online", "Syncing", "Downloading")),
            timeout=15_000,
        )
        # The first download's progress, as the sync worker reports it, shows as a bar.
        controller.sync.snapshot_progress.emit(50, 200)
        assert shell.download_bar.isVisible()
        assert (shell.download_bar.value(), shell.download_bar.maximum()) == (50, 200)
        controller.sync.snapshot_progress.emit(200, 200)
        assert not shell.download_bar.isVisible()
        shell.idle.stop()
        shell.close()
    finally:
        controller.sync.stop()
        if controller.store is not None:
            controller.store.close()
