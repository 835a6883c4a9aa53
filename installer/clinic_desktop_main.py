"""Entry script of the PyInstaller bundle: the same ``main`` as the ``clinic-desktop`` command.

PyInstaller needs a script file; this one only hands over to the package, so the bundle and
the pip-installed command behave the same.
"""

import sys

from clinic_desktop.app import main

if __name__ == "__main__":
    sys.exit(main())
