"""What request handlers share within one process (nothing here is the truth: the database is)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_server.db import Database
from clinic_server.metrics import Metrics
from clinic_server.settings import Settings
from clinic_server.sync.notify import ChangeNotifier


@dataclass
class ServerState:
    settings: Settings
    db: Database
    metrics: Metrics
    notifier: ChangeNotifier
    clock: HybridLogicalClock


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.clinic
    return state
