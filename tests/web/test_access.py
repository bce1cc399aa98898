"""Who may do what: authentication, role gates on every endpoint, and tenant isolation.

The tenant matrix runs every endpoint that takes an id with one account's users against
the other account's ids, in both directions: the answer is 404 `not_found` (never 403,
never a hint that the id exists), and nothing changes on the other side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from models import db
from models.accounts import create_user
from models.entities import Account, Handoff, User
from tests.factories import (
    Tenant,
    app_config,
    cookie_login,
    make_tenant,
    new_handoff,
    new_session,
    running_app,
)
from tests.web.contract import assert_error, database_snapshot

API = "/api/v1"
ROLES = ("admin", "tech", "tech2", "eng", "eng2")
SENIORS = ("admin", "eng", "eng2")


def add_second_technician(tenant: Tenant, name: str) -> None:
    account = db.session.get(Account, tenant.account_id)
    slug = name.lower().replace(" ", "-")
    user, token = create_user(account, f"{name} Tech Two", f"tech2@{slug}.example", "technician")
    tenant.tokens["tech2"], tenant.users["tech2"] = token, user.id


@dataclass
class Places:
    """One account's things, in known states."""

    tenant: Tenant
    session: int  # active, never escalated
    open_handoff: int
    claimed_handoff: int  # claimed by "eng"
    ids: dict[str, int] = field(default_factory=dict)


def populate(client, tenant: Tenant) -> Places:
    session = new_session(client, tenant, title="Printer offline")
    open_handoff = new_handoff(client, tenant)
    claimed = new_handoff(client, tenant)
    response = client.post(f"{API}/escalations/{claimed['id']}/claim", headers=tenant.auth("eng"))
    assert response.status_code == 200
    places = Places(tenant, session["id"], open_handoff["id"], claimed["id"])
    places.ids = {
        "session": places.session,
        "open": places.open_handoff,
        "claimed": places.claimed_handoff,
    }
    return places


@dataclass
class World:
    client: object
    alpha: Places
    beta: Places


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two accounts with sessions and handoffs in every state; shared by the read-only tests."""
    path = tmp_path_factory.mktemp("access") / "test.db"
    with running_app(app_config(f"sqlite:///{path}")) as app:
        client = app.test_client()
        tenants = []
        for name in ("Alpha MSP", "Beta MSP"):
            tenant = make_tenant(name)
            add_second_technician(tenant, name)
            tenants.append(populate(client, tenant))
        yield World(client, *tenants)


# Every endpoint of Users, Account, Sessions and Escalations, with a valid request.
# `target` names the id placed into the path (see Places.ids).
@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict | None = None
    target: str | None = None
    roles: tuple[str, ...] = ROLES  # the roles that pass the endpoint's role gate

    def url(self, places: Places | None = None, id_: int | None = None) -> str:
        if self.target is None:
            return API + self.path
        return API + self.path.format(id=id_ if id_ is not None else places.ids[self.target])

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("POST", "/users", {"name": "N", "email": "n@x.example", "role": "engineer"},
             roles=("admin",)),
    Endpoint("GET", "/me"),
    Endpoint("PATCH", "/account", {"timezone": "Europe/Berlin"}, roles=("admin",)),
    Endpoint("POST", "/sessions", {"title": "T", "snapshot": {}}),
    Endpoint("GET", "/sessions/{id}", target="session"),
    Endpoint("POST", "/sessions/{id}/messages", {"body": "hello"}, target="session"),
    Endpoint("POST", "/sessions/{id}/psa-writeback", {"note": "n"}, target="session"),
    Endpoint("POST", "/sessions/{id}/escalate", {"reason": "r"}, target="session"),
    Endpoint("GET", "/escalations", roles=SENIORS),
    Endpoint("GET", "/escalations/{id}", target="open"),
    Endpoint("POST", "/escalations/{id}/claim", target="open", roles=SENIORS),
    Endpoint("POST", "/escalations/{id}/resolve", target="claimed"),
    Endpoint("GET", "/escalations/{id}/deliveries", target="open", roles=SENIORS),
]  # fmt: skip
WITH_IDS = [e for e in ENDPOINTS if e.target]


def call(client, endpoint: Endpoint, url: str, headers: dict | None = None):
    return client.open(url, method=endpoint.method, json=endpoint.body, headers=headers or {})


def owner_view(client, places: Places) -> dict:
    """What the account's own admin reads about its things."""
    auth = places.tenant.auth("admin")
    view = {
        "session": client.get(f"{API}/sessions/{places.session}", headers=auth).get_json(),
        "queue": client.get(f"{API}/escalations?status=all", headers=auth).get_json(),
        "me": client.get(f"{API}/me", headers=auth).get_json(),
    }
    for key in ("open", "claimed"):
        handoff_id = places.ids[key]
        view[key] = client.get(f"{API}/escalations/{handoff_id}", headers=auth).get_json()
        view[f"{key}_deliveries"] = client.get(
            f"{API}/escalations/{handoff_id}/deliveries", headers=auth
        ).get_json()
    return view


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_anonymous_requests_are_401_and_change_nothing(world, endpoint):
    before = database_snapshot()
    response = call(world.client, endpoint, endpoint.url(world.alpha))
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert database_snapshot() == before


def bad_authorization_headers(token: str) -> list[str]:
    return [
        "",
        "Bearer",
        "Bearer ",
        "Bearer     ",
        "Basic YWRtaW46cGFzc3dvcmQ=",
        f"Token {token}",
        token,
        f"Bearer {token}x",
        f"Bearer {token[:-1]}",
        f"Bearer {token} {token}",
        f"Bearer\t{token}",
        "Bearer " + "a" * 5000,
        "Bearer \xff\xfe\xe9",
        "Bearer null",
    ]


def test_malformed_or_wrong_bearer_tokens_are_401(world):
    token = world.alpha.tenant.tokens["admin"]
    escalate = ENDPOINTS[7]
    for header in bad_authorization_headers(token):
        headers = {"Authorization": header}
        assert_error(world.client.get(f"{API}/me", headers=headers), 401, "unauthorized")
        before = database_snapshot()
        response = call(world.client, escalate, escalate.url(world.alpha), headers)
        assert_error(response, 401, "unauthorized")
        assert database_snapshot() == before, header


def test_the_scheme_is_case_insensitive(world):
    token = world.alpha.tenant.tokens["admin"]
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = world.client.get(f"{API}/me", headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200
        assert response.get_json()["id"] == world.alpha.tenant.users["admin"]


def test_a_bad_bearer_token_is_not_rescued_by_a_login_cookie(app, client, tenant):
    cookie_login(client, tenant.users["eng"])
    assert client.get(f"{API}/me").get_json()["id"] == tenant.users["eng"]
    assert_error(client.get(f"{API}/me", headers={"Authorization": "Bearer nope"}), 401)


# ---------------------------------------------------------------- the tenant matrix


@pytest.mark.parametrize("direction", ["alpha->beta", "beta->alpha"])
@pytest.mark.parametrize("endpoint", WITH_IDS, ids=str)
def test_another_accounts_ids_are_404_and_nothing_changes_there(world, endpoint, direction):
    caller, owner = (
        (world.alpha, world.beta) if direction == "alpha->beta" else (world.beta, world.alpha)
    )
    before, view_before = database_snapshot(), owner_view(world.client, owner)
    for role in endpoint.roles:
        response = call(world.client, endpoint, endpoint.url(owner), caller.tenant.auth(role))
        error = assert_error(response, 404, "not_found")
        # The same answer as for an id that exists nowhere.
        missing = call(
            world.client, endpoint, endpoint.url(id_=987654321), caller.tenant.auth(role)
        )
        assert missing.get_json()["error"] == error, role
    assert database_snapshot() == before
    assert owner_view(world.client, owner) == view_before


@pytest.mark.parametrize("endpoint", [e for e in WITH_IDS if e.roles == SENIORS], ids=str)
def test_a_role_gate_answers_the_same_for_foreign_and_missing_ids(world, endpoint):
    """A technician stopped by a role gate learns nothing about another account's ids."""
    headers = world.alpha.tenant.auth("tech")
    foreign = call(world.client, endpoint, endpoint.url(world.beta), headers)
    missing = call(world.client, endpoint, endpoint.url(id_=987654321), headers)
    assert assert_error(foreign, 403, "forbidden") == assert_error(missing, 403, "forbidden")


def test_the_queue_lists_only_the_callers_account(world):
    for places, other in ((world.alpha, world.beta), (world.beta, world.alpha)):
        for role in SENIORS:
            page = world.client.get(
                f"{API}/escalations?status=all&limit=200", headers=places.tenant.auth(role)
            ).get_json()
            ids = {h["id"] for h in page["items"]}
            assert {places.open_handoff, places.claimed_handoff} <= ids
            assert not ids & {other.open_handoff, other.claimed_handoff}


def test_users_and_settings_stay_in_the_callers_account(app, client, tenant, other_tenant):
    beta_view = client.get(f"{API}/me", headers=other_tenant.auth("admin")).get_json()
    created = client.post(
        f"{API}/users",
        json={"name": "Nina New", "email": "nina@alpha.example", "role": "engineer"},
        headers=tenant.auth("admin"),
    )
    assert created.status_code == 201
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {created.get_json()['token']}"})
    assert me.get_json()["account"]["id"] == tenant.account_id
    patched = client.patch(
        f"{API}/account", json={"timezone": "Asia/Tokyo"}, headers=tenant.auth("admin")
    )
    assert patched.get_json()["id"] == tenant.account_id
    assert client.get(f"{API}/me", headers=other_tenant.auth("admin")).get_json() == beta_view
    assert db.session.get(Account, other_tenant.account_id).timezone == "UTC"


# ---------------------------------------------------------------- role gates


@pytest.fixture
def alpha(app, client, tenant) -> Tenant:
    add_second_technician(tenant, "Alpha MSP")
    return tenant


def forbidden(response) -> None:
    assert_error(response, 403, "forbidden")


def test_only_an_admin_may_add_users(client, alpha):
    body = {"name": "Eve", "email": "eve@alpha.example", "role": "admin"}
    for role in ("tech", "tech2", "eng", "eng2"):
        before = database_snapshot()
        forbidden(client.post(f"{API}/users", json=body, headers=alpha.auth(role)))
        assert database_snapshot() == before
    assert client.post(f"{API}/users", json=body, headers=alpha.auth("admin")).status_code == 201


def test_only_an_admin_may_change_the_account(client, alpha):
    body = {"manual_baseline_minutes": 5, "timezone": "Europe/Paris"}
    for role in ("tech", "tech2", "eng", "eng2"):
        forbidden(client.patch(f"{API}/account", json=body, headers=alpha.auth(role)))
    account = db.session.get(Account, alpha.account_id)
    assert (account.manual_baseline_minutes, account.timezone) == (45, "UTC")
    assert client.patch(f"{API}/account", json=body, headers=alpha.auth("admin")).status_code == 200


def test_the_queue_is_for_engineers_and_admins(client, alpha):
    new_handoff(client, alpha)
    for role in ("tech", "tech2"):
        forbidden(client.get(f"{API}/escalations", headers=alpha.auth(role)))
    for role in SENIORS:
        response = client.get(f"{API}/escalations", headers=alpha.auth(role))
        assert response.status_code == 200 and len(response.get_json()["items"]) == 1


def test_claiming_is_for_engineers_and_admins(client, alpha):
    handoff = new_handoff(client, alpha)
    url = f"{API}/escalations/{handoff['id']}/claim"
    for role in ("tech", "tech2"):  # "tech" escalated it, and still may not claim it
        forbidden(client.post(url, headers=alpha.auth(role)))
    assert db.session.get(Handoff, handoff["id"]).status == "open"
    assert client.post(url, headers=alpha.auth("admin")).status_code == 200


def test_deliveries_are_for_engineers_and_admins(client, alpha):
    handoff = new_handoff(client, alpha)
    url = f"{API}/escalations/{handoff['id']}/deliveries"
    for role in ("tech", "tech2"):
        forbidden(client.get(url, headers=alpha.auth(role)))
    for role in SENIORS:
        assert client.get(url, headers=alpha.auth(role)).status_code == 200


def test_resolving_is_for_the_claimer_or_an_admin(client, alpha):
    first, second = new_handoff(client, alpha), new_handoff(client, alpha)
    url = f"{API}/escalations/{first['id']}"
    forbidden(client.post(f"{url}/resolve", headers=alpha.auth("tech")))  # open
    client.post(f"{url}/claim", headers=alpha.auth("eng"))
    for role in ("tech", "tech2", "eng2"):
        forbidden(client.post(f"{url}/resolve", headers=alpha.auth(role)))
    assert db.session.get(Handoff, first["id"]).status == "claimed"
    resolved = client.post(f"{url}/resolve", headers=alpha.auth("eng"))
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "resolved"

    url = f"{API}/escalations/{second['id']}"
    client.post(f"{url}/claim", headers=alpha.auth("eng2"))
    resolved = client.post(f"{url}/resolve", headers=alpha.auth("admin"))  # not the claimer
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "resolved"


def test_a_session_is_for_its_technician_and_the_seniors(client, alpha):
    session = new_session(client, alpha)
    url = f"{API}/sessions/{session['id']}"
    before = database_snapshot()
    forbidden(client.get(url, headers=alpha.auth("tech2")))
    forbidden(client.post(f"{url}/messages", json={"body": "x"}, headers=alpha.auth("tech2")))
    forbidden(client.post(f"{url}/psa-writeback", json={"note": "x"}, headers=alpha.auth("tech2")))
    forbidden(client.post(f"{url}/escalate", json={"reason": "x"}, headers=alpha.auth("tech2")))
    assert database_snapshot() == before
    for role in ("tech", *SENIORS):
        assert client.get(url, headers=alpha.auth(role)).status_code == 200
        posted = client.post(f"{url}/messages", json={"body": role}, headers=alpha.auth(role))
        assert posted.status_code == 201
        noted = client.post(f"{url}/psa-writeback", json={"note": role}, headers=alpha.auth(role))
        assert noted.status_code == 201
    messages = client.get(url, headers=alpha.auth("tech")).get_json()["messages"]
    assert [m["body"] for m in messages] == ["tech", *SENIORS]


def test_a_session_is_escalated_by_its_technician_or_an_admin(client, alpha):
    session = new_session(client, alpha)
    url = f"{API}/sessions/{session['id']}/escalate"
    for role in ("tech2", "eng", "eng2"):
        forbidden(client.post(url, json={"reason": "x"}, headers=alpha.auth(role)))
    assert db.session.scalar(select(func.count()).select_from(Handoff)) == 0
    assert client.post(url, json={"reason": "x"}, headers=alpha.auth("admin")).status_code == 201


def test_a_handoff_is_for_the_seniors_and_the_escalating_technician(client, alpha):
    handoff = new_handoff(client, alpha)
    url = f"{API}/escalations/{handoff['id']}"
    forbidden(client.get(url, headers=alpha.auth("tech2")))
    for role in ("tech", *SENIORS):
        assert client.get(url, headers=alpha.auth(role)).get_json()["id"] == handoff["id"]


def test_every_role_may_read_itself_and_start_a_session(client, alpha):
    roles = {"admin": "admin", "tech": "technician", "tech2": "technician", "eng": "engineer"}
    for who, role in roles.items():
        me = client.get(f"{API}/me", headers=alpha.auth(who)).get_json()
        assert (me["id"], me["role"]) == (alpha.users[who], role)
        session = new_session(client, alpha, who=who)
        assert session["technician"]["id"] == alpha.users[who]
    assert db.session.get(User, alpha.users["tech2"]).account_id == alpha.account_id
