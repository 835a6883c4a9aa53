#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the server and sync tests.
#   - installed but stopped: start the Debian cluster (no systemd needed);
#   - not installed: install it from Debian's packages when --install is given (CI does),
#     allow password-less connections from the loopback address only, and start it.
# Prints the server's URL (postgresql://postgres@127.0.0.1:5432) on stdout; progress on stderr.
# Exits non-zero only when --install was given and the server still does not answer.
set -euo pipefail

INSTALL=0
[[ "${1:-}" == "--install" ]] && INSTALL=1
HOST=127.0.0.1
PORT=5432
URL="postgresql://postgres@${HOST}:${PORT}"

say() { printf 'postgres: %s\n' "$*" >&2; }

answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$HOST" -p "$PORT"
    else
        (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
    fi
}

cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

if answers; then
    echo "$URL"
    exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if [[ "$INSTALL" -eq 0 ]]; then
        say "PostgreSQL is not installed; server tests that need it will be skipped or fail"
        echo "$URL"
        exit 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        say "PostgreSQL is not installed and this is not root: apt-get install postgresql"
        exit 1
    fi
    say "installing PostgreSQL from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
fi

version="$(cluster_version)"
if [[ -z "$version" ]]; then
    say "no PostgreSQL cluster configured under /etc/postgresql"
    exit 1
fi

hba="/etc/postgresql/$version/main/pg_hba.conf"
if [[ "$INSTALL" -eq 1 && -w "$hba" ]] && ! grep -q '^# clinic-desk tests' "$hba"; then
    # Test machines only (--install): the tests connect as postgres over loopback without a
    # password. Remote addresses keep Debian's defaults.
    say "allowing password-less loopback connections for the tests in $hba"
    tmp="$(mktemp)"
    {
        echo "# clinic-desk tests: trust on loopback only"
        echo "host all all 127.0.0.1/32 trust"
        echo "host all all ::1/128 trust"
        cat "$hba"
    } >"$tmp"
    cat "$tmp" >"$hba"
    rm -f "$tmp"
fi

say "starting cluster $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do
    if answers; then
        echo "$URL"
        exit 0
    fi
    sleep 1
done
say "PostgreSQL did not start (see /var/log/postgresql/)"
if [[ "$INSTALL" -eq 1 ]]; then
    exit 1
fi
echo "$URL"
