"""The account's single sign-on connection (admin)."""

from __future__ import annotations

from flask import request
from marshmallow import Schema, fields

from models.sso import connection as connections
from web.api.base import ApiBlueprint, parse_json_object
from web.auth import admin_only, client_info, current_user
from web.errors import ApiError
from web.sso_client import sso_settings

blp = ApiBlueprint("sso", __name__, description="Single sign-on (OpenID Connect)")


class SsoJitSchema(Schema):
    enabled = fields.Boolean()
    role = fields.String()


class SsoDomainStateSchema(Schema):
    domain = fields.String()
    verified = fields.Boolean()
    txt_name = fields.String()
    txt_value = fields.String()


class SsoVerificationSchema(Schema):
    mode = fields.String()
    domains = fields.List(fields.Nested(SsoDomainStateSchema))


class SsoConnectionSchema(Schema):
    provider = fields.String()
    tenant_id = fields.String(allow_none=True)
    issuer_url = fields.String(allow_none=True)
    client_id = fields.String()
    domains = fields.List(fields.String())
    jit = fields.Nested(SsoJitSchema)
    required = fields.Boolean()
    redirect_uri = fields.String()
    domain_verification = fields.Nested(SsoVerificationSchema)


def _connection_or_404():
    connection = connections.get_connection(current_user().account_id)
    if connection is None:
        raise ApiError(404, "This account has no single sign-on connection.")
    return connection


@blp.get("/account/sso")
@admin_only
@blp.response(200, SsoConnectionSchema)
@blp.errors(401, 403, 404)
def get_connection():
    """The account's connection (never its client secret), with each domain's TXT record
    and whether it is verified; unverified domains are checked again."""
    settings = sso_settings()
    connection = _connection_or_404()
    connections.verify_domains(connection, settings)
    return connections.view(connection, settings)


@blp.put("/account/sso")
@admin_only
@blp.response(200, SsoConnectionSchema)
@blp.errors(400, 401, 403, 409, 422, 503)
def put_connection():
    """Create or replace the connection (admin). `client_secret` is sealed and never
    answered; it may be left out to keep the saved one. Register `redirect_uri` at the
    provider and publish each domain's TXT record."""
    body = parse_json_object(request.get_data(cache=True))
    settings = sso_settings()
    connection = connections.save(current_user(), body, settings, client_info())
    return connections.view(connection, settings)


@blp.delete("/account/sso")
@admin_only
@blp.response(204)
@blp.errors(401, 403)
def delete_connection():
    """Remove single sign-on (admin); users sign in with passwords again."""
    connections.delete(current_user(), client_info())


@blp.post("/account/sso/verify")
@admin_only
@blp.response(200, SsoConnectionSchema)
@blp.errors(401, 403, 404)
def verify_domains():
    """Check the TXT records of the unverified domains now."""
    settings = sso_settings()
    connection = _connection_or_404()
    connections.verify_domains(connection, settings)
    return connections.view(connection, settings)
