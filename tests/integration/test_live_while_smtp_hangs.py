"""The live path never waits on email: with the SMTP server hung (it accepts connections and
never answers), an online senior still sees every escalation at once, and once the server
recovers every offline senior's email arrives exactly once, over reused connections.

The real processes as the Procfile runs them: web (`python wsgi.py`), the worker on the
realtime and maintenance queues, the mailer (a thread pool on the email queue), Redis and
an aiosmtpd server.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.integration import broker
from tests.integration.services import wait_for
from tests.integration.test_realtime import Listener, escalate, make_tenant, new_session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

ESCALATIONS = 6
# Far above the live path (tens of milliseconds) and far below one hung SMTP attempt.
LIVE_BOUND_SECONDS = 3.0
FAST_RETRY = {
    "SMTP_TIMEOUT": "2",
    "EMAIL_FIRST_RETRY_SECONDS": "1",
    "EMAIL_MAX_BACKOFF_SECONDS": "2",
    "DELIVERY_LEASE_SECONDS": "12",  # > 4 x SMTP_TIMEOUT plus the connection set-up
    "DELIVERY_SWEEP_GRACE_SECONDS": "2",
}


def test_online_seniors_see_every_escalation_while_smtp_hangs_and_mail_follows_once(
    stack_env, smtp_sink, web_server, celery_worker, celery_beat
):
    stack_env.update(FAST_RETRY)
    web = web_server()
    celery_worker(pool="prefork", concurrency=2, queues=["realtime", "maintenance"])
    celery_worker(pool="threads", concurrency=4, queues=["email"])
    celery_beat()
    tenant = make_tenant(stack_env, web.url, "hang")
    online = Listener(web.url, token=tenant.tokens["eng"])
    offline = [tenant.users["admin"]["email"], tenant.users["eng2"]["email"]]
    sessions = [new_session(web.url, tenant, f"Hung SMTP {n}") for n in range(ESCALATIONS)]

    smtp_sink.stall()
    handoff_ids = []
    try:
        for session_id in sessions:
            started = time.monotonic()
            response = escalate(web.url, tenant, session_id)
            assert response.status_code == 201, response.text
            handoff_ids.append(response.json()["id"])
            online.wait("handoff.created", handoff_ids[-1], timeout=LIVE_BOUND_SECONDS)
            assert time.monotonic() - started < LIVE_BOUND_SECONDS
        # The mailer is stuck on the hung server meanwhile: nothing goes out.
        wait_for(lambda: smtp_sink.stalled_connections >= 1, timeout=20,
                 message="the mailer connecting to the hung server")  # fmt: skip
        assert smtp_sink.messages == []
    finally:
        smtp_sink.ok()

    expected = Counter((str(h), address) for h in handoff_ids for address in offline)

    def delivered() -> Counter:
        return Counter(
            (m["X-Escalation-Handoff-Id"], rcpt) for m in smtp_sink.messages for rcpt in m.rcpt_tos
        )

    wait_for(lambda: delivered() == expected, timeout=60, interval=0.5,
             message=f"every offline senior's email once: {expected}")  # fmt: skip
    # Every retry and sweep that could send one of them again has run.
    broker.wait_handoff_emails_settled(
        stack_env["REDIS_URL"], web.url, tenant.tokens["admin"], handoff_ids
    )
    assert delivered() == expected
    for handoff_id in handoff_ids:
        assert online.handoff_events(handoff_id) == ["handoff.created"]
    # Connections carry many messages: far fewer greetings than messages sent.
    assert smtp_sink.greetings < len(smtp_sink.messages)
    online.close()
