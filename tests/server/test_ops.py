"""Operations: migrations match the models, logs carry no patient data, the demo loads."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

from clinic_desktop.models import Base
from clinic_desktop.sync import protocol
from clinic_server import migrate
from clinic_server.app import create_app
from clinic_server.logs import JsonFormatter
from clinic_server.settings import Settings, SettingsError
from clinic_server.tables import ServerBase
from tests.server.conftest import RunningServer, World, mutation, patient_fields, start_in_thread

ROOT = Path(__file__).resolve().parents[2]


def test_migrations_build_exactly_the_models_schema(server: RunningServer) -> None:
    """A model change without a server migration fails here (on both databases)."""
    url = server.database_url or f"sqlite:///{server.settings.data_dir / 'clinic-server.db'}"
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)  # already at head: a no-op that must not fail
        combined = MetaData()
        for metadata in (Base.metadata, ServerBase.metadata):
            for table in metadata.tables.values():
                table.to_metadata(combined)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), combined)
        assert diff == []
    finally:
        engine.dispose()


def test_logs_are_json_and_carry_no_patient_data(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    secret_name = f"Zebulon Quixote-{uuid.uuid4().hex[:6]}"
    row_id = str(uuid.uuid4())
    with caplog.at_level(logging.DEBUG, logger="clinic_server"):
        world.admin_on["A"].push_one(
            mutation(
                "patient",
                row_id,
                patient_fields(world.clinic_id, row_id, "P-A-000001", full_name=secret_name),
            )
        )
        bad = world.http.post(
            "/api/v1/sync/push",
            json={"mutations": [{"mutation_id": secret_name}]},
            headers=world.admin_on["A"].headers(),
        )
        assert bad.status_code == 422
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"route": "/api/v1/sync/push"' in line for line in lines), lines
    assert all(secret_name not in line for line in lines)
    assert all(row_id not in line for line in lines)


def test_production_settings_refuse_defaults(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        create_app(Settings(environment="production", data_dir=tmp_path))
    with pytest.raises(SettingsError):
        create_app(Settings(environment="production", data_dir=tmp_path, token_secret="short"))  # type: ignore[arg-type]


@pytest.mark.slow
def test_load_demo_gives_the_desks_demo_clinic(tmp_path: Path, server: RunningServer) -> None:
    if server.backend != "sqlite":
        pytest.skip("one backend is enough for the demo loader")
    env = {**os.environ, "CLINIC_TOKEN_SECRET": "x" * 40}
    loaded = subprocess.run(
        [sys.executable, "-m", "clinic_server.cli", "--data-dir", str(tmp_path), "--load-demo"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "Demo-front-2468" in loaded.stdout
    settings = Settings(environment="test", data_dir=tmp_path, token_secret="x" * 40)  # type: ignore[arg-type]
    uv, thread, app, url = start_in_thread(settings)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            login = http.post(
                "/api/v1/auth/login",
                json={"username": "reception", "password": "Demo-front-2468"},
                headers=protocol.version_headers(),
            )
            assert login.status_code == 200, login.text
            assert login.json()["user"]["roles"] == ["receptionist"]
    finally:
        uv.should_exit = True
        thread.join(10)
        app.state.clinic.db.dispose()
