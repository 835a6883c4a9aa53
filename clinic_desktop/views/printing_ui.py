"""Print dialog and "Save as PDF" for the documents in :mod:`clinic_desktop.printing`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from PySide6.QtGui import QPageSize
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from clinic_desktop.printing.documents import render, write_pdf
from clinic_desktop.views.common import show_error

log = logging.getLogger(__name__)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "document"


def save_pdf(html: str, page: QPageSize, path: Path) -> Path:
    return write_pdf(html, path, page, title=path.stem)


def print_or_save(
    parent: QWidget, html: str, page: QPageSize, name: str, save_dir: Path | None = None
) -> Path | None:
    """Ask: print, or save as PDF. With ``save_dir`` (tests, kiosks) save there directly.

    Returns the PDF written, if any.
    """
    if save_dir is not None:
        return save_pdf(html, page, save_dir / f"{_safe_name(name)}.pdf")
    box = QMessageBox(parent)
    box.setWindowTitle("Print")
    box.setText("Print the document, or save it as a PDF file?")
    print_button = box.addButton("&Print...", QMessageBox.ButtonRole.AcceptRole)
    pdf_button = box.addButton("Save as P&DF...", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(print_button)
    box.exec()
    clicked = box.clickedButton()
    if clicked is print_button:
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setPageSize(page)
        dialog = QPrintDialog(printer, parent)
        if dialog.exec() == QPrintDialog.DialogCode.Accepted:
            try:
                render(html, printer, page)
            except Exception as exc:
                log.error("printing failed: %s", type(exc).__name__)
                show_error(parent, "The document could not be printed. Check the printer.")
        return None
    if clicked is pdf_button:
        default = str(Path.home() / f"{_safe_name(name)}.pdf")
        path, _filter = QFileDialog.getSaveFileName(parent, "Save as PDF", default, "PDF (*.pdf)")
        if path:
            try:
                return save_pdf(html, page, Path(path))
            except OSError as exc:
                show_error(parent, f"The PDF could not be saved: {exc.strerror}")
    return None
