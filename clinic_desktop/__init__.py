"""Clinic Desk: the installed front-desk, consultation and billing application."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinic-desk")
except PackageNotFoundError:  # running from a source tree or a bundle without metadata
    __version__ = "0.1.0"
