#!/usr/bin/env bash
# Pack a built bundle into dist/clinic-desk-<version>-linux-<arch>.tar.gz:
#   clinic-desk-<version>/{clinic-desktop/, install.sh, clinic-desktop.desktop, icons, README}
#   installer/linux/make-tarball.sh dist/clinic-desktop <version>
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bundle="${1:?bundle folder}"
version="${2:?version}"
arch="$(uname -m)"
name="clinic-desk-$version"
stage="$ROOT/dist/$name"
out="$ROOT/dist/$name-linux-$arch.tar.gz"

rm -rf "$stage"
mkdir -p "$stage"
cp -a "$bundle" "$stage/clinic-desktop"
install -m 0755 "$ROOT/installer/linux/install.sh" "$stage/install.sh"
install -m 0644 "$ROOT/installer/linux/clinic-desktop.desktop" "$stage/clinic-desktop.desktop"
install -m 0644 "$ROOT/installer/icons/clinic-desk.svg" "$stage/clinic-desk.svg"
install -m 0644 "$ROOT/installer/icons/clinic-desk.png" "$stage/clinic-desk.png"
cat >"$stage/README.txt" <<TXT
Clinic Desk $version for Linux ($arch)

Install or upgrade:   ./install.sh            (as root: /opt/clinic-desk for all users)
Remove:               ./install.sh --uninstall
Check the install:    clinic-desktop --self-test

Upgrading keeps every user's data folder and the store key in the keyring; the store is
backed up and migrated on the next start. Uninstalling never deletes patient data.
Needs: X11 or Wayland, and a keyring service (GNOME Keyring or KWallet) for the store key.
TXT
started=$(date +%s)
tar -C "$ROOT/dist" -cf - "$name" | gzip -6 >"$out"
rm -rf "$stage"
echo "tarball: $out ($(du -m "$out" | cut -f1) MB compressed, $(( $(date +%s) - started )) s)"
