"""A desk's sync as its own process, for the crash tests (they SIGKILL it at random).

Runs the real :class:`SyncWorker` on an enrolled store with tiny batches and pages, so a
kill lands in the middle of pushes and pulls.

Starting Python and importing the stack takes seconds on a busy machine, and the test needs
20+ fresh processes, so this script is a small fork server: it imports everything once,
then for every ``go`` line on stdin forks a child (a separate process with its own store
connections, opened after the fork) and prints ``child <pid>``. The child prints ``ready``
once syncing, ``idle`` when the outbox is empty and a pull found nothing new, then exits 0.
``quit`` ends the fork server.

    python -m tests.sync.desk_sync_process DATA_DIR SERVER_URL USERNAME PASSWORD
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clinic_desktop.store.open import desk_for, open_store
from clinic_desktop.sync.enrolment import load_credential
from clinic_desktop.sync.transport import Transport
from clinic_desktop.sync.worker import SyncWorker


def run_desk(data_dir: str, server: str, username: str, password: str) -> int:
    store = open_store(Path(data_dir))
    desk = desk_for(store)
    assert desk is not None
    transport = Transport(server, allow_insecure=True, credential=load_credential(store.data_dir))
    transport.login(username, password, clinic_id=desk.clinic_id)
    worker = SyncWorker(
        desk,
        transport,
        long_poll=0.5,
        push_batch_size=3,
        pull_limit=2,
        snapshot_page=4,
        min_backoff=0.05,
        max_backoff=0.2,
        watch_commits=False,
    )
    print("ready", flush=True)
    worker.start()
    idle = worker.wait_idle(120)
    worker.stop()
    print("idle" if idle else "stuck", flush=True)
    return 0 if idle else 1


def main(argv: list[str]) -> int:
    args = argv[:4]
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            return 0
        if command != "go":
            continue
        pid = os.fork()
        if pid == 0:  # the child: a fresh desk process from here on
            code = 1
            try:
                code = run_desk(*args)
            finally:
                os._exit(code)
        print(f"child {pid}", flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
