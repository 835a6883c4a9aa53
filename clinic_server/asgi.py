"""ASGI entry for process managers: ``uvicorn clinic_server.asgi:app`` (settings from env)."""

from __future__ import annotations

from clinic_server import logs
from clinic_server.app import create_app
from clinic_server.settings import Settings

_settings = Settings()
logs.configure(_settings.log_level)
app = create_app(_settings)
