"""The FastAPI application factory: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import clinic_server
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.sync import protocol
from clinic_server import auth, devices, migrate, retention
from clinic_server.db import open_database
from clinic_server.metrics import Metrics
from clinic_server.settings import Settings
from clinic_server.state import ServerState
from clinic_server.sync import api as sync_api
from clinic_server.sync.notify import ChangeNotifier

log = logging.getLogger("clinic_server.http")


class _BodyTooLarge(Exception):
    pass


class BodyLimitAndMetrics:
    """Pure ASGI middleware: refuses oversized bodies (413), times and logs each request.

    Logs carry the route template, status and duration: never bodies or query values.
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.settings.max_body_bytes
        started = time.perf_counter()
        status_code = 500
        request_id = uuid.uuid4().hex[:16]
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._send_413(send, limit)
            self._record(scope, 413, started, request_id)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            status_code = 413
            await self._send_413(send, limit)
        finally:
            self._record(scope, status_code, started, request_id)

    @staticmethod
    async def _send_413(send: Send, limit: int) -> None:
        body = (
            '{"detail":"The request is too large (at most %d bytes)."}' % limit  # noqa: UP031
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, status_code: int, started: float, request_id: str) -> None:
        template = _route_template(scope)
        elapsed = time.perf_counter() - started
        metrics = self.state.metrics
        method = scope.get("method", "")
        metrics.requests.labels(method, template, str(status_code)).inc()
        metrics.latency.labels(method, template).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": method,
                "route": template,
                "status": status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )


def _route_template(scope: Scope) -> str:
    """The matched route with its router prefixes, e.g. ``/api/v1/sync/push`` (nested
    routers report only their own part; the prefixes are static, so take them from the path).
    """
    route = scope.get("route")
    relative = getattr(route, "path", None)
    if not relative:
        return "unmatched"
    path_parts = str(scope.get("path", "")).rstrip("/").split("/")
    template_parts = relative.rstrip("/").split("/")
    prefix = "/".join(path_parts[: max(0, len(path_parts) - len(template_parts) + 1)])
    return f"{prefix}{relative}"


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{loc or 'body'}: {error.get('msg', 'invalid')}")
    return "The request is not valid: " + "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(error.get("type") == "json_invalid" for error in errors):
            return JSONResponse({"detail": "The request body is not valid JSON."}, status_code=400)
        slim = [
            {
                "loc": list(error.get("loc", ())),
                "msg": error.get("msg", ""),
                "type": error.get("type", ""),
            }
            for error in errors
        ]
        return JSONResponse(
            {"detail": _validation_message(errors), "errors": slim}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse(
            {"detail": "The server hit an internal error; the request was not completed."},
            status_code=500,
        )


def include_optional_routers(api: APIRouter) -> None:
    """The one place optional feature routers join the API (Stripe payments today)."""
    try:
        from clinic_server.payments.api import router as payments_router
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("clinic_server.payments"):
            raise
        return
    api.include_router(payments_router)


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    """Build an app for ``settings`` (refusing unsafe production settings)."""
    settings = settings or Settings()
    settings.check()
    db = open_database(settings)
    if run_migrations:
        migrate.upgrade(db.engine)
    if db.is_postgres:
        settings = settings.model_copy(
            update={"poll_interval_seconds": max(settings.poll_interval_seconds, 2.0)}
        )
    state = ServerState(
        settings=settings,
        db=db,
        metrics=Metrics(),
        notifier=ChangeNotifier(),
        clock=HybridLogicalClock("server"),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.notifier.bind_loop(asyncio.get_running_loop())
        if db.is_postgres:
            dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            state.notifier.start_listener(dsn)
        pruner = asyncio.create_task(_prune_forever(state))
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            state.notifier.stop()
            db.dispose()

    app = FastAPI(
        title="Clinic Desk server",
        version=clinic_server.__version__,
        lifespan=lifespan,
        description="Central server of Clinic Desk: sign-in, workstation enrolment and sync.",
    )
    app.state.clinic = state
    _install_error_handlers(app)
    app.add_middleware(BodyLimitAndMetrics, state=state)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        """The database answers."""
        try:
            db.ping()
        except Exception:
            return JSONResponse({"status": "unavailable", "detail": "database unreachable"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    api = APIRouter(prefix=protocol.API_PREFIX)
    api.include_router(auth.router)
    api.include_router(devices.router)
    api.include_router(sync_api.router)
    include_optional_routers(api)
    app.include_router(api)
    return app


async def _prune_forever(state: ServerState) -> None:
    """Apply change-log retention at start and then hourly (any process may do it)."""
    keep = timedelta(days=state.settings.change_retention_days)
    while True:
        try:
            await asyncio.to_thread(retention.prune, state.db, keep)
        except Exception as exc:
            log.warning("retention pruning failed", extra={"error_type": type(exc).__name__})
        await asyncio.sleep(3600)
