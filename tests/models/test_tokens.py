"""API tokens are minted one way (models/tokens.py): the token API, a new account's owner
token and a new user's token all get a hashed secret, an optional expiry and a
`token_created` line in the security log naming who made the token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from models import db, tenancy
from models.accounts import create_account, create_user
from models.credentials import authenticate_token, create_token
from models.entities import ApiToken, SecurityEvent
from models.tokens import hash_token
from tests.factories import both_databases

REPO = Path(__file__).resolve().parents[2]


def _token_lines(account_id: int) -> list[tuple[int | None, int | None, dict]]:
    with tenancy.use_tenant(account_id):
        events = db.session.scalars(
            select(SecurityEvent)
            .where(SecurityEvent.account_id == account_id, SecurityEvent.kind == "token_created")
            .order_by(SecurityEvent.id)
        )
        return [(e.actor_id, e.subject_user_id, e.details) for e in events]


@both_databases
def test_a_new_account_and_its_users_get_logged_tokens_that_work(app):
    account, owner, owner_secret = create_account("Gamma MSP", "Gail Owner", "gail@gamma.test")
    with tenancy.use_tenant(account.id):
        tech, tech_secret = create_user(
            account, "Tom Tech", "tom@gamma.test", "technician", actor=owner
        )
        rows = {t.user_id: t for t in db.session.scalars(select(ApiToken))}
    assert set(rows) == {owner.id, tech.id}
    assert rows[owner.id].token_hash == hash_token(owner_secret)
    assert rows[tech.id].token_hash == hash_token(tech_secret)
    assert rows[owner.id].expires_at is None and rows[tech.id].expires_at is None
    assert authenticate_token(owner_secret).user.id == owner.id
    assert authenticate_token(tech_secret).user.id == tech.id
    assert _token_lines(account.id) == [
        (owner.id, owner.id, {"token_id": rows[owner.id].id, "name": None}),
        # The admin who added the user made the user's first token.
        (owner.id, tech.id, {"token_id": rows[tech.id].id, "name": None}),
    ]


@pytest.mark.parametrize(
    ("now", "expires"),
    [
        (datetime(2026, 1, 20, 15, 7, tzinfo=UTC), datetime(2026, 2, 19, 15, 7)),
        (datetime(2026, 7, 14, 15, 7, tzinfo=UTC), datetime(2026, 8, 13, 15, 7)),
    ],
    ids=["winter", "summer"],
)
def test_a_token_from_the_api_expires_after_its_days_and_is_logged(app, tenant, now, expires):
    with tenancy.use_tenant(tenant.account_id):
        user = authenticate_token(tenant.tokens["eng"]).user
        with time_machine.travel(now, tick=False):
            token, secret = create_token(user, " laptop ", expires_in_days=30)
        assert (token.name, token.created_at, token.expires_at) == (
            "laptop",
            now.replace(tzinfo=None),
            expires,
        )
        with time_machine.travel(expires.replace(tzinfo=UTC) - timedelta(seconds=1), tick=False):
            assert authenticate_token(secret).id == token.id
        with time_machine.travel(expires.replace(tzinfo=UTC), tick=False):
            assert authenticate_token(secret) is None
    assert _token_lines(tenant.account_id)[-1] == (
        user.id,
        user.id,
        {"token_id": token.id, "name": "laptop"},
    )


def test_no_code_but_the_token_module_builds_a_token_row():
    makers = [
        str(path.relative_to(REPO))
        for package in ("models", "web", "workers", "adapters")
        for path in (REPO / package).rglob("*.py")
        if re.search(r"(?<!class )\bApiToken\(", path.read_text())
    ]
    assert makers == ["models/tokens.py"]
