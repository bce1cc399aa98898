"""Security findings against the real web process (`python wsgi.py`, eventlet, Redis): the
signing key at start-up, a forged cookie, revoked credentials' live sockets, and 1e999 on
SQLite and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
import requests
import socketio
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from tests.integration.conftest import THREE_ROLES, one_url
from tests.integration.services import REPO_ROOT, create_account, flask_cli

CLOSE_WITHIN_SECONDS = 5.0
ONE_E_999 = '{"title": "Overflow", "snapshot": {"a": 1e999}}'


class Socket:
    """A python-socketio client that notes when the server closes it."""

    def __init__(self, url: str, token: str | None = None, cookie: str | None = None) -> None:
        self.closed = threading.Event()
        self.client = socketio.Client(reconnection=False)
        self.client.on("disconnect", lambda *args: self.closed.set())
        self.client.connect(
            url,
            auth={"token": token} if token else None,
            headers={"Cookie": cookie} if cookie else {},
            transports=["websocket"],
            wait_timeout=10,
        )

    def seconds_until_closed(self, started: float, what: str) -> float:
        assert self.closed.wait(CLOSE_WITHIN_SECONDS + 5), "the socket was never closed"
        elapsed = time.monotonic() - started
        print(f"{what}: socket closed {elapsed:.2f} s after the change")
        return elapsed


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def web(web_server, stack_env):
    server = web_server()
    owner = create_account(stack_env)
    return server, owner


def test_the_web_process_refuses_to_start_without_a_good_key(stack_env):
    for key in (None, "local-development-only-not-a-secret"):  # unset; in the repository
        env = {name: value for name, value in stack_env.items() if name != "SECRET_KEY"}
        if key is not None:
            env["SECRET_KEY"] = key
        try:
            result = subprocess.run(
                [sys.executable, "wsgi.py"],
                env=env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the web process started and served with SECRET_KEY={key!r}")
        assert result.returncode != 0
        refusal = [line for line in result.stderr.splitlines() if "SECRET_KEY" in line]
        assert len(refusal) == 1 and refusal[0].startswith("Refusing to start"), result.stderr


def test_a_forged_cookie_and_1e999_are_refused_on_sqlite(web, stack_env):
    """Whoever signs {"user_id": N}, even with the real key, is not signed in: a login is
    a random key the server issued and still holds. And 1e999 is a 422."""
    server, owner = web
    forger = Flask("forger")
    forger.secret_key = stack_env["SECRET_KEY"]
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    forged = serializer.dumps({"user_id": owner["user_id"]})
    me = requests.get(f"{server.url}/api/v1/me", cookies={"session": forged}, timeout=10)
    assert me.status_code == 401
    page = requests.get(
        f"{server.url}/escalations", cookies={"session": forged}, allow_redirects=False, timeout=10
    )
    assert page.status_code == 302 and "/login" in page.headers["Location"]

    response = _post_overflow(server.url, owner["token"])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@THREE_ROLES
def test_revoked_tokens_deactivated_users_and_signed_out_cookies_lose_their_sockets(web):
    """Each closed within 5 s of the change, on the server's own initiative."""
    server, owner = web
    created = requests.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "laptop"},
        headers=bearer(owner["token"]),
        timeout=10,
    ).json()
    socket = Socket(server.url, token=created["secret"])
    kept = Socket(server.url, token=owner["token"])
    started = time.monotonic()
    revoked = requests.delete(
        f"{server.url}/api/v1/tokens/{created['token']['id']}",
        headers=bearer(owner["token"]),
        timeout=10,
    )
    assert revoked.status_code == 204
    me = requests.get(f"{server.url}/api/v1/me", headers=bearer(created["secret"]), timeout=10)
    assert me.status_code == 401
    assert socket.seconds_until_closed(started, "token revoked") < CLOSE_WITHIN_SECONDS
    assert kept.client.connected  # the owner's other token is untouched
    kept.client.disconnect()

    made = requests.post(
        f"{server.url}/api/v1/users",
        json={"name": "Eve", "email": "eve@acme.test", "role": "engineer", "password": "pw-123456"},
        headers=bearer(owner["token"]),
        timeout=10,
    ).json()
    socket = Socket(server.url, token=made["token"])
    started = time.monotonic()
    patched = requests.patch(
        f"{server.url}/api/v1/users/{made['user']['id']}",
        json={"active": False},
        headers=bearer(owner["token"]),
        timeout=10,
    )
    assert patched.status_code == 200
    assert socket.seconds_until_closed(started, "user deactivated") < CLOSE_WITHIN_SECONDS

    browser = requests.Session()
    form_page = browser.get(f"{server.url}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form_page).group(1)
    signed_in = browser.post(
        f"{server.url}/login",
        data={"email": "owner@acme.test", "password": "correct horse battery", "csrf_token": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 303
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    tab = Socket(server.url, cookie=cookie)
    page = browser.get(f"{server.url}/sessions", timeout=10).text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    started = time.monotonic()
    browser.post(f"{server.url}/logout", data={"csrf_token": csrf}, timeout=10)
    assert tab.seconds_until_closed(started, "signed out") < CLOSE_WITHIN_SECONDS
    replay = requests.get(f"{server.url}/api/v1/me", headers={"Cookie": cookie}, timeout=10)
    assert replay.status_code == 401


def _post_overflow(url: str, token: str) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/sessions",
        data=ONE_E_999,
        headers={**bearer(token), "Content-Type": "application/json"},
        timeout=10,
    )


@pytest.mark.postgres
def test_1e999_is_422_on_postgresql(web_server, stack_env, postgres_database):
    env = {**stack_env, **one_url(postgres_database)}
    flask_cli(env, "db", "upgrade")
    server = web_server(extra_env=one_url(postgres_database))
    owner = create_account(env)
    response = _post_overflow(server.url, owner["token"])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    queue = requests.get(
        f"{server.url}/api/v1/escalations", headers=bearer(owner["token"]), timeout=10
    )
    assert queue.status_code == 200 and queue.json()["items"] == []
