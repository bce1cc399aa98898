"""Assertions shared by the API tests: the contract's error shape, and "nothing changed"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import db

ERROR_KEYS = {"code", "message", "details"}


def assert_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` with exactly {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert isinstance(error["details"], dict), error
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_field_errors(response, *fields: str) -> dict[str, list[str]]:
    """422 validation_error whose details map each of `fields` to a list of messages."""
    details = assert_error(response, 422, "validation_error")["details"]
    for name in fields:
        messages = details.get(name)
        assert isinstance(messages, list) and messages, (name, details)
        assert all(isinstance(m, str) and m for m in messages), (name, details)
    return details


# Bookkeeping that any authenticated request may write: when a token was last used, and the
# security log (a refused sign-in changes nothing else but is recorded).
NOT_STATE = {"api_tokens": {"last_used_at"}, "security_events": "*"}


def database_snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order: equal snapshots mean nothing changed."""
    db.session.rollback()  # read what is committed, not what this session has cached
    snapshot = {}
    for table in db.metadata.sorted_tables:
        skipped = NOT_STATE.get(table.name, set())
        if skipped == "*":
            continue
        columns = [column for column in table.columns if column.name not in skipped]
        query = select(*columns).order_by(*table.primary_key.columns)
        snapshot[table.name] = [tuple(row) for row in db.session.execute(query)]
    return snapshot
