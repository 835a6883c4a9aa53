"""Prometheus metrics (one registry per app, so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clinic_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clinic_http_request_seconds",
            "HTTP request latency by route (long polls included)",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.pushes = Counter(
            "clinic_sync_push_batches_total", "Push batches applied", registry=self.registry
        )
        self.mutations = Counter(
            "clinic_sync_mutations_total",
            "Pushed mutations by outcome",
            ["status"],
            registry=self.registry,
        )
        self.pulls = Counter(
            "clinic_sync_pulls_total", "Pull requests answered", registry=self.registry
        )
        self.conflicts = Counter(
            "clinic_sync_conflicts_total", "Conflict records written", registry=self.registry
        )
        self.connected = Gauge(
            "clinic_sync_connected_desks",
            "Desks holding a long poll open on this process",
            registry=self.registry,
        )
        self.logins = Counter(
            "clinic_auth_logins_total", "Sign-ins by outcome", ["outcome"], registry=self.registry
        )
