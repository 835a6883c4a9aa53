"""Desktop sync client (no Qt here; the views wrap the hooks with signals).

How the application uses it::

    store = open_store(data_dir)
    enrol(store, "https://server", code, "B", "Front desk")        # once, admin window
    desk = desk_for(store)
    transport = transport_for(store)                                 # credential from keyring
    result = sign_in_anywhere(desk, transport, username, password)   # server first, else cache
    worker = SyncWorker(desk, transport)
    worker.events.on_status(...)          # SyncStatus: phase, online, pending, last_success,
                                          #   last_error, problems
    worker.events.on_rows_changed(...)    # {"visit": [ids], "patient": [ids], ...}
    worker.events.on_snapshot_progress(...)  # (done, total) during a first download
    worker.start()
    worker.set_tokens(result.tokens)      # after each online sign-in
    ...
    worker.stop()

Callbacks run on the worker's threads: queue a Qt signal, do not touch widgets there.
Local writes wake the push thread by themselves (an ``after_commit`` hook on the desk's
session factory); :meth:`SyncWorker.poke` does the same by hand.

Modules: ``transport`` (HTTP, typed errors), ``push`` (outbox), ``pull`` (changes and
snapshot), ``apply`` (the apply rule), ``worker`` (threads, back-off, status), ``client``
(one synchronous cycle), ``enrolment`` (enrolment, keyring credential, sign-in), ``protocol``
(the wire format, shared with the server). Admin tools: ``services/sync_admin.py``.
"""
