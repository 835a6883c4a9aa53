"""Workstation enrolment and revocation (``/api/v1/devices``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from clinic_desktop.models import ClinicSettings, Workstation, new_id
from clinic_server.deps import Principal, check_versions, require_roles
from clinic_server.security import (
    new_enrolment_code,
    new_secret,
    normalise_enrolment_code,
    sha256_hex,
)
from clinic_server.state import ServerState, get_state
from clinic_server.sync.apply import server_write
from clinic_server.sync.changes import ChangeSet
from clinic_server.tables import Clinic, DeviceCredential, EnrolmentCode

router = APIRouter(prefix="/devices", tags=["devices"], dependencies=[Depends(check_versions)])

DESK_CODE = re.compile(r"^[A-Z]{1,3}$")
AdminOnly = Annotated[Principal, require_roles("admin")]


class EnrolmentCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)


class EnrolmentCodeOut(BaseModel):
    code: str
    expires_at: datetime


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=40, pattern=r"^[^\x00]*$")
    desk_code: str = Field(min_length=1, max_length=3)
    name: str = Field(default="", max_length=100, pattern=r"^[^\x00]*$")


class EnrolOut(BaseModel):
    device_id: str
    device_secret: str
    clinic_id: str
    clinic_name: str
    desk_code: str


class WorkstationOut(BaseModel):
    id: str
    desk_code: str
    name: str
    revoked: bool
    last_seen_at: datetime | None


def create_enrolment_code(
    state: ServerState, clinic_id: str, created_by: str | None, ttl_minutes: int
) -> tuple[str, datetime]:
    """A one-time code for a new workstation; only its hash is stored."""
    code = new_enrolment_code()
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=ttl_minutes)
    with state.db.write() as session:
        session.add(
            EnrolmentCode(
                code_hash=sha256_hex(code),
                clinic_id=clinic_id,
                created_by=created_by,
                created_at=now,
                expires_at=expires,
            )
        )
    return code, expires


@router.post("/enrolment-codes", response_model=EnrolmentCodeOut, status_code=201)
def new_code(
    body: EnrolmentCodeIn, principal: AdminOnly, state: Annotated[ServerState, Depends(get_state)]
) -> dict[str, Any]:
    """An admin makes a one-time code to enrol a workstation."""
    code, expires = create_enrolment_code(
        state, principal.clinic_id, principal.user_id, body.ttl_minutes
    )
    return {"code": code, "expires_at": expires}


@router.post("/enrol", response_model=EnrolOut, status_code=201)
def enrol(body: EnrolIn, state: Annotated[ServerState, Depends(get_state)]) -> dict[str, Any]:
    """A workstation exchanges a one-time code for its device id and secret."""
    desk_code = body.desk_code.strip().upper()
    if not DESK_CODE.match(desk_code):
        raise HTTPException(422, "The desk code must be 1 to 3 capital letters (e.g. B).")
    code_hash = sha256_hex(normalise_enrolment_code(body.code))
    now = datetime.now(UTC)
    secret = new_secret()
    try:
        with state.db.write() as session:
            code = session.get(EnrolmentCode, code_hash, with_for_update=True)
            if code is None or code.used_at is not None or code.expires_at < now:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "This enrolment code is not valid (wrong, expired or already used).",
                )
            clinic = session.get(Clinic, code.clinic_id)
            if clinic is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED, "This enrolment code is not valid."
                )
            existing = session.scalars(
                select(Workstation).where(
                    Workstation.clinic_id == clinic.id, Workstation.desk_code == desk_code
                )
            ).first()
            changes = ChangeSet(clinic.id)
            if existing is not None and not existing.revoked and not existing.deleted:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"Desk code {desk_code} is used by the workstation {existing.name!r}; choose "
                    "another code or revoke that workstation first.",
                )
            if existing is not None:
                workstation = existing
                server_write(
                    session,
                    changes,
                    workstation,
                    {"revoked": False, "deleted": False, "name": body.name or workstation.name},
                    state.clock,
                    code.created_by,
                )
                credential = session.get(DeviceCredential, workstation.id)
                if credential is None:
                    credential = DeviceCredential(
                        device_id=workstation.id, clinic_id=clinic.id, created_at=now
                    )
                    session.add(credential)
                credential.secret_hash = sha256_hex(secret)
            else:
                workstation = Workstation(
                    id=new_id(),
                    clinic_id=clinic.id,
                    desk_code=desk_code,
                    name=body.name,
                    revoked=False,
                )
                server_write(session, changes, workstation, {}, state.clock, code.created_by)
                session.add(
                    DeviceCredential(
                        device_id=workstation.id,
                        clinic_id=clinic.id,
                        secret_hash=sha256_hex(secret),
                        created_at=now,
                    )
                )
            code.used_at = now
            code.used_by_device = workstation.id
            changes.finish(session)
            state.notifier.notify_in_transaction(session, clinic.id)
            settings = session.scalars(
                select(ClinicSettings).where(ClinicSettings.clinic_id == clinic.id)
            ).first()
            clinic_name = settings.name if settings is not None else clinic.name
            result = {
                "device_id": workstation.id,
                "device_secret": secret,
                "clinic_id": clinic.id,
                "clinic_name": clinic_name,
                "desk_code": desk_code,
            }
    except IntegrityError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"Desk code {desk_code} was just taken; choose another."
        ) from None
    state.notifier.notify_local(result["clinic_id"])
    return result


@router.get("", response_model=list[WorkstationOut])
def list_devices(
    principal: AdminOnly, state: Annotated[ServerState, Depends(get_state)]
) -> list[dict[str, Any]]:
    with state.db.read() as session:
        rows = session.execute(
            select(Workstation, DeviceCredential.last_seen_at)
            .outerjoin(DeviceCredential, DeviceCredential.device_id == Workstation.id)
            .where(Workstation.clinic_id == principal.clinic_id)
            .order_by(Workstation.desk_code)
        ).all()
        return [
            {
                "id": ws.id,
                "desk_code": ws.desk_code,
                "name": ws.name,
                "revoked": ws.revoked,
                "last_seen_at": seen,
            }
            for ws, seen in rows
        ]


@router.post("/{device_id}/revoke", response_model=WorkstationOut)
def revoke(
    principal: AdminOnly,
    state: Annotated[ServerState, Depends(get_state)],
    device_id: Annotated[str, Path(max_length=64, pattern=r"^[^\x00]*$")],
) -> dict[str, Any]:
    """Refuse this workstation from its next request on."""
    with state.db.write() as session:
        workstation = session.get(Workstation, device_id, with_for_update=True)
        if workstation is None or workstation.clinic_id != principal.clinic_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such workstation.")
        changes = ChangeSet(principal.clinic_id)
        if not workstation.revoked:
            server_write(
                session, changes, workstation, {"revoked": True}, state.clock, principal.user_id
            )
            changes.finish(session)
            state.notifier.notify_in_transaction(session, principal.clinic_id)
        credential = session.get(DeviceCredential, device_id)
        out = {
            "id": workstation.id,
            "desk_code": workstation.desk_code,
            "name": workstation.name,
            "revoked": workstation.revoked,
            "last_seen_at": credential.last_seen_at if credential else None,
        }
    state.notifier.notify_local(principal.clinic_id)
    return out
