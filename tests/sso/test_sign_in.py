"""Signing in with single sign-on against real OpenID providers (oidc-provider-mock):
two accounts, each with its own provider, plus Microsoft's and Google's checks through the
test discovery base."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import SecurityEvent, User, db
from models.accounts import create_user
from models.entities import Account, LoginSession
from models.sso.entities import SsoIdentity, SsoSignIn
from models.tokens import hash_token
from tests.factories import both_databases, make_tenant
from tests.sso.conftest import MICROSOFT_MOUNT, OTHER_MICROSOFT_MOUNT, OTHER_TENANT, TENANT
from tests.sso.provider import Provider, callback_path, query

ALPHA_DOMAIN = "alpha-msp.example"
BETA_DOMAIN = "beta-msp.example"


@pytest.fixture
def alpha(app):
    return make_tenant("Alpha MSP")


@pytest.fixture
def beta(app):
    return make_tenant("Beta MSP")


def connect(client, tenant, **fields):
    body = {
        "provider": "oidc",
        "client_id": f"client-{tenant.account_id}",
        "client_secret": "s3cret-value-for-the-test",
        "jit": {"enabled": True, "role": "technician"},
        "required": False,
        **fields,
    }
    response = client.put("/api/v1/account/sso", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def alpha_sso(client, alpha, alpha_idp):
    return connect(client, alpha, issuer_url=alpha_idp.issuer, domains=[ALPHA_DOMAIN])


@pytest.fixture
def beta_sso(client, beta, beta_idp):
    return connect(client, beta, issuer_url=beta_idp.issuer, domains=[BETA_DOMAIN])


def start(client, email: str) -> str:
    response = client.get("/login/sso", query_string={"email": email})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sign_in(client, provider: Provider, email: str, sub: str, **claims):
    provider.set_user(sub, email=email, **claims)
    back = provider.authorize(start(client, email), sub)
    return client.get(callback_path(back))


def users_named(email: str) -> int:
    return db.session.scalar(select(func.count(User.id)).where(User.email == email))


def events(account_id: int, kind: str) -> list[SecurityEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(SecurityEvent).where(
                SecurityEvent.account_id == account_id, SecurityEvent.kind == kind
            )
        )
    )


def page_text(response) -> str:
    """The page's words, without markup."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body, flags=re.S)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", body).split()))


@both_databases
def test_jit_sign_in_lands_in_the_right_account_and_the_second_is_the_same_user(
    client, alpha, beta, alpha_sso, beta_sso, alpha_idp
):
    email = f"newbie@{ALPHA_DOMAIN}"
    location = start(client, email)
    sent = query(location)
    assert sent["code_challenge_method"] == "S256"
    assert sent["nonce"] and sent["state"]
    pending = db.session.scalar(
        select(SsoSignIn).where(SsoSignIn.state_hash == hash_token(sent["state"]))
    )
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(pending.code_verifier.encode()).digest()
    ).rstrip(b"=")
    assert sent["code_challenge"] == challenge.decode()
    assert sent["redirect_uri"] == "http://app.test/login/sso/callback"

    alpha_idp.set_user("sub-newbie", email=email, email_verified=True, name="New Bie")
    response = client.get(callback_path(alpha_idp.authorize(location, "sub-newbie")))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/sessions")  # a technician's home
    user = db.session.scalar(select(User).where(User.email == email))
    assert (user.account_id, user.role, user.name) == (alpha.account_id, "technician", "New Bie")
    me = client.get("/api/v1/me").get_json()
    assert (me["id"], me["account"]["id"]) == (user.id, alpha.account_id)
    login = db.session.scalar(select(LoginSession).where(LoginSession.user_id == user.id))
    assert login.expires_at - login.created_at <= timedelta(hours=12)
    assert [e.subject_user_id for e in events(alpha.account_id, "sso_provisioned")] == [user.id]

    client.post("/logout")
    again = sign_in(client, alpha_idp, email, "sub-newbie", email_verified=True)
    assert again.status_code == 303
    assert users_named(email) == 1
    assert client.get("/api/v1/me").get_json()["id"] == user.id


@pytest.mark.parametrize("verified", [{"email_verified": False}, {}])
def test_an_unverified_email_is_refused_and_creates_nothing(
    client, alpha, alpha_sso, alpha_idp, verified
):
    email = f"unsure@{ALPHA_DOMAIN}"
    response = sign_in(client, alpha_idp, email, f"sub-unsure-{len(verified)}", **verified)
    assert response.status_code == 400
    assert "does not vouch for your email" in page_text(response)
    assert users_named(email) == 0
    assert db.session.scalar(select(func.count(SsoIdentity.id))) == 0
    assert events(alpha.account_id, "sso_sign_in_refused")[-1].details["reason"] == (
        "unverified_email"
    )


@both_databases
def test_an_email_owned_in_another_account_is_refused_and_that_user_is_left_alone(
    client, alpha, beta, alpha_sso, alpha_idp
):
    beta_account = db.session.get(Account, beta.account_id)
    owned, _ = create_user(beta_account, "Moved Away", f"moved@{ALPHA_DOMAIN}", "engineer", "pw-1")
    response = sign_in(client, alpha_idp, owned.email, "sub-moved", email_verified=True)
    assert response.status_code == 400
    assert "belongs to a user of another account" in page_text(response)
    db.session.expire_all()
    user = db.session.get(User, owned.id)
    assert (user.account_id, user.role, user.active) == (beta.account_id, "engineer", True)
    assert users_named(owned.email) == 1
    assert db.session.scalar(select(func.count(SsoIdentity.id))) == 0


def test_a_code_or_state_from_the_other_accounts_provider_is_a_400_page(
    client, alpha, beta, alpha_sso, beta_sso, alpha_idp, beta_idp
):
    alpha_idp.set_user("sub-a", email=f"a@{ALPHA_DOMAIN}", email_verified=True)
    beta_idp.set_user("sub-b", email=f"b@{BETA_DOMAIN}", email_verified=True)
    alpha_back = query(alpha_idp.authorize(start(client, f"a@{ALPHA_DOMAIN}"), "sub-a"))
    beta_back = query(beta_idp.authorize(start(client, f"b@{BETA_DOMAIN}"), "sub-b"))
    # Beta's code with Alpha's sign-in: exchanged at Alpha's provider, which never issued it.
    mixed = client.get(
        "/login/sso/callback",
        query_string={"code": beta_back["code"], "state": alpha_back["state"]},
    )
    assert mixed.status_code == 400
    assert "identity provider answered with an error" in page_text(mixed)
    # A state nobody here handed out.
    forged = client.get(
        "/login/sso/callback", query_string={"code": alpha_back["code"], "state": "not-ours"}
    )
    assert forged.status_code == 400
    assert users_named(f"a@{ALPHA_DOMAIN}") == users_named(f"b@{BETA_DOMAIN}") == 0


def test_a_replayed_state_is_a_400_page(client, app, alpha, alpha_sso, alpha_idp):
    email = f"replay@{ALPHA_DOMAIN}"
    alpha_idp.set_user("sub-replay", email=email, email_verified=True)
    back = callback_path(alpha_idp.authorize(start(client, email), "sub-replay"))
    assert client.get(back).status_code == 303
    replayed = client.get(back)
    assert replayed.status_code == 400
    assert "already used" in page_text(replayed)
    # Nor from another browser.
    assert app.test_client().get(back).status_code == 400


def test_a_state_started_in_another_browser_is_refused(client, app, alpha, alpha_sso, alpha_idp):
    email = f"csrf@{ALPHA_DOMAIN}"
    alpha_idp.set_user("sub-csrf", email=email, email_verified=True)
    back = callback_path(alpha_idp.authorize(start(app.test_client(), email), "sub-csrf"))
    response = client.get(back)
    assert response.status_code == 400
    assert users_named(email) == 0


def test_denied_consent_is_a_400_page(client, alpha, alpha_sso, alpha_idp):
    location = start(client, f"shy@{ALPHA_DOMAIN}")
    back = alpha_idp.deny(location)
    # This provider leaves the state out of its error answer...
    response = client.get(callback_path(back))
    assert response.status_code == 400
    assert "not completed" in page_text(response)
    assert "access_denied" in page_text(response)
    # ...which real ones keep: then the refusal is the account's, in its security log.
    with_state = client.get(callback_path(back) + "&state=" + query(location)["state"])
    assert with_state.status_code == 400
    assert "not completed" in page_text(with_state)
    assert events(alpha.account_id, "sso_sign_in_refused")[-1].details["reason"] == "denied"


def test_an_existing_user_is_linked_once_then_the_identity_counts_not_the_email(
    client, alpha, alpha_idp
):
    connect(client, alpha, issuer_url=alpha_idp.issuer, domains=[ALPHA_DOMAIN], jit={})
    response = sign_in(client, alpha_idp, f"eng@{ALPHA_DOMAIN}", "sub-eng", email_verified=True)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/escalations")  # a senior's home
    assert [e.subject_user_id for e in events(alpha.account_id, "sso_linked")] == [
        alpha.users["eng"]
    ]
    client.post("/logout")
    # The provider now says another email: the identity still names the same user.
    again = sign_in(client, alpha_idp, f"renamed@{ALPHA_DOMAIN}", "sub-eng", email_verified=True)
    assert again.status_code == 303
    assert client.get("/api/v1/me").get_json()["id"] == alpha.users["eng"]
    # JIT is off: a stranger is refused.
    stranger = sign_in(client, alpha_idp, f"nobody@{ALPHA_DOMAIN}", "sub-x", email_verified=True)
    assert stranger.status_code == 400
    assert "no user for you" in page_text(stranger)


def test_a_deactivated_user_cannot_sign_in_by_sso(client, alpha, alpha_sso, alpha_idp):
    email = f"tech@{ALPHA_DOMAIN}"
    assert sign_in(client, alpha_idp, email, "sub-tech", email_verified=True).status_code == 303
    client.post("/logout")
    client.patch(
        f"/api/v1/users/{alpha.users['tech']}", json={"active": False}, headers=alpha.auth("admin")
    )
    response = sign_in(client, alpha_idp, email, "sub-tech", email_verified=True)
    assert response.status_code == 400
    assert "deactivated" in page_text(response)
    assert client.get("/api/v1/me").status_code == 401


def test_require_sso_refuses_the_password_form_except_for_admins(client, alpha, alpha_idp):
    connect(client, alpha, issuer_url=alpha_idp.issuer, domains=[ALPHA_DOMAIN], required=True)
    refused = client.post(
        "/login", data={"email": f"tech@{ALPHA_DOMAIN}", "password": "user-password"}
    )
    assert refused.status_code == 200
    text = page_text(refused)
    assert "signs in with single sign-on" in text and "Sign in with SSO" in text
    assert client.get("/api/v1/me").status_code == 401
    logged = events(alpha.account_id, "password_sign_in_refused")
    assert [e.subject_user_id for e in logged] == [alpha.users["tech"]]
    admin = client.post(
        "/login", data={"email": f"owner@{ALPHA_DOMAIN}", "password": "owner-password"}
    )
    assert admin.status_code == 303


def test_the_sign_in_page_offers_the_accounts_provider(client, alpha, alpha_sso):
    assert client.get(
        "/login/sso/provider", query_string={"email": f"x@{ALPHA_DOMAIN}"}
    ).get_json() == {"provider": "oidc", "label": "Sign in with SSO"}
    assert client.get(
        "/login/sso/provider", query_string={"email": "x@elsewhere.example"}
    ).get_json() == {"provider": None, "label": None}
    unknown = client.get("/login/sso", query_string={"email": "x@elsewhere.example"})
    assert unknown.status_code == 200
    assert "not set up for elsewhere.example" in page_text(unknown)


def test_an_unreachable_provider_is_a_page_not_a_500(client, alpha):
    connect(client, alpha, issuer_url="http://127.0.0.1:9", domains=[ALPHA_DOMAIN])
    response = client.get("/login/sso", query_string={"email": f"x@{ALPHA_DOMAIN}"})
    assert response.status_code == 502
    assert "could not be reached" in page_text(response)


# --- Microsoft Entra ID and Google, through the test discovery base ---------------------------


def test_entra_pins_the_tenant_and_vouches_for_email_by_xms_edov(client, alpha, big_idp):
    connect(client, alpha, provider="microsoft", tenant_id=TENANT, domains=[ALPHA_DOMAIN])
    entra = big_idp.provider(MICROSOFT_MOUNT)
    ok = sign_in(client, entra, f"ms@{ALPHA_DOMAIN}", "ms-1", tid=TENANT, xms_edov=True)
    assert ok.status_code == 303
    client.post("/logout")
    other = sign_in(client, entra, f"ms2@{ALPHA_DOMAIN}", "ms-2", tid=OTHER_TENANT, xms_edov=True)
    assert other.status_code == 400
    assert "different directory" in page_text(other)
    unvouched = sign_in(client, entra, f"ms3@{ALPHA_DOMAIN}", "ms-3", tid=TENANT)
    assert unvouched.status_code == 400
    assert "does not vouch" in page_text(unvouched)
    assert users_named(f"ms2@{ALPHA_DOMAIN}") == users_named(f"ms3@{ALPHA_DOMAIN}") == 0


def test_entra_refuses_a_token_naming_another_tenants_issuer(client, alpha, big_idp):
    connect(client, alpha, provider="microsoft", tenant_id=OTHER_TENANT, domains=[ALPHA_DOMAIN])
    big_idp.sign_as(OTHER_MICROSOFT_MOUNT, MICROSOFT_MOUNT)
    provider = big_idp.provider(OTHER_MICROSOFT_MOUNT)
    response = sign_in(
        client, provider, f"ms@{ALPHA_DOMAIN}", "ms-x", tid=OTHER_TENANT, xms_edov=True
    )
    assert response.status_code == 400
    assert "different directory" in page_text(response)
    assert users_named(f"ms@{ALPHA_DOMAIN}") == 0


def test_google_needs_hd_to_be_one_of_the_domains(client, alpha, big_idp):
    connect(client, alpha, provider="google", domains=[ALPHA_DOMAIN])
    google = big_idp.provider()
    email = f"g@{ALPHA_DOMAIN}"
    missing = sign_in(client, google, email, "g-1", email_verified=True)
    assert missing.status_code == 400
    elsewhere = sign_in(client, google, email, "g-1", email_verified=True, hd="gmail.example")
    assert elsewhere.status_code == 400
    assert users_named(email) == 0
    ok = sign_in(client, google, email, "g-1", email_verified=True, hd=ALPHA_DOMAIN)
    assert ok.status_code == 303
    assert users_named(email) == 1


def test_the_settings_page_has_a_single_sign_on_section(client, alpha, alpha_sso):
    client.post("/login", data={"email": f"owner@{ALPHA_DOMAIN}", "password": "owner-password"})
    text = client.get("/settings").get_data(as_text=True)
    assert 'id="sso-settings"' in text and "settings_sso.js" in text
    assert client.get("/assets/settings_sso.js").status_code == 200
