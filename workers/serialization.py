"""Celery payloads: kombu's JSON, refusing non-finite numbers at the sender.

Registered under the same name and content type ("json", application/json), so workers of
the previous release still read every message and no setting changes.
"""

from __future__ import annotations

from typing import Any

from kombu.serialization import register
from kombu.utils import json as kombu_json


def finite_dumps(obj: Any) -> str:
    return kombu_json.dumps(obj, allow_nan=False)


def use_finite_json() -> None:
    register(
        "json",
        finite_dumps,
        kombu_json.loads,
        content_type="application/json",
        content_encoding="utf-8",
    )
