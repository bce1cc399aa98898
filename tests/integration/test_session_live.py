"""A session's chat and writebacks, live, against the real stack of test_realtime.py (Redis,
two `python wsgi.py` web nodes, a Celery worker and beat): posted through one web node,
heard once by the pages watching the session on either node, by nobody of another account,
and, like every other live event, through the outbox, so a Redis outage at posting time
loses nothing.

The test that stops Redis runs last."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.integration import test_realtime
from tests.integration.services import wait_for
from tests.integration.test_realtime import Listener, Stack, Tenant, new_session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# The stack of test_realtime.py, one for this module.
stack = test_realtime.stack
listeners = test_realtime.listeners
logs_on_failure = test_realtime.logs_on_failure


class Watcher(Listener):
    """A session page's socket: connected, then `session.watch` for its session."""

    def __init__(self, url: str, token: str, session_id: int) -> None:
        super().__init__(url, token)
        self.ack = self.client.call("session.watch", {"session_id": session_id}, timeout=10)

    def of(self, event: str) -> list[Any]:
        with self._changed:
            return [data for name, data in self.events if name == event]


def post(url: str, tenant: Tenant, path: str, body: dict, who: str = "tech") -> dict:
    response = requests.post(f"{url}/api/v1{path}", json=body, headers=tenant.auth(who), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def dispatched(stack: Stack, column: str, item_id: int) -> tuple | None:
    """The outbox row of the message or writeback `item_id`: (published, went live from the
    web, its socket delivery's status), once the worker's dispatch has finished with it."""
    engine = sa.create_engine(stack.env["DATABASE_URL"], poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT o.published_at IS NOT NULL, o.emitted_at IS NOT NULL, d.status "
                    "FROM outbox_events o LEFT JOIN deliveries d "
                    "ON d.dedupe_key = 'socket:' || o.id "
                    f"WHERE o.{column} = :item_id"
                ),
                {"item_id": item_id},
            ).one_or_none()
    finally:
        engine.dispose()
    return tuple(row) if row is not None and row[2] == "sent" else None


def test_a_message_posted_through_one_node_reaches_its_watchers_on_both_nodes_once(
    stack, listeners
):
    alpha, beta = stack.alpha, stack.beta
    session_id = new_session(stack.web_a.url, alpha, "Chat across the web nodes")
    technician = Watcher(stack.web_b.url, alpha.tokens["tech"], session_id)
    senior = Watcher(stack.web_a.url, alpha.tokens["eng"], session_id)
    outsider = Watcher(stack.web_b.url, beta.tokens["eng"], session_id)
    outsider_admin = Listener(stack.web_a.url, beta.tokens["admin"])
    listeners.extend([technician, senior, outsider, outsider_admin])
    assert technician.ack == senior.ack == {"ok": True}
    assert outsider.ack == {"ok": False, "error": "No such session."}

    posted = post(stack.web_a.url, alpha, f"/sessions/{session_id}/messages", {"body": "Hi"})

    assert technician.wait("message.created", posted["id"]) == posted
    assert senior.wait("message.created", posted["id"]) == posted
    # The worker's dispatch, which would be the second emit, has run: the web emitted it.
    assert wait_for(lambda: dispatched(stack, "message_id", posted["id"]), timeout=20) == (
        True,
        True,
        "sent",
    )
    assert technician.of("message.created") == [posted]
    assert senior.of("message.created") == [posted]
    assert outsider.events == [] and outsider_admin.events == []


def test_a_writeback_reaches_the_watchers_once_and_no_other_account(stack, listeners):
    alpha, beta = stack.alpha, stack.beta
    session_id = new_session(stack.web_a.url, alpha, "Writeback across the web nodes")
    senior = Watcher(stack.web_b.url, alpha.tokens["eng2"], session_id)
    outsider = Listener(stack.web_b.url, beta.tokens["eng"])
    listeners.extend([senior, outsider])

    written = post(
        stack.web_a.url,
        alpha,
        f"/sessions/{session_id}/psa-writeback",
        {"note": "Reset the spooler"},
        who="eng",
    )

    assert senior.wait("writeback.created", written["id"]) == written
    assert written["delivery"]["status"] == "not_connected"
    wait_for(lambda: dispatched(stack, "writeback_id", written["id"]), timeout=20)
    assert senior.of("writeback.created") == [written]
    assert outsider.events == []


def test_a_reconnecting_page_catches_up_from_the_api_and_then_hears_each_message_once(
    stack, listeners
):
    alpha, url = stack.alpha, stack.web_a.url
    session_id = new_session(url, alpha, "A page that reconnects")
    page = Watcher(stack.web_b.url, alpha.tokens["eng"], session_id)
    first = post(url, alpha, f"/sessions/{session_id}/messages", {"body": "Before"})
    page.wait("message.created", first["id"])
    page.close()

    missed = post(url, alpha, f"/sessions/{session_id}/messages", {"body": "While away"})
    wait_for(lambda: dispatched(stack, "message_id", missed["id"]), timeout=20)
    again = Watcher(stack.web_a.url, alpha.tokens["eng"], session_id)  # the other node now
    listeners.append(again)
    detail = requests.get(
        f"{url}/api/v1/sessions/{session_id}", headers=alpha.auth("eng"), timeout=10
    ).json()
    assert [m["body"] for m in detail["messages"]] == ["Before", "While away"]

    after = post(url, alpha, f"/sessions/{session_id}/messages", {"body": "Back"})

    again.wait("message.created", after["id"])
    wait_for(lambda: dispatched(stack, "message_id", after["id"]), timeout=20)
    # Nothing of before the reconnect is replayed, and the new message comes once.
    assert again.of("message.created") == [after]


@pytest.mark.timeout(240)
def test_a_message_posted_with_redis_stopped_arrives_once_when_redis_is_back(stack, listeners):
    """Runs last: it stops the module's Redis. Before, the route emitted after its commit
    and a failed emit was only logged, so this message never reached the open page."""
    alpha, url = stack.alpha, stack.web_a.url
    session_id = new_session(url, alpha, "Chat while Redis is down")
    page = Watcher(stack.web_b.url, alpha.tokens["tech"], session_id)
    listeners.append(page)
    assert page.ack == {"ok": True}

    stack.redis.stop()
    try:
        started = time.monotonic()
        posted = post(url, alpha, f"/sessions/{session_id}/messages", {"body": "Anyone?"})
        elapsed = time.monotonic() - started
    finally:
        stack.redis.start()
    assert elapsed < 1.0, f"posting took {elapsed:.3f} s with Redis stopped"

    # The relay (beat, every 5 s) publishes it; the worker emits it, the web could not.
    assert page.wait("message.created", posted["id"], timeout=60) == posted
    assert wait_for(lambda: dispatched(stack, "message_id", posted["id"]), timeout=60) == (
        True,
        False,
        "sent",
    )
    assert page.of("message.created") == [posted]
