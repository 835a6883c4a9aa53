#!/usr/bin/env bash
# Build the one-folder bundle of clinic-desktop into dist/clinic-desktop (one command).
#   installer/build.sh [--tarball] [--clean]
#     --tarball  also make dist/clinic-desk-<version>-linux-<arch>.tar.gz (Linux only)
#     --clean    throw away PyInstaller's cache first (slower; after a PySide6 upgrade)
# Needs the venv with the installer extra (`make bundle` sets that up). Prints the bundle's
# size and the build time. On Windows/macOS run the same pyinstaller line from a shell there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
TARBALL=0
CLEAN=()
for arg in "$@"; do
    case "$arg" in
        --tarball) TARBALL=1 ;;
        --clean) CLEAN=(--clean) ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "build: unknown option $arg" >&2; exit 2 ;;
    esac
done

if ! "$PY" -c 'import PyInstaller' 2>/dev/null; then
    echo "build: PyInstaller is missing; run: scripts/bootstrap.sh --extras installer,filekeyring" >&2
    exit 1
fi

started=$(date +%s.%N)
"$PY" -m PyInstaller --noconfirm "${CLEAN[@]}" --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" \
    "$ROOT/installer/clinic-desktop.spec"
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

bundle="$ROOT/dist/clinic-desktop"
size_mb=$(du -sm --apparent-size "$bundle" | cut -f1)
version=$("$bundle/clinic-desktop" --version | awk '{print $2}')
echo "build: $bundle ($version): ${size_mb} MB, built in ${elapsed} s"

if [[ "$TARBALL" -eq 1 ]]; then
    "$ROOT/installer/linux/make-tarball.sh" "$bundle" "$version"
fi
