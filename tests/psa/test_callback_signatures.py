"""ConnectWise's signed callbacks: a callback is accepted only with a valid
`x-content-signature` (the base64 HMAC-SHA256 of the raw body under the key that
`Metadata.key_url` serves), the key is fetched only from the connection's own site and
cached; an unsigned or forged callback is refused and reads nothing from the API. A
connection may switch the check off, which the security log records."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

from adapters.psa.connectwise import SIGNING_KEYS, SigningKeys
from tests.psa.test_writeback import TICKET, connect, session_with_ticket
from tests.psa_fake.server import API, KEYS, FakeConnectWise

BASE = "http://127.0.0.1:5999"


def callback_path(client, tenant) -> str:
    url = client.get("/api/v1/account/psa", headers=tenant.auth("admin")).get_json()
    return url["callback_url"].removeprefix(BASE) + TICKET


def api_reads(fake: FakeConnectWise, since: int) -> list[str]:
    return [r.path for r in fake.requests[since:] if r.path.startswith(API)]


def key_reads(fake: FakeConnectWise, since: int = 0) -> list[str]:
    return [r.path for r in fake.requests[since:] if r.path.startswith(KEYS)]


def ready(client, tenant, fake_cw) -> str:
    connect(client, tenant, fake_cw)
    session_with_ticket(client, tenant)
    return callback_path(client, tenant)


def test_a_signed_callback_is_accepted_and_its_key_fetched_once(client, tenant, fake_cw, queued):
    path = ready(client, tenant, fake_cw)
    key_url = fake_cw.new_signing_key()
    for action in ("updated", "updated again"):
        raw, headers = fake_cw.signed_callback({"Action": action}, key_url=key_url)
        response = client.post(path, data=raw, headers=headers)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["message"] == f"Ticket {TICKET} will be read."
    assert queued == [[tenant.account_id, TICKET]] * 2
    assert len(key_reads(fake_cw)) == 1  # cached for the second callback
    (read,) = [r for r in fake_cw.requests if r.path.startswith(KEYS)]
    assert "authorization" not in read.headers  # no credentials go to a key URL


def test_an_hmac_under_the_keys_sha256_digest_is_accepted_too(client, tenant, fake_cw, queued):
    path = ready(client, tenant, fake_cw)
    key_url = fake_cw.new_signing_key()
    raw = json.dumps({"Action": "updated", "Metadata": {"key_url": key_url}}).encode()
    key = fake_cw.signing_keys[key_url.rsplit("/", 1)[1]]
    digest = hmac.new(hashlib.sha256(key.encode()).digest(), raw, hashlib.sha256).digest()
    headers = {"x-content-signature": base64.b64encode(digest).decode()}
    assert client.post(path, data=raw, headers=headers).status_code == 200
    assert queued == [[tenant.account_id, TICKET]]


def test_an_unsigned_callback_is_401_and_reads_nothing(client, tenant, fake_cw, queued):
    path = ready(client, tenant, fake_cw)
    before = len(fake_cw.requests)
    response = client.post(path, json={"Type": "ticket", "ID": int(TICKET)})
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "callback_unsigned"
    assert "not signed (no x-content-signature header)" in error["message"]
    assert queued == [] and fake_cw.requests[before:] == []


def test_a_forged_callback_is_403_and_reads_nothing_from_the_api(client, tenant, fake_cw, queued):
    path = ready(client, tenant, fake_cw)
    raw, headers = fake_cw.signed_callback({"Type": "ticket", "ID": int(TICKET)})
    before = len(fake_cw.requests)
    forged = raw.replace(b'"ID": 5001', b'"ID": 5002')
    response = client.post(path, data=forged, headers=headers)
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "callback_signature_invalid"
    assert error["message"] == "The callback's signature does not match its body."
    wrong = {**headers, "x-content-signature": base64.b64encode(b"x" * 32).decode()}
    assert client.post(path, data=raw, headers=wrong).status_code == 403
    no_key = {"x-content-signature": headers["x-content-signature"]}
    assert client.post(path, json={"Type": "ticket"}, headers=no_key).status_code == 403
    assert queued == [] and api_reads(fake_cw, before) == []


def test_a_signing_key_on_another_host_is_refused_unfetched(client, tenant, fake_cw, queued):
    path = ready(client, tenant, fake_cw)
    elsewhere = FakeConnectWise().start()
    try:
        # Validly signed with a key the other server serves: it proves nothing.
        elsewhere_key = elsewhere.new_signing_key()
        fake_cw.signing_keys.update(elsewhere.signing_keys)
        raw, headers = fake_cw.signed_callback({"Type": "ticket"}, key_url=elsewhere_key)
        response = client.post(path, data=raw, headers=headers)
        assert response.status_code == 403
        message = response.get_json()["error"]["message"]
        assert message == (
            f"The callback's signing key is not on the connection's site ({fake_cw.url}); "
            "keys are fetched from there only."
        )
        assert elsewhere.requests == [] and queued == []
    finally:
        elsewhere.stop()


def test_a_key_the_site_cannot_serve_is_503(client, tenant, fake_cw, queued):
    path = ready(client, tenant, fake_cw)
    raw, headers = fake_cw.signed_callback({"Type": "ticket"})
    fake_cw.signing_keys.clear()  # the site answers 404 for the key
    response = client.post(path, data=raw, headers=headers)
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "callback_key_unavailable"
    assert error["message"] == (
        "The callback's signing key could not be fetched: The signing key URL answered 404."
    )
    assert queued == [] and len(SIGNING_KEYS) == 0  # a failure is not cached


def test_an_admin_may_switch_the_check_off_and_the_security_log_says_so(
    client, tenant, fake_cw, queued, caplog
):
    body = {**fake_cw.connection_body(), "verify_callback_signatures": False}
    saved = client.put("/api/v1/account/psa", json=body, headers=tenant.auth("admin"))
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["verify_callback_signatures"] is False
    session_with_ticket(client, tenant)
    log = client.get("/api/v1/security-log", headers=tenant.auth("admin")).get_json()
    (event,) = [item for item in log["items"] if item["kind"] == "psa_credentials_changed"]
    assert event["details"] == {
        "psa": "connectwise", "site_url": fake_cw.url, "callback_signatures": "not verified",
    }  # fmt: skip
    assert event["actor"]["id"] == tenant.users["admin"]
    caplog.set_level(logging.WARNING, logger="models.psa.signatures")
    response = client.post(callback_path(client, tenant), json={"Type": "ticket"})
    assert response.status_code == 200
    assert queued == [[tenant.account_id, TICKET]]
    assert "accepted unverified" in caplog.text
    # Saving again without the flag turns the check back on.
    connect(client, tenant, fake_cw)
    assert client.post(callback_path(client, tenant), json={}).status_code == 401


def test_the_key_cache_is_bounded_and_keys_expire():
    now = [1000.0]
    cache = SigningKeys(max_entries=2, ttl=60.0, clock=lambda: now[0])
    fetched: list[str] = []

    def get(scope: int, url: str) -> str:
        return cache.get(scope, url, lambda: fetched.append(url) or f"key-{len(fetched)}")

    assert get(1, "https://a/k1") == "key-1"
    assert get(2, "https://a/k1") == "key-2"  # another connection: its own entry
    assert get(1, "https://a/k1") == "key-1" and len(fetched) == 2
    assert get(1, "https://a/k2") == "key-3"  # a third entry: the oldest (2, k1) goes
    assert len(cache) == 2
    assert get(2, "https://a/k1") == "key-4"
    now[0] = 1059.0
    assert get(1, "https://a/k2") == "key-3"  # 59 s old: still cached
    now[0] = 1060.0
    assert get(1, "https://a/k2") == "key-5"  # 60 s: fetched again
    cache.clear()
    assert len(cache) == 0
