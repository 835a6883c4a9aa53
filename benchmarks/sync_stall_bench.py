"""Longest main-thread stall of the desktop app while a big initial sync runs (issue 4).

A real ``clinic-server`` (SQLite in a temporary dir) is filled in bulk with ``--patients``
patients and ``--visits`` visits (the same rows ``initial_sync_bench.py`` generates); an empty
encrypted desk store is enrolled with it; then the real application runs on that store
offscreen, exactly as a person starts it: ``ClinicApp`` opens the store and starts the
``SyncBridge``, the sign-in window is filled in and submitted, the server checks the password,
the shell window opens on the person's first role page and the sync worker (its own threads)
downloads the whole clinic while the window is on screen.

Why a 5 ms timer: a person notices a frozen window from about 50-100 ms. A precise 5 ms timer
on the main thread ticks as long as the event loop is free; ``gap - interval`` is how long it
was kept from running (the stall). A second probe emits a queued signal from a plain thread
every 10 ms (as the sync worker does) and records how long each took to be delivered. Unless
``--no-attribute``, a plain thread snapshots the main thread's Python stack whenever it has
not ticked for 25 ms, so a stall can be blamed on a handler (file:line) or, when the stack is
only the event loop, on Qt's own work or the main thread waiting for the GIL; each stall also
gets the main thread's CPU and run-queue time and the slow garbage collections it overlapped.
``--switch-interval-ms`` is an experiment (CPython's GIL switch interval for the run).

Prints JSON (stalls during the sync, per phase, the worst ones with their stacks).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/sync_stall_bench.py \
        [--patients 100000] [--visits 0] [--roles receptionist,admin]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

# propagation_bench sets up a throw-away keyring and cheap bcrypt before anything opens.
from initial_sync_bench import chunks, patient_rows, visit_rows
from propagation_bench import ADMIN, PASSWORD, Server
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

REPO = Path(__file__).resolve().parent.parent
INTERVAL_MS = 5
STALL_TARGET_MS = 50.0
SAMPLE_AFTER_MS = 25.0  # a stall this old gets its stack sampled
SAMPLE_EVERY_S = 0.005


# ----------------------------------------------------------------------------- server


def load_server(
    server: Server, clinic_id: str, doctor_id: str, patients: int, visits: int, roles: list[str]
) -> float:
    """Bulk insert straight into the server's database, and give the admin ``roles``.

    The admin gets the roles so the shell opens on the page a person would watch during a
    first sync (the reception page refreshes its queue when visits arrive).
    """
    from sqlalchemy import update

    from clinic_desktop.sync.apply import _decode, entity_info
    from clinic_server.db import open_database
    from clinic_server.settings import Settings
    from clinic_server.tables import Clinic

    started = time.perf_counter()
    db = open_database(Settings(data_dir=server.data))
    try:
        sources: list[tuple[str, Iterator[dict[str, Any]]]] = [
            ("patient", patient_rows(patients, clinic_id)),
            ("visit", itertools.islice(visit_rows(patients, clinic_id, doctor_id), visits)),
        ]
        for entity, rows in sources:
            info = entity_info(entity)
            for batch in chunks(rows, 10_000):
                with db.engine.begin() as conn:
                    conn.execute(info.table.insert(), [_decode(info, r) for r in batch])
        users = entity_info("user_account").table
        with db.engine.begin() as conn:
            conn.execute(
                update(Clinic)
                .where(Clinic.id == clinic_id)
                .values(change_seq=patients * 4 + visits + 10)
            )
            conn.execute(update(users).where(users.c.username == ADMIN).values(roles=roles))
    finally:
        db.dispose()
    return time.perf_counter() - started


def prepare(root: Path, patients: int, visits: int, roles: list[str]) -> tuple[Server, Path, float]:
    """A running server holding the clinic, and an enrolled empty desk store (closed again)."""
    from clinic_desktop.store.open import open_store
    from clinic_desktop.sync.enrolment import enrol

    if visits > patients * 3:
        raise SystemExit("--visits can be at most three times --patients")
    server = Server(root)
    out = server.cli(
        "--create-admin",
        "--clinic-name",
        "Stall Clinic",
        "--username",
        ADMIN,
        "--full-name",
        "Ada Admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    clinic_id = re.search(r"clinic ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    doctor_id = re.search(r"user id ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    load_seconds = load_server(server, clinic_id, doctor_id, patients, visits, roles)
    server.start()
    desk_dir = root / "desk"
    store = open_store(desk_dir)
    try:
        enrol(store, server.url, server.enrolment_code(), "N", "New desk", allow_insecure=True)
    finally:
        store.close()
    return server, desk_dir, load_seconds


# ----------------------------------------------------------------------------- probes


@dataclass
class Sample:
    """Where the main thread was while it had not ticked for over SAMPLE_AFTER_MS."""

    at: float
    frames: tuple[str, ...]
    others: tuple[str, ...] = ()  # "thread: innermost frame" of the other busy threads


class StallSampler:
    """A plain thread that snapshots the main thread's Python stack while it is stalled.

    Why not time ``QApplication.notify``: a Python override of it crashes PySide6 when a
    receiver is deleted mid-delivery. A stack snapshot needs the GIL, so when the worker
    holds it the sample is late, but it still shows where the main thread stood; a stack
    that is only the event loop (``app.exec``) means the main thread was in Qt's C++ code
    or waiting for the GIL, not running a Python handler.
    """

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.samples: list[Sample] = []
        self.main_id = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            last = self.probe.last
            now = time.perf_counter()
            if not last or (now - last) * 1000 < SAMPLE_AFTER_MS:
                continue
            frames = sys._current_frames()
            names = {t.ident: t.name for t in threading.enumerate()}
            others = tuple(
                f"{names.get(ident, ident)}: {_stack(other)[0]}"
                for ident, other in frames.items()
                if ident not in (self.main_id, threading.get_ident())
                and not names.get(ident, "").startswith("stall-")
                and not _idle(other)
            )
            main = frames.get(self.main_id or 0)
            self.samples.append(Sample(now, _stack(main) if main else (), others))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


@dataclass
class Gap:
    """Main-thread timer gap ending at ``end`` (seconds, perf_counter), in the given phase."""

    end: float
    stall_ms: float
    phase: str
    cpu_ms: float = 0.0  # main-thread CPU time in the gap: low means it waited (GIL/CPU)
    runq_ms: float = 0.0  # time it was runnable but had no core (2-core machine, busy server)


def _run_queue_seconds() -> float:
    """Linux: how long the calling thread has waited for a core, in total (schedstat)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Probe:
    """A 5 ms main-thread timer, and the phase of the run it is in."""

    phase_of: Any
    gaps: list[Gap] = field(default_factory=list)
    timer: QTimer = field(default_factory=QTimer)
    last: float = 0.0
    last_cpu: float = 0.0
    last_runq: float = 0.0
    last_phase: str = ""

    def start(self) -> None:
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.last_runq = _run_queue_seconds()
        self.last_phase = self.phase_of()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        cpu = time.thread_time()
        runq = _run_queue_seconds()
        stall = max(0.0, (now - self.last) * 1000 - INTERVAL_MS)
        # A gap belongs to the phase it started in (a stall that ends a phase is its own).
        self.gaps.append(
            Gap(
                now,
                stall,
                self.last_phase,
                (cpu - self.last_cpu) * 1000,
                (runq - self.last_runq) * 1000,
            )
        )
        self.last = now
        self.last_cpu = cpu
        self.last_runq = runq
        self.last_phase = self.phase_of()

    def stop(self) -> None:
        self.timer.stop()


class _Echo(QObject):
    """Lives on the main thread; a plain thread emits to it like the sync worker does."""

    ping = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[float, float]] = []  # (when, latency ms)
        self.ping.connect(self._pong)

    def _pong(self, sent: float) -> None:
        now = time.perf_counter()
        self.received.append((now, (now - sent) * 1000))


class PostedEventProbe:
    """Queued-signal delivery latency from another thread, every 10 ms."""

    def __init__(self) -> None:
        self.echo = _Echo()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.echo.ping.emit(time.perf_counter())
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# ----------------------------------------------------------------------------- run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarise(gaps: list[Gap]) -> dict[str, Any]:
    stalls = [g.stall_ms for g in gaps]
    return {
        "ticks": len(stalls),
        "max_stall_ms": round(max(stalls, default=0.0), 1),
        "p99_stall_ms": round(percentile(stalls, 99), 1),
        "p95_stall_ms": round(percentile(stalls, 95), 1),
        "p50_stall_ms": round(percentile(stalls, 50), 1),
        "stalls_over_50ms": sum(1 for s in stalls if s > STALL_TARGET_MS),
        "stalls_over_20ms": sum(1 for s in stalls if s > 20),
    }


def _stack(frame: Any) -> tuple[str, ...]:
    stack: list[str] = []
    while frame is not None and len(stack) < 40:
        code = frame.f_code
        stack.append(f"{_short(code.co_filename)}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return tuple(stack)


def _idle(frame: Any) -> bool:
    """A thread parked in a wait (Event/Condition/queue), i.e. not competing for the GIL."""
    return frame is not None and frame.f_code.co_name in {"wait", "_worker", "get"}


def _short(filename: str) -> str:
    """Project files relative to the repository; libraries by their file name."""
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def where(sample: Sample) -> str:
    """The innermost frame outside this benchmark, or the event loop when that is all.

    Library frames (SQLAlchemy, stdlib) are followed by the innermost project frame that
    called them, which is what a fix would change.
    """
    own = [f for f in sample.frames if not f.startswith("benchmarks/")]
    if not own:
        return "event loop (Qt C++ work or waiting for the GIL)"
    project = next((f for f in own if f.startswith("clinic_desktop/")), None)
    return own[0] if project is None or project == own[0] else f"{own[0]} <- {project}"


def blame(gap: Gap, samples: list[Sample], gcs: GcWatch) -> list[str]:
    """Where the main thread was during a stall, most sampled first ("N x" at ~5 ms a
    sample, so N x 5 ms is roughly the time spent there), and overlapping slow collections."""
    begin = gap.end - (gap.stall_ms + INTERVAL_MS) / 1000
    counts: Counter[str] = Counter()
    for sample in samples:
        if begin < sample.at <= gap.end:
            project = [f for f in sample.frames if f.startswith("clinic_desktop/")]
            text = where(sample) + (" | " + " <- ".join(project[:3]) if project else "")
            if sample.others:
                text += " || busy: " + "; ".join(sample.others)
            counts[text] += 1
    return gcs.during(begin, gap.end)[:4] + [f"{n} x {t}" for t, n in counts.most_common(6)]


# PySide6 6.12 on CPython 3.11 drops a reference to True on every Python ``Signal.emit()``
# and one to None on every call of a void Qt method (measured: -1 per call); when a count
# reaches zero the interpreter aborts ("deallocating True"). The posted-event probe emits 100
# times a second, so the benchmark holds extra references to keep its own run alive. The
# counts are also measured (``refcount_drain``): that is the app's own drain, a real risk.
_BALLAST: list[object] = []


class GcWatch:
    """Cyclic garbage collections that took over 5 ms: they hold the GIL, so every thread
    (the main one included) waits for them, whichever thread triggered them."""

    def __init__(self) -> None:
        self.slow: list[tuple[float, float, int, str]] = []  # start, end, generation, thread
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        elif (now - self._started) * 1000 >= 5:
            self.slow.append(
                (self._started, now, info["generation"], threading.current_thread().name)
            )

    def during(self, begin: float, end: float) -> list[str]:
        return [
            f"gc gen{gen} {round((stop - start) * 1000, 1)} ms in {thread}"
            for start, stop, gen, thread in self.slow
            if stop > begin and start < end
        ]


def _refs() -> dict[str, int]:
    return {"None": sys.getrefcount(None), "True": sys.getrefcount(True)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from clinic_desktop.sync import worker as sync_worker
    from clinic_desktop.views.application import ClinicApp, tune_interpreter
    from clinic_desktop.views.common import apply_style

    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if args.switch_interval_ms:
        # Experiment: a waiting thread asks the GIL holder to let go after this long.
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    else:
        tune_interpreter()  # what run_gui does for the real application
    root = Path(tempfile.mkdtemp(prefix="clinic-stall-"))
    server, desk_dir, load_seconds = prepare(root, args.patients, args.visits, roles)
    expected = args.patients + args.visits
    _BALLAST.extend([None, True] * 2_000_000)
    gcs = GcWatch()
    gc.callbacks.append(gcs)
    marks: dict[str, float] = {}
    progress: list[tuple[float, int, int]] = []
    try:
        # No install_excepthook: its modal message box would hang an unattended run.
        app = QApplication.instance() or QApplication(sys.argv[:1])
        assert isinstance(app, QApplication)
        apply_style(app)
        controller = ClinicApp(desk_dir, app)
        controller.allow_insecure_server = True

        def phase_of() -> str:
            if "signed_in" not in marks:
                return "sign_in" if "submitted" in marks else "start"
            worker = controller.sync.worker
            phase = worker.status.phase if worker is not None else "none"
            if phase == sync_worker.SNAPSHOT:
                return "snapshot"
            if "snapshot_done" in marks:
                return "after_snapshot"
            return "waiting_for_snapshot"

        probe = Probe(phase_of)
        posted = PostedEventProbe()

        def on_progress(done: int, total: int) -> None:
            now = time.perf_counter()
            progress.append((now, done, total))
            if done and done >= total and "snapshot_done" not in marks:
                marks["snapshot_done"] = now

        def watch() -> None:
            """Ends the run once the snapshot is in and the worker says it is up to date."""
            now = time.perf_counter()
            worker = controller.sync.worker
            if "signed_in" not in marks and controller.shell is not None:
                marks["signed_in"] = now
            if worker is None:
                return
            phase = worker.status.phase
            if phase == sync_worker.SNAPSHOT and "snapshot_started" not in marks:
                marks["snapshot_started"] = now
            if "snapshot_done" in marks and phase == sync_worker.IDLE and "idle" not in marks:
                marks["idle"] = now
                QTimer.singleShot(int(args.tail * 1000), app.quit)
            if now - marks["submitted"] > args.timeout:
                marks["timed_out"] = now
                app.quit()

        controller.start(open_in_background=False)
        controller.sync.snapshot_progress.connect(on_progress)
        if controller.sync.worker is None:
            raise RuntimeError("the desk did not start syncing (not enrolled?)")

        def submit() -> None:
            controller.sign_in.username.setText(ADMIN)
            controller.sign_in.password.setText(PASSWORD)
            marks["submitted"] = time.perf_counter()
            controller.sign_in.sign_in_button.click()
            watcher.start()

        watcher = QTimer()
        watcher.setInterval(20)
        watcher.timeout.connect(watch)
        sampler = StallSampler(probe)
        if args.attribute:
            QTimer.singleShot(300, sampler.start)
        # Let the sign-in window settle first; the probes run from before the click.
        refs_before = _refs()
        QTimer.singleShot(300, probe.start)
        QTimer.singleShot(300, posted.start)
        QTimer.singleShot(600, submit)
        app.exec()
        refs_after = _refs()
        probe.stop()
        posted.stop()
        sampler.stop()
        watcher.stop()
        rows_in_store = count_rows(controller)
        controller.sync.stop()
        if controller.store is not None:
            controller.store.close()
    finally:
        server.stop()

    samples = sampler.samples
    gaps = probe.gaps
    sync_start = marks.get("snapshot_started", marks.get("signed_in", 0.0))
    sync_end = marks.get("idle", marks.get("snapshot_done", time.perf_counter()))
    # A gap that started before the shell was up is the shell opening, reported apart.
    in_sync = [
        g for g in gaps if sync_start < g.end <= sync_end and g.phase not in ("start", "sign_in")
    ]
    by_phase: dict[str, list[Gap]] = {}
    for g in gaps:
        by_phase.setdefault(g.phase, []).append(g)
    worst = sorted((g for g in gaps if g.stall_ms > STALL_TARGET_MS), key=lambda g: -g.stall_ms)
    # Each sample is 5 ms of a stall older than 25 ms: a rough time share per place.
    places: Counter[str] = Counter(where(s) for s in samples if sync_start < s.at <= sync_end)
    sync_seconds = sync_end - sync_start
    synced = progress[-1][1] if progress else 0
    # Only pings sent after the snapshot started (not those held up by the shell opening).
    latencies = [
        ms for at, ms in posted.echo.received if sync_start < at - ms / 1000 and at <= sync_end
    ]
    return {
        "benchmark": "sync_stall",
        "patients": args.patients,
        "visits": args.visits,
        "roles": roles,
        "shell_page": roles[0] if roles else "",
        "rows_expected": expected,
        "rows_synced": synced,
        "rows_in_store": rows_in_store,
        "server_bulk_load_seconds": round(load_seconds, 2),
        "sign_in_to_shell_seconds": round(
            marks.get("signed_in", 0.0) - marks.get("submitted", 0.0), 3
        ),
        "sync_wall_seconds": round(sync_seconds, 2),
        "rows_per_second": round(synced / sync_seconds) if sync_seconds > 0 else 0,
        "timed_out": "timed_out" in marks,
        "timer_interval_ms": INTERVAL_MS,
        # From the snapshot's first page to up to date (the shell is on screen by then).
        "during_sync": summarise(in_sync),
        # From the sign-in click: the snapshot starts as soon as the server accepts the
        # password, so opening the shell window already competes with its first pages.
        "sign_in_to_idle": summarise(
            [g for g in gaps if marks.get("submitted", 0.0) < g.end <= sync_end]
        ),
        "by_phase": {phase: summarise(g) for phase, g in by_phase.items()},
        "posted_event_latency_during_sync_ms": {
            "count": len(latencies),
            "max": round(max(latencies, default=0.0), 1),
            "p99": round(percentile(latencies, 99), 1),
            "p95": round(percentile(latencies, 95), 1),
            "p50": round(statistics.median(latencies), 2) if latencies else 0.0,
        },
        "worst_stalls": [
            {
                "stall_ms": round(g.stall_ms, 1),
                "main_thread_cpu_ms": round(g.cpu_ms, 1),
                # The rest of the stall (not CPU, not run queue) is waiting: for the GIL.
                "main_thread_run_queue_ms": round(g.runq_ms, 1),
                "phase": g.phase,
                "at_seconds_after_sign_in": round(g.end - marks.get("submitted", 0.0), 2),
                "main_thread_stacks": blame(g, samples, gcs),
            }
            for g in worst[:15]
        ],
        "slow_gc_during_sync": {
            "count": len([c for c in gcs.slow if sync_start < c[1] <= sync_end]),
            "max_ms": round(
                max(
                    ((c[1] - c[0]) * 1000 for c in gcs.slow if sync_start < c[1] <= sync_end),
                    default=0.0,
                ),
                1,
            ),
            "stalls_over_50ms_with_gc": sum(
                1
                for g in in_sync
                if g.stall_ms > STALL_TARGET_MS
                and gcs.during(g.end - (g.stall_ms + INTERVAL_MS) / 1000, g.end)
            ),
        },
        "stalled_main_thread_samples_during_sync": dict(places.most_common(10)),
        "target_max_stall_ms": STALL_TARGET_MS,
        "meets_target": bool(in_sync) and summarise(in_sync)["max_stall_ms"] < STALL_TARGET_MS,
        "attribution": args.attribute,
        "gil_switch_interval_ms": round(sys.getswitchinterval() * 1000, 2),
        # Net change of the references from sign-in to the end of the run, the probe's own
        # emits added back (live objects holding None/True blur it); the count at the
        # start is the headroom before a leak of one per call aborts the app.
        "refcount_drain": {
            "None_net_change": refs_after["None"] - refs_before["None"],
            "True_net_change": refs_after["True"] - refs_before["True"] + posted.sent,
            "headroom_without_ballast": {k: v - 2_000_000 for k, v in refs_before.items()},
        },
        "cpu_count": os.cpu_count(),
    }


def count_rows(controller: Any) -> int:
    """Patients and visits in the desk's store after the run (what actually arrived)."""
    from sqlalchemy import func, select

    from clinic_desktop.models import Patient, Visit
    from clinic_desktop.sync.state import reading

    if controller.desk is None:
        return 0
    with reading(controller.desk) as session:
        patients = session.scalar(select(func.count()).select_from(Patient)) or 0
        visits = session.scalar(select(func.count()).select_from(Visit)) or 0
    return int(patients) + int(visits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=0, help="at most 3 x patients")
    parser.add_argument(
        "--roles",
        default="receptionist,admin",
        help="the admin's roles; the shell opens on the first (reception watches visits)",
    )
    parser.add_argument("--tail", type=float, default=1.0, help="seconds measured after idle")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--no-attribute",
        dest="attribute",
        action="store_false",
        help="do not sample the main thread's stack during stalls",
    )
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=0.0,
        help="experiment: sys.setswitchinterval for the run (0: the application's own setting)",
    )
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
