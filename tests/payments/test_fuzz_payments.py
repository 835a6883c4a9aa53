"""Schemathesis against the payment endpoints with Stripe (the stand-in) configured: whatever
a desk or a stranger sends, the server answers 4xx, never 5xx, and never charges anything."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.payments.conftest import World


def test_no_generated_request_makes_the_payment_endpoints_fail(world: World) -> None:
    world.add_bill()
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if "/payments/" not in operation.path:
            continue
        operations += 1

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            case.headers = {**(case.headers or {}), **world.headers()}
            response = case.call(base_url=world.url, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path}: {response.text[:300]}")

        exercise()
    assert operations >= 4
    assert failures == [], "\n".join(failures)
    assert [r for r in world.standin.requests if r.path == "/v1/refunds"] == []
    assert all(s["status"] != "complete" for s in world.standin.sessions.values())
