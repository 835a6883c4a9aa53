"""Schemathesis against /openapi.json: whatever it sends, the server never answers 5xx."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.server.conftest import World

EXAMPLES_PER_OPERATION = 8


def test_no_generated_request_makes_the_server_fail(world: World) -> None:
    schema = schemathesis.openapi.from_url(f"{world.server.url}/openapi.json")
    # Valid version, user and workstation headers, so generated bodies and parameters reach
    # the handlers instead of stopping at the header checks (tested on their own elsewhere).
    headers = world.admin_on["A"].headers()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            case.headers = {**(case.headers or {}), **headers}
            if case.path_parameters and "device_id" in case.path_parameters:
                case.path_parameters["device_id"] = "not-a-real-device"  # keep desk A enrolled
            if isinstance(case.query, dict) and "wait" in case.query:
                case.query["wait"] = 0  # long polls would only slow the run down
            response = case.call(base_url=world.server.url, timeout=30)
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{case.method} {case.path}: {response.text[:300]}")

        exercise()
    assert operations >= 12
    assert failures == [], "\n".join(failures)
