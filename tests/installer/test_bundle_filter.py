"""What the spec leaves out of the bundle, on each platform's file layout.

Fast (no PyInstaller run): the rules live in installer/bundle_filter.py, which the spec
imports. test_bundle.py then checks the real Linux bundle, including with ldd that nothing
left in still needs a dropped library.
"""

from __future__ import annotations

import sys

import pytest

from tests.installer.conftest import ROOT

sys.path.insert(0, str(ROOT / "installer"))
from bundle_filter import keep


@pytest.mark.parametrize(
    "dest",
    [
        "PySide6/Qt/lib/libQt6WebEngineCore.so.6",
        "PySide6/Qt/lib/libQt6Quick.so.6",  # QtWebEngineCore links it
        "PySide6/Qt/lib/libQt6Qml.so.6",
        "PySide6/Qt/lib/libQt6Multimedia.so.6",  # QtTextToSpeech (waiting-room board)
        "PySide6/Qt/lib/libQt6Concurrent.so.6",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqwayland.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/printsupport/libcupsprintersupport.so",
        "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
        "PySide6/Qt/resources/qtwebengine_resources.pak",
        "PySide6/Qt/resources/icudtl.dat",
        "PySide6/Qt/libexec/QtWebEngineProcess",
        "PySide6/Qt/translations/qtwebengine_locales/en-US.pak",
        "PySide6/Qt6WebEngineCore.dll",
        "PySide6/plugins/platforms/qwindows.dll",
        "PySide6/Qt/lib/QtWebEngineCore.framework/Versions/A/QtWebEngineCore",
        "PySide6/Qt/lib/QtQuick.framework/Versions/A/QtQuick",
        "resources/style.qss",
        "clinic_desktop/store/migrations/versions/0001_initial_schema.py",
    ],
)
def test_what_the_application_loads_stays(dest: str) -> None:
    assert keep(dest)


@pytest.mark.parametrize(
    "dest",
    [
        "PySide6/Qt/qml/QtQuick/Controls/Basic/Button.qml",
        "PySide6/qml/QtQuick/Controls/Basic/Button.qml",  # Windows layout
        "PySide6/Qt/lib/libQt6Quick3DRuntimeRender.so.6",
        "PySide6/Qt/lib/libQt6QuickControls2Material.so.6",
        "PySide6/Qt/lib/libQt6Pdf.so.6",
        "PySide6/Qt/lib/libavcodec.so.61",
        "PySide6/Qt6Quick3D.dll",
        "PySide6/Qt/lib/QtQuick3D.framework/Versions/A/QtQuick3D",
        "PySide6/Qt/plugins/platforms/libqeglfs.so",
        "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
        "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
        "PySide6/plugins/multimedia/ffmpegmediaplugin.dll",
        "PySide6/Qt/resources/qtwebengine_devtools_resources.pak",
        "PySide6/Qt/translations/qtwebengine_locales/de.pak",
        "PySide6/Qt/translations/qtbase_fr.qm",
    ],
)
def test_what_the_application_never_loads_goes(dest: str) -> None:
    assert not keep(dest)


def test_more_languages_can_be_kept() -> None:
    assert keep("PySide6/Qt/translations/qtwebengine_locales/fr.pak", ["en", "fr"])
    assert keep("PySide6/Qt/translations/qtbase_fr.qm", ["en", "fr"])
    assert keep("PySide6/Qt/translations/qtwebengine_locales/pt-BR.pak", ["pt"])
    assert not keep("PySide6/Qt/translations/qtbase_de.qm", ["en", "fr"])


def test_windows_separators_are_understood() -> None:
    assert not keep("PySide6\\qml\\QtQuick\\Window\\qmldir")
    assert keep("PySide6\\Qt6Widgets.dll")
