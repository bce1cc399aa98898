"""JSON with finite numbers only, in and out.

`1e999` parses as infinity and `NaN` / `Infinity` are Python extensions; none of them is
JSON. Bodies carrying one are refused at parsing (422, web.api.parse_json_object), and every
encoder the web process uses (Flask responses, Socket.IO packets) refuses to write one, so
a value that slipped into the database fails loudly on the server instead of breaking every
browser that reads the account's queue.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask.json.provider import DefaultJSONProvider


class NonFiniteNumber(ValueError):
    """A JSON number that is not finite (1e999, -1e999, NaN, Infinity)."""


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"{text[:40]} is not a finite number")
    return value


def reject_constant(name: str) -> Any:
    raise NonFiniteNumber(f"{name} is not valid JSON")


def dumps(obj: Any, **kwargs: Any) -> str:
    kwargs["allow_nan"] = False
    return json.dumps(obj, **kwargs)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    kwargs.setdefault("parse_float", finite_float)
    kwargs.setdefault("parse_constant", reject_constant)
    return json.loads(text, **kwargs)


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's provider, refusing non-finite numbers (a ValueError, so a 500, never a body
    that is not JSON)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs["allow_nan"] = False
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)
