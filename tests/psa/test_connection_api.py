"""The account's PSA connection over the API, against the fake ConnectWise server."""

from __future__ import annotations

import base64
import logging

import pytest
from sqlalchemy import select

from models import db
from models.entities import PsaConnection
from tests.integration.services import free_port

URL = "/api/v1/account/psa"


def connect(client, tenant, fake_cw, **overrides):
    response = client.put(
        URL, json=fake_cw.connection_body(**overrides), headers=tenant.auth("admin")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_saving_encrypts_the_keys_answers_none_of_them_and_registers_the_callback(
    client, tenant, fake_cw
):
    body = connect(client, tenant, fake_cw)
    assert set(body) == {
        "kind", "site_url", "company_id", "status", "message", "callback_url",
        "verify_callback_signatures",
    }  # fmt: skip
    assert body["verify_callback_signatures"] is True
    assert body["status"] == "connected" and body["message"] is None
    assert body["callback_url"].startswith(
        f"http://127.0.0.1:5999/api/v1/psa/callbacks/{tenant.account_id}."
    )
    row = db.session.scalar(select(PsaConnection))
    assert fake_cw.private_key not in row.secrets and fake_cw.public_key not in row.secrets
    again = client.get(URL, headers=tenant.auth("admin")).get_json()
    assert fake_cw.private_key not in str(again) and fake_cw.public_key not in str(again)
    # The callback registered with ConnectWise, with its auth headers.
    (registered,) = fake_cw.callbacks.values()
    assert registered["url"] == body["callback_url"]
    assert (registered["type"], registered["level"], registered["objectId"]) == (
        "Ticket",
        "owner",
        1,
    )
    (call,) = fake_cw.calls("POST", "/system/callbacks$")
    user = f"{fake_cw.company_id}+{fake_cw.public_key}:{fake_cw.private_key}".encode()
    assert call.headers["authorization"] == "Basic " + base64.b64encode(user).decode()
    assert call.headers["clientid"] == fake_cw.client_id


def test_only_an_admin_connects_and_a_missing_field_changes_nothing(client, tenant, fake_cw):
    refused = client.put(URL, json=fake_cw.connection_body(), headers=tenant.auth("eng"))
    assert refused.status_code == 403
    incomplete = fake_cw.connection_body()
    del incomplete["private_key"]
    response = client.put(URL, json=incomplete, headers=tenant.auth("admin"))
    assert response.status_code == 422
    assert "private_key" in response.get_json()["error"]["details"]
    assert db.session.scalar(select(PsaConnection)) is None and not fake_cw.requests


def test_without_encryption_keys_nothing_is_saved(client, tenant, fake_cw, app):
    app.config["PSA_ENCRYPTION_KEYS"] = ""
    response = client.put(URL, json=fake_cw.connection_body(), headers=tenant.auth("admin"))
    assert response.status_code == 503
    assert "PSA_ENCRYPTION_KEYS" in response.get_json()["error"]["message"]
    assert db.session.scalar(select(PsaConnection)) is None


def _test(client, tenant, body=None):
    response = client.post(f"{URL}/test", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_test_connection_says_in_words_what_is_wrong(client, tenant, fake_cw):
    good = fake_cw.connection_body()
    assert _test(client, tenant, good)["ok"] is True
    bad_keys = _test(client, tenant, {**good, "private_key": "wrong"})
    assert bad_keys["ok"] is False and bad_keys["message"].startswith("Bad keys")
    wrong_company = _test(client, tenant, {**good, "company_id": "nope"})
    assert wrong_company["ok"] is False and wrong_company["message"].startswith("Wrong company")
    no_client = _test(client, tenant, {**good, "client_id": ""})
    assert no_client["ok"] is False and no_client["message"].startswith("No client id")
    wrong_client = _test(client, tenant, {**good, "client_id": "other"})
    assert wrong_client["ok"] is False and "client id" in wrong_client["message"]
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = _test(client, tenant, {**good, "site_url": closed})
    assert unreachable["ok"] is False and unreachable["message"].startswith("Unreachable")
    # Without a body: the saved connection (none yet), then the saved one.
    assert _test(client, tenant)["message"] == "No PSA connection is saved for this account."
    connect(client, tenant, fake_cw)
    assert _test(client, tenant)["ok"] is True


def test_deleting_removes_the_callback_and_its_url_answers_404(client, tenant, fake_cw):
    callback_url = connect(client, tenant, fake_cw)["callback_url"]
    path = callback_url.removeprefix("http://127.0.0.1:5999")
    raw, headers = fake_cw.signed_callback({"Type": "ticket", "ID": 5001})
    assert client.post(path, data=raw, headers=headers).status_code == 200
    assert client.delete(URL, headers=tenant.auth("admin")).status_code == 204
    assert fake_cw.callbacks == {}
    assert client.post(path, data=raw, headers=headers).status_code == 404
    # No connection is a state, not a missing page: 200, nothing connected.
    gone = client.get(URL, headers=tenant.auth("admin"))
    assert gone.status_code == 200
    assert gone.get_json() == {"kind": None, "status": "not_connected", "callback_url": None}


def test_saving_again_replaces_the_callback(client, tenant, fake_cw):
    first = connect(client, tenant, fake_cw)["callback_url"]
    second = connect(client, tenant, fake_cw)["callback_url"]
    assert first != second
    assert [entry["url"] for entry in fake_cw.callbacks.values()] == [second]


def test_keys_rejected_while_saving_mark_the_connection_broken(client, tenant, fake_cw):
    body = connect(client, tenant, fake_cw, private_key="revoked")
    assert body["status"] == "broken" and "refused our credentials" in body["message"]
    health = client.get("/healthz").get_json()
    assert health["psa"]["status"] == "degraded"
    assert health["psa"]["broken_connections"][0]["account_id"] == tenant.account_id


@pytest.mark.parametrize("key", ["{account}.wrong", "{account}." + "x" * 43, "{account}", "x.y"])
def test_a_callback_with_a_wrong_secret_is_404_and_changes_nothing(client, tenant, fake_cw, key):
    connect(client, tenant, fake_cw)
    before = len(fake_cw.requests)
    response = client.post(
        "/api/v1/psa/callbacks/" + key.format(account=tenant.account_id),
        json={"Type": "ticket", "ID": 5001},
    )
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert len(fake_cw.requests) == before


def test_the_keys_never_reach_the_logs(client, tenant, fake_cw, caplog):
    caplog.set_level(logging.DEBUG)
    connect(client, tenant, fake_cw, private_key="secret-private-123")
    _test(client, tenant)
    client.delete(URL, headers=tenant.auth("admin"))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "secret-private-123" not in text and fake_cw.public_key not in text


def test_keys_rotate_and_the_connection_still_works(client, tenant, fake_cw, app):
    from cryptography.fernet import Fernet

    connect(client, tenant, fake_cw)
    old = app.config["PSA_ENCRYPTION_KEYS"]
    app.config["PSA_ENCRYPTION_KEYS"] = f"{Fernet.generate_key().decode()},{old}"
    result = app.test_cli_runner().invoke(args=["psa-rotate-keys"])
    assert result.exit_code == 0 and '"rotated": 1' in result.output
    app.config["PSA_ENCRYPTION_KEYS"] = app.config["PSA_ENCRYPTION_KEYS"].split(",")[0]
    assert _test(client, tenant)["ok"] is True  # decrypted with the new key alone
