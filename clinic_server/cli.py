"""``clinic-server``: run the server, create the first admin, load the demo clinic."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from clinic_desktop.services.errors import ClinicError
from clinic_server.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinic-server",
        description=(
            "Clinic Desk central server (SQLite in --data-dir, or PostgreSQL via DATABASE_URL)."
        ),
    )
    parser.add_argument("--data-dir", type=Path, help="where the SQLite database lives")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8700)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--create-admin", action="store_true", help="create a clinic's first admin")
    parser.add_argument("--clinic-name", help="with --create-admin: name of a new clinic")
    parser.add_argument("--clinic-id", help="with --create-admin/--enrolment-code: existing clinic")
    parser.add_argument("--currency", default="USD", help="with --create-admin: clinic currency")
    parser.add_argument("--username", help="with --create-admin")
    parser.add_argument("--full-name", help="with --create-admin")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="with --create-admin: read the password from stdin",
    )
    parser.add_argument(
        "--enrolment-code", action="store_true", help="print a one-time workstation code"
    )
    parser.add_argument("--load-demo", action="store_true", help="load the demo clinic and exit")
    parser.add_argument("--migrate", action="store_true", help="migrate the database and exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    return Settings(**overrides)  # type: ignore[arg-type]


def _pick_clinic(db: object, clinic_id: str | None) -> str:
    from clinic_server.bootstrap import clinic_ids

    ids = clinic_ids(db)  # type: ignore[arg-type]
    if clinic_id:
        if clinic_id not in ids:
            raise ClinicError(f"No clinic with id {clinic_id}.")
        return clinic_id
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise ClinicError("There is no clinic yet: run --create-admin --clinic-name NAME first.")
    raise ClinicError("There are several clinics; choose one with --clinic-id.")


def _create_admin(settings: Settings, args: argparse.Namespace) -> int:
    from clinic_server import bootstrap, migrate
    from clinic_server.db import open_database

    db = open_database(settings)
    try:
        migrate.upgrade(db.engine)
        existing = bootstrap.clinic_ids(db)
        if args.clinic_id or (existing and not args.clinic_name):
            clinic_id = _pick_clinic(db, args.clinic_id)
        else:
            name = args.clinic_name or input("Clinic name: ")
            clinic_id = bootstrap.create_clinic(db, name, currency=args.currency)
            print(f"Clinic created: {clinic_id}")
        username = args.username or input("Admin user name: ")
        full_name = args.full_name or input("Admin full name: ")
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat password: ") != password:
                print("The passwords differ; nothing was created.", file=sys.stderr)
                return 2
        user_id = bootstrap.create_admin(db, clinic_id, username, full_name, password)
        print(
            f"Admin {username.strip().casefold()} created in clinic {clinic_id} "
            f"(user id {user_id})."
        )
        return 0
    finally:
        db.dispose()


def _enrolment_code(settings: Settings, args: argparse.Namespace) -> int:
    from clinic_desktop.models.hlc import HybridLogicalClock
    from clinic_server import migrate
    from clinic_server.db import open_database
    from clinic_server.devices import create_enrolment_code
    from clinic_server.metrics import Metrics
    from clinic_server.state import ServerState
    from clinic_server.sync.notify import ChangeNotifier

    db = open_database(settings)
    try:
        migrate.upgrade(db.engine)
        clinic_id = _pick_clinic(db, args.clinic_id)
        state = ServerState(settings, db, Metrics(), ChangeNotifier(), HybridLogicalClock("server"))
        code, expires = create_enrolment_code(
            state, clinic_id, None, settings.enrolment_code_minutes
        )
        print(
            f"Enrolment code: {code} (clinic {clinic_id}, valid until {expires:%Y-%m-%d %H:%M} UTC)"
        )
        return 0
    finally:
        db.dispose()


def _load_demo(settings: Settings) -> int:
    from clinic_server import migrate
    from clinic_server.db import open_database
    from clinic_server.demo import load_demo

    db = open_database(settings)
    try:
        migrate.upgrade(db.engine)
        print("Loading the demo clinic (this takes a little while)...")
        summary = load_demo(db, progress=lambda text: print(f"  {text}"))
        print(summary)
        return 0
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        import clinic_server

        print(f"clinic-server {clinic_server.__version__}")
        return 0
    try:
        settings = _settings(args)
        settings.check()
        if args.create_admin:
            return _create_admin(settings, args)
        if args.enrolment_code:
            return _enrolment_code(settings, args)
        if args.load_demo:
            return _load_demo(settings)
        if args.migrate:
            from clinic_server import migrate
            from clinic_server.db import open_database

            db = open_database(settings)
            migrate.upgrade(db.engine)
            db.dispose()
            print("The database schema is up to date.")
            return 0
        return _serve(settings, args.workers)
    except (SettingsError, ClinicError) as exc:
        print(f"clinic-server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _serve(settings: Settings, workers: int) -> int:
    import uvicorn

    from clinic_server import logs

    logs.configure(settings.log_level)
    # Workers re-create the app from the environment: pass the resolved settings on.
    os.environ["CLINIC_DATA_DIR"] = str(settings.data_dir)
    if workers > 1:
        uvicorn.run(
            "clinic_server.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            proxy_headers=True,
        )
        return 0
    from clinic_server.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
