"""What every API module shares: the blueprint class, the id converter, the JSON body parser."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from web.errors import ApiError
from web.finite_json import NonFiniteNumber, finite_float, reject_constant
from web.schemas import ErrorSchema

API_PREFIX = "/api/v1"


class IdConverter(IntegerConverter):
    """Positive ids that fit a 64-bit column; anything else is simply not found."""

    regex = r"[0-9]{1,18}"  # ASCII digits only: "١" (an Arabic-Indic one) is not an id


class JsonBodyParser(FlaskParser):
    """Reads any body as JSON whatever its Content-Type; it must be a JSON object (else 400).

    Runs only for endpoints that take a body, after authentication."""

    def _raw_load_json(self, req):
        return parse_json_object(req.get_data(cache=True))


class ApiBlueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def errors(self, *statuses: int) -> Callable:
        """Document the error responses (the contract's error shape) an endpoint can give."""

        def decorator(func: Callable) -> Callable:
            for status in statuses:
                func = self.alt_response(status, response=HTTPStatus(status).name)(func)
            return func

        return decorator


class EscalationApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        """The app registers the contract's error handlers itself (see web.create_app)."""


MAX_JSON_DEPTH = 32


def _storable_text(text: str) -> bool:
    """Databases store UTF-8 without NUL: a lone surrogate or a NUL cannot be saved."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _body_problems(body: dict[str, Any]) -> dict[str, list[str]]:
    """Field → messages for text no database can store and for nesting deeper than
    MAX_JSON_DEPTH. Walks with an explicit stack: a deep document must not exhaust
    Python's recursion limit here or later when it is serialized."""
    problems: dict[str, list[str]] = {}
    for field, value in body.items():
        name = field if _storable_text(field) else "_schema"
        stack: list[tuple[Any, int]] = [(field, 0), (value, 1)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, str) and not _storable_text(item):
                problems[name] = ["Text must be valid Unicode without NUL characters."]
                break
            if isinstance(item, dict | list) and depth >= MAX_JSON_DEPTH:
                problems[name] = [f"Nested deeper than {MAX_JSON_DEPTH} levels."]
                break
            if isinstance(item, dict):
                stack.extend((part, depth + 1) for pair in item.items() for part in pair)
            elif isinstance(item, list):
                stack.extend((part, depth + 1) for part in item)
    return problems


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        body = json.loads(raw, parse_constant=reject_constant, parse_float=finite_float)
    except NonFiniteNumber as exc:
        raise ApiError(
            422,
            "Some fields are invalid.",
            {"_schema": ["JSON numbers must be finite (not 1e999, NaN or Infinity)."]},
            code="validation_error",
        ) from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if problems := _body_problems(body):
        # Refused the same way on every database, before any field validation runs.
        raise ApiError(422, "Some fields are invalid.", problems, code="validation_error")
    return body
