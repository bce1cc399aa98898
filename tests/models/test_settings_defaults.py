"""The account's escalation policy, a user's email choice and a session's priority each have
one default (models.entities: POLICY_DEFAULTS, DEFAULT_NOTIFY_EMAIL, DEFAULT_PRIORITY); the
columns, the policy, the API's schema and the migrated database all say the values the
contract documents, written out here by hand.

A migration is history and keeps the literal it was written with; the test runs them on a
fresh database, so a new default needs a migration that says it too."""

from __future__ import annotations

from flask_migrate import upgrade
from sqlalchemy import inspect

from models.entities import DEFAULT_NOTIFY_EMAIL, DEFAULT_PRIORITY, POLICY_DEFAULTS, Account
from models.handoff_steps import Policy
from tests.factories import app_config
from web import create_app
from web.schemas import SessionCreateSchema

CONTRACT_POLICY = {  # API.md: PATCH /account, the defaults
    "renotify_after_minutes": 5,
    "renotify_max": 2,
    "escalate_to_admins_after_minutes": 15,
}


def test_the_one_definition_says_the_contracts_values():
    assert POLICY_DEFAULTS == CONTRACT_POLICY
    assert (DEFAULT_NOTIFY_EMAIL, DEFAULT_PRIORITY) == ("when_offline", "p3")


def test_the_policy_and_the_columns_read_it():
    assert {name: getattr(Policy(), name) for name in CONTRACT_POLICY} == CONTRACT_POLICY
    columns = Account.__table__.columns
    for name, value in CONTRACT_POLICY.items():
        assert columns[name].default.arg == value, name
        assert columns[name].server_default.arg == str(value), name


def test_the_api_schema_defaults_the_priority():
    body = SessionCreateSchema().load({"title": "Printer", "snapshot": {}})
    assert body["priority"] == "p3"


def _server_default(columns: list[dict], name: str) -> str:
    default = next(column["default"] for column in columns if column["name"] == name)
    return str(default).strip("'\"")


def test_the_migrated_database_has_the_same_defaults(tmp_path):
    app = create_app(app_config(f"sqlite:///{tmp_path / 'migrated.db'}"))
    with app.app_context():
        upgrade()
        from models import db

        schema = inspect(db.engine)
        accounts = schema.get_columns("accounts")
        users = schema.get_columns("users")
        sessions = schema.get_columns("flow_sessions")
        db.engine.dispose()
    for name, value in CONTRACT_POLICY.items():
        assert _server_default(accounts, name) == str(value), name
    assert _server_default(users, "notify_email") == "when_offline"
    assert _server_default(sessions, "priority") == "p3"
