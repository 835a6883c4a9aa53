"""Which collected files the PyInstaller spec leaves out of the bundle, and why.

Imported by ``installer/clinic-desktop.spec``; kept in a module so tests can check the rules
without running PyInstaller. Paths are bundle destinations (either separator), e.g.
``PySide6/Qt/lib/libQt6Quick3D.so.6`` (Linux), ``PySide6/Qt6Quick3D.dll`` (Windows) or
``PySide6/Qt/lib/QtQuick3D.framework/...`` (macOS).
"""

from __future__ import annotations

from collections.abc import Sequence

_DROP_PREFIXES = (
    "PySide6/qml/",
    "PySide6/plugins/qmltooling/",
    "PySide6/plugins/sceneparsers/",
    "PySide6/plugins/geometryloaders/",
    "PySide6/plugins/renderers/",
    "PySide6/plugins/renderplugins/",
    "PySide6/plugins/multimedia/",
    "PySide6/plugins/position/",
    "PySide6/plugins/designer/",
    # Embedded-device back ends (EGLFS, framebuffer, VNC, Vulkan display) and the on-screen
    # keyboard (it needs QtQuick): a clinic PC runs X11, Wayland, Windows or macOS.
    "PySide6/plugins/egldeviceintegrations/",
    "PySide6/plugins/platforms/libqeglfs",
    "PySide6/plugins/platforms/libqlinuxfb",
    "PySide6/plugins/platforms/libqvnc",
    "PySide6/plugins/platforms/libqvkkhrdisplay",
    "PySide6/plugins/platforms/libqminimalegl",
    "PySide6/plugins/platforminputcontexts/libqtvirtualkeyboardplugin",
    "PySide6/plugins/texttospeech/libqtexttospeech_mock",
    # Printing writes PDFs with QPdfWriter (QtGui); reading PDFs as images is never needed.
    "PySide6/plugins/imageformats/libqpdf",
    # The GTK theme pulls in GTK, Pango and Cairo (~15 MB); our style sheet sets the look.
    "PySide6/plugins/platformthemes/libqgtk3",
    # Chromium's developer tools are never opened in the Checkout dialog.
    "PySide6/resources/qtwebengine_devtools_resources.pak",
)
_DROP_LIBS = (
    "libQt63D",
    "libQt6Quick3D",
    "libQt6QuickControls2",
    "libQt6QuickDialogs2",
    "libQt6QuickTemplates2",
    "libQt6QuickLayouts",
    "libQt6QuickParticles",
    "libQt6QuickShapes",
    "libQt6QuickEffects",
    "libQt6QuickTimeline",
    "libQt6QuickVectorImage",
    "libQt6QuickTest",  # pulled in by PySide6.QtQuick's hook; needs QtTest, which is dropped
    "libQt6LabsStyleKit",
    "libQt6Charts",
    "libQt6Graphs",
    "libQt6DataVisualization",
    "libQt6Location",
    "libQt6MultimediaQuick",
    "libQt6MultimediaWidgets",
    "libQt6VirtualKeyboard",
    "libQt6EglFS",
    "libQt6EglFs",
    "libQt6FFmpegStub",
    "libavcodec",
    "libavformat",
    "libavutil",
    "libswresample",
    "libswscale",
    "libQt6ShaderTools",
    "libQt6WaylandCompositor",
    "libQt6Pdf",
    "libQt6Sql",
    "libQt6Test",
    "libQt6Designer",
    "libQt6Help",
    "libQt6UiTools",
    "libQt6Bluetooth",
    "libQt6Nfc",
    "libQt6Sensors",
    "libQt6SerialPort",
    "libQt6RemoteObjects",
    "libQt6Scxml",
    "libQt6StateMachine",
    "libQt6QmlCompiler",
    "libQt6QmlCore",
    "libQt6QmlLocalStorage",
    "libQt6QmlXmlListModel",
    "libQt6LabsAnimation",
    "libQt6LabsFolderListModel",
    "libQt6LabsPlatform",
    "libQt6LabsQmlModels",
    "libQt6LabsSettings",
    "libQt6LabsSharedImage",
    "libQt6LabsWavefrontMesh",
    "libQt6LabsSynchronizer",
)


def keep(dest: str, languages: Sequence[str] = ("en",)) -> bool:
    """False for files the application never loads (see the header of the spec)."""
    dest = dest.replace("\\", "/")
    # Linux and macOS wheels keep Qt's files under PySide6/Qt/, Windows directly in PySide6/.
    if dest.replace("PySide6/Qt/", "PySide6/", 1).startswith(_DROP_PREFIXES):
        return False
    name = dest.rsplit("/", 1)[-1]
    if name.startswith(_DROP_LIBS) or name.startswith(tuple(s[3:] for s in _DROP_LIBS)):
        # Linux: libQt6Foo.so.6; Windows: Qt6Foo.dll.
        return False
    # macOS: Qt comes as frameworks, e.g. Qt/lib/QtQuick3D.framework/...
    frameworks = tuple("Qt" + s[len("libQt6") :] for s in _DROP_LIBS if s.startswith("libQt6"))
    if any(part.endswith(".framework") and part.startswith(frameworks) for part in dest.split("/")):
        return False
    if "/translations/qtwebengine_locales/" in dest:
        lang = name.removesuffix(".pak")
        return lang == "en-US" or lang.split("-")[0] in languages
    if "/translations/" in dest and name.endswith(".qm"):
        lang = name.removesuffix(".qm").split("_", 1)[-1]
        return lang in languages or lang.split("_")[0] in languages
    return True
