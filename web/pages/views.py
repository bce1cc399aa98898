"""Page routes: sign-in, the seniors' queue, the session (pilot) view, analytics, and the
technician's own sessions. Each route reads through the domain and renders a template;
state changes from the page JavaScript go through the JSON API (cookie + CSRF header)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import (
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from marshmallow import ValidationError

from adapters.psa import default_connector
from models import credentials, handover, oncall, permissions, queue, rollup, sessions
from models.entities import PRIORITY_LABELS, SENIOR_ROLES, User
from models.errors import Forbidden, ValidationFailed
from models.psa import connection as psa_connection
from models.sso import connection as connections
from web.auth import SESSION_LOGIN_KEY, SESSION_USER_KEY, client_info, resolve_user
from web.config import ROOT
from web.extensions import limiter
from web.pages import present
from web.pages.blueprint import blp
from web.pages.security import (
    client_address_key,
    login_address_and_email_key,
    login_failed,
    login_limit_per_address,
    login_limit_per_address_and_email,
    note_failed_sign_in,
    safe_next,
    slow_down_for_email,
)
from web.schemas import (
    HandoffSchema,
    HandoffSummarySchema,
    MessageSchema,
    PsaWritebackSchema,
    SessionCreateSchema,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)

SOCKET_IO_CLIENT_DIR = ROOT / "node_modules" / "socket.io-client" / "dist"
SOCKET_IO_CLIENT_FILES = ("socket.io.min.js", "socket.io.min.js.map")
QUEUE_PAGE_SIZE = 50
ANALYTICS_MONTHS = 12

_handoff_schema = HandoffSchema()
_message_schema = MessageSchema()
_summary_schema = HandoffSummarySchema()
_writeback_schema = PsaWritebackSchema()


def page_login(*roles: str) -> Callable[[F], F]:
    """Pages need a signed-in user (else a redirect to /login?next=...) with one of `roles`
    (else the 403 page). The user is `g.user` in the view."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = resolve_user()
            if user is None:
                return redirect(url_for("pages.login", next=_this_path()))
            if roles and user.role not in roles:
                raise Forbidden(_FOR_ROLES.get(tuple(roles), "This page is not for your role."))
            g.user = user
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


_FOR_ROLES = {
    tuple(SENIOR_ROLES): "This page is for engineers and admins.",
    ("admin",): "This page is for admins.",
}


def _this_path() -> str:
    query = request.query_string.decode("utf-8", "replace")
    return f"{request.path}?{query}" if query else request.path


def _home_for(user: User) -> str:
    return url_for("pages.escalations_page" if user.is_senior else "pages.my_sessions")


@blp.app_context_processor
def _viewer() -> dict[str, Any]:
    """The signed-in user for the page header (None on the sign-in page or when unknown)."""
    try:
        user = resolve_user()
    except Exception:  # an error page must render even when the database does not answer
        user = None
    return {"viewer": user, "senior_roles": SENIOR_ROLES, "priority_labels": PRIORITY_LABELS}


# --- sign-in -------------------------------------------------------------------------------


@blp.get("/")
def home():
    user = resolve_user()
    if user is None:
        return redirect(url_for("pages.login"))
    return redirect(_home_for(user))


@blp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    login_limit_per_address,
    key_func=client_address_key,
    methods=["POST"],
    deduct_when=login_failed,
    error_message="Too many sign-in attempts from your network. Wait a minute and try again.",
)
@limiter.limit(
    login_limit_per_address_and_email,
    key_func=login_address_and_email_key,
    methods=["POST"],
    deduct_when=login_failed,
    error_message="Too many sign-in attempts for this email. Wait a minute and try again.",
)
def login():
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        user = resolve_user()
        if user is not None:
            return redirect(next_path or _home_for(user))
        return render_template("pages/login.html", next_path=next_path, email="", error=None)
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    slow_down_for_email(email)
    lifetime = current_app.permanent_session_lifetime
    try:
        signed_in = credentials.sign_in(email, password, client_info(), lifetime)
    except credentials.SsoRequired as required:
        label = connections.PROVIDER_LABELS.get(required.provider, "SSO")
        sso = {"provider": required.provider, "label": f"Sign in with {label}"}
        return render_template(
            "pages/login.html", next_path=next_path, email=email, error=required.message, sso=sso
        )
    if signed_in is None:
        note_failed_sign_in(email)
        log.info("Failed sign-in for %r from %s", email[:254], request.remote_addr)
        error = "That email and password do not match an account."
        return render_template("pages/login.html", next_path=next_path, email=email, error=error)
    user, key = signed_in
    # A fresh session: nothing from before the sign-in (including its CSRF token) carries over.
    session.clear()
    session[SESSION_USER_KEY] = user.id
    session[SESSION_LOGIN_KEY] = key
    log.info("User %s signed in", user.id)
    return redirect(next_path or _home_for(user), code=303)


@blp.post("/logout")
def logout():
    key = session.get(SESSION_LOGIN_KEY)
    if isinstance(key, str):
        credentials.sign_out(key, client_info())
    session.clear()
    return redirect(url_for("pages.login", signed_out=1), code=303)


# --- the seniors' queue -------------------------------------------------------------------


@blp.get("/escalations")
@page_login(*SENIOR_ROLES)
def escalations_page():
    """The queue's tabs (Unclaimed, Mine, All claimed, Resolved) with their counts, filters
    and sort from the query string, one page of cards, and a link to the next page."""
    view = present.queue_view(request.args, g.user.id)
    try:
        items, position = queue.find_handoffs(
            g.user, view["filter"], view["sort"], QUEUE_PAGE_SIZE, view["after"]
        )
    except ValidationFailed:  # a stale or hand-edited page link: start from the top
        view["after"] = None
        items, position = queue.find_handoffs(g.user, view["filter"], view["sort"], QUEUE_PAGE_SIZE)
    summaries = _summary_schema.dump(items, many=True)
    config = present.queue_config(g.user)
    return render_template(
        "pages/escalations.html",
        view=view,
        tabs=present.queue_tabs(view, queue.tab_counts(g.user, view["filter"])),
        cards=[present.handoff_card(summary, config["may"]) for summary in summaries],
        next_page=present.queue_link(view, after=position) if position else None,
        first_page=present.queue_link(view) if view["after"] else None,
        clear_filters=present.queue_link({**view, "params": {}}, sort=None),
        customers=queue.known_customers(g.user),
        people=queue.account_people(g.user),
        priorities=PRIORITY_LABELS,
        sorts=present.QUEUE_SORTS,
        config=config,
        blank=present.BLANK_CARD,
        on_call=_on_call_now(g.user),
    )


def _on_call_now(user: User) -> list[dict[str, Any]]:
    """Who is on call now in the account, one entry per rotation (the queue's header)."""
    _, segments = oncall.on_call_now(user.account_id)
    names = oncall.user_names(user.account_id) if segments else {}
    return [
        {
            "rotation": {"id": s.rotation_id, "name": s.rotation_name},
            "user": {"id": s.user_id, "name": names.get(s.user_id, "")},
            "end": s.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for s in segments
    ]


# --- the session (pilot) view ---------------------------------------------------------------


@blp.get("/pilot/<id:session_id>")
@page_login()
def pilot(session_id: int):
    user = g.user
    flow_session = sessions.get_session(user, session_id)
    handoff = sessions.latest_handoff(flow_session)
    handoff_data = _handoff_schema.dump(handoff) if handoff is not None else None
    refusal = sessions.write_refusal(user, flow_session, handoff)
    context = {
        "flow_session": flow_session,
        "handoff": handoff_data,
        "package": _package_parts(handoff_data),
        "messages": [_message_schema.dump(m) for m in sessions.messages_of(flow_session)],
        "writebacks": [_writeback_schema.dump(w) for w in sessions.writebacks_of(flow_session)],
        "psa": psa_connection.for_session(
            flow_session.account_id, flow_session.psa_ticket_id, default_connector
        ),
        "may_escalate": permissions.may_escalate(user, flow_session),
        "can_escalate": permissions.can_escalate(user, flow_session, handoff),
        "can_claim": permissions.can_claim(user, handoff),
        "can_resolve": permissions.can_resolve(user, handoff),
        # What the page's script applies as the handoff changes (it refetches this).
        "may": sessions.actions_for(user, flow_session, handoff),
        "read_only": refusal is not None,
        "read_only_reason": refusal.message if refusal is not None else "",
        "idempotency_key": secrets.token_urlsafe(16),
        # Release / Reassign (pages/_handoff_actions.html): who the claim can go to.
        "reassign_candidates": handover.reassign_candidates(user),
    }
    return render_template("pages/pilot.html", **context)


def _package_parts(handoff: dict[str, Any] | None) -> dict[str, Any] | None:
    """The escalation package split for reading: its own fields first, then what it carried."""
    if handoff is None:
        return None
    package = dict(handoff.get("escalation_package") or {})
    carried = {key: package.pop(key) for key in ("snapshot", "ai_assessment") if key in package}
    recent = package.pop("recent_messages", None) or []
    for name in ("reason", "notes"):  # shown at the top of the page
        package.pop(name, None)
    return {"fields": package, "carried": carried, "recent_messages": recent}


# --- analytics ------------------------------------------------------------------------------


@blp.get("/analytics")
@page_login(*SENIOR_ROLES)
def analytics():
    account = g.user.account
    month = rollup.current_month(account)
    history = rollup.metrics_for(account, rollup.recent_months(month, ANALYTICS_MONTHS))
    chart = present.bar_chart(
        [(m.month, m.minutes_recovered_per_escalation) for m in reversed(history)]
    )
    return render_template(
        "pages/analytics.html",
        account=account,
        this_month=history[0],  # newest first
        spread=rollup.month_distribution(account, month),
        history=history,
        chart=chart,
        can_edit_baseline=g.user.role == "admin",
        fmt=present.format_minutes,
        duration=present.format_duration,
        seconds=present.format_seconds,
        count=present.format_count,
        month_label=present.month_label,
    )


# --- the technician's sessions ---------------------------------------------------------------


@blp.get("/sessions")
@page_login()
def my_sessions():
    return render_template(
        "pages/sessions.html", own_sessions=sessions.sessions_of(g.user), form={}, errors={}
    )


@blp.post("/sessions")
@page_login()
def new_session():
    """Start a session from the form: a title, what was tried, and the AI's summary."""
    form = {
        name: request.form.get(name, "")
        for name in (
            "title",
            "customer",
            "priority",
            "device",
            "steps",
            "ai_summary",
            "ai_next_step",
        )
    }
    snapshot: dict[str, Any] = {}
    if form["device"].strip():
        snapshot["device"] = form["device"].strip()
    steps = [line.strip() for line in form["steps"].splitlines() if line.strip()]
    if steps:
        snapshot["steps_tried"] = steps
    assessment = {
        key: form[name].strip()
        for key, name in (("summary", "ai_summary"), ("next_step", "ai_next_step"))
        if form[name].strip()
    }
    try:
        body = SessionCreateSchema().load(
            {
                "title": form["title"],
                "snapshot": snapshot,
                "ai_assessment": assessment,
                "customer": form["customer"].strip() or None,
                "priority": form["priority"] or "p3",
            }
        )
    except ValidationError as error:
        messages = error.normalized_messages()
        return render_template(
            "pages/sessions.html",
            own_sessions=sessions.sessions_of(g.user),
            form=form,
            errors={key: " ".join(map(str, value)) for key, value in messages.items()},
        ), 422
    created = sessions.create_session(g.user, **body)
    return redirect(url_for("pages.pilot", session_id=created.id), code=303)


# --- the Socket.IO browser client (an npm dependency, never copied into the repository) ----


@blp.get("/vendor/<name>")
def vendor(name: str):
    if name not in SOCKET_IO_CLIENT_FILES:
        abort(404)
    if not (SOCKET_IO_CLIENT_DIR / name).is_file():
        log.error("No Socket.IO client in %s: run `make install`", SOCKET_IO_CLIENT_DIR)
        abort(404, "The Socket.IO client is not installed (run `make install`).")
    return send_from_directory(SOCKET_IO_CLIENT_DIR, name, max_age=3600)
