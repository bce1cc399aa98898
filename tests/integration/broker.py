"""What the Celery broker (Redis, kombu's transport) still holds: the tasks waiting in a
queue and those a worker has taken and not finished.

The workers acknowledge a task after it ran (``task_acks_late``), and a task with a
countdown waits, taken, in kombu's ``unacked`` hash until it runs. So once no task about a
row is left here, every retry or resend that could touch the row has run: a test counts at
the SMTP server then, instead of sleeping for a while and hoping.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# kombu.transport.redis: the hash of taken messages, and the per-priority queue keys.
UNACKED_KEY = "unacked"
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


@dataclass(frozen=True)
class BrokerTask:
    id: str
    name: str
    args: list[Any]
    taken: bool  # a worker has it (running, or waiting for its countdown)

    def mentions(self, ids: Iterable[int]) -> bool:
        """Whether any of these row ids is among the task's arguments (or in a list there)."""
        wanted = set(ids)
        for arg in self.args:
            values = arg if isinstance(arg, list) else [arg]
            if any(isinstance(v, int) and v in wanted for v in values):
                return True
        return False


def _decode(payload: dict[str, Any], taken: bool) -> BrokerTask:
    headers = payload.get("headers") or {}
    body = payload.get("body", "")
    if (payload.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0] if body else []
    return BrokerTask(str(headers.get("id")), str(headers.get("task")), list(args), taken)


def _queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def unfinished_tasks(client, queues: Iterable[str]) -> list[BrokerTask]:
    """Every task waiting in one of ``queues`` or taken by a worker and not acknowledged yet
    (``client``: a redis.Redis on the broker)."""
    tasks = []
    for queue in queues:
        for key in _queue_keys(queue):
            tasks.extend(_decode(json.loads(raw), taken=False) for raw in client.lrange(key, 0, -1))
    for raw in client.hvals(UNACKED_KEY):
        payload, _exchange, _routing_key = json.loads(raw)
        tasks.append(_decode(payload, taken=True))
    return tasks


def tasks_about(client, delivery_ids: Iterable[int], ignore: frozenset[str] = frozenset()):
    """The tasks still queued or running that could send one of these email deliveries:
    their send and retry tasks, and any sweep, relay or dispatch (which may enqueue more)."""
    from workers import names

    ids = list(delivery_ids)
    sends = (names.SEND_EMAIL, names.SEND_EMAILS)
    queues = (names.QUEUE_EMAIL, names.QUEUE_MAINTENANCE, names.QUEUE_REALTIME)
    return [
        task
        for task in unfinished_tasks(client, queues)
        if task.id not in ignore and (task.name not in sends or task.mentions(ids))
    ]


def wait_tasks_done(
    client,
    delivery_ids: Iterable[int],
    ignore: frozenset[str] = frozenset(),
    timeout: float = 30.0,
) -> None:
    """Wait until every task that could send one of these deliveries (again) has run: the
    broker holds none of them, queued or taken. ``ignore``: tasks a killed worker holds,
    unacknowledged until the visibility timeout."""
    from devstack.net import wait_for

    ids = sorted(delivery_ids)
    wait_for(
        lambda: not tasks_about(client, ids, ignore),
        timeout=timeout,
        interval=0.1,
        message=f"the tasks about deliveries {ids} to finish",
    )


def runs_of(log_text: str, task_name: str) -> int:
    """How many times a worker's log says the task ran to the end (Celery's INFO line
    "Task <name>[<id>] succeeded in ..."; a routine tick's only at DEBUG, see
    workers/routine_logs.py)."""
    return len(re.findall(rf"Task {re.escape(task_name)}\[[^\]]+\] succeeded", log_text))


def wait_more_runs(process, task_name: str, more: int, timeout: float = 30.0) -> None:
    """Wait until `process` (a worker) has run the task `more` more times from now: beat's
    next scans or sweeps, which would make a duplicate if one were to come."""
    from devstack.net import wait_for

    start = runs_of(process.log_text(), task_name)
    wait_for(
        lambda: runs_of(process.log_text(), task_name) >= start + more,
        timeout=timeout,
        interval=0.2,
        message=f"{more} more runs of {task_name}",
    )


def wait_handoff_emails_settled(
    redis_url: str, api_url: str, token: str, handoff_ids: Iterable[int], timeout: float = 30.0
) -> None:
    """Wait until no task that could send one of these handoffs' emails is left at the
    broker at ``redis_url`` (their rows read from the API at ``api_url`` with ``token``)."""
    import redis
    import requests

    ids: list[int] = []
    for handoff_id in handoff_ids:
        response = requests.get(
            f"{api_url}/api/v1/escalations/{handoff_id}/deliveries",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        ids += [row["id"] for row in response.json()["items"] if row["channel"] == "email"]
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        wait_tasks_done(client, ids, timeout=timeout)
    finally:
        client.close()
