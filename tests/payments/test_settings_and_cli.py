"""Stripe settings refuse unsafe combinations; the stand-in runs as ``python -m``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from clinic_server.payments.settings import StripeSettings, StripeSettingsError
from tests.payments.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"public_url": "http://clinic.example.org"}, "PUBLIC_URL"),
        ({"api_base": "http://stripe-proxy.example.org"}, "API_BASE"),
        ({"secret_key": "sk_live_abc", "api_base": "http://127.0.0.1:12111"}, "live"),
    ],
)
def test_unsafe_stripe_settings_are_refused(values: dict, problem: str):
    with pytest.raises(StripeSettingsError, match=problem):
        StripeSettings(**values).check()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLINIC_STRIPE_SECRET_KEY", "sk_test_env")
    monkeypatch.setenv("CLINIC_STRIPE_WEBHOOK_SECRET", "whsec_env")
    monkeypatch.setenv("CLINIC_STRIPE_PUBLIC_URL", "https://clinic.example.org")
    settings = StripeSettings()
    settings.check()
    assert settings.configured
    assert not settings.live
    assert "sk_test_env" not in repr(settings)  # secrets never end up in logs


def test_the_standin_runs_from_the_command_line():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.stripe_standin", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/v1/checkout/sessions/cs_test_missing",
                    headers={"Authorization": "Bearer sk_test_x"},
                    timeout=1,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the stand-in did not start"
                time.sleep(0.1)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "resource_missing"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
