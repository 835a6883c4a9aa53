"""Keystrokes for the common front-desk path: find a known patient -> token issued (issue 3).

Starts the real application offscreen on a small clinic, signs in as the receptionist, then
presses keys the way a receptionist would and counts the key presses the application
pressed, listing them. The path counts only if the token that comes out is for the right
patient and doctor. Prints JSON.

    .venv/bin/python benchmarks/keystrokes.py

Paths measured:
- by name:   Ctrl+F, a few letters of the name, F2 (first match is pre-selected)
- by number: Ctrl+F, the digits at the end of the patient number, F2
- other doctor: as by name, with Alt+2 to pick the second doctor first
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_HOME = tempfile.mkdtemp(prefix="keystrokes-")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = _HOME
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

# PUMP_NOTE: PySide6 6.12's static QCoreApplication.processEvents() drops a reference to None
# on every call; after ~5,000 calls the interpreter aborts ("deallocating None"). A
# QEventLoop's own processEvents() does not, so loops that pump events use that.
from PySide6.QtCore import QEventLoop, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

PASSWORD = "Calm-river-2931"


def build_clinic(data_dir: Path) -> dict[str, str]:
    from clinic_desktop.services import patients, users
    from clinic_desktop.store.open import open_store

    store = open_store(data_dir)
    setup = users.setup_clinic(
        store.engine,
        device_id=store.device_id,
        audit_key=store.audit_key,
        clock=store.clock,
        clinic_name="Keystroke Clinic",
        currency="USD",
        desk_code="A",
        admin_username="admin",
        admin_full_name="Ada Admin",
        password=PASSWORD,
    )
    desk, admin = setup.desk, setup.admin
    for username, name, roles in (
        ("rita", "Rita Reception", ["receptionist"]),
        ("drmehta", "Dr Anil Mehta", ["doctor"]),
        ("drsilva", "Dr Lena Silva", ["doctor"]),
    ):
        users.create_user(
            desk,
            admin,
            username=username,
            full_name=name,
            roles=roles,
            password=PASSWORD,
            must_change_password=False,
        )
    rita = users.actor_for(next(u for u in users.list_users(desk, admin) if u.username == "rita"))
    numbers: dict[str, str] = {}
    for name, phone in (
        ("Asha Verma", "+919800000001"),
        ("Ashok Kumar", "+919800000002"),
        ("Maria Gomez", "+919800000003"),
        ("Mohammed Khan", "+919800000004"),
    ):
        patient = patients.register(
            desk,
            rita,
            patients.PatientDraft(full_name=name, sex="female", age_years=40, phone=phone),
        )
        numbers[name] = patient.patient_number
    store.close()
    return numbers


def main() -> int:
    data_dir = Path(_HOME) / "desk"
    numbers = build_clinic(data_dir)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    pump = QEventLoop(app).processEvents  # see PUMP_NOTE
    from clinic_desktop.views import common
    from clinic_desktop.views.application import ClinicApp

    def no_dialogs(_parent: object, error: object, _title: str = "") -> None:
        raise RuntimeError(f"the window showed an error: {error}")  # a modal would hang here

    common.show_error = no_dialogs  # type: ignore[assignment]

    assert isinstance(app, QApplication)
    controller = ClinicApp(data_dir, app)
    controller.start(open_in_background=False)
    controller.sign_in.username.setText("rita")
    controller.sign_in.password.setText(PASSWORD)
    controller.sign_in.sign_in_button.click()
    shell = controller.shell
    assert shell is not None
    shell.activateWindow()
    pump()
    from clinic_desktop.views.reception import ReceptionWindow

    page = shell.page()
    assert isinstance(page, ReceptionWindow)

    def run(label: str, keys: list[tuple[str, Any]], patient: str, doctor: str) -> dict:
        pressed: list[str] = []
        before = page.last_token
        for kind, value in keys:
            target = QApplication.focusWidget() or shell
            if kind == "text":
                pressed.extend(str(value))
                QTest.keyClicks(target, str(value))
                page.runner.wait_idle()
                for _ in range(5):
                    pump()
            else:
                key, mods, name = value
                pressed.append(name)
                QTest.keyClick(target, key, mods)
                pump()
        token = page.last_token
        ok = (
            token is not None
            and token is not before
            and token.patient_name == patient
            and token.doctor_name == doctor
        )
        return {
            "path": label,
            "keystrokes": len(pressed),
            "keys": " ".join(pressed),
            "token": token.token_label if token else None,
            "patient_ok": ok,
        }

    ctrl_f = ("key", (Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier, "Ctrl+F"))
    f2 = ("key", (Qt.Key.Key_F2, Qt.KeyboardModifier.NoModifier, "F2"))
    alt2 = ("key", (Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier, "Alt+2"))
    results = [
        run(
            "find by name, token for the default doctor",
            [ctrl_f, ("text", "ash v"), f2],
            "Asha Verma",
            "Dr Anil Mehta",
        ),
        run(
            "find by patient number, default doctor",
            [ctrl_f, ("text", numbers["Maria Gomez"].rsplit("-", 1)[1][-3:]), f2],
            "Maria Gomez",
            "Dr Anil Mehta",
        ),
        run(
            "find by name, other doctor (Alt+2)",
            [ctrl_f, ("text", "moh"), alt2, f2],
            "Mohammed Khan",
            "Dr Lena Silva",
        ),
    ]
    print(
        json.dumps(
            {
                "benchmark": "keystrokes: find a known patient -> token issued",
                "target": "< 10",
                "paths": results,
                "max_keystrokes": max(r["keystrokes"] for r in results),
                "all_tokens_correct": all(r["patient_ok"] for r in results),
                "note": f"by number: the last 3 digits of {numbers['Maria Gomez']}",
            },
            indent=2,
        )
    )
    shell.idle.stop()
    shell.close()
    if controller.store is not None:
        controller.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
