"""Users, the caller, and the account's settings."""

from __future__ import annotations

from models import accounts, preferences
from web.api.base import ApiBlueprint
from web.auth import admin_only, authenticated, client_info, current_user
from web.schemas import (
    POLICY_FIELDS,
    AccountPatchSchema,
    AccountSchema,
    MePatchSchema,
    MeSchema,
    UserCreatedSchema,
    UserCreateSchema,
)

blp = ApiBlueprint("users", __name__, description="Users and the account")


@blp.post("/users")
@admin_only
@blp.arguments(UserCreateSchema)
@blp.response(201, UserCreatedSchema)
@blp.errors(400, 401, 403, 409, 422)
def create_user(body):
    """Add a user to the caller's account (admin). Returns the user and an API token."""
    admin = current_user()
    user, token = accounts.create_user(admin.account, **body, actor=admin, client=client_info())
    return {"user": user, "token": token}


@blp.get("/me")
@authenticated
@blp.response(200, MeSchema)
@blp.errors(401)
def me():
    """The caller and their account."""
    return current_user()


@blp.patch("/me")
@authenticated
@blp.arguments(MePatchSchema)
@blp.response(200, MeSchema)
@blp.errors(400, 401, 422)
def update_me(body):
    """Change the caller's own notification settings: when to email, quiet hours, time zone."""
    return preferences.update_preferences(current_user(), **body)


@blp.get("/account")
@authenticated
@blp.response(200, AccountSchema)
@blp.errors(401)
def get_account():
    """The caller's account and its settings, as PATCH /account answers them."""
    return current_user().account


@blp.patch("/account")
@admin_only
@blp.arguments(AccountPatchSchema)
@blp.response(200, AccountSchema)
@blp.errors(400, 401, 403, 422)
def update_account(body):
    """Change the account's manual baseline, time zone or escalation policy (admin)."""
    policy = {name: body.pop(name) for name in POLICY_FIELDS if name in body}
    return accounts.update_account(current_user().account, policy=policy, **body)
