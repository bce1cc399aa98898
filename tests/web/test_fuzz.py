"""Schema-driven fuzzing of the whole API, and properties of the session and escalate bodies.

schemathesis generates requests from the app's own OpenAPI document (/api/v1/openapi.json),
valid ones and deliberately invalid ones, and sends them through the WSGI app as an admin
and as a technician, with path ids that exist in the caller's account, in the other
account, or nowhere. Every answer must be below 500; every 4xx must have the contract's
error shape; another account's ids never succeed; and every answer must match what the
document promises (a documented status code, its content type and its body schema).

Bounded and deterministic: FUZZ_EXAMPLES examples per operation and generation mode
(default 30); set FUZZ_SEED to explore other examples.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import (
    Tenant,
    app_config,
    make_tenant,
    new_handoff,
    new_session,
    running_app,
)

API = "/api/v1"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
SEED = os.environ.get("FUZZ_SEED")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ERROR_KEYS = {"code", "message", "details"}


@dataclass
class Ids:
    """Path ids by parameter name."""

    by_param: dict[str, list[int]] = field(
        default_factory=lambda: {"session_id": [], "handoff_id": [], "user_id": [], "token_id": []}
    )

    def add(self, session_id: int, handoff_id: int | None = None) -> None:
        self.by_param["session_id"].append(session_id)
        if handoff_id is not None:
            self.by_param["handoff_id"].append(handoff_id)


def populate(client, tenant: Tenant) -> Ids:
    """Sessions and handoffs in every state, so fuzzed ids reach the domain's branches."""
    ids = Ids()
    ids.add(new_session(client, tenant)["id"])
    for final_state in ("open", "claimed", "resolved"):
        handoff = new_handoff(client, tenant)
        url = f"{API}/escalations/{handoff['id']}"
        if final_state in ("claimed", "resolved"):
            assert client.post(f"{url}/claim", headers=tenant.auth("eng")).status_code == 200
        if final_state == "resolved":
            assert client.post(f"{url}/resolve", headers=tenant.auth("eng")).status_code == 200
        ids.add(handoff["session_id"], handoff["id"])
    # Throwaway users and their tokens: fuzzing may deactivate or revoke these, never the
    # callers' own credentials.
    for n in (1, 2):
        made = client.post(
            f"{API}/users",
            json={"name": f"Spare {n}", "email": f"spare{n}-{tenant.account_id}@x.example",
                  "role": "engineer"},
            headers=tenant.auth("admin"),
        )  # fmt: skip
        assert made.status_code == 201, made.get_json()
        user_id = made.get_json()["user"]["id"]
        ids.by_param["user_id"].append(user_id)
        tokens = client.get(f"{API}/tokens?user_id={user_id}", headers=tenant.auth("admin"))
        ids.by_param["token_id"].extend(item["id"] for item in tokens.get_json()["items"])
    return ids


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "test.db"
    with running_app(app_config(f"sqlite:///{path}")) as app:
        client = app.test_client()
        alpha, beta = make_tenant("Alpha MSP"), make_tenant("Beta MSP")
        yield app, alpha, populate(client, alpha), populate(client, beta)


def case_strategy(operation, mode: GenerationMode, own: Ids, foreign: Ids):
    """Generated cases; where the path takes an id, also cases with real ids."""
    plain = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters]
    if len(names) != 1 or names[0] not in own.by_param:
        return plain  # no path id, or one that is not a row id (a PSA callback key)
    (name,) = names

    def with_one_of(ids: list[int]):
        return st.sampled_from(ids).flatmap(
            lambda id_: operation.as_strategy(generation_mode=mode, path_parameters={name: id_})
        )

    return st.one_of(plain, with_one_of(own.by_param[name]), with_one_of(foreign.by_param[name]))


def check_answer(case, response, foreign: Ids) -> None:
    case.validate_response(response, checks=CHECKS)
    status = response.status_code
    if 400 <= status < 500:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error"}, body
        assert set(body["error"]) == ERROR_KEYS, body
        assert isinstance(body["error"]["details"], dict), body
    for name, value in (case.path_parameters or {}).items():
        if value in foreign.by_param.get(name, []):
            assert status not in range(200, 300) and status != 409, (
                f"another account's {name}={value} answered {status}"
            )


def fuzz_run(operation, mode: GenerationMode, auth: dict, own: Ids, foreign: Ids):
    """A bounded hypothesis run of one operation in one generation mode."""

    @given(case=case_strategy(operation, mode, own, foreign))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(headers=auth)
        check_answer(case, response, foreign)

    return run if SEED is None else seed(int(SEED))(run)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("who", ["admin", "tech"])
def test_fuzzed_requests_never_get_a_server_error(fuzz_world, who):
    app, alpha, own, foreign = fuzz_world
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_run(operation, mode, alpha.auth(who), own, foreign)()
            except Exception as exc:  # hypothesis raises the (shrunk) failure: collect them all
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)


# ---------------------------------------------------------------- body properties

MAX_DEPTH = 32  # containers nested this deep (the body itself is level 0) are refused
any_character = st.characters(exclude_categories=())  # surrogates and NUL included
unstorable = st.sampled_from(["\x00", "\ud800", "\udfff", "\udbff\x00"])
text = st.text(any_character, max_size=12) | st.tuples(
    st.text(max_size=4), unstorable, st.text(max_size=4)
).map("".join)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=12,
)


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def sized_text(limit: int):
    """Strings around `limit`, blank ones, padded ones, and arbitrary text."""
    return st.one_of(
        st.integers(limit - 2, limit + 2).map(lambda n: "x" * n),
        st.integers(0, 3).map(lambda n: " \t\n"[:n]),
        st.tuples(st.integers(1, limit), st.integers(1, 3)).map(
            lambda t: " " * t[1] + "y" * t[0] + "\n" * t[1]
        ),
        text,
    )


def storable(value, depth: int = 1) -> bool:
    """The oracle for what any database can store (no NUL, valid Unicode, bounded depth)."""
    if isinstance(value, str):
        return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list | dict) and depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(storable(k, depth + 1) and storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v, depth + 1) for v in value)
    return True


def text_ok(value, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= limit


def expected_field_errors(body: dict, rules: dict) -> set[str]:
    """Fields the API must name in a 422, per the contract's rules; empty when valid."""
    unstorable = {
        name for name, value in body.items() if not storable(name, 0) or not storable(value)
    }
    unstorable = {name if storable(name, 0) else "_schema" for name in unstorable}
    if unstorable:
        return unstorable
    return {name for name, ok in rules.items() if not ok(body)}


ESCALATE_RULES = {
    "reason": lambda b: text_ok(b.get("reason"), 2000),
    "notes": lambda b: (
        b.get("notes") is None or (isinstance(b["notes"], str) and len(b["notes"]) <= 10_000)
    ),
}
SESSION_RULES = {
    "title": lambda b: text_ok(b.get("title"), 200),
    "snapshot": lambda b: isinstance(b.get("snapshot"), dict),
    "ai_assessment": lambda b: (
        b.get("ai_assessment") is None or isinstance(b["ai_assessment"], dict)
    ),
}
objects = st.dictionaries(text, json_values, max_size=3) | st.integers(28, 36).map(nested)
escalate_bodies = st.fixed_dictionaries(
    {},
    optional={
        "reason": sized_text(2000) | json_values,
        "notes": sized_text(10_000) | json_values,
        "extra": json_values,
    },
)
session_bodies = st.fixed_dictionaries(
    {},
    optional={
        "title": sized_text(200) | json_values,
        "snapshot": objects | json_values,
        "ai_assessment": objects | json_values,
        "extra": json_values,
    },
)
PROPERTY_SETTINGS = settings(
    max_examples=2 * EXAMPLES,
    deadline=None,
    database=None,
    derandomize=SEED is None,
    suppress_health_check=list(HealthCheck),
)


def post_raw(client, url: str, body: dict, headers: dict):
    # ensure_ascii: lone surrogates travel as \uXXXX escapes, which is valid JSON text.
    return client.post(url, data=json.dumps(body, ensure_ascii=True), headers=headers,
                       content_type="application/json")  # fmt: skip


def assert_refused_naming(response, fields: set[str]) -> None:
    assert response.status_code == 422, (response.status_code, response.get_json())
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == fields, error


def test_escalate_bodies_are_accepted_exactly_when_the_contract_says(fuzz_world):
    app, alpha, _, _ = fuzz_world
    client = app.test_client()

    @PROPERTY_SETTINGS
    @given(body=escalate_bodies)
    def check(body):
        session = new_session(client, alpha)
        url = f"{API}/sessions/{session['id']}/escalate"
        response = post_raw(client, url, body, alpha.auth("tech"))
        invalid = expected_field_errors(body, ESCALATE_RULES)
        if invalid:
            assert_refused_naming(response, invalid)
            detail = client.get(f"{API}/sessions/{session['id']}", headers=alpha.auth("tech"))
            assert detail.get_json()["status"] == "active" and detail.get_json()["handoff"] is None
        else:
            assert response.status_code == 201, response.get_json()
            handoff = response.get_json()
            assert handoff["reason"] == body["reason"].strip()
            assert handoff["escalation_package"]["notes"] == body.get("notes")
            assert handoff["status"] == "open" and handoff["session_id"] == session["id"]

    check()


def test_session_bodies_are_accepted_exactly_when_the_contract_says(fuzz_world):
    app, alpha, _, _ = fuzz_world
    client = app.test_client()

    @PROPERTY_SETTINGS
    @given(body=session_bodies)
    def check(body):
        response = post_raw(client, f"{API}/sessions", body, alpha.auth("tech"))
        invalid = expected_field_errors(body, SESSION_RULES)
        if invalid:
            assert_refused_naming(response, invalid)
        else:
            assert response.status_code == 201, response.get_json()
            session = response.get_json()
            assert session["title"] == body["title"].strip()
            assert session["snapshot"] == body["snapshot"]
            assert session["ai_assessment"] == (body.get("ai_assessment") or {})
            assert session["status"] == "active"

    check()
