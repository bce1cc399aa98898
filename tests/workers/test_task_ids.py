"""Request and handoff ids travel in Celery message headers and are bound while a task runs."""

from __future__ import annotations

from types import SimpleNamespace

from celery import signals

from models import logcontext
from tests.factories import app_config, wired_app
from workers import observability


def test_a_published_task_carries_the_ids_of_its_sender(database_url) -> None:
    wired_app(app_config(database_url))  # connects the publish side once per process
    headers: dict = {}
    request_token = logcontext.REQUEST_ID.set("req-77")
    handoff_token = logcontext.HANDOFF_ID.set(12)
    try:
        signals.before_task_publish.send(sender="workers.email.send_email", headers=headers)
    finally:
        logcontext.REQUEST_ID.reset(request_token)
        logcontext.HANDOFF_ID.reset(handoff_token)
    assert headers[logcontext.REQUEST_ID_HEADER] == "req-77"
    assert headers[logcontext.HANDOFF_ID_HEADER] == 12


def test_a_running_task_logs_with_the_ids_from_its_headers_and_forgets_them_after() -> None:
    request = {logcontext.REQUEST_ID_HEADER: "req-88", logcontext.HANDOFF_ID_HEADER: "31"}
    task = SimpleNamespace(request=SimpleNamespace(get=request.get))
    before = logcontext.current_ids()
    observability._bind_ids(task_id="t-1", task=task)
    try:
        assert logcontext.current_ids() == {"request_id": "req-88", "handoff_id": 31}
    finally:
        observability._unbind_ids(task_id="t-1")
    assert logcontext.current_ids() == before


def test_a_task_without_ids_is_named_by_its_own_task_id() -> None:
    task = SimpleNamespace(request=SimpleNamespace(get=lambda key: None))
    observability._bind_ids(task_id="t-2", task=task)
    try:
        assert logcontext.current_ids() == {"request_id": "t-2", "handoff_id": None}
    finally:
        observability._unbind_ids(task_id="t-2")
