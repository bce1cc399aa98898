"""The JSON API under /api/v1, documented from its schemas at /api/v1/openapi.json."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from web.errors import ApiError
from web.schemas import ErrorSchema

API_PREFIX = "/api/v1"


class IdConverter(IntegerConverter):
    """Positive ids that fit a 64-bit column; anything else is simply not found."""

    regex = r"\d{1,18}"


class JsonBodyParser(FlaskParser):
    """Reads any body as JSON whatever its Content-Type; it must be a JSON object (else 400).

    Runs only for endpoints that take a body, after authentication."""

    def _raw_load_json(self, req):
        return parse_json_object(req.get_data(cache=True))


class ApiBlueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = JsonBodyParser()


class EscalationApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        """The app registers the contract's error handlers itself (see web.create_app)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if _has_nul(body):
        # PostgreSQL text cannot hold NUL; refuse it the same way on every database.
        raise ApiError(
            422, "Text must not contain NUL characters.", {"_schema": ["NUL character."]}
        )
    return body


def init_api(app: Flask) -> Api:
    app.url_map.converters["id"] = IdConverter
    api = EscalationApi(
        app,
        spec_kwargs={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    from web.api import analytics, escalations, sessions, users

    for module in (users, sessions, escalations, analytics):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    return api
