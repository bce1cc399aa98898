"""Single sign-on with row-level security enforced (three PostgreSQL roles): the look-ups
made before the tenant is known (domain, callback state, "email in no account") go through
the system role, and everything after acts as the account found."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from devstack.three_roles import ThreeRoles, migrate, three_role_database
from models import db, tenancy
from tests.factories import app_config, make_tenant, postgres_url, running_app
from tests.sso.conftest import sso_config
from tests.sso.test_sign_in import connect, sign_in

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def roles() -> Iterator[ThreeRoles]:
    with three_role_database(postgres_url(), prefix="ssor") as three:
        migrate(three)
        yield three


@pytest.fixture
def app(roles, big_idp) -> Iterator[Flask]:
    config = app_config(roles.runtime_url, **roles.config(), **sso_config(big_idp))
    with running_app(config) as app:
        yield app
        db.session.remove()
        tenancy.system_engine().dispose()
        db.engine.dispose()


def test_sso_under_row_security(app, client, alpha_idp, beta_idp):
    tag = uuid.uuid4().hex[:8]
    alpha, beta = make_tenant(f"Alpha {tag}"), make_tenant(f"Beta {tag}")
    alpha_domain, beta_domain = f"alpha-{tag}.example", f"beta-{tag}.example"
    connect(client, alpha, issuer_url=alpha_idp.issuer, domains=[alpha_domain])
    connect(client, beta, issuer_url=beta_idp.issuer, domains=[beta_domain])
    taken = client.put(
        "/api/v1/account/sso",
        json={"provider": "oidc", "issuer_url": beta_idp.issuer, "client_id": "c",
              "domains": [alpha_domain]},
        headers=beta.auth("admin"),
    )  # fmt: skip
    assert taken.status_code == 409

    email = f"jit@{alpha_domain}"
    assert sign_in(client, alpha_idp, email, f"s-{tag}", email_verified=True).status_code == 303
    me = client.get("/api/v1/me").get_json()
    assert (me["email"], me["role"], me["account"]["id"]) == (email, "technician", alpha.account_id)
    client.post("/logout")

    moved = client.post(
        "/api/v1/users",
        json={"name": "Moved", "email": f"moved@{alpha_domain}", "role": "engineer"},
        headers=beta.auth("admin"),
    )
    assert moved.status_code == 201
    refused = sign_in(client, alpha_idp, f"moved@{alpha_domain}", f"m-{tag}", email_verified=True)
    assert refused.status_code == 400
    users = client.get("/api/v1/users", headers=beta.auth("admin")).get_json()["items"]
    assert [u["role"] for u in users if u["email"] == f"moved@{alpha_domain}"] == ["engineer"]

    connect(client, alpha, issuer_url=alpha_idp.issuer, domains=[alpha_domain], required=True)
    password = client.post(
        "/login", data={"email": f"tech@alpha-{tag}.example", "password": "user-password"}
    )
    assert password.status_code == 200
    assert "signs in with single sign-on" in password.get_data(as_text=True)
