"""Clinic Desk: the installed front-desk, consultation and billing application."""

# The one place the version is written (pyproject.toml reads it from here). A constant, not an
# importlib.metadata lookup: that lookup cost ~100 ms of every start, before any window shows.
__version__ = "0.1.0"
