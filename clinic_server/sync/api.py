"""HTTP endpoints of the sync protocol (``/api/v1/sync``); see docs/sync-protocol.md."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from clinic_desktop.sync import protocol
from clinic_server.deps import Device, Principal, check_versions, current_device, current_principal
from clinic_server.state import ServerState, get_state
from clinic_server.sync.apply import MutationIn, PushContext, push
from clinic_server.sync.pull import (
    CursorAhead,
    CursorGone,
    read_changes,
    snapshot_page,
    snapshot_start,
)
from clinic_server.sync.rules import Actor

router = APIRouter(prefix="/sync", tags=["sync"], dependencies=[Depends(check_versions)])

EntityName = Literal[
    "clinic_settings",
    "workstation",
    "user_account",
    "patient",
    "visit",
    "medicine",
    "prescription",
    "prescription_item",
    "price_item",
    "bill",
    "bill_item",
    "payment",
    "audit_event",
    "conflict_record",
]
assert set(EntityName.__args__) == set(protocol.ENTITY_ORDER)  # type: ignore[attr-defined]

_ID = Field(min_length=1, max_length=36, pattern=r"^[^\x00]*$")


class MutationModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mutation_id: str = _ID
    entity: EntityName
    row_id: str = _ID
    op: Literal["insert", "update"]
    fields: dict[str, Any]
    base_version: int = Field(ge=0, le=2**62)
    hlc: str = Field(min_length=23, max_length=64, pattern=r"^[0-9]{15}-[0-9]{6}-[A-Za-z0-9._:-]+$")
    actor_id: str | None = Field(default=None, max_length=36, pattern=r"^[^\x00]*$")


class PushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mutations: list[MutationModel] = Field(max_length=protocol.MAX_BATCH)


class ResultOut(BaseModel):
    mutation_id: str
    status: Literal["accepted", "merged", "rejected"]
    version: int | None
    reason: str | None
    row: dict[str, Any] | None


class PushOut(BaseModel):
    results: list[ResultOut]


class ChangeOut(BaseModel):
    seq: int
    entity: str
    row: dict[str, Any]


class PullOut(BaseModel):
    changes: list[ChangeOut]
    cursor: int
    more: bool


class SnapshotStartOut(BaseModel):
    cursor: int
    entities: list[str]
    counts: dict[str, int]


class SnapshotPageOut(BaseModel):
    rows: list[dict[str, Any]]
    last_id: str | None


State = Annotated[ServerState, Depends(get_state)]
User = Annotated[Principal, Depends(current_principal)]
Desk = Annotated[Device, Depends(current_device)]


@router.post("/push", response_model=PushOut)
def push_batch(body: PushIn, state: State, principal: User, device: Desk) -> dict[str, Any]:
    """Apply a batch of outbox mutations in one transaction; one answer per mutation."""
    ctx = PushContext(
        clinic_id=principal.clinic_id,
        device_id=device.device_id,
        user=Actor(principal.user_id, principal.roles),
        clock=state.clock,
    )
    mutations = [MutationIn(**m.model_dump()) for m in body.mutations]
    results, stats = push(
        state.db,
        ctx,
        mutations,
        after_apply=lambda session: state.notifier.notify_in_transaction(session, ctx.clinic_id),
    )
    metrics = state.metrics
    metrics.pushes.inc()
    metrics.mutations.labels("accepted").inc(stats.accepted)
    metrics.mutations.labels("merged").inc(stats.merged)
    metrics.mutations.labels("rejected").inc(stats.rejected)
    metrics.mutations.labels("replayed").inc(stats.replayed)
    metrics.conflicts.inc(stats.conflicts)
    if stats.accepted or stats.merged:
        state.notifier.notify_local(ctx.clinic_id)
    return {"results": results}


@router.get("/changes", response_model=PullOut)
async def changes(
    state: State,
    principal: User,
    device: Desk,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=protocol.MAX_PULL_LIMIT)] = protocol.DEFAULT_PULL_LIMIT,
    wait: Annotated[float, Query(ge=0, le=protocol.MAX_WAIT_SECONDS)] = 0,
) -> dict[str, Any]:
    """Changes after a cursor; with ``wait`` the request is held until a change commits."""
    clinic_id = principal.clinic_id
    deadline = time.monotonic() + min(wait, state.settings.long_poll_max_seconds)

    def read() -> tuple[list[dict[str, Any]], int, bool]:
        with state.db.read() as session:
            return read_changes(session, clinic_id, after, limit)

    state.metrics.pulls.inc()
    waiting = False
    try:
        while True:
            try:
                found, cursor, more = await run_in_threadpool(read)
            except CursorGone:
                raise HTTPException(
                    status.HTTP_410_GONE,
                    "This workstation was away longer than the server keeps its change log; "
                    "a fresh download starts (unsent work is kept).",
                ) from None
            except CursorAhead:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    "The server knows fewer changes than this workstation (was it restored from "
                    "a backup?); a fresh download starts.",
                ) from None
            remaining = deadline - time.monotonic()
            if found or cursor != after or remaining <= 0:
                return {"changes": found, "cursor": cursor, "more": more}
            if not waiting:
                waiting = True
                state.metrics.connected.inc()
            await state.notifier.wait(
                clinic_id, min(remaining, state.settings.poll_interval_seconds)
            )
    finally:
        if waiting:
            state.metrics.connected.dec()


@router.get("/snapshot/start", response_model=SnapshotStartOut)
def start_snapshot(state: State, principal: User, device: Desk) -> dict[str, Any]:
    """The high-water mark to pull from after the download, and row counts for progress."""
    with state.db.read() as session:
        return snapshot_start(session, principal.clinic_id)


@router.get("/snapshot", response_model=SnapshotPageOut)
def snapshot(
    state: State,
    principal: User,
    device: Desk,
    entity: EntityName,
    after_id: Annotated[str | None, Query(max_length=36, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[
        int, Query(ge=1, le=protocol.MAX_SNAPSHOT_LIMIT)
    ] = protocol.DEFAULT_SNAPSHOT_LIMIT,
) -> dict[str, Any]:
    """One page of an entity's rows, ordered by id."""
    with state.db.read() as session:
        return snapshot_page(session, principal.clinic_id, entity, after_id, limit)
