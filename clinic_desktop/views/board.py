"""The waiting-room board: a second window for a TV, readable across the room.

It shows, per doctor, the token now being served and the next few. It refreshes when this
desk's doctors call (a signal) and polls the store once a second for calls made on other
desks (a cheap query of today's active visits). When a doctor's current token changes, it can
announce it aloud with Qt's text-to-speech if the platform has it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from clinic_desktop.views.common import BackgroundPoll, icon, plain_label

if TYPE_CHECKING:
    from clinic_desktop.services.context import Desk
    from clinic_desktop.views.gateway import BoardLine

log = logging.getLogger(__name__)

POLL_MS = 1000
NEXT_SHOWN = 3


def _speech_engine() -> Any:
    """A QTextToSpeech engine, or None where the module or a speech backend is missing."""
    try:
        from PySide6.QtTextToSpeech import QTextToSpeech
    except ImportError:  # module missing or its audio libraries absent (e.g. no libpulse)
        return None
    try:
        engine = QTextToSpeech()
    except Exception:
        return None
    return engine if engine.availableEngines() else None


class DoctorCard(QFrame):
    """One doctor's column: name, the token being served, the next ones."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("boardCard")
        self.doctor = plain_label("", "boardDoctor")
        self.now = plain_label("-", "boardNow")
        self.next = plain_label("", "boardNext")
        for label in (self.doctor, self.now, self.next):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 18)
        layout.addWidget(self.doctor)
        caption = QLabel("Now serving")
        caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        caption.setStyleSheet("font-size: 16pt; color: #9fb3c8;")
        layout.addWidget(caption)
        layout.addWidget(self.now, 1)
        next_caption = QLabel("Next")
        next_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        next_caption.setStyleSheet("font-size: 14pt; color: #9fb3c8;")
        layout.addWidget(next_caption)
        layout.addWidget(self.next)

    def show_line(self, line: BoardLine) -> None:
        self.doctor.setText(line.doctor_name)
        self.now.setText(line.now_serving or "-")
        upcoming = list(line.next_tokens)[:NEXT_SHOWN]
        self.next.setText("  ".join(upcoming) if upcoming else "No one waiting")
        self.setAccessibleName(
            f"{line.doctor_name}: now serving {line.now_serving or 'nobody'}; "
            f"next {', '.join(upcoming) or 'nobody'}"
        )


class BoardWindow(QWidget):
    """Top-level board window; F11 toggles full screen, Esc leaves full screen."""

    def __init__(self, desk: Desk, *, speak: bool = True, poll_ms: int = POLL_MS) -> None:
        super().__init__()
        self.desk = desk
        self.setObjectName("board")
        self.setWindowTitle("Clinic Desk - Waiting room")
        self.setWindowIcon(icon("board"))
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.resize(1280, 720)
        from clinic_desktop.views import gateway

        self.title = plain_label(gateway.clinic_header(desk).name, "boardTitle")
        self.clock = plain_label("", "boardClock")
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.clock)
        self.grid = QGridLayout()
        self.grid.setSpacing(18)
        self.empty = plain_label("No tokens yet today.", "boardNext")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 20, 28, 28)
        layout.addLayout(header)
        layout.addSpacing(12)
        layout.addLayout(self.grid, 1)
        layout.addWidget(self.empty)
        self.cards: list[DoctorCard] = []
        self.lines: list[BoardLine] = []
        self._last_serving: dict[str, str | None] = {}
        self.announcements: list[str] = []
        self.speech = _speech_engine() if speak else None

        QShortcut(QKeySequence("F11"), self, self.toggle_full_screen)
        QShortcut(QKeySequence("Esc"), self, self.showNormal)
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        from clinic_desktop.views import gateway

        self.poll = BackgroundPoll(
            lambda: gateway.board_lines(desk), self.show_lines, self._failed, self
        )
        self.timer.timeout.connect(self.poll.request)
        self.timer.start()
        self.refresh()

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def refresh(self) -> None:
        """Re-read today's board now (a doctor on this desk just called)."""
        from clinic_desktop.views import gateway

        try:
            lines = gateway.board_lines(self.desk)
        except Exception as exc:
            self._failed(exc)
            return
        self.show_lines(lines)

    def _failed(self, exc: BaseException) -> None:
        # The board is unattended: log and keep showing the last state.
        log.warning("board refresh failed: %s", type(exc).__name__)

    def show_lines(self, lines: list[BoardLine]) -> None:
        """Show the board; announce any doctor whose current token changed."""
        self.clock.setText(datetime.now().strftime("%H:%M"))
        self._announce_changes(lines)
        if lines == self.lines:
            return
        self.lines = lines
        while len(self.cards) < len(lines):
            card = DoctorCard()
            self.cards.append(card)
            n = len(self.cards) - 1
            columns = 3
            self.grid.addWidget(card, n // columns, n % columns)
        for card, line in zip(self.cards, lines, strict=False):
            card.show_line(line)
            card.setVisible(True)
        for card in self.cards[len(lines) :]:
            card.setVisible(False)
        self.empty.setVisible(not lines)

    def _announce_changes(self, lines: list[BoardLine]) -> None:
        first_read = not self._last_serving and not self.lines
        for line in lines:
            before = self._last_serving.get(line.doctor_id)
            self._last_serving[line.doctor_id] = line.now_serving
            if first_read or not line.now_serving or line.now_serving == before:
                continue
            text = f"Token {line.now_serving}, please go to {line.doctor_name}."
            self.announcements.append(text)
            if self.speech is not None:
                self.speech.say(text.replace("-", " "))

    def closeEvent(self, event: Any) -> None:
        self.timer.stop()
        super().closeEvent(event)
