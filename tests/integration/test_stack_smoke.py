"""The app's processes start under the integration fixtures and find each other."""

from __future__ import annotations

import json
import urllib.request

import pytest
import requests

from tests.integration.conftest import THREE_ROLES, one_url
from tests.integration.services import (
    POSTGRES_SKIP_REASON,
    create_account,
    flask_cli,
    postgres_url_from_env,
    temporary_postgres_database,
)

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


EXPECTED_ISOLATION = {
    "sqlite": ("off", "sqlite: no row-level security"),
    "three_roles": ("enforced", None),
}


@THREE_ROLES
def test_web_worker_and_beat_start(
    request, stack_env, web_server, celery_worker, celery_beat
) -> None:
    web = web_server()
    worker = celery_worker()
    beat = celery_beat()
    health = _get_json(f"{web.url}/healthz")
    assert health["status"] == "ok"
    assert health["redis"] == "ok"
    assert worker.alive and beat.alive
    # Whether the database keeps tenants apart: /readyz and the web's start-up line agree.
    state, reason = EXPECTED_ISOLATION[request.node.callspec.params["stack_env"]]
    ready = _get_json(f"{web.url}/readyz")
    assert (ready["tenant_isolation"], ready.get("tenant_isolation_reason")) == (state, reason)
    line = f"Tenant isolation in the database: {state}" + (f" ({reason})" if reason else "")
    assert line in web.log_path.read_text()


def test_one_superuser_url_says_isolation_is_off_and_why(stack_env, web_server) -> None:
    """A trial on PostgreSQL with one URL (a superuser): everything works, nothing enforced."""
    base = postgres_url_from_env()
    if not base:
        pytest.skip(POSTGRES_SKIP_REASON)
    with temporary_postgres_database(base, prefix="oneurl") as url:
        env = {**stack_env, **one_url(url)}
        flask_cli(env, "db", "upgrade")
        web = web_server(env)
        created = create_account(env, owner_email="owner@oneurl.test")
        me = requests.get(
            f"{web.url}/api/v1/me",
            headers={"Authorization": f"Bearer {created['token']}"},
            timeout=10,
        )
        assert me.status_code == 200
        ready = _get_json(f"{web.url}/readyz")
        assert ready["tenant_isolation"] == "off"
        assert ready["tenant_isolation_reason"] == "the runtime role bypasses row security"
        web.terminate()  # before its database is dropped


def test_create_account_cli_against_migrated_database(stack_env) -> None:
    created = create_account(stack_env, owner_email="owner@smoke.test")
    assert set(created) >= {"account_id", "user_id", "token"}
    assert created["token"]
