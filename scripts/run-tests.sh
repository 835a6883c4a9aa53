#!/usr/bin/env bash
# The quality gate and the whole test suite, headless, exactly as CI runs it (`make test`).
#   scripts/run-tests.sh [pytest args...]
# Environment:
#   SKIP_LINT=1     skip ruff/mypy (they still run in CI)
#   PYTEST_ARGS     extra pytest arguments (e.g. -m "not installer" to skip the bundle build)
# Exit status: non-zero when lint or any test fails, and when pytest collected no test at all
# (pytest's exit code 5: a suite that silently ran nothing must not look green).
set -uo pipefail
STARTED=$(date +%s)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
BIN="$VENV/bin"

# Headless Qt; Chromium's sandbox cannot start as root, so QtWebEngine needs it off there.
export QT_QPA_PLATFORM=offscreen
if [[ "$(id -u)" -eq 0 ]]; then
    export QTWEBENGINE_DISABLE_SANDBOX=1
fi
# Tests never touch a real keyring: keyrings.alt's file backend under a throw-away home.
KEYRING_HOME="$(mktemp -d "${TMPDIR:-/tmp}/clinic-test-home.XXXXXX")"
trap 'rm -rf "$KEYRING_HOME"' EXIT
export PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring
export XDG_DATA_HOME="$KEYRING_HOME"
export PYTHONDONTWRITEBYTECODE=1

install_pg=()
[[ "${CI:-}" == "true" ]] && install_pg=(--install)
if ! pg_url="$("$ROOT/scripts/postgres.sh" "${install_pg[@]}")"; then
    echo "run-tests: PostgreSQL is needed for the server tests and could not be started" >&2
    exit 1
fi
# The server tests connect here as the admin and make a fresh database per session.
export CLINIC_TEST_PG="${CLINIC_TEST_PG:-$pg_url/postgres}"
echo "run-tests: PostgreSQL for the tests: CLINIC_TEST_PG=$CLINIC_TEST_PG"

lint_status=0
if [[ "${SKIP_LINT:-0}" != "1" ]]; then
    echo "run-tests: ruff check, ruff format --check, mypy"
    "$BIN/ruff" check . || lint_status=1
    "$BIN/ruff" format --check . || lint_status=1
    "$BIN/mypy" || lint_status=1
fi

log="$KEYRING_HOME/pytest.log"
read -r -a extra_args <<<"${PYTEST_ARGS:-}"
echo "run-tests: pytest ${extra_args[*]} $*"
"$BIN/python" -m pytest "${extra_args[@]}" "$@" 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}

summary="$(grep -E '^=+ .* in [0-9.]+s( \([0-9:]+\))? =+$' "$log" | tail -n 1)"
if [[ "$test_status" -eq 5 ]]; then
    echo "run-tests: pytest collected no tests (exit code 5): that is a failure" >&2
    test_status=1
fi
if [[ "$lint_status" -ne 0 ]]; then
    echo "run-tests: lint FAILED (ruff/mypy output above)" >&2
fi
echo "run-tests: took $(( $(date +%s) - STARTED ))s (lint status $lint_status, pytest status $test_status)"
# The pytest summary goes last so a reader (or CI) sees the outcome at the bottom.
if [[ -n "$summary" ]]; then
    echo "$summary"
fi
if [[ "$test_status" -ne 0 || "$lint_status" -ne 0 ]]; then
    exit 1
fi
exit 0
