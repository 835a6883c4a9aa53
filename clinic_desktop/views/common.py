"""Small building blocks every window shares.

Kept free of service imports so the sign-in window can use them without pulling in the
domain layer before it shows.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressDialog,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

log = logging.getLogger(__name__)

T = TypeVar("T")


# ---------------------------------------------------------------------------- resources


def resources_dir() -> Path:
    """Where icons and the style sheet live: bundled next to the executable or in the repo."""
    override = os.environ.get("CLINIC_DESK_RESOURCES")
    if override:
        return Path(override)
    bundled = getattr(sys, "_MEIPASS", None)
    if bundled:
        return Path(bundled) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


_ICONS: dict[str, QIcon] = {}


def icon(name: str) -> QIcon:
    """A (cached) SVG icon from ``resources/icons``; scalable, so sharp at any DPI."""
    cached = _ICONS.get(name)
    if cached is None:
        path = resources_dir() / "icons" / f"{name}.svg"
        cached = QIcon(str(path)) if path.exists() else QIcon()
        _ICONS[name] = cached
    return cached


def apply_style(app: QApplication) -> None:
    """Load the shared style sheet; a missing file leaves Qt's default look, not an error."""
    path = resources_dir() / "style.qss"
    try:
        app.setStyleSheet(path.read_text(encoding="utf-8"))
    except OSError:
        log.warning("style sheet not found at %s", path)
    app.setWindowIcon(icon("app"))


def settle_heap() -> None:
    """Move everything built so far (modules, windows, catalogues) out of the garbage
    collector's way: a full collection over that heap stalls every thread for ~200 ms, which
    a typist feels. Called once the windows are up; later collections scan new objects only.
    """
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------------------- widgets


def plain_label(text: str = "", object_name: str = "") -> QLabel:
    """A label that never interprets markup: names and notes are shown exactly as typed."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    if object_name:
        label.setObjectName(object_name)
    return label


def title_label(text: str) -> QLabel:
    return plain_label(text, "pageTitle")


def section_label(text: str) -> QLabel:
    return plain_label(text, "sectionTitle")


def make_action(
    parent: QObject,
    text: str,
    slot: Callable[[], object],
    shortcut: str | QKeySequence.StandardKey | None = None,
    icon_name: str = "",
    tip: str = "",
) -> QAction:
    """An action whose shortcut is also spelled out in its tooltip (discoverable keys)."""
    action = QAction(text.replace("&", "&&") if "&&" in text else text, parent)
    if icon_name:
        action.setIcon(icon(icon_name))
    if shortcut is not None:
        seq = QKeySequence(shortcut)
        action.setShortcut(seq)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        shown = seq.toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip or text.replace('&', '')} ({shown})")
    elif tip:
        action.setToolTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def set_invalid(widget: QWidget, invalid: bool) -> None:
    """Flag a field for the style sheet's red border (and re-polish so it shows now)."""
    widget.setProperty("invalid", "true" if invalid else "false")
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


class FieldErrors:
    """Per-field error labels placed under the fields of a form.

    Services raise ``ValidationError(fields={name: message})``; :meth:`show` puts each message
    beside its field and returns the messages that have no field of their own.
    """

    def __init__(self) -> None:
        self._labels: dict[str, QLabel] = {}
        self._fields: dict[str, QWidget] = {}

    def add_row(
        self, form: QFormLayout, caption: str, name: str, field: QWidget, buddy: bool = True
    ) -> None:
        """Add ``field`` with an (initially hidden) error label under it."""
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(field)
        error = plain_label("", "fieldError")
        error.setVisible(False)
        error.setAccessibleName(f"{caption.replace('&', '')} error")
        layout.addWidget(error)
        label = QLabel(caption if buddy else caption.replace("&", ""))
        if buddy:
            label.setBuddy(field)
        form.addRow(label, box)
        field.setAccessibleName(caption.replace("&", "").rstrip(":"))
        self._labels[name] = error
        self._fields[name] = field

    def clear(self) -> None:
        for name, label in self._labels.items():
            label.clear()
            label.setVisible(False)
            set_invalid(self._fields[name], False)

    def show(self, fields: dict[str, str]) -> list[str]:
        """Show each message beside its field; return the ones without a field."""
        self.clear()
        rest: list[str] = []
        first: QWidget | None = None
        for name, message in fields.items():
            label = self._labels.get(name)
            if label is None:
                rest.append(message)
                continue
            label.setText(message)
            label.setVisible(True)
            set_invalid(self._fields[name], True)
            first = first or self._fields[name]
        if first is not None:
            first.setFocus()
        return rest

    def message(self, name: str) -> str:
        label = self._labels.get(name)
        return label.text() if label is not None else ""


# ---------------------------------------------------------------------------- messages


def show_error(parent: QWidget | None, error: BaseException | str, title: str = "") -> None:
    """A readable message box; never a traceback."""
    text = str(error) if str(error) else "Something went wrong."
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title or "Clinic Desk")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    box.setObjectName("errorMessage")
    box.exec()


def show_info(parent: QWidget | None, text: str, title: str = "") -> None:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle(title or "Clinic Desk")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    box.exec()


def confirm(parent: QWidget | None, text: str, title: str = "") -> bool:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title or "Clinic Desk")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def clinic_error_types() -> tuple[type[BaseException], ...]:
    """The expected, user-facing errors (imported lazily: services are not needed at sign-in)."""
    from clinic_desktop.services.errors import ClinicError

    return (ClinicError,)


def attempt(parent: QWidget | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run a service call; show a :class:`ClinicError` as a message and return ``None``."""
    try:
        return fn(*args, **kwargs)
    except clinic_error_types() as exc:
        show_error(parent, exc)
        return None


# ---------------------------------------------------------------------------- background work


class _Relay(QObject):
    """Lives in the main thread; queued signals carry a worker's outcome back to it."""

    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], object], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:
            self._relay.failed.emit(exc)
        else:
            self._relay.done.emit(result)


_LIVE_RELAYS: set[_Relay] = set()


def run_in_background(
    fn: Callable[[], T],
    on_done: Callable[[T], object],
    on_error: Callable[[BaseException], object] | None = None,
    pool: QThreadPool | None = None,
) -> None:
    """Run ``fn`` on a pool thread and call back on the main thread; the UI keeps painting."""
    relay = _Relay()
    _LIVE_RELAYS.add(relay)

    def finished(result: object) -> None:
        _LIVE_RELAYS.discard(relay)
        on_done(result)  # type: ignore[arg-type]

    def failed(exc: object) -> None:
        _LIVE_RELAYS.discard(relay)
        if on_error is not None:
            on_error(exc)  # type: ignore[arg-type]
        else:
            log.error("background task failed: %s", type(exc).__name__)

    relay.done.connect(finished, Qt.ConnectionType.QueuedConnection)
    relay.failed.connect(failed, Qt.ConnectionType.QueuedConnection)
    (pool or QThreadPool.globalInstance()).start(_Job(fn, relay))


class BackgroundPoll(QObject, Generic[T]):
    """A periodic re-read done off the UI thread, one at a time.

    Timers that refresh lists (the queue every few seconds, the board every second) must not
    make the window wait on the store, which may be busy with a sync write. ``fetch`` runs on
    a pool thread; ``apply`` gets its result on the UI thread; a request made while one is in
    flight is merged into one more run afterwards.
    """

    def __init__(
        self,
        fetch: Callable[[], T],
        apply: Callable[[T], object],
        fail: Callable[[BaseException], object] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._fetch = fetch
        self._apply = apply
        self._fail = fail
        self._busy = False
        self._again = False

    def request(self) -> None:
        if self._busy:
            self._again = True
            return
        self._busy = True
        run_in_background(self._fetch, self._done, self._failed)

    def _finish(self) -> None:
        self._busy = False
        if self._again:
            self._again = False
            self.request()

    def _done(self, result: T) -> None:
        if not isValid(self):  # the window closed while the read ran
            return
        try:
            self._apply(result)
        finally:
            self._finish()

    def _failed(self, exc: BaseException) -> None:
        if not isValid(self):
            return
        try:
            if self._fail is not None:
                self._fail(exc)
            else:
                log.warning("background refresh failed: %s", type(exc).__name__)
        finally:
            self._finish()


def run_with_progress(
    parent: QWidget,
    label: str,
    fn: Callable[[], T],
    on_done: Callable[[T], object],
) -> QProgressDialog:
    """A long operation in a worker with a busy indicator; errors become a message box."""
    dialog = QProgressDialog(label, "", 0, 0, parent)
    dialog.setWindowTitle("Please wait")
    dialog.setCancelButton(None)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    dialog.show()

    def done(result: T) -> None:
        dialog.close()
        on_done(result)

    def failed(exc: BaseException) -> None:
        dialog.close()
        if isinstance(exc, (clinic_error_types(), OSError)):
            show_error(parent, exc)
        else:
            log.error("operation failed: %s", type(exc).__name__)
            show_error(parent, "The operation could not be completed. Details are in the log.")

    run_in_background(fn, done, failed)
    return dialog


# ---------------------------------------------------------------------------- table models


@dataclass(frozen=True)
class Column(Generic[T]):
    """One table column: header text and how to read a cell from a row."""

    header: str
    value: Callable[[T], object]
    align_right: bool = False


class RowsModel(QAbstractTableModel, Generic[T]):
    """A read-only table over a list of rows (dataclasses or ORM snapshots)."""

    def __init__(self, columns: Sequence[Column[T]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._columns = list(columns)
        self._rows: list[T] = []
        self.decorate: Callable[[T, int, int], object] | None = None

    def set_rows(self, rows: Sequence[T]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[T]:
        return list(self._rows)

    def row(self, index: int) -> T | None:
        return self._rows[index] if 0 <= index < len(self._rows) else None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = self._columns[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            value = column.value(row)
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.align_right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if self.decorate is not None and role in (
            Qt.ItemDataRole.ForegroundRole,
            Qt.ItemDataRole.BackgroundRole,
            Qt.ItemDataRole.FontRole,
            Qt.ItemDataRole.DecorationRole,
        ):
            return self.decorate(row, index.column(), role)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._columns[section].header
        return None


def configure_table(view: QTableView, stretch: Sequence[int] = ()) -> None:
    """Short columns fit their content; the ``stretch`` columns (names) share the rest."""
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    for column in stretch:
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
    header.setStretchLastSection(not stretch)
