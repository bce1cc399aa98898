"""business_hours on GET and PATCH /account: stored as given, null by default, validated
in the contract's error shape."""

from __future__ import annotations

import pytest

from tests.web.contract import assert_error, assert_field_errors

HOURS = {
    "windows": [
        {"day": "mon", "start": "09:00", "end": "17:00"},
        {"day": "sat", "start": "10:00", "end": "24:00"},
    ],
    "holidays": ["2026-12-25"],
}


def test_business_hours_round_trip_and_default(client, tenant):
    assert (
        client.get("/api/v1/account", headers=tenant.auth("tech")).get_json()["business_hours"]
        is None
    )
    response = client.patch(
        "/api/v1/account", json={"business_hours": HOURS}, headers=tenant.auth("admin")
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["business_hours"] == HOURS
    assert (
        client.get("/api/v1/account", headers=tenant.auth("eng")).get_json()["business_hours"]
        == HOURS
    )
    never = {"windows": [], "holidays": []}
    assert (
        client.patch(
            "/api/v1/account", json={"business_hours": never}, headers=tenant.auth("admin")
        ).get_json()["business_hours"]
        == never
    )
    cleared = client.patch(
        "/api/v1/account", json={"business_hours": None}, headers=tenant.auth("admin")
    )
    assert cleared.get_json()["business_hours"] is None


@pytest.mark.parametrize(
    "bad",
    [
        {"windows": [{"day": "mon", "start": "17:00", "end": "09:00"}]},
        {"windows": [{"day": "mon", "start": "09:00", "end": "09:00"}]},
        {"windows": [{"day": "monday", "start": "09:00", "end": "17:00"}]},
        {"windows": [{"day": "mon", "start": "9:00", "end": "17:00"}]},
        {"windows": [{"day": "mon", "start": "09:00", "end": "24:30"}]},
        {"windows": [], "holidays": ["2026-02-30"]},
        {"windows": "mon"},
        "always",
    ],
)
def test_bad_business_hours_are_422(client, tenant, bad):
    response = client.patch(
        "/api/v1/account", json={"business_hours": bad}, headers=tenant.auth("admin")
    )
    assert_field_errors(response, "business_hours")


def test_only_an_admin_sets_business_hours(client, tenant):
    response = client.patch(
        "/api/v1/account", json={"business_hours": HOURS}, headers=tenant.auth("eng")
    )
    assert_error(response, 403, "forbidden")
