"""The contract's error shape for bad requests, and proof that a bad request changes nothing.

Every 4xx is {"error": {"code", "message", "details"}}: 400 `bad_request` for a body that
is not a JSON object, 422 `validation_error` with `details` mapping field → messages.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories import app_config, make_tenant, new_session, running_app
from tests.web.contract import assert_error, assert_field_errors, database_snapshot

API = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One account and one active session; every request in these tests is refused."""
    path = tmp_path_factory.mktemp("errors") / "test.db"
    with running_app(app_config(f"sqlite:///{path}")) as app:
        client = app.test_client()
        tenant = make_tenant("Alpha MSP")
        session = new_session(client, tenant)
        yield client, tenant, session["id"]


# endpoint key → (method, path, who calls, a valid body)
BODY_ENDPOINTS = {
    "users": ("POST", "/users", "admin", {"name": "N", "email": "n@x.example", "role": "engineer"}),
    "account": ("PATCH", "/account", "admin", {"manual_baseline_minutes": 30}),
    "sessions": ("POST", "/sessions", "tech", {"title": "T", "snapshot": {"a": 1}}),
    "messages": ("POST", "/sessions/{id}/messages", "tech", {"body": "hello"}),
    "psa": ("POST", "/sessions/{id}/psa-writeback", "tech", {"note": "n"}),
    "escalate": ("POST", "/sessions/{id}/escalate", "tech", {"reason": "r"}),
}


def send(world, key: str, *, body=None, data=None, content_type="application/json", **headers):
    client, tenant, session_id = world
    method, path, who, _ = BODY_ENDPOINTS[key]
    url = API + path.format(id=session_id)
    headers = {**tenant.auth(who), **headers}
    if data is None:
        data = json.dumps(body)
    return client.open(url, method=method, data=data, content_type=content_type, headers=headers)


def refused(world, key: str, status: int, code: str, **request) -> dict:
    """Send a bad request; assert the error shape and that the database did not change."""
    before = database_snapshot()
    error = assert_error(send(world, key, **request), status, code)
    assert database_snapshot() == before
    return error


def with_field(key: str, field: str, value) -> dict:
    return {**BODY_ENDPOINTS[key][3], field: value}


def without_field(key: str, field: str) -> dict:
    return {k: v for k, v in BODY_ENDPOINTS[key][3].items() if k != field}


# ---------------------------------------------------------------- 400: not a JSON object

NOT_AN_OBJECT = [
    b"[]",
    b'[{"reason": "r", "body": "b"}]',
    b'"a string"',
    b"42",
    b"-1.5",
    b"null",
    b"true",
    b"",
    b"   \n",
    b"{bad json",
    b'{"reason": "r",}',
    b'{"reason": "r"} {"reason": "r"}',
    b"\xff\xfe{}",
    b"reason=r",
]


@pytest.mark.parametrize("key", BODY_ENDPOINTS)
def test_a_body_that_is_not_a_json_object_is_400(world, key):
    for raw in NOT_AN_OBJECT:
        error = refused(world, key, 400, "bad_request", data=raw)
        assert error["details"] == {}, raw


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_the_body_is_json_whatever_the_content_type_says(world, content_type):
    refused(world, "escalate", 400, "bad_request", data=b"reason=r", content_type=content_type)
    refused(world, "escalate", 400, "bad_request", data=b"[1]", content_type=content_type)


# ---------------------------------------------------------------- 422: field details

WRONG_TYPES = [
    ("users", "name", 5),
    ("users", "name", None),
    ("users", "email", 5),
    ("users", "email", "not-an-email"),
    ("users", "role", 5),
    ("users", "role", ["admin"]),
    ("users", "password", 12345678),
    ("account", "manual_baseline_minutes", "60"),
    ("account", "manual_baseline_minutes", 1.5),
    ("account", "manual_baseline_minutes", True),
    ("account", "manual_baseline_minutes", None),
    ("account", "timezone", 5),
    ("account", "timezone", None),
    ("sessions", "title", 5),
    ("sessions", "title", None),
    ("sessions", "snapshot", "text"),
    ("sessions", "snapshot", [1, 2]),
    ("sessions", "snapshot", None),
    ("sessions", "ai_assessment", [1]),
    ("sessions", "ai_assessment", "text"),
    ("messages", "body", 5),
    ("messages", "body", ["hi"]),
    ("messages", "body", None),
    ("psa", "note", {"text": "n"}),
    ("psa", "note", False),
    ("escalate", "reason", 5),
    ("escalate", "reason", {"why": "x"}),
    ("escalate", "reason", None),
    ("escalate", "notes", 5),
    ("escalate", "notes", ["n"]),
]


@pytest.mark.parametrize(("key", "field", "value"), WRONG_TYPES)
def test_wrong_types_are_422_naming_the_field(world, key, field, value):
    before = database_snapshot()
    details = assert_field_errors(send(world, key, body=with_field(key, field, value)), field)
    assert set(details) == {field}
    assert database_snapshot() == before


MISSING = [
    ("users", ("name", "email", "role")),
    ("sessions", ("title", "snapshot")),
    ("messages", ("body",)),
    ("psa", ("note",)),
    ("escalate", ("reason",)),
]


@pytest.mark.parametrize(("key", "fields"), MISSING)
def test_missing_fields_are_422_each_named(world, key, fields):
    before = database_snapshot()
    details = assert_field_errors(send(world, key, body={}), *fields)
    assert set(details) == set(fields)
    for name in fields:  # and one at a time
        assert set(assert_field_errors(send(world, key, body=without_field(key, name)))) == {name}
    assert database_snapshot() == before


OVERSIZE = [
    ("sessions", "title", 201),
    ("escalate", "reason", 2001),
    ("escalate", "notes", 10_001),
    ("messages", "body", 10_001),
    ("psa", "note", 10_001),
    ("users", "name", 201),
    ("users", "password", 129),
    ("account", "timezone", 65),
]


@pytest.mark.parametrize(("key", "field", "length"), OVERSIZE)
def test_oversize_strings_are_422(world, key, field, length):
    before = database_snapshot()
    details = assert_field_errors(
        send(world, key, body=with_field(key, field, "x" * length)), field
    )
    assert set(details) == {field}
    assert database_snapshot() == before


def test_an_oversize_email_is_422(world):
    email = "a" * 250 + "@x.example"
    assert_field_errors(send(world, "users", body=with_field("users", "email", email)), "email")


def test_strings_at_their_limit_are_accepted(client, tenant):
    session = client.post(
        f"{API}/sessions", json={"title": "t" * 200, "snapshot": {}}, headers=tenant.auth("tech")
    )
    assert session.status_code == 201 and len(session.get_json()["title"]) == 200
    url = f"{API}/sessions/{session.get_json()['id']}"
    message = client.post(
        f"{url}/messages", json={"body": "b" * 10_000}, headers=tenant.auth("tech")
    )
    assert message.status_code == 201
    note = client.post(
        f"{url}/psa-writeback", json={"note": "n" * 10_000}, headers=tenant.auth("tech")
    )
    assert note.status_code == 201
    handoff = client.post(
        f"{url}/escalate",
        json={"reason": "r" * 2000, "notes": "n" * 10_000},
        headers=tenant.auth("tech"),
    )
    assert handoff.status_code == 201 and len(handoff.get_json()["reason"]) == 2000


BLANK = [
    ("sessions", "title", "   "),
    ("sessions", "title", ""),
    ("escalate", "reason", "\n\t "),
    ("messages", "body", " "),
    ("psa", "note", ""),
    ("users", "name", "  "),
]


@pytest.mark.parametrize(("key", "field", "value"), BLANK)
def test_blank_strings_are_422(world, key, field, value):
    before = database_snapshot()
    assert_field_errors(send(world, key, body=with_field(key, field, value)), field)
    assert database_snapshot() == before


@pytest.mark.parametrize("role", ["superuser", "Admin", "owner", ""])
def test_an_unknown_role_is_422(world, role):
    before = database_snapshot()
    assert_field_errors(send(world, "users", body=with_field("users", "role", role)), "role")
    assert database_snapshot() == before


def test_an_unknown_time_zone_is_422(world):
    for name in ("Mars/Olympus", "utc+2", "../../etc/passwd", ""):
        before = database_snapshot()
        body = {"timezone": name}
        assert_field_errors(send(world, "account", body=body), "timezone")
        assert database_snapshot() == before


def test_text_no_database_can_store_is_422(world):
    """NUL characters, lone surrogates and absurd nesting: refused, on every database."""
    deep: dict = {}
    for _ in range(100):
        deep = {"a": deep}
    cases = [
        ("sessions", "title", "VPN\x00down"),
        ("sessions", "snapshot", {"log": ["ok", "bad\x00byte"]}),
        ("sessions", "snapshot", deep),
        ("sessions", "snapshot", {"k\x00ey": 1}),
        ("escalate", "reason", "\ud800 lone surrogate"),
        ("messages", "body", "\udfff"),
        ("users", "name", "Bad\ud834Name"),
    ]
    for key, field, value in cases:
        # ensure_ascii keeps lone surrogates as \uXXXX escapes: valid JSON text on the wire.
        data = json.dumps(with_field(key, field, value), ensure_ascii=True)
        before = database_snapshot()
        details = assert_field_errors(send(world, key, data=data), field)
        assert set(details) == {field}, (key, field, details)
        assert database_snapshot() == before


def test_a_snapshot_over_the_size_limit_is_422(world):
    snapshot = {"log": ["x" * 1000] * 300}  # ~300 KB of JSON, under the request size limit
    assert_field_errors(send(world, "sessions", body=with_field("sessions", "snapshot", snapshot)))


def test_a_request_over_the_size_limit_is_413(world):
    refused(world, "escalate", 413, "payload_too_large", body={"reason": "r" * (2 * 1024 * 1024)})


@pytest.mark.parametrize("key", [" ", "x" * 201, "caf\xe9", "tab\there"])
def test_a_bad_idempotency_key_is_422(world, key):
    before = database_snapshot()
    response = send(world, "escalate", body={"reason": "r"}, **{"Idempotency-Key": key})
    assert_field_errors(response, "Idempotency-Key")
    assert database_snapshot() == before


# ---------------------------------------------------------------- the queue's query string


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BAD_QUERIES = [
    ("status=pending", "status"),
    ("status=OPEN", "status"),
    ("status=", "status"),
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=1.5", "limit"),
    ("limit=", "limit"),
    ("cursor=!!!", "cursor"),
    (f"cursor={cursor_of('abc')}", "cursor"),
    (f"cursor={cursor_of('-1')}", "cursor"),
    (f"cursor={cursor_of('9' * 19)}", "cursor"),
    ("cursor=" + "A" * 65, "cursor"),
]


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES)
def test_bad_queue_filters_are_422(world, query, field):
    client, tenant, _ = world
    response = client.get(f"{API}/escalations?{query}", headers=tenant.auth("eng"))
    assert set(assert_field_errors(response, field)) == {field}


def test_all_bad_queue_filters_are_reported_together(world):
    client, tenant, _ = world
    response = client.get(f"{API}/escalations?status=x&limit=0", headers=tenant.auth("eng"))
    assert set(assert_field_errors(response, "status", "limit")) == {"status", "limit"}


# ---------------------------------------------------------------- unknown paths and methods


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/sessions/abc",
        "/api/v1/sessions/-1",
        "/api/v1/sessions/1234567890123456789",
        "/api/v1/escalations/1/unclaim",
        "/api/v2/escalations",
    ],
)
def test_an_unknown_api_path_is_a_json_404(world, path):
    client, tenant, _ = world
    for headers in ({}, tenant.auth("admin")):
        assert_error(client.get(path, headers=headers), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/sessions"),
        ("GET", "/sessions"),
        ("PUT", "/escalations/1/claim"),
        ("GET", "/escalations/1/claim"),
        ("POST", "/me"),
        ("DELETE", "/account"),
        ("POST", "/escalations"),
    ],
)
def test_a_wrong_method_is_a_json_405(world, method, path):
    client, tenant, _ = world
    before = database_snapshot()
    response = client.open(API + path, method=method, json={}, headers=tenant.auth("admin"))
    assert_error(response, 405, "method_not_allowed")
    assert method not in response.headers["Allow"]
    assert database_snapshot() == before
