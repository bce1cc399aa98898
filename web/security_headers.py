"""Security headers on every response (docs/security.md).

- Content-Security-Policy: scripts and styles from this site only (no inline code), never
  framed, forms post only here; sockets connect back to this site.
- X-Content-Type-Options, Referrer-Policy, and a frame refusal for old browsers.
- Cache-Control: no-store on the API and on any page rendered for a signed-in user, so a
  shared machine's cache keeps nobody's queue.
- Strict-Transport-Security when HSTS_SECONDS is set (only behind TLS).
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
STATIC_PREFIXES = ("/assets/", "/vendor/")


def init_security_headers(app: Flask) -> None:
    app.after_request(_add_headers)


def _add_headers(response: Response) -> Response:
    from flask import current_app

    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith(STATIC_PREFIXES):
        # The API and every page: nothing signed-in is kept by a browser or proxy cache.
        headers["Cache-Control"] = "no-store"
    hsts = int(current_app.config.get("HSTS_SECONDS") or 0)
    if hsts > 0:
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts}; includeSubDomains")
    return response
