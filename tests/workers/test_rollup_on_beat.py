"""With default settings, a new first action reaches the metrics endpoint within 60 s:
real web server, Redis, Celery worker and beat, nothing triggered by hand."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.conftest import (  # noqa: F401 - fixtures used by name
    celery_beat,
    process_group,
    redis_server,
    redis_url,
    smtp_sink,
    stack_env,
    web_server,
)
from tests.integration.services import (
    WORKER_READY,
    create_account,
    log_contains,
    worker_command,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PROMISED_SECONDS = 60


def test_a_first_action_reaches_the_endpoint_within_60_seconds(request):
    fixture = request.getfixturevalue
    env = fixture("stack_env")
    web = fixture("web_server")()
    # Named "celery@..." so its ready line matches WORKER_READY.
    fixture("process_group").start(
        worker_command(name="celery"),
        env,
        ready_check=log_contains(WORKER_READY),
        name="worker",
        timeout=60,
    )
    fixture("celery_beat")()
    api = f"{web.url}/api/v1"
    owner = create_account(env, owner_email="owner@rollup.test")
    as_owner = {"Authorization": f"Bearer {owner['token']}"}

    def new_user(role: str) -> dict[str, str]:
        body = {"name": role.title(), "email": f"{role}@rollup.test", "role": role}
        response = requests.post(f"{api}/users", json=body, headers=as_owner, timeout=10)
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    as_tech, as_engineer = new_user("technician"), new_user("engineer")
    session = requests.post(
        f"{api}/sessions", json={"title": "Printer", "snapshot": {}}, headers=as_tech, timeout=10
    ).json()
    handoff = requests.post(
        f"{api}/sessions/{session['id']}/escalate",
        json={"reason": "Spooler keeps dying"},
        headers=as_tech,
        timeout=10,
    ).json()
    claimed = requests.post(
        f"{api}/escalations/{handoff['id']}/claim", headers=as_engineer, timeout=10
    )
    assert claimed.status_code == 200
    message = requests.post(
        f"{api}/sessions/{session['id']}/messages",
        json={"body": "Looking now"},
        headers=as_engineer,
        timeout=10,
    )
    assert message.status_code == 201
    acted_at = time.monotonic()

    metrics = {}
    while time.monotonic() - acted_at < PROMISED_SECONDS + 5:
        metrics = requests.get(
            f"{api}/analytics/escalation-metrics", headers=as_owner, timeout=10
        ).json()
        if metrics.get("first_actions") == 1:
            break
        time.sleep(0.5)
    waited = time.monotonic() - acted_at
    assert metrics.get("first_actions") == 1, f"not there after {waited:.0f} s: {metrics}"
    assert waited <= PROMISED_SECONDS

    ttfa = requests.get(f"{api}/escalations/{handoff['id']}", headers=as_owner, timeout=10).json()[
        "time_to_first_action_seconds"
    ]
    assert metrics["escalations"] == 1
    assert metrics["avg_time_to_first_action_minutes"] == round(ttfa / 60, 2)
    assert metrics["minutes_recovered_per_escalation"] == round(45 - ttfa / 60, 2)
    assert metrics["computed_at"] is not None
