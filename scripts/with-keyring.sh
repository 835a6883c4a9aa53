#!/usr/bin/env bash
# Start a Clinic Desk command with the keyring the machine offers.
# The application itself never falls back to a file-based key store. This wrapper selects
# keyrings.alt's plain-text file backend only when BOTH hold:
#   - no system keyring service is usable (no Secret Service / KWallet / Keychain / Windows
#     Credential Manager), and
#   - the person opted in with ALLOW_FILE_KEYRING=1 (e.g. `make run ALLOW_FILE_KEYRING=1`).
# An explicit PYTHON_KEYRING_BACKEND is always left as it is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VENV:-$ROOT/.venv}/bin/python"

if [[ -z "${PYTHON_KEYRING_BACKEND:-}" ]]; then
    # Exit 0 when keyring found a real (non-file, non-failing) backend by itself.
    if ! "$PY" - <<'PYEOF' 2>/dev/null; then
import sys

import keyring
from keyring.backends import chainer, fail

backend = keyring.get_keyring()
leaves = list(backend.backends) if isinstance(backend, chainer.ChainerBackend) else [backend]
real = [
    b
    for b in leaves
    if not isinstance(b, fail.Keyring)
    and type(b).__module__ != "keyring.backends.null"
    and not type(b).__module__.startswith("keyrings.alt")
]
sys.exit(0 if real else 1)
PYEOF
        if [[ "${ALLOW_FILE_KEYRING:-0}" == "1" ]]; then
            export PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring
            echo "with-keyring: no keyring service found; ALLOW_FILE_KEYRING=1, so the store" \
                "key is kept in a plain-text file (keyrings.alt) in" \
                "${XDG_DATA_HOME:-$HOME/.local/share}/python_keyring" >&2
        else
            echo "with-keyring: no keyring service found. Start one (GNOME Keyring, KWallet)," \
                "or opt in to a file-based key store: make run ALLOW_FILE_KEYRING=1" >&2
        fi
    fi
fi

if [[ "$(uname -s)" == "Linux" && -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" \
    && -z "${QT_QPA_PLATFORM:-}" && " $* " != *" --load-demo "* ]]; then
    echo "with-keyring: no display (DISPLAY is unset); on a headless machine try" \
        "xvfb-run -a make run, or QT_QPA_PLATFORM=offscreen" >&2
fi

exec "$@"
