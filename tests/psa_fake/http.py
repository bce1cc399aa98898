"""What the PSA stand-ins share: a JSON request handler and a server on 127.0.0.1 in a
thread of the test process."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, urlsplit


class JsonHandler(BaseHTTPRequestHandler):
    """Reads a JSON request and answers JSON; `_handle(method)` is the stand-in's own."""

    server_state: Any
    protocol_version = "HTTP/1.1"
    content_type = "application/json"

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        raise NotImplementedError

    def _request(self) -> tuple[SplitResult, Any, dict[str, str]]:
        """The path and query, the JSON body (None when absent or not JSON), and the
        headers with lower-case names."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        return urlsplit(self.path), body, headers

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class StandInServer:
    """Starts `handler` (a `JsonHandler` class) serving this stand-in on 127.0.0.1."""

    handler: type[JsonHandler]
    _server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0):
        fake = self

        class Handler(self.handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"
