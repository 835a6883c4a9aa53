"""What every service needs: the desk it runs on and the person acting.

Services take a :class:`Desk` and an :class:`Actor`; they never reach for globals, so tests
can run several desks side by side in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.services.errors import PermissionDenied
from clinic_desktop.store.engine import READ_ONLY
from clinic_desktop.store.tracking import ACTOR, CLOCK, DEVICE, install_tracking


@dataclass(frozen=True)
class Actor:
    """The signed-in person, as services see them (a snapshot taken at sign-in)."""

    user_id: str
    username: str
    full_name: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require(self, *roles: str, action: str = "do this") -> None:
        """Raise :class:`PermissionDenied` unless the actor holds one of ``roles``."""
        if not self.has(*roles):
            needed = " or ".join(roles)
            raise PermissionDenied(f"Only a user with the {needed} role can {action}.")


@dataclass
class Desk:
    """One workstation's store and identity."""

    engine: Engine
    clinic_id: str
    desk_code: str
    device_id: str
    audit_key: bytes
    clock: HybridLogicalClock
    sessions: sessionmaker[Session] = field(init=False)
    read_sessions: sessionmaker[Session] = field(init=False)
    now: Clock = field(default_factory=lambda: SystemClock())

    def __post_init__(self) -> None:
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        install_tracking(self.sessions)
        # Reads take no write lock, so a long sync write never holds up a screen.
        self.read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        install_tracking(self.read_sessions)

    @contextmanager
    def transaction(self, actor: Actor | None) -> Iterator[Session]:
        """One atomic unit of work: the change, its outbox entries and its audit event."""
        with self.sessions.begin() as session:
            session.info[CLOCK] = self.clock
            session.info[DEVICE] = self.device_id
            session.info[ACTOR] = actor.user_id if actor else None
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session on one WAL snapshot, without the write lock.

        Nothing it touches is flushed: it is rolled back at the end.
        """
        with self.read_sessions() as session:
            session.info[CLOCK] = self.clock
            session.info[DEVICE] = self.device_id
            yield session
            session.rollback()


class Clock:
    """Wall-clock time source; tests substitute a fixed one."""

    def utcnow(self) -> datetime:
        raise NotImplementedError


class SystemClock(Clock):
    def utcnow(self) -> datetime:
        return datetime.now(UTC)
