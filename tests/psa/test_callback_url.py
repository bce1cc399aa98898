"""The callback URL as ConnectWise uses it: it appends the record id to the URL it was
given, so ours ends in `?id=`; `?recordId=` is accepted too; callbacks registered by an
older release (the id appended to the secret: 404) are registered again by `release`."""

from __future__ import annotations

import json

from sqlalchemy import select

from models import db
from models.entities import PsaConnection
from tests.integration.services import free_port
from tests.psa.test_writeback import TICKET, connect, session_with_ticket

BASE = "http://127.0.0.1:5999"


def callback_url(client, tenant) -> str:
    return client.get("/api/v1/account/psa", headers=tenant.auth("admin")).get_json()[
        "callback_url"
    ]


def capture_tasks(app) -> list:
    queued: list = []
    celery = app.extensions["celery"]
    celery.send_task = lambda name, args=None, **kw: queued.append(args)
    return queued


def test_the_record_id_connectwise_appends_lands_in_the_query(client, tenant, fake_cw, app):
    connect(client, tenant, fake_cw)
    session_with_ticket(client, tenant)
    url = callback_url(client, tenant)
    assert url.startswith(f"{BASE}/api/v1/psa/callbacks/{tenant.account_id}.")
    assert url.endswith("?id=")
    (registered,) = fake_cw.callbacks.values()
    assert registered["url"] == url
    queued = capture_tasks(app)
    # What ConnectWise posts: the registered URL with the ticket's id appended.
    raw, headers = fake_cw.signed_callback({"Action": "updated"})
    appended = client.post(url.removeprefix(BASE) + TICKET, data=raw, headers=headers)
    assert appended.status_code == 200, appended.get_json()
    assert appended.get_json()["message"] == f"Ticket {TICKET} will be read."
    bare = url.removeprefix(BASE).removesuffix("?id=")
    raw, headers = fake_cw.signed_callback({"Type": "ticket"})
    other = client.post(f"{bare}?recordId={TICKET}", data=raw, headers=headers)
    assert other.status_code == 200 and other.get_json()["message"].startswith("Ticket 5001")
    assert queued == [[tenant.account_id, TICKET], [tenant.account_id, TICKET]]


def test_a_record_id_that_is_not_a_number_is_422(client, tenant, fake_cw, app):
    connect(client, tenant, fake_cw)
    queued = capture_tasks(app)
    raw, headers = fake_cw.signed_callback({})
    path = callback_url(client, tenant).removeprefix(BASE) + "5001;drop"
    response = client.post(path, data=raw, headers=headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "must be a number" in error["message"]
    assert queued == []


def _as_an_older_release_left_it(fake_cw) -> str:
    """The callback registered the old way: the URL ending in the secret, and no record of
    which URL it was."""
    (entry,) = fake_cw.callbacks.values()
    entry["url"] = entry["url"].removesuffix("?id=")
    row = db.session.scalar(select(PsaConnection))
    row.callback_registered = None
    db.session.commit()
    return str(entry["id"])


def test_release_registers_callbacks_of_the_old_form_again_once(client, tenant, fake_cw, app):
    connect(client, tenant, fake_cw)
    old_id = _as_an_older_release_left_it(fake_cw)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["psa-reregister-callbacks"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"reregistered": 1, "failed": 0}
    (entry,) = fake_cw.callbacks.values()  # the old one deleted at ConnectWise
    assert str(entry["id"]) != old_id
    assert entry["url"] == callback_url(client, tenant) and entry["url"].endswith("?id=")
    assert db.session.scalar(select(PsaConnection.psa_callback_id)) == str(entry["id"])
    # Run again (every release runs it): nothing to do, ConnectWise is not called.
    calls = len(fake_cw.requests)
    again = runner.invoke(args=["psa-reregister-callbacks"])
    assert json.loads(again.output) == {"reregistered": 0, "failed": 0}
    assert len(fake_cw.requests) == calls


def test_a_psa_down_during_release_is_tried_again_by_the_next_one(client, tenant, fake_cw, app):
    connect(client, tenant, fake_cw)
    _as_an_older_release_left_it(fake_cw)
    row = db.session.scalar(select(PsaConnection))
    site = row.site_url
    row.site_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    db.session.commit()
    runner = app.test_cli_runner()
    down = runner.invoke(args=["psa-reregister-callbacks"])
    assert down.exit_code == 0  # a deploy does not stop for a PSA that is down
    assert json.loads(down.output) == {"reregistered": 0, "failed": 1}
    row = db.session.scalar(select(PsaConnection))
    assert row.status == "connected" and "picked up by polling" in row.status_message
    row.site_url = site
    db.session.commit()
    up = runner.invoke(args=["psa-reregister-callbacks"])
    assert json.loads(up.output) == {"reregistered": 1, "failed": 0}
    assert [entry["url"] for entry in fake_cw.callbacks.values()][-1].endswith("?id=")


def test_without_connections_or_keys_release_does_nothing(app):
    app.config["PSA_ENCRYPTION_KEYS"] = ""
    result = app.test_cli_runner().invoke(args=["psa-reregister-callbacks"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"reregistered": 0, "failed": 0}
