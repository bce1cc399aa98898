"""Credentials: the caller's API tokens, the account's users (admin), the security log."""

from __future__ import annotations

from models import credentials, security_log
from web.api.base import ApiBlueprint
from web.auth import admin_only, authenticated, client_info, current_user
from web.pagination import decode_id_cursor, encode_id_cursor
from web.schemas import (
    SecurityLogPageSchema,
    SecurityLogQuerySchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenListQuerySchema,
    TokenListSchema,
    UserAdminSchema,
    UserListSchema,
    UserPatchSchema,
)

blp = ApiBlueprint("credentials", __name__, description="Tokens, users and the security log")


@blp.get("/tokens")
@authenticated
@blp.arguments(TokenListQuerySchema, location="query")
@blp.response(200, TokenListSchema)
@blp.errors(401, 404, 422)
def list_tokens(query):
    """The caller's live tokens (an admin may pass `user_id`); never the secrets."""
    return {"items": credentials.tokens_of(current_user(), query.get("user_id"))}


@blp.post("/tokens")
@authenticated
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenCreatedSchema)
@blp.errors(400, 401, 422)
def create_token(body):
    """A new API token for the caller; `secret` is shown in this response only."""
    token, secret = credentials.create_token(current_user(), client=client_info(), **body)
    return {"token": token, "secret": secret}


@blp.delete("/tokens/<id:token_id>")
@authenticated
@blp.response(204)
@blp.errors(401, 404)
def revoke_token(token_id: int):
    """Revoke a token (its owner, or an admin of the account). It answers 401 at once; its
    open Socket.IO connections close within seconds."""
    credentials.revoke_token(current_user(), token_id, client_info())


@blp.get("/users")
@admin_only
@blp.response(200, UserListSchema)
@blp.errors(401, 403)
def list_users():
    """The account's users (admin)."""
    return {"items": credentials.users_of(current_user())}


@blp.patch("/users/<id:user_id>")
@admin_only
@blp.arguments(UserPatchSchema)
@blp.response(200, UserAdminSchema)
@blp.errors(400, 401, 403, 404, 409, 422)
def update_user(body, user_id: int):
    """Change a user's role, or deactivate (`active: false`) / reactivate them (admin)."""
    return credentials.update_user(current_user(), user_id, client=client_info(), **body)


@blp.get("/security-log")
@admin_only
@blp.arguments(SecurityLogQuerySchema, location="query")
@blp.response(200, SecurityLogPageSchema)
@blp.errors(401, 403, 422)
def security_log_page(query):
    """The account's security log, newest first, paged with `cursor` (admin)."""
    events = security_log.page(current_user(), query["limit"], decode_id_cursor(query["cursor"]))
    next_cursor = encode_id_cursor(events[-1].id) if len(events) == query["limit"] else None
    return {"items": events, "next_cursor": next_cursor}
