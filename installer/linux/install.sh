#!/usr/bin/env bash
# Install (or upgrade in place) Clinic Desk from this unpacked folder.
#   ./install.sh                 as root: /opt/clinic-desk, for every user of the machine
#                                as a user: ~/.local/opt/clinic-desk, for that user only
#   ./install.sh --prefix DIR    install the program into DIR instead
#   ./install.sh --uninstall     remove the program, its launcher and menu entry
# Upgrades replace only the program folder, in one rename, so a failed copy leaves the old
# version working. Nothing here touches the clinic's data: each user's data folder
# (~/.local/share/clinic-desk by default) and the store's key in the keyring stay as they
# are, and the new version migrates the store (after a backup) on its first start.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP=clinic-desktop
ICON=clinic-desk
UNINSTALL=0
PREFIX=""
for arg in "$@"; do
    case "$arg" in
        --uninstall) UNINSTALL=1 ;;
        --prefix=*) PREFIX="${arg#--prefix=}" ;;
        --prefix) echo "install: use --prefix=DIR" >&2; exit 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "install: unknown option $arg" >&2; exit 2 ;;
    esac
done

if [[ "$(id -u)" -eq 0 ]]; then
    PREFIX="${PREFIX:-/opt/clinic-desk}"
    BIN_DIR="${CLINIC_BIN_DIR:-/usr/local/bin}"
    SHARE_DIR="${CLINIC_SHARE_DIR:-/usr/share}"
else
    PREFIX="${PREFIX:-$HOME/.local/opt/clinic-desk}"
    BIN_DIR="${CLINIC_BIN_DIR:-$HOME/.local/bin}"
    SHARE_DIR="${CLINIC_SHARE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}}"
fi
DESKTOP_FILE="$SHARE_DIR/applications/$APP.desktop"
ICON_SVG="$SHARE_DIR/icons/hicolor/scalable/apps/$ICON.svg"
ICON_PNG="$SHARE_DIR/icons/hicolor/256x256/apps/$ICON.png"

refresh_menus() {
    command -v update-desktop-database >/dev/null 2>&1 \
        && update-desktop-database -q "$SHARE_DIR/applications" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 \
        && gtk-update-icon-cache -q -t "$SHARE_DIR/icons/hicolor" 2>/dev/null || true
}

if [[ "$UNINSTALL" -eq 1 ]]; then
    rm -rf "$PREFIX"
    [[ -L "$BIN_DIR/$APP" ]] && rm -f "$BIN_DIR/$APP"
    rm -f "$DESKTOP_FILE" "$ICON_SVG" "$ICON_PNG"
    refresh_menus
    echo "install: Clinic Desk removed from $PREFIX."
    echo "install: patient data was NOT removed: each user's data folder" \
        "(~/.local/share/clinic-desk) and the store key in that user's keyring remain."
    exit 0
fi

if [[ ! -x "$HERE/$APP/$APP" ]]; then
    echo "install: $HERE/$APP/$APP not found; run this script from the unpacked tarball" >&2
    exit 1
fi
new_version="$("$HERE/$APP/$APP" --version 2>/dev/null | awk '{print $2}')" || new_version="?"

mkdir -p "$PREFIX" "$BIN_DIR" "$(dirname "$DESKTOP_FILE")" \
    "$(dirname "$ICON_SVG")" "$(dirname "$ICON_PNG")"
old_version=""
if [[ -x "$PREFIX/$APP/$APP" ]]; then
    old_version="$("$PREFIX/$APP/$APP" --version 2>/dev/null | awk '{print $2}')" || true
fi

# Copy next to the old version first, then swap: the old program keeps working until the
# new one is complete on disk.
staging="$PREFIX/.$APP.new"
rm -rf "$staging" "$PREFIX/.$APP.old"
mkdir -p "$staging"
cp -a "$HERE/$APP/." "$staging/"
if [[ -e "$PREFIX/$APP" ]]; then
    mv "$PREFIX/$APP" "$PREFIX/.$APP.old"
fi
mv "$staging" "$PREFIX/$APP"
rm -rf "$PREFIX/.$APP.old"

ln -sfn "$PREFIX/$APP/$APP" "$BIN_DIR/$APP"
install -m 0644 "$HERE/$ICON.svg" "$ICON_SVG"
install -m 0644 "$HERE/$ICON.png" "$ICON_PNG"
sed -e "s|^Exec=.*|Exec=$PREFIX/$APP/$APP|" -e "s|^TryExec=.*|TryExec=$PREFIX/$APP/$APP|" \
    "$HERE/$APP.desktop" >"$DESKTOP_FILE"
chmod 0644 "$DESKTOP_FILE"
refresh_menus

if [[ -n "$old_version" ]]; then
    echo "install: upgraded Clinic Desk $old_version -> $new_version in $PREFIX/$APP"
    echo "install: data folders and keyring entries were left as they are; the store is" \
        "backed up and migrated when the application next starts."
else
    echo "install: installed Clinic Desk $new_version in $PREFIX/$APP"
fi
echo "install: start it from the applications menu, or run $BIN_DIR/$APP"
case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) echo "install: note: $BIN_DIR is not on PATH" ;;
esac
