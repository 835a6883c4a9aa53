"""What the windows show of sync: the status line, and lists refreshed by rows from other
desks (the worker itself is tested with a real server under tests/sync)."""

from __future__ import annotations

from datetime import UTC, datetime

from pytestqt.qtbot import QtBot

from clinic_desktop.services import queue
from clinic_desktop.sync import worker
from clinic_desktop.views.sync_bridge import describe
from tests.gui.conftest import Clinic, sign_in


def test_status_line_says_offline_and_what_is_waiting() -> None:
    status = worker.SyncStatus(phase=worker.OFFLINE, pending=3, problems=1)
    assert describe(status) == (
        "Offline: working on this desk · 3 change(s) waiting · 1 problem(s) for the admin"
    )
    idle = worker.SyncStatus(
        phase=worker.IDLE, online=True, last_success=datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    )
    text = describe(idle)
    assert text.startswith("Online · up to date · last sync ")


def test_standalone_desk_says_so_in_the_status_bar(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    assert not app.sync.connected  # type: ignore[attr-defined]
    assert shell.sync_label.text() == "Standalone: not connected to a server"  # type: ignore[attr-defined]


def test_visits_arriving_from_another_desk_refresh_the_queue(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    reception.queue_timer.stop()  # only the sync signal may refresh the list here
    assert reception.queue_model.rows() == []
    visit = queue.issue_token(
        clinic.desk,
        clinic.users["rita"],
        clinic.patients["Asha Verma"],
        clinic.users["drmehta"].user_id,
    )
    app.sync.rows_changed.emit({"visit": [visit.id]})  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: len(reception.queue_model.rows()) == 1, timeout=2000)
    assert reception.queue_model.rows()[0].token == visit.token_label


def test_periodic_queue_refresh_reads_off_the_ui_thread(
    qtbot: QtBot, app: object, clinic: Clinic
) -> None:
    shell = sign_in(qtbot, app, "rita", clinic.passwords["rita"])
    reception = shell.page()  # type: ignore[attr-defined]
    reception.queue_timer.stop()
    visit = queue.issue_token(
        clinic.desk,
        clinic.users["rita"],
        clinic.patients["Maria Gomez"],
        clinic.users["drsilva"].user_id,
    )
    reception.poll_queue()  # what the timer does every few seconds
    assert reception.queue_poll._busy  # the read is running on a pool thread
    qtbot.waitUntil(lambda: len(reception.queue_model.rows()) == 1, timeout=3000)
    assert reception.queue_model.rows()[0].token == visit.token_label
