"""The platform installers name real files and keep the clinic's data.

The Windows script cannot be compiled here, so every path it names is checked against the
built bundle and the repository; the Linux install script is run for real into a temporary
prefix, for a fresh install, an upgrade and an uninstall.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clinic_desktop.config import APP_NAME
from tests.installer.conftest import ROOT, run_bundle

ISS = ROOT / "installer" / "windows" / "clinic-desk.iss"
DESKTOP = ROOT / "installer" / "linux" / "clinic-desktop.desktop"
INSTALL_SH = ROOT / "installer" / "linux" / "install.sh"
ICONS = ROOT / "installer" / "icons"


# ----------------------------------------------------------------------------- Inno Setup


def _iss_defines(text: str) -> dict[str, str]:
    defines = dict(re.findall(r'^#define\s+(\w+)\s+"([^"]*)"', text, flags=re.MULTILINE))
    defines.setdefault("AppVersion", "0.0.0")  # given on the iscc command line
    return defines


def _expand(value: str, defines: dict[str, str]) -> str:
    return re.sub(r"\{#(\w+)\}", lambda m: defines[m.group(1)], value)


def _iss_entries(text: str, section: str) -> list[dict[str, str]]:
    """The ``Key: value; Key: value`` lines of one [Section]."""
    body = re.search(rf"^\[{section}\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert body, f"[{section}] missing"
    entries = []
    for line in body.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        fields = {}
        for part in re.findall(r'(\w+):\s*("[^"]*"|[^;]+)', line):
            fields[part[0]] = part[1].strip().strip('"')
        entries.append(fields)
    return entries


def _source_path(source: str) -> Path:
    """A [Files] Source (relative to the .iss, Windows separators) as a local path."""
    path = (ISS.parent / source.replace("\\", "/")).resolve()
    if sys.platform != "win32" and path.name.endswith(".exe"):
        path = path.with_name(path.name.removesuffix(".exe"))  # same bundle, built on Linux
    return path


def test_inno_setup_keeps_data_in_the_folder_the_app_uses() -> None:
    text = ISS.read_text("utf-8")
    defines = _iss_defines(text)

    assert defines["DataDirName"] == APP_NAME
    assert "{localappdata}\\{#DataDirName}" in text
    # Data is deleted only behind an explicit question whose default answer is No.
    assert "MB_DEFBUTTON2" in text
    assert "UninstallSilent" in text


def test_inno_setup_version_is_passed_in_never_written_down() -> None:
    text = ISS.read_text("utf-8")

    assert "#ifndef AppVersion" in text
    assert not re.search(r'#define\s+AppVersion\s+"', text)


def test_inno_setup_icons_exist_in_the_repository() -> None:
    text = ISS.read_text("utf-8")
    setup_icon = re.search(r"^SetupIconFile=(.+)$", text, flags=re.MULTILINE)

    assert setup_icon
    assert _source_path(setup_icon.group(1).strip()).is_file()


@pytest.mark.installer
@pytest.mark.timeout(1200)  # may be the test that builds the bundle
def test_every_path_the_inno_setup_script_names_exists(bundle_dir: Path) -> None:
    text = ISS.read_text("utf-8")
    defines = _iss_defines(text)
    installed: set[str] = set()

    for entry in _iss_entries(text, "Files"):
        source = _expand(entry["Source"], defines)
        dest = _expand(entry["DestDir"], defines)
        if source.endswith("\\*"):
            folder = _source_path(source[:-2])
            assert folder.is_dir(), f"{source}: missing"
            assert any(folder.iterdir()), f"{source}: empty"
            installed.add(dest)
        else:
            assert _source_path(source).is_file(), f"{source} does not exist"
            installed.add(dest + "\\" + source.rsplit("\\", 1)[-1])

    named = re.findall(r"\{app\}\\[^\";\s]+", _expand(text, defines))
    for path in named:
        covered = any(path == item or path.startswith(item + "\\") for item in installed)
        assert covered, f"{path} is not installed by any [Files] entry"
    assert "{app}\\clinic-desktop.exe" in installed
    assert bundle_dir.is_dir()


# -------------------------------------------------------------------------- Linux desktop


def test_desktop_entry_launches_the_console_script_with_our_icon() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(DESKTOP, encoding="utf-8")
    section = entry["Desktop Entry"]

    assert section["Type"] == "Application"
    assert section["Name"] == "Clinic Desk"
    assert section["Exec"] == "clinic-desktop"
    assert section["Terminal"] == "false"
    assert section["Categories"].endswith(";")
    assert (ICONS / f"{section['Icon']}.svg").is_file()
    assert (ICONS / f"{section['Icon']}.png").is_file()


def _fake_release(root: Path, version: str) -> Path:
    """An unpacked tarball whose program only reports its version (install.sh's view)."""
    release = root / f"clinic-desk-{version}"
    program = release / "clinic-desktop"
    program.mkdir(parents=True)
    exe = program / "clinic-desktop"
    exe.write_text(f'#!/bin/sh\necho "clinic-desktop {version}"\n', encoding="utf-8")
    exe.chmod(0o755)
    (program / "_internal").mkdir()
    (program / "_internal" / f"only-in-{version}.txt").write_text(version, encoding="utf-8")
    for name in ("install.sh",):
        (release / name).write_bytes(INSTALL_SH.read_bytes())
        (release / name).chmod(0o755)
    (release / "clinic-desktop.desktop").write_bytes(DESKTOP.read_bytes())
    for suffix in ("svg", "png"):
        (release / f"clinic-desk.{suffix}").write_bytes(
            (ICONS / f"clinic-desk.{suffix}").read_bytes()
        )
    return release


def _install(release: Path, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        HOME=str(target / "home"),
        CLINIC_BIN_DIR=str(target / "bin"),
        CLINIC_SHARE_DIR=str(target / "share"),
    )
    return subprocess.run(
        ["bash", str(release / "install.sh"), f"--prefix={target / 'opt'}", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_install_then_upgrade_replaces_the_program_and_keeps_the_data(tmp_path: Path) -> None:
    target = tmp_path / "machine"
    data_dir = target / "home" / ".local" / "share" / APP_NAME
    data_dir.mkdir(parents=True)
    (data_dir / "clinic-desk.db").write_bytes(b"encrypted store bytes")
    keyring_file = target / "home" / ".local" / "share" / "python_keyring" / "keyring_pass.cfg"
    keyring_file.parent.mkdir(parents=True)
    keyring_file.write_text("[clinic-desk]\nstore-key = kept\n", encoding="utf-8")

    first = _install(_fake_release(tmp_path / "r1", "1.0.0"), target)
    assert first.returncode == 0, first.stderr
    assert "installed Clinic Desk 1.0.0" in first.stdout

    second = _install(_fake_release(tmp_path / "r2", "1.1.0"), target)
    assert second.returncode == 0, second.stderr
    assert "upgraded Clinic Desk 1.0.0 -> 1.1.0" in second.stdout

    program = target / "opt" / "clinic-desktop"
    launcher = target / "bin" / "clinic-desktop"
    assert subprocess.run([str(launcher)], capture_output=True, text=True).stdout.strip() == (
        "clinic-desktop 1.1.0"
    )
    assert (program / "_internal" / "only-in-1.1.0.txt").is_file()
    assert not (program / "_internal" / "only-in-1.0.0.txt").exists(), "stale files kept"
    assert not list((target / "opt").glob(".clinic-desktop.*")), "staging left behind"
    assert (data_dir / "clinic-desk.db").read_bytes() == b"encrypted store bytes"
    assert keyring_file.read_text("utf-8") == "[clinic-desk]\nstore-key = kept\n"
    desktop = (target / "share" / "applications" / "clinic-desktop.desktop").read_text("utf-8")
    assert f"Exec={program / 'clinic-desktop'}\n" in desktop
    assert (target / "share/icons/hicolor/scalable/apps/clinic-desk.svg").is_file()


def test_uninstall_removes_the_program_but_never_patient_data(tmp_path: Path) -> None:
    target = tmp_path / "machine"
    release = _fake_release(tmp_path / "r1", "1.0.0")
    data_dir = target / "home" / ".local" / "share" / APP_NAME
    data_dir.mkdir(parents=True)
    (data_dir / "clinic-desk.db").write_bytes(b"store")
    assert _install(release, target).returncode == 0

    result = _install(release, target, "--uninstall")

    assert result.returncode == 0, result.stderr
    assert not (target / "opt").exists()
    assert not (target / "bin" / "clinic-desktop").exists()
    assert not (target / "share" / "applications" / "clinic-desktop.desktop").exists()
    assert (data_dir / "clinic-desk.db").read_bytes() == b"store"
    assert "patient data was NOT removed" in result.stdout


def test_install_refuses_a_folder_without_the_program(tmp_path: Path) -> None:
    release = tmp_path / "broken"
    release.mkdir()
    (release / "install.sh").write_bytes(INSTALL_SH.read_bytes())

    result = _install(release, tmp_path / "machine")

    assert result.returncode != 0
    assert "not found" in result.stderr
    assert not (tmp_path / "machine" / "opt" / "clinic-desktop").exists()


@pytest.mark.installer
@pytest.mark.timeout(1200)  # may be the test that builds the bundle
def test_tarball_installs_a_bundle_that_runs(
    bundle_dir: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    """The real tarball layout, installed and started from its launcher without Python."""
    version = run_bundle(bundle_dir, ["--version"], clean_env, tmp_path).stdout.split()[-1]
    release = tmp_path / f"clinic-desk-{version}"
    release.mkdir()
    (release / "clinic-desktop").symlink_to(bundle_dir, target_is_directory=True)
    (release / "install.sh").write_bytes(INSTALL_SH.read_bytes())
    (release / "clinic-desktop.desktop").write_bytes(DESKTOP.read_bytes())
    for suffix in ("svg", "png"):
        (release / f"clinic-desk.{suffix}").write_bytes(
            (ICONS / f"clinic-desk.{suffix}").read_bytes()
        )
    target = tmp_path / "machine"

    installed = _install(release, target)

    assert installed.returncode == 0, installed.stderr
    program = target / "opt" / "clinic-desktop"
    assert not program.is_symlink(), "install.sh must copy the program, not link to it"
    launcher = target / "bin" / "clinic-desktop"
    result = subprocess.run(
        [str(launcher), "--version"], env=clean_env, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == f"clinic-desktop {version}"
