"""Clinic Desk central server: identity, workstation enrolment and the sync protocol."""

__version__ = "0.1.0"
