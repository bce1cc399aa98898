"""Operator commands: `flask --app wsgi create-account|seed-demo|...`."""

from __future__ import annotations

import json

import click
from flask import Flask
from sqlalchemy import select

from adapters.psa import default_connector
from models import User, db, tenancy
from models.accounts import create_account, create_user
from models.credentials import create_token, revoke_all_tokens
from models.demo import seed_history
from models.errors import DomainError
from models.psa.connection import reregister_callbacks, rotate_keys
from models.psa.settings import PsaSettings
from models.psa.vault import generate_key
from models.rollup import Month, roll_up
from models.sso import connection as sso_connections
from models.sso.connection import SsoSettings

DEMO_PASSWORD = "demo-password"
DEMO_ACCOUNT = "Demo MSP"
DEMO_TOKEN_NAME = "demo"
DEMO_USERS = [
    ("Olivia Owner", "owner@demo.example", "admin"),
    ("Terry Technician", "tech@demo.example", "technician"),
    ("Erin Engineer", "erin@demo.example", "engineer"),
    ("Sam Senior", "sam@demo.example", "engineer"),
]


def register_cli(app: Flask) -> None:
    _register_account_cli(app)
    _register_rollup_cli(app)
    _register_psa_cli(app)


def _click_error(error: DomainError) -> click.ClickException:
    """A domain refusal as the command's error message, details included."""
    return click.ClickException(f"{error.message} {error.details or ''}".strip())


def _register_account_cli(app: Flask) -> None:
    @app.cli.command("create-account")
    @click.option("--name", required=True, help="The MSP's name.")
    @click.option("--owner-name", required=True)
    @click.option("--owner-email", required=True)
    @click.option("--owner-password", default=None, help="Lets the owner log in to the pages.")
    @click.option("--timezone", default="UTC", show_default=True, help="IANA time zone.")
    def create_account_command(name, owner_name, owner_email, owner_password, timezone):
        """Bootstrap a tenant and its owner (an admin); print ids and the owner's API token."""
        try:
            account, owner, token = create_account(
                name, owner_name, owner_email, owner_password, timezone=timezone
            )
        except DomainError as error:
            raise _click_error(error) from error
        click.echo(json.dumps({"account_id": account.id, "user_id": owner.id, "token": token}))

    @app.cli.command("seed-demo")
    @click.option(
        "--history", is_flag=True, help="Also a few months of demo escalations (once), rolled up."
    )
    def seed_demo_command(history: bool):
        """Create the demo account once (idempotent) and print its logins and fresh API tokens;
        the tokens printed by earlier runs are revoked."""
        with tenancy.system("demo_seed"):
            owner = _demo_owner()
            if history:
                seeded = seed_history(owner.account)
                if seeded.handoffs:
                    click.echo(
                        f"Demo history: {seeded.handoffs} escalations over "
                        f"{len(seeded.months)} months"
                    )
            click.echo(
                f"Demo account '{owner.account.name}' — password for every login: {DEMO_PASSWORD}"
            )
            _echo_demo_logins()


def _demo_owner() -> User:
    """The demo account's owner, creating the account and any missing demo user first."""
    owner_name, owner_email, _ = DEMO_USERS[0]
    owner = db.session.scalar(select(User).where(User.email == owner_email))
    if owner is None:
        _, owner, _ = create_account(DEMO_ACCOUNT, owner_name, owner_email, DEMO_PASSWORD)
    for name, email, role in DEMO_USERS[1:]:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            create_user(owner.account, name, email, role, DEMO_PASSWORD)
    return owner


def _echo_demo_logins() -> None:
    """Each demo user with a fresh API token; the ones printed before are revoked."""
    for name, email, role in DEMO_USERS:
        user = db.session.scalar(select(User).where(User.email == email))
        revoke_all_tokens(user)
        _, token = create_token(user, DEMO_TOKEN_NAME)
        click.echo(f"  {role:<10} {name:<18} {email:<22} token {token}")


def _register_rollup_cli(app: Flask) -> None:
    @app.cli.command("rollup")
    @click.option("--month", default=None, help="YYYY-MM; default: what the scheduled run does.")
    @click.option("--account", "account_id", type=int, default=None, help="Only this account.")
    def rollup_command(month, account_id):
        """Recompute the monthly escalation metrics now and print what was written."""
        try:
            months = [Month.parse(month)] if month is not None else None
            with tenancy.system("rollup"):
                run = roll_up(months, account_id=account_id)
        except DomainError as error:
            raise _click_error(error) from error
        summary = {"rows": run.rows, "accounts": run.accounts, "months": list(run.months)}
        click.echo(json.dumps({**summary, "seconds": round(run.seconds, 3)}))


def _register_psa_cli(app: Flask) -> None:
    @app.cli.command("psa-generate-key")
    def psa_generate_key_command():
        """Print a new key for PSA_ENCRYPTION_KEYS."""
        click.echo(generate_key())

    @app.cli.command("psa-rotate-keys")
    def psa_rotate_keys_command():
        """Re-encrypt the stored PSA secrets and single sign-on client secrets with the first
        key of PSA_ENCRYPTION_KEYS."""
        try:
            count = rotate_keys(PsaSettings.from_config(app.config, default_connector))
            sso_count = sso_connections.rotate_keys(SsoSettings.from_config(app.config))
        except DomainError as error:
            raise click.ClickException(error.message) from error
        click.echo(json.dumps({"rotated": count, "sso_rotated": sso_count}))

    @app.cli.command("psa-reregister-callbacks")
    def psa_reregister_callbacks_command():
        """Register the PSA callbacks again whose URL is not the current one (run by the
        Procfile's release step after the migrations; repeatable)."""
        try:
            counts = reregister_callbacks(PsaSettings.from_config(app.config, default_connector))
        except DomainError as error:  # no PSA_ENCRYPTION_KEYS: say so, do not stop a deploy
            click.echo(json.dumps({"reregistered": 0, "skipped": error.message}))
            return
        click.echo(json.dumps(counts))
