"""GET /analytics/escalation-metrics: the owner's figures as an API client reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.rollup import Month, roll_up
from tests.factories import new_handoff
from tests.models.rollup_dataset import (  # noqa: F401 - database_url is a fixture
    CHICAGO,
    EXPECTED,
    TOKYO,
    chicago_handoffs,
    database_url,
    tenant_without_passwords,
    tokyo_handoffs,
)
from web.api.analytics import EscalationMetricsSchema

URL = "/api/v1/analytics/escalation-metrics"
# Validation and role gates do not depend on the database: SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
APRIL_FIRST_NOON = datetime(2026, 4, 1, 12, 0)


@pytest.fixture
def chicago(app):
    tenant = tenant_without_passwords("Chicago MSP", CHICAGO)
    chicago_handoffs(tenant.account_id, tenant.users["eng"])
    return tenant


@pytest.fixture
def tokyo(app):
    tenant = tenant_without_passwords("Tokyo MSP", TOKYO, baseline=30)
    tokyo_handoffs(tenant.account_id, tenant.users["eng"])
    return tenant


def get(client, tenant, who="eng", **query):
    return client.get(URL, query_string=query, headers=tenant.auth(who))


# The unclaimed-handoff figures are checked in tests/web/test_handover_api.py (this dataset
# has no claims or admin steps).
ROLLED_UP = set(EscalationMetricsSchema().fields) - {
    "computed_at",
    "avg_time_to_claim_minutes",
    "escalated_to_admins",
}


def without_computed_at(body: dict) -> dict:
    """The rolled-up figures of a month (not the spread read beside them)."""
    return {key: value for key, value in body.items() if key in ROLLED_UP}


def test_figures_equal_the_hand_computation_for_each_account(client, chicago, tokyo):
    roll_up(now=APRIL_FIRST_NOON)
    for tenant, name in ((chicago, "chicago"), (tokyo, "tokyo")):
        for month in ("2026-03", "2026-04"):
            response = get(client, tenant, month=month)
            assert response.status_code == 200
            body = response.get_json()
            # Each account sees only its own handoffs, though both have some in these months.
            rolled_up = {key: body[key] for key in ("month", *EXPECTED[name][month])}
            assert rolled_up == {"month": month, **EXPECTED[name][month]}
            # The month's spread comes with it, its sample size that of the first actions.
            assert body["time_to_first_action_sample_size"] == body["first_actions"]
            assert body["computed_at"] == "2026-04-01T12:00:00Z"


def test_history_is_newest_first_and_fills_months_not_rolled_up(client, chicago, tokyo):
    roll_up(now=APRIL_FIRST_NOON)
    roll_up([Month(2026, 2)], account_id=chicago.account_id)
    response = get(client, chicago, who="admin", months=4, month="2026-04")
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [item["month"] for item in items] == ["2026-04", "2026-03", "2026-02", "2026-01"]
    for item in items[:3]:
        assert without_computed_at(item) == {
            "month": item["month"],
            **EXPECTED["chicago"][item["month"]],
        }
    # February: escalations but no first action, so nothing to average.
    assert items[2]["avg_time_to_first_action_minutes"] is None
    assert items[2]["minutes_recovered_per_escalation"] is None
    # January was never rolled up: zeros, nulls, the account's baseline, computed_at null.
    assert items[3] == {
        "month": "2026-01",
        "escalations": 0,
        "first_actions": 0,
        "avg_time_to_first_action_minutes": None,
        "manual_baseline_minutes": 45,
        "minutes_recovered_per_escalation": None,
        "avg_time_to_claim_minutes": None,
        "escalated_to_admins": 0,
        "computed_at": None,
    }


@sqlite_only
def test_default_is_the_current_month_in_the_accounts_time_zone(client, tokyo):
    today = datetime.now(UTC).astimezone(ZoneInfo(TOKYO))
    current = f"{today.year:04d}-{today.month:02d}"
    single = get(client, tokyo).get_json()
    assert single["month"] == current
    history = get(client, tokyo, months=2).get_json()["items"]
    assert history[0]["month"] == current and len(history) == 2


def test_a_chat_first_and_a_psa_first_handoff_reach_the_endpoint_after_a_run(client, app):
    tenant = tenant_without_passwords("Live MSP", "UTC")
    chat_first = new_handoff(client, tenant)
    psa_first = new_handoff(client, tenant)
    unanswered = new_handoff(client, tenant)
    for handoff, who in ((chat_first, "eng"), (psa_first, "eng2")):
        claimed = client.post(
            f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth(who)
        )
        assert claimed.status_code == 200
    session_url = "/api/v1/sessions/{}".format
    client.post(
        session_url(chat_first["session_id"]) + "/messages",
        json={"body": "On it"},
        headers=tenant.auth("eng"),
    )
    client.post(
        session_url(psa_first["session_id"]) + "/psa-writeback",
        json={"note": "Reset the VPN profile"},
        headers=tenant.auth("eng2"),
    )
    client.post(
        session_url(psa_first["session_id"]) + "/messages",
        json={"body": "Done"},
        headers=tenant.auth("eng2"),
    )
    before = get(client, tenant).get_json()
    assert (before["escalations"], before["computed_at"]) == (0, None)

    roll_up()

    acted = [
        client.get(f"/api/v1/escalations/{h['id']}", headers=tenant.auth("eng")).get_json()
        for h in (chat_first, psa_first, unanswered)
    ]
    assert [h["first_action_kind"] for h in acted] == ["chat", "psa_writeback", None]
    average = (
        (acted[0]["time_to_first_action_seconds"] + acted[1]["time_to_first_action_seconds"])
        / 2
        / 60
    )
    body = get(client, tenant).get_json()
    assert body["month"] == acted[0]["created_at"][:7]
    assert (body["escalations"], body["first_actions"]) == (3, 2)
    assert body["avg_time_to_first_action_minutes"] == round(average, 2)
    assert body["minutes_recovered_per_escalation"] == round(45 - average, 2)
    assert body["computed_at"] is not None


@sqlite_only
def test_technicians_are_forbidden_and_anonymous_callers_unauthorized(client, chicago):
    forbidden = get(client, chicago, who="tech", month="2026-03")
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "forbidden"
    anonymous = client.get(URL, query_string={"month": "2026-03"})
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    assert get(client, chicago, who="eng").status_code == 200
    assert get(client, chicago, who="admin").status_code == 200


@sqlite_only
@pytest.mark.parametrize("month", ["2026-13", "abc", "2026-1", "2026-00", "", "2026-03-01"])
def test_a_malformed_month_is_422_in_the_error_shape(client, chicago, month):
    response = get(client, chicago, month=month)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"month"}
    assert error["message"]


@sqlite_only
@pytest.mark.parametrize("months", ["0", "37", "-1", "abc", "1.5"])
def test_months_outside_1_to_36_is_422(client, chicago, months):
    response = get(client, chicago, months=months)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"months"}


@sqlite_only
def test_months_36_is_the_most_and_is_newest_first(client, chicago):
    items = get(client, chicago, months=36, month="2026-04").get_json()["items"]
    assert len(items) == 36
    assert (items[0]["month"], items[-1]["month"]) == ("2026-04", "2023-05")


@sqlite_only
def test_the_rollup_command_recomputes_a_month_on_demand(app, client, chicago, tokyo):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["rollup", "--month", "2026-03", "--account", str(tokyo.account_id)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) | {"seconds": 0} == {
        "rows": 1,
        "accounts": 1,
        "months": ["2026-03"],
        "seconds": 0,
    }
    body = get(client, tokyo, month="2026-03").get_json()
    assert without_computed_at(body) == {"month": "2026-03", **EXPECTED["tokyo"]["2026-03"]}
    # Only Tokyo was asked for: Chicago's March is still not rolled up.
    assert get(client, chicago, month="2026-03").get_json()["computed_at"] is None

    everyone = runner.invoke(args=["rollup", "--month", "2026-04"])
    assert json.loads(everyone.output)["rows"] == 2
    assert get(client, chicago, month="2026-04").get_json()["escalations"] == 2

    for bad in (["--month", "2026-13"], ["--month", "abc"], ["--account", "999999"]):
        failed = runner.invoke(args=["rollup", *bad])
        assert failed.exit_code == 1, failed.output


@sqlite_only
@pytest.mark.timeout(120)
def test_generated_requests_get_what_the_openapi_document_promises(app, chicago):
    """Valid and invalid queries generated from /api/v1/openapi.json: never a 500, and every
    answer matches the documented status codes, content type and body schema."""
    roll_up(now=APRIL_FIRST_NOON)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema["/api/v1/analytics/escalation-metrics"]["GET"]
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, database=None, derandomize=True)
        def run(case):
            response = case.call(headers=chicago.auth("eng"))
            case.validate_response(response, checks=checks)
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"code", "message", "details"}

        run()
