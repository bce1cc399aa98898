"""One error shape for the whole API:
{"error": {"code": ..., "message": ..., "details": {...}}}."""

from __future__ import annotations

import logging
from typing import Any

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from models.errors import DomainError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(DomainError):
    """An error raised by the web edge itself (credentials, body shape)."""

    def __init__(
        self, status: int, message: str, details: dict | None = None, code: str | None = None
    ):
        super().__init__(message, details, code or HTTP_CODES.get(status, "error"))
        self.status = status


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def _validation_details(messages: Any) -> dict[str, Any]:
    """webargs nests messages under their location ("json", "query"); return field → messages."""
    if isinstance(messages, dict) and len(messages) == 1:
        ((location, inner),) = messages.items()
        if location in {"json", "query", "form", "view_args"} and isinstance(inner, dict):
            return inner
    return messages if isinstance(messages, dict) else {"_schema": messages}


def invalid_message(details: Any) -> str:
    """ "Some fields are invalid." followed by each field's first problem, so the message
    alone says what to fix (an over-long field: its limit)."""
    if not isinstance(details, dict) or not details:
        return "Some fields are invalid."
    parts = []
    for field, problems in list(details.items())[:3]:
        first = problems[0] if isinstance(problems, list) and problems else problems
        if isinstance(first, str):
            parts.append(f"{field}: {first}")
    return "Some fields are invalid" + (": " + " ".join(parts) if parts else ".")


def handle_domain_error(error: DomainError):
    return error_response(error.status, error.code, error.message, error.details)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 422:
        details = _validation_details(data.get("messages") or data.get("errors") or {})
        return error_response(422, "validation_error", invalid_message(details), details)
    if status == 400 and data.get("messages"):
        return error_response(400, "bad_request", "The request body is not valid JSON.")
    response = error_response(
        status, HTTP_CODES.get(status, "error"), error.description or error.name
    )
    # Keep the exception's own headers, e.g. `Allow` on a 405.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_unexpected(error: Exception):
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "Something went wrong on our side.")
