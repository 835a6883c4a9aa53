#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine (or refresh an existing checkout) so Clinic Desk runs:
#   1. Qt's system libraries from apt (only when one is missing, so repeat runs stay fast);
#   2. a virtual environment in .venv with Python >= 3.11;
#   3. the project installed editable with the requested extras (only when pyproject.toml or
#      the extras changed since the last run).
#
# Usage: scripts/bootstrap.sh [--extras server,demo,test] [--with-postgres] [--no-apt]
#   --extras         comma-separated optional-dependency groups of pyproject.toml
#   --with-postgres  also install PostgreSQL from Debian's packages when it is missing (CI)
#   --no-apt         never call apt-get (print what is missing instead)
# Environment: PYTHON=/path/to/python3.x picks the interpreter for a new venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
EXTRAS="server,demo,test"
WITH_POSTGRES=0
USE_APT=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --extras) EXTRAS="$2"; shift 2 ;;
        --extras=*) EXTRAS="${1#--extras=}"; shift ;;
        --with-postgres) WITH_POSTGRES=1; shift ;;
        --no-apt) USE_APT=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bootstrap: unknown option $1" >&2; exit 2 ;;
    esac
done

say() { printf 'bootstrap: %s\n' "$*"; }

# Libraries the PySide6 wheels (QtWidgets, QtWebEngine) load at run time, then what a real
# window on X11/Xvfb needs. Keep in step with docs/building.md.
QT_LIBS=(
    libglib2.0-0 libegl1 libgl1 libgbm1 libx11-6 libxcb1 libxcb-dri3-0 libxcomposite1
    libxdamage1 libxext6 libxfixes3 libxrandr2 libxtst6 libxkbcommon0 libxkbfile1 libasound2
    libbrotli1 libdbus-1-3 libfontconfig1 libfreetype6 libnss3
)
X11_LIBS=(
    xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0
    libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxkbcommon-x11-0
)

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

# Debian 13 / Ubuntu 24.04 renamed libasound2 (t64 transition); accept either name.
resolve_name() {
    local pkg="$1"
    if [[ "$pkg" == "libasound2" ]] && ! is_installed libasound2 && is_installed libasound2t64; then
        echo libasound2t64
    elif [[ "$pkg" == "libasound2" ]] && ! apt-cache show libasound2 >/dev/null 2>&1 \
        && apt-cache show libasound2t64 >/dev/null 2>&1; then
        echo libasound2t64
    else
        echo "$pkg"
    fi
}

apt_install() {
    local missing=("$@")
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            say "missing system packages: ${missing[*]}"
            say "run as root: apt-get update && apt-get install -y ${missing[*]}"
            return 0
        fi
    fi
    say "installing system packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    local resolved=()
    for pkg in "${missing[@]}"; do resolved+=("$(resolve_name "$pkg")"); done
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${resolved[@]}"
}

ensure_system_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian/Ubuntu system: install Qt 6's runtime libraries yourself"
        return 0
    fi
    local wanted=("${QT_LIBS[@]}" "${X11_LIBS[@]}")
    if [[ "$WITH_POSTGRES" -eq 1 ]] && ! command -v pg_ctlcluster >/dev/null 2>&1; then
        wanted+=(postgresql)
    fi
    local missing=()
    for pkg in "${wanted[@]}"; do
        if [[ "$pkg" == "libasound2" ]] && is_installed libasound2t64; then continue; fi
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "system packages present"
        return 0
    fi
    if [[ "$USE_APT" -eq 0 ]]; then
        say "missing system packages (not installing, --no-apt): ${missing[*]}"
        return 0
    fi
    apt_install "${missing[@]}"
}

python_ok() {
    "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && python_ok "$VENV/bin/python" \
        && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    local python
    if ! python="$(find_python)"; then
        if [[ "$USE_APT" -eq 1 && "$(id -u)" -eq 0 ]]; then
            apt_install python3 python3-venv python3-pip
            python="$(find_python)" || { say "no Python >= 3.11 found" >&2; exit 1; }
        else
            say "Python 3.11 or newer is needed (apt-get install python3 python3-venv)" >&2
            exit 1
        fi
    fi
    say "creating $VENV with $python ($("$python" --version 2>&1))"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV"; then
        # Debian/Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package.
        rm -rf "$VENV"
        local minor
        minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        if [[ "$USE_APT" -eq 1 && "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            apt_install python3-venv "python$minor-venv"
            "$python" -m venv "$VENV" || { say "venv creation failed" >&2; exit 1; }
        else
            say "venv creation failed; on Debian/Ubuntu: apt-get install python$minor-venv" >&2
            exit 1
        fi
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip
}

ensure_project() {
    local stamp="$VENV/.clinic-desk-installed"
    # pyproject.toml reads the version from clinic_desktop/__init__.py: a bump must reinstall.
    local digest extras="$EXTRAS" have="" have_digest="" have_extras=""
    digest="$(cat "$ROOT/pyproject.toml" "$ROOT/clinic_desktop/__init__.py" | sha256sum \
        | cut -d' ' -f1)"
    if [[ -f "$stamp" ]]; then
        have="$(cat "$stamp")"
        have_digest="${have%% *}"
        have_extras="${have#*extras=}"
    fi
    # Installing never drops what an earlier run installed, so keep the union of extras.
    local union
    union="$(printf '%s,%s' "$have_extras" "$extras" | tr ',' '\n' | sed '/^$/d' | sort -u \
        | paste -sd, -)"
    if [[ "$have_digest" == "$digest" && "$union" == "$(printf '%s' "$have_extras" \
        | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)" ]]; then
        say "Python packages up to date ($VENV)"
        return 0
    fi
    local spec="$ROOT"
    [[ -n "$union" ]] && spec="$ROOT[$union]"
    say "installing the project: pip install -e '$spec'"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
    echo "$digest extras=$union" >"$stamp"
}

ensure_system_packages
ensure_venv
ensure_project
say "ready: $VENV ($("$VENV/bin/python" --version 2>&1))"
