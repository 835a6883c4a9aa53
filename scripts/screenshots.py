"""Render every window with the demo clinic and save PNG screenshots (offscreen).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--data-dir DIR]

Loads the demo clinic into a temporary store (keys in a throw-away file keyring, never the
user's own), drives the real windows the way a person would, and saves ``QWidget.grab()``
images. The README shows the main ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_KEYRING_HOME = tempfile.mkdtemp(prefix="clinic-shots-keyring-")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = _KEYRING_HOME
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# PUMP_NOTE: PySide6 6.12's static QCoreApplication.processEvents() drops a reference to None
# on every call; after ~5,000 calls the interpreter aborts ("deallocating None"). A
# QEventLoop's own processEvents() does not, so loops that pump events use that.
from PySide6.QtCore import QEventLoop, QSize, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

SIZE = QSize(1280, 800)


def process(app: QApplication, rounds: int = 5) -> None:
    loop = QEventLoop(app)
    for _ in range(rounds):
        loop.processEvents()


def save(widget: QWidget, out: Path, name: str, app: QApplication) -> Path:
    process(app)
    path = out / f"{name}.png"
    # 256 colours and maximum compression: a third of the size, no visible difference for UI.
    image = (
        widget.grab()
        .toImage()
        .convertToFormat(QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.ThresholdDither)
    )
    image.save(str(path), "PNG", 0)  # type: ignore[call-overload]  # the stub wants bytes; Qt wants str
    print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clinic-shots-"))
    data_dir = args.data_dir or work / "demo"

    from clinic_desktop import demo
    from clinic_desktop.views.application import ClinicApp
    from clinic_desktop.views.common import apply_style

    if not (data_dir / "clinic-desk.db").exists():
        print("loading the demo clinic ...")
        demo.load_demo(data_dir)
    users = {u.roles[0]: u for u in demo.DEMO_USERS}

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_style(app)

    # first start: the setup wizard on an empty folder
    fresh = ClinicApp(work / "fresh", app)
    fresh.start(open_in_background=False)
    assert fresh.wizard is not None
    fresh.wizard.resize(640, 520)
    fresh.wizard.inputs["clinic_name"].setText("Riverside Clinic")  # type: ignore[union-attr]
    fresh.wizard.inputs["desk_code"].setText("A")  # type: ignore[union-attr]
    fresh.wizard.show()
    save(fresh.wizard, out, "setup-wizard", app)
    fresh.wizard.close()
    if fresh.store is not None:
        fresh.store.close()

    controller = ClinicApp(data_dir, app)
    controller.pdf_dir = work / "pdf"
    controller.start(open_in_background=False)
    controller.sign_in.resize(520, 440)
    controller.sign_in.username.setText(users["receptionist"].username)
    save(controller.sign_in, out, "sign-in", app)

    def open_as(role: str) -> object:
        user = users[role]
        if controller.shell is not None:
            controller.shell.sign_out()
        controller.sign_in.username.setText(user.username)
        controller.sign_in.password.setText(user.password)
        controller.sign_in.sign_in_button.click()
        shell = controller.shell
        assert shell is not None, f"could not sign in as {role}"
        shell.resize(SIZE)
        shell.show()
        process(app)
        return shell

    # reception: a search with results, today's queue
    shell = open_as("receptionist")
    page = shell.page()  # type: ignore[attr-defined]
    page.search_box.setText("an")
    page.runner.wait_idle()
    process(app, 20)
    save(shell, out, "reception", app)  # type: ignore[arg-type]
    page.new_patient()
    page.form.full_name.setText("Nadia Khan")
    page.form.phone.setText("12ab")
    page.form.register_button.click()  # a bad phone number: the message sits beside it
    save(shell, out, "reception-register", app)  # type: ignore[arg-type]

    # doctor: call the next token and start the consultation
    shell = open_as("doctor")
    page = shell.page()  # type: ignore[attr-defined]
    page.call_next()
    page.start_consultation()
    page.form.complaint.setPlainText("Dry cough and mild fever for three days")
    for name, value in (
        ("bp_systolic", "124"),
        ("bp_diastolic", "80"),
        ("pulse", "88"),
        ("temperature_c", "37.9"),
        ("spo2", "98"),
    ):
        page.form.vitals[name].setText(value)
    page.form.add_diagnosis("J06.9", "Acute upper respiratory infection, unspecified")
    save(shell, out, "doctor-consultation", app)  # type: ignore[arg-type]
    page.tabs.setCurrentWidget(page.builder)
    options = __import__("clinic_desktop.views.gateway", fromlist=["x"]).search_medicines(
        page.ctx.desk, "paracetamol"
    )
    if options:
        page.builder.choose(options[0])
        page.builder.dose.setEditText("1 tablet")
        page.builder.frequency.setEditText("TDS")
        page.builder.duration.setEditText("5 days")
        page.builder.quantity.setText("15")
        page.builder.add_line()
    save(shell, out, "doctor-prescription", app)  # type: ignore[arg-type]
    page.tabs.setCurrentWidget(page.history)
    save(shell, out, "doctor-history", app)  # type: ignore[arg-type]

    # the board, after the call
    shell.open_board()  # type: ignore[attr-defined]
    board = controller.boards[-1]
    board.resize(SIZE)
    save(board, out, "board", app)
    board.close()

    # lock
    shell.lock()  # type: ignore[attr-defined]
    save(shell, out, "lock", app)  # type: ignore[arg-type]
    shell.locked = False  # type: ignore[attr-defined]

    # billing: open the first waiting visit, issue, part-pay
    shell = open_as("billing")
    page = shell.page()  # type: ignore[attr-defined]
    page.refresh()
    if page.awaiting_model.rows():
        page.awaiting.selectRow(0)
        page.open_selected()
    save(shell, out, "billing", app)  # type: ignore[arg-type]
    page.open_report()
    save(shell, out, "billing-day-end", app)  # type: ignore[arg-type]

    # admin: users and the audit log
    shell = open_as("admin")
    page = shell.page()  # type: ignore[attr-defined]
    save(shell, out, "admin-users", app)  # type: ignore[arg-type]
    page.tabs.setCurrentWidget(page.audit)
    page.audit.verify()
    save(shell, out, "admin-audit", app)  # type: ignore[arg-type]
    page.tabs.setCurrentWidget(page.prices)
    save(shell, out, "admin-prices", app)  # type: ignore[arg-type]
    page.tabs.setCurrentWidget(page.settings)
    save(shell, out, "admin-settings", app)  # type: ignore[arg-type]
    shell.sign_out()  # type: ignore[attr-defined]
    if controller.store is not None:
        controller.store.close()
    process(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
