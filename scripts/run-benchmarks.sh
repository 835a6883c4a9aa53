#!/usr/bin/env bash
# Run every benchmarks/*.py (or the ones named) headless; each prints JSON, kept in
# benchmarks/out/<name>.json. Benchmarks are never part of the pass/fail test run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
[[ "$(id -u)" -eq 0 ]] && export QTWEBENGINE_DISABLE_SANDBOX=1
if [[ -z "${PYTHON_KEYRING_BACKEND:-}" ]]; then
    KEYRING_HOME="$(mktemp -d)"
    trap 'rm -rf "$KEYRING_HOME"' EXIT
    export PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring XDG_DATA_HOME="$KEYRING_HOME"
fi
mkdir -p benchmarks/out
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
    for f in benchmarks/*.py; do names+=("$(basename "$f" .py)"); done
fi
status=0
for name in "${names[@]}"; do
    echo "bench: $name" >&2
    if "$PY" "benchmarks/$name.py" | tee "benchmarks/out/$name.json"; then :; else status=1; fi
done
exit "$status"
