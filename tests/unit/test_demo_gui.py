"""The demo clinic in the real windows: every role signs in and its page copes with the data.

A smoke test at demo scale (2,000 patients, two years of history, a full queue): the GUI tests
in ``tests/gui`` use a handful of rows, so slow or failing pages on realistic volumes would
show up only here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from clinic_desktop import demo


@pytest.fixture
def controller(qtbot: QtBot, demo_clinic: tuple[Path, str]) -> Iterator[object]:
    from clinic_desktop.views.application import ClinicApp

    qapp = QApplication.instance()
    assert isinstance(qapp, QApplication)
    app = ClinicApp(demo_clinic[0], qapp)
    app.start(open_in_background=False)
    qtbot.addWidget(app.sign_in)
    qtbot.waitUntil(lambda: app.sign_in.sign_in_button.isEnabled())
    yield app
    if app.shell is not None:
        app.shell.idle.stop()
        app.shell.close()
    if app.store is not None:
        app.store.close()


@pytest.mark.parametrize(
    ("username", "page_name"),
    [
        ("reception", "receptionWindow"),
        ("dr.okafor", "doctorWindow"),
        ("billing", "billingWindow"),
        ("admin", "adminWindow"),
    ],
)
def test_each_demo_role_opens_its_page_on_demo_scale_data(
    qtbot: QtBot, controller: object, username: str, page_name: str
) -> None:
    password = next(u.password for u in demo.DEMO_USERS if u.username == username)
    window = controller.sign_in  # type: ignore[attr-defined]
    window.username.clear()
    qtbot.keyClicks(window.username, username)
    qtbot.keyClicks(window.password, password)
    started = time.perf_counter()
    qtbot.keyClick(window.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: controller.shell is not None, timeout=15_000)  # type: ignore[attr-defined]
    shell = controller.shell  # type: ignore[attr-defined]
    page = shell.page()
    assert page is not None
    assert page.objectName() == page_name
    qtbot.wait(300)  # let queued refreshes run against the demo data
    opened = time.perf_counter() - started
    errors = [
        w
        for w in QApplication.topLevelWidgets()
        if isinstance(w, QMessageBox) and w.isVisible() and w.objectName() == "unexpectedError"
    ]
    assert not errors, errors[0].text()
    assert opened < 10, f"{page_name} took {opened:.1f} s to open on demo data"
