"""Other accounts hear none of an account's live events, on whichever web node they are
connected: the real stack (redis-server, two `python wsgi.py` nodes, a Celery worker and
beat, the SMTP sink) with python-socketio clients on the second node while every request
goes to the first.

MSP A's senior on node 2 receives A's `handoff.reminder`, `handoff.released`,
`handoff.reassigned`, and, on the session's page, `writeback.created` and
`message.created` (the event names of docs/realtime.md); MSP B's senior and admin on the
same node receive none of them, and B's senior may not watch A's session. To know that
nothing more is on its way to B, the test ends with an event of B's own: node 2 relays the
message queue in order, so anything of A's meant for B would have reached it before.

The policy's minutes are seconds here (POLICY_MINUTE_SECONDS, test-only): A's reminder
comes 2 s after the escalation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.integration.services import (
    ProcessGroup,
)
from tests.integration.test_realtime import (
    Listener,
    Tenant,
    new_handoff,
    two_node_stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MINUTE_SECONDS = 2
A_POLICY = {
    "renotify_after_minutes": 1,
    "renotify_max": 1,
    "escalate_to_admins_after_minutes": None,
}
# Account-wide live events, and those of a session's page.
LIVE_EVENTS = ("handoff.", "message.", "writeback.")


@dataclass
class TwoNodes:
    node_1: str
    node_2: str
    a: Tenant
    b: Tenant
    group: ProcessGroup


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    with two_node_stack(
        tmp_path_factory.mktemp("cross-tenant"),
        POLICY_MINUTE_SECONDS=str(MINUTE_SECONDS),
        HANDOFF_STEPS_INTERVAL_SECONDS="1",
    ) as stack:
        node_1 = stack.web_a.url
        policy = requests.patch(
            f"{node_1}/api/v1/account", json=A_POLICY, headers=stack.alpha.auth("admin"), timeout=10
        )
        assert policy.status_code == 200, policy.text
        yield TwoNodes(node_1, stack.web_b.url, stack.alpha, stack.beta, stack.group)


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "two_nodes" in request.fixturenames:
        print("\n" + request.getfixturevalue("two_nodes").group.describe_logs(lines=60))


def _post(url: str, tenant: Tenant, who: str, path: str, body: Any = None) -> dict:
    response = requests.post(f"{url}/api/v1{path}", json=body, headers=tenant.auth(who), timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _watch(listener: Listener, session_id: int) -> dict:
    """Ask to see a session's page events (what /pilot/<id> does after each connect)."""
    return listener.client.call("session.watch", {"session_id": session_id}, timeout=10)


def _wait_page_event(listener: Listener, event: str, session_id: int, text: str) -> dict:
    with listener._changed:
        found = listener._changed.wait_for(
            lambda: [
                d
                for e, d in listener.events
                if e == event and d.get("session_id") == session_id and text in str(d)
            ],
            15,
        )
    assert found, f"{event} for session {session_id} not received; got {listener.events}"
    return found[0]


def _live(listener: Listener) -> list[tuple[str, Any]]:
    with listener._changed:
        return [(e, d) for e, d in listener.events if e.startswith(LIVE_EVENTS)]


def test_another_accounts_node_2_clients_receive_none_of_its_events(two_nodes: TwoNodes) -> None:
    node_1, node_2, a, b = two_nodes.node_1, two_nodes.node_2, two_nodes.a, two_nodes.b
    a_senior = Listener(node_2, a.tokens["eng2"])
    b_senior = Listener(node_2, b.tokens["eng"])
    b_admin = Listener(node_2, b.tokens["admin"])
    try:
        handoff = new_handoff(node_1, a, "MSP A: the file server is full")
        handoff_id, session_id = handoff["id"], handoff["session_id"]
        assert _watch(a_senior, session_id) == {"ok": True}
        refused = _watch(b_senior, session_id)
        assert refused["ok"] is False, refused

        # The unclaimed step, from beat through the worker.
        assert a_senior.wait("handoff.reminder", handoff_id, timeout=30)["status"] == "open"
        # Release and reassign, from node 1's routes.
        _post(node_1, a, "eng", f"/escalations/{handoff_id}/claim")
        _post(node_1, a, "eng", f"/escalations/{handoff_id}/release", {"reason": "Off shift"})
        assert a_senior.wait("handoff.released", handoff_id)["claimed_by"] is None
        _post(node_1, a, "eng", f"/escalations/{handoff_id}/claim")
        target = a.users["eng2"]["id"]
        _post(node_1, a, "eng", f"/escalations/{handoff_id}/reassign", {"user_id": target})
        assert a_senior.wait("handoff.reassigned", handoff_id)["claimed_by"]["id"] == target
        # The session page's events: a PSA writeback and a chat message by the new holder.
        path = f"/sessions/{session_id}"
        _post(node_1, a, "eng2", f"{path}/psa-writeback", {"note": "MSP A: disk extended"})
        _post(node_1, a, "eng2", f"{path}/messages", {"body": "MSP A: on it"})
        _wait_page_event(a_senior, "writeback.created", session_id, "MSP A: disk extended")
        _wait_page_event(a_senior, "message.created", session_id, "MSP A: on it")

        # B's own event, after all of A's: both of B's clients on node 2 get it, so
        # anything of A's meant for them would have arrived before it.
        own = new_handoff(node_1, b, "MSP B: the barrier")
        b_senior.wait("handoff.created", own["id"])
        b_admin.wait("handoff.created", own["id"])
        for listener in (b_senior, b_admin):
            heard = _live(listener)
            assert ("handoff.created", own["id"]) in [(e, d["id"]) for e, d in heard]
            # Nothing else: no page event, no handoff but B's own (its reminder may be due).
            assert all(e.startswith("handoff.") and d["id"] == own["id"] for e, d in heard), heard
    finally:
        for listener in (a_senior, b_senior, b_admin):
            listener.close()
