"""Typed server settings (environment prefix ``CLINIC_``; ``DATABASE_URL`` also read).

Production refuses to start with the development signing key: a token signed with a key
printed in the source would let anyone mint an admin token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinic_desktop.sync import protocol

DEV_TOKEN_SECRET = "dev-only-token-secret-change-me-0000000000"  # noqa: S105 - refused in production


class SettingsError(Exception):
    """The settings cannot be used (the message says which one and why)."""


class Settings(BaseSettings):
    """Everything the server reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="CLINIC_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("clinic-server-data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CLINIC_DATABASE_URL", "DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8700

    token_secret: SecretStr = SecretStr(DEV_TOKEN_SECRET)
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    enrolment_code_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)

    # Sign-in protection (shared by all processes: kept in the database).
    login_window_minutes: int = 15
    login_max_failures_per_window: int = 10  # per user name + address -> 429
    lockout_threshold: int = 5  # failures in a row -> account locked (same as the desk)
    lockout_minutes: int = 15

    max_body_bytes: int = protocol.MAX_BODY_BYTES
    change_retention_days: int = Field(default=90, ge=1)
    long_poll_max_seconds: float = protocol.MAX_WAIT_SECONDS
    # How often a waiting pull re-reads the database when no wake-up arrives. On PostgreSQL
    # LISTEN/NOTIFY wakes waiters at once; this is the safety net (and SQLite's only way to
    # see other processes' pushes).
    poll_interval_seconds: float = 0.5
    bcrypt_rounds: int | None = None  # tests lower it; None keeps the shared default
    log_level: str = "INFO"

    def resolved_database_url(self) -> str:
        """PostgreSQL when configured, else a SQLite file in the data directory."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'clinic-server.db').resolve()}"

    def check(self) -> None:
        """Refuse settings that are unsafe for the chosen environment."""
        secret = self.token_secret.get_secret_value()
        if self.environment == "production":
            if secret == DEV_TOKEN_SECRET:
                raise SettingsError(
                    "CLINIC_TOKEN_SECRET is the development default; set a random secret "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
                )
            if len(secret) < 32:
                raise SettingsError("CLINIC_TOKEN_SECRET must be at least 32 characters.")
        if len(secret) < 16:
            raise SettingsError("CLINIC_TOKEN_SECRET must be at least 16 characters.")
