"""Signing in through the account's identity provider: `/login/sso` sends the browser
there, `/login/sso/callback` takes it back and starts a normal server-side login.

Anything that goes wrong on the way back (a bad or replayed state, a denied consent, a
provider error, a refused identity) is a 400 page saying what happened."""

from __future__ import annotations

import hmac
import logging

from flask import current_app, jsonify, redirect, render_template, request, session

from models import credentials
from models.sso import connection as connections
from models.sso import signin
from models.sso.entities import SsoConnection
from web.auth import SESSION_LOGIN_KEY, SESSION_USER_KEY, client_info
from web.error_pages import render_error_page
from web.pages.blueprint import blp
from web.pages.views import _home_for
from web.sso_client import ProviderFailed, authorization_request, sso_settings, verified_claims

log = logging.getLogger(__name__)

SESSION_STATES_KEY = "sso_states"
MAX_PENDING_STATES = 3
DENIED_ERRORS = {"access_denied", "consent_required", "interaction_required", "login_required"}


def sso_button(connection: SsoConnection | None) -> dict | None:
    if connection is None:
        return None
    label = connections.PROVIDER_LABELS.get(connection.provider, "SSO")
    return {"provider": connection.provider, "label": f"Sign in with {label}"}


def _login_page(email: str, error: str, status: int):
    body = render_template("pages/login.html", next_path=None, email=email, error=error, sso=None)
    return body, status


@blp.get("/login/sso/provider")
def sso_provider():
    """Which button the sign-in page shows for this email: {"provider", "label"} or nulls."""
    email = request.args.get("email", "")[:254]
    connection = connections.connection_for_email(email, sso_settings()) if email else None
    return jsonify(sso_button(connection) or {"provider": None, "label": None})


@blp.get("/login/sso")
def sso_start():
    """302 to the provider of the account whose connection serves this email's domain."""
    email = request.args.get("email", "").strip()[:254]
    settings = sso_settings()
    connection = connections.connection_for_email(email, settings) if email else None
    if connection is None:
        domain = connections.email_domain(email) if email else None
        error = (
            f"Single sign-on is not set up for {domain}. Sign in with your password."
            if domain
            else "Type your work email to sign in with single sign-on."
        )
        return _login_page(email, error, 200)
    config = connections.provider_config(connection, settings)
    try:
        sent = authorization_request(config, settings.redirect_uri, settings.timeout)
    except ProviderFailed as failed:
        log.warning("Single sign-on for account %s: %s", connection.account_id, failed.detail)
        message = f"Your identity provider could not be reached ({failed.detail}). Try again."
        return _login_page(email, message, 502)
    signin.record_sign_in(
        connection, sent.state, sent.nonce, sent.code_verifier, settings.redirect_uri
    )
    pending = [state for state in session.get(SESSION_STATES_KEY, []) if isinstance(state, str)]
    session[SESSION_STATES_KEY] = [*pending, sent.state][-MAX_PENDING_STATES:]
    return redirect(sent.url, code=302)


def _bound_to_this_browser(state: str) -> bool:
    """The state was handed to this browser (a link made for someone else's browser, the
    login-CSRF trick, is refused); it is forgotten here either way."""
    pending = [value for value in session.get(SESSION_STATES_KEY, []) if isinstance(value, str)]
    bound = any(hmac.compare_digest(value, state) for value in pending)
    session[SESSION_STATES_KEY] = [value for value in pending if value != state]
    return bound


def _provider_said() -> str:
    error = request.args.get("error", "")[:100]
    return f"{error}: {request.args.get('error_description', '')[:300]}".strip(": ")


def _claims(pending: signin.PendingSignIn) -> dict:
    connection = pending.connection
    error = request.args.get("error")
    if error:
        reason = "denied" if error in DENIED_ERRORS else "provider_error"
        raise signin.refuse_callback(connection, reason, client_info(), _provider_said())
    code = request.args.get("code")
    if not code or len(code) > 4096:
        raise signin.refuse_callback(connection, "provider_error", client_info(), "no code")
    settings = sso_settings()
    try:
        return verified_claims(
            connections.provider_config(connection, settings),
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            timeout=settings.timeout,
        )
    except ProviderFailed as failed:
        raise signin.refuse_callback(
            connection, failed.reason, client_info(), failed.detail
        ) from None


@blp.get("/login/sso/callback")
def sso_callback():
    """303 to the user's home page with a login session, or a 400 page saying why not."""
    state = request.args.get("state") or ""
    try:
        if not state and request.args.get("error"):
            # A provider that drops the state on an error: nothing to look up, say what it said.
            raise signin.SsoRefused("denied", _provider_said())
        pending = signin.take_sign_in(state)
        if not _bound_to_this_browser(state):
            raise signin.refuse_callback(
                pending.connection, "bad_state", client_info(), "started in another browser"
            )
        user = signin.identify(pending.connection, _claims(pending), client_info())
    except signin.SsoRefused as refused:
        return render_error_page(400, refused.message)
    lifetime = min(current_app.permanent_session_lifetime, signin.SSO_LOGIN_LIFETIME)
    key = credentials.start_login(user, client_info(), lifetime, method="sso")
    session.clear()
    session[SESSION_USER_KEY] = user.id
    session[SESSION_LOGIN_KEY] = key
    log.info("User %s signed in with single sign-on", user.id)
    return redirect(_home_for(user), code=303)
