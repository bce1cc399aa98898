"""Real OpenID providers for the tests: oidc-provider-mock (in-process, a WSGI server
thread on 127.0.0.1). It signs real ID tokens with its own keys, serves discovery and JWKS,
and lets a test set each subject's claims (PUT /users/<sub>).

`ProviderServer` mounts providers under paths, as Microsoft's tenant-specific authority
(`<base>/<tenant>/v2.0`) is: each mounted provider's discovery document and ID tokens name
its own mount as the issuer; `token_issuer` makes one sign tokens that name another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import flask
import oidc_provider_mock
import pytest
import requests
import werkzeug.serving
from oidc_provider_mock import _app as provider_internals
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

DISCOVERY_VIEW = "oidc-provider-mock.openid_config"


@dataclass(frozen=True)
class Provider:
    issuer: str

    def set_user(self, sub: str, **claims) -> None:
        response = requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=5)
        assert response.status_code == 204, response.text

    def authorize(self, location: str, sub: str) -> str:
        """The user `sub` consents at the authorization URL; returns where the provider
        sends the browser back (the callback with code and state)."""
        assert location.startswith(self.issuer + "/"), location
        response = requests.post(location, data={"sub": sub}, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def deny(self, location: str) -> str:
        response = requests.post(
            location, data={"action": "deny"}, allow_redirects=False, timeout=5
        )
        assert response.status_code == 302, response.text
        return response.headers["Location"]


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _provider_app() -> flask.Flask:
    app = oidc_provider_mock.app()
    original = app.view_functions[DISCOVERY_VIEW]

    def discovery():
        body = original().get_json()
        body["issuer"] = flask.request.url_root.rstrip("/")
        return flask.jsonify(body)

    app.view_functions[DISCOVERY_VIEW] = discovery
    return app


@pytest.fixture(scope="session", autouse=True)
def _issuer_is_the_mount():
    """ID tokens name the provider's own URL (its mount included) as their issuer, or the
    app's TEST_TOKEN_ISSUER."""
    original = provider_internals.OpenIDCode.get_jwt_config

    def get_jwt_config(self, grant, client=None):
        config = original(self, grant, client)
        config["iss"] = flask.current_app.config.get("TEST_TOKEN_ISSUER") or (
            flask.request.url_root.rstrip("/")
        )
        return config

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provider_internals.OpenIDCode, "get_jwt_config", get_jwt_config)
        yield


class ProviderServer:
    """Providers at `/` and under mounts, on one port."""

    def __init__(self, mounts: tuple[str, ...] = (), root: bool = True) -> None:
        self._apps = {path: _provider_app() for path in mounts}
        self._root = _provider_app() if root else NotFound()
        self._server = werkzeug.serving.make_server(
            "127.0.0.1", 0, DispatcherMiddleware(self._root, self._apps), threaded=True
        )
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,))

    def provider(self, mount: str = "") -> Provider:
        return Provider(self.base + mount)

    def sign_as(self, mount: str, other_mount: str) -> None:
        """The provider at `mount` signs ID tokens naming `other_mount` as their issuer."""
        self._apps[mount].config["TEST_TOKEN_ISSUER"] = self.base + other_mount

    @contextmanager
    def running(self) -> Iterator[ProviderServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._thread.join(5)
            self._server.server_close()
