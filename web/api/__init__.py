"""The JSON API under /api/v1, documented from its schemas at /api/v1/openapi.json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from web.api.base import API_PREFIX, EscalationApi, IdConverter


def init_api(app: Flask) -> Api:
    app.url_map.converters["id"] = IdConverter
    api = EscalationApi(
        app,
        spec_kwargs={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    from web.api import analytics, credentials, escalations, oncall, psa, sessions, sso, users

    for module in (users, sessions, escalations, analytics, psa, credentials, sso, oncall):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    return api
