"""The app's processes start under the integration fixtures and find each other."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.integration.services import create_account

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def test_web_worker_and_beat_start(stack_env, web_server, celery_worker, celery_beat) -> None:
    web = web_server()
    worker = celery_worker()
    beat = celery_beat()
    health = _get_json(f"{web.url}/healthz")
    assert health["status"] == "ok"
    assert health["redis"] == "ok"
    assert worker.alive and beat.alive


def test_create_account_cli_against_migrated_database(stack_env) -> None:
    created = create_account(stack_env, owner_email="owner@smoke.test")
    assert set(created) >= {"account_id", "user_id", "token"}
    assert created["token"]
