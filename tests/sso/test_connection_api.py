"""PUT / GET / DELETE /account/sso: validation in the contract's shape, the sealed client
secret, one account per domain, and domains proven by a DNS TXT record."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import db
from models.sso.entities import SsoConnection
from tests.factories import both_databases, make_tenant
from tests.sso.conftest import TENANT, sso_config

SECRET = "very-secret-client-value-42"


@pytest.fixture
def alpha(app):
    return make_tenant("Alpha MSP")


@pytest.fixture
def beta(app):
    return make_tenant("Beta MSP")


def body(**fields):
    return {
        "provider": "microsoft",
        "tenant_id": TENANT,
        "client_id": "app-client-id",
        "client_secret": SECRET,
        "domains": ["Alpha-MSP.example"],
        "jit": {"enabled": True, "role": "engineer"},
        "required": True,
        **fields,
    }


def put(client, tenant, who="admin", **fields):
    return client.put("/api/v1/account/sso", json=body(**fields), headers=tenant.auth(who))


@both_databases
def test_put_get_delete_and_the_secret_is_never_answered(client, alpha):
    response = put(client, alpha)
    assert response.status_code == 200, response.get_json()
    answered = response.get_json()
    assert {k: answered[k] for k in body() if k != "client_secret"} == {
        "provider": "microsoft",
        "tenant_id": TENANT,
        "client_id": "app-client-id",
        "domains": ["alpha-msp.example"],
        "jit": {"enabled": True, "role": "engineer"},
        "required": True,
    }
    assert answered["redirect_uri"] == "http://app.test/login/sso/callback"
    assert "client_secret" not in answered and SECRET not in response.get_data(as_text=True)
    stored = db.session.scalar(select(SsoConnection))
    assert SECRET not in stored.secrets  # sealed
    got = client.get("/api/v1/account/sso", headers=alpha.auth("admin"))
    assert got.status_code == 200 and SECRET not in got.get_data(as_text=True)
    assert got.get_json()["domains"] == ["alpha-msp.example"]
    # Saving again without the secret keeps the sealed one.
    again = client.put(
        "/api/v1/account/sso",
        json={k: v for k, v in body(required=False).items() if k != "client_secret"},
        headers=alpha.auth("admin"),
    )
    assert again.status_code == 200 and again.get_json()["required"] is False
    assert client.delete("/api/v1/account/sso", headers=alpha.auth("admin")).status_code == 204
    missing = client.get("/api/v1/account/sso", headers=alpha.auth("admin"))
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


def test_only_admins(client, alpha):
    for method in ("get", "put", "delete"):
        response = getattr(client, method)(
            "/api/v1/account/sso", json=body(), headers=alpha.auth("eng")
        )
        assert response.status_code == 403, method
        assert response.get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"provider": "okta"}, "provider"),
        ({"tenant_id": None}, "tenant_id"),
        ({"tenant_id": "common"}, "tenant_id"),
        ({"provider": "oidc", "issuer_url": "http://idp.example.com"}, "issuer_url"),
        ({"provider": "oidc", "issuer_url": None}, "issuer_url"),
        ({"client_id": ""}, "client_id"),
        ({"client_secret": None}, "client_secret"),
        ({"domains": []}, "domains"),
        ({"domains": ["not a domain"]}, "domains"),
        ({"jit": {"enabled": True, "role": "admin"}}, "jit.role"),
        ({"required": "yes"}, "required"),
    ],
)
def test_invalid_fields_are_422_in_the_contracts_shape(client, alpha, fields, field):
    response = put(client, alpha, **fields)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"], error


def test_oidc_on_a_loopback_host_may_use_http(client, alpha):
    response = put(client, alpha, provider="oidc", issuer_url="http://127.0.0.1:8080/realm/")
    assert response.status_code == 200
    assert response.get_json()["issuer_url"] == "http://127.0.0.1:8080/realm"


def test_a_domain_another_account_serves_is_409(client, alpha, beta):
    assert put(client, alpha).status_code == 200
    response = put(client, beta, domains=["beta-msp.example", "alpha-msp.example"])
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "domain_taken"
    assert error["details"]["domains"] == ["alpha-msp.example is served by another account."]


@pytest.fixture
def dns_app(app_with, big_idp):
    with app_with(**sso_config(big_idp, SSO_DOMAIN_VERIFICATION="dns")) as app:
        published: dict[str, list[str]] = {}
        app.extensions["sso_txt_resolver"] = lambda name: published.get(name, [])
        app.published = published
        yield app


def test_with_dns_a_domain_serves_sign_ins_once_its_txt_record_proves_it(dns_app):
    client = dns_app.test_client()
    alpha, beta = make_tenant("Alpha MSP"), make_tenant("Beta MSP")
    saved = put(client, alpha, provider="oidc", issuer_url="https://idp.example")
    assert saved.status_code == 200
    (state,) = saved.get_json()["domain_verification"]["domains"]
    assert state["verified"] is False
    assert state["txt_name"] == "_escalation-mode.alpha-msp.example"
    assert state["txt_value"].startswith("escalation-mode-sso=")
    offered = client.get("/login/sso/provider", query_string={"email": "x@alpha-msp.example"})
    assert offered.get_json()["provider"] is None
    # Someone else listing it unverified does not block the owner, nor serve them.
    assert put(client, beta, provider="oidc", issuer_url="https://idp.example").status_code == 200
    dns_app.published[state["txt_name"]] = ["v=spf1 -all", state["txt_value"]]
    verified = client.post("/api/v1/account/sso/verify", headers=alpha.auth("admin"))
    assert verified.get_json()["domain_verification"]["domains"][0]["verified"] is True
    offered = client.get("/login/sso/provider", query_string={"email": "x@alpha-msp.example"})
    assert offered.get_json()["provider"] == "oidc"
    # Now it is held: the other account cannot take it, even with the record published.
    assert put(client, beta, provider="oidc", issuer_url="https://idp.example").status_code == 409


def test_key_rotation_re_seals_the_client_secret(app, client, alpha):
    from cryptography.fernet import Fernet

    from models.psa.vault import Vault

    assert put(client, alpha).status_code == 200
    old_key = app.config["PSA_ENCRYPTION_KEYS"]
    new_key = Fernet.generate_key().decode()
    app.config["PSA_ENCRYPTION_KEYS"] = f"{new_key},{old_key}"
    result = app.test_cli_runner().invoke(args=["psa-rotate-keys"])
    assert result.exit_code == 0 and '"sso_rotated": 1' in result.output, result.output
    db.session.expire_all()
    sealed = db.session.scalar(select(SsoConnection)).secrets
    assert Vault([new_key]).open(sealed) == {"client_secret": SECRET}
