"""Benchmark-only endpoints. They are not part of the shipped app (nothing under web/ imports
them): `python -m bench.web` builds the real app and adds them, so a benchmark can compare
both sides against one server in one run:

- `POST /api/v1/_bench/bare/<session_id>`: authenticate, insert one row (a chat message,
  written directly: no first-action rule), commit. The floor any write endpoint pays.
- `POST /api/v1/_bench/naive-escalate/<session_id>`: the design this product replaces:
  escalate, then send the email inside the request with smtplib (configured timeout), to
  every senior of the account, before answering.

A plain Flask blueprint, not a flask-smorest one, so they never appear in the OpenAPI document.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime

from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import insert, select

from models import escalations
from models.db import db
from models.entities import SENIOR_ROLES, Message, User
from web.api.base import API_PREFIX, parse_json_object
from web.auth import authenticated, current_user
from web.schemas import HandoffSchema
from workers.email_message import compose, message_id, notice_for

log = logging.getLogger(__name__)

bp = Blueprint("bench", __name__, url_prefix=f"{API_PREFIX}/_bench")

_handoff_schema = HandoffSchema()


@bp.post("/bare/<id:session_id>")
@authenticated
def bare(session_id: int):
    """One INSERT and one COMMIT behind the same authentication as the real endpoints."""
    user = current_user()
    message_id = db.session.execute(
        insert(Message)
        .values(account_id=user.account_id, session_id=session_id, author_id=user.id, body="bench")
        .returning(Message.id)
    ).scalar_one()
    db.session.commit()
    return jsonify({"id": message_id}), 201


@bp.post("/naive-escalate/<id:session_id>")
@authenticated
def naive_escalate(session_id: int):
    """Escalate, then email every senior synchronously: the response waits on SMTP."""
    body = parse_json_object(request.get_data(cache=True))
    reason = str(body.get("reason") or "Needs a senior")
    handoff, created = escalations.escalate(current_user(), session_id, reason, body.get("notes"))
    if created:
        _send_inline(handoff)
    return jsonify(_handoff_schema.dump(handoff)), 201 if created else 200


def _send_inline(handoff) -> None:
    """The same message the worker sends (workers/email_message.py), one per senior."""
    config = current_app.config
    recipients = db.session.execute(
        select(User.id, User.name, User.email).where(
            User.account_id == handoff.account_id, User.role.in_(SENIOR_ROLES)
        )
    ).all()
    notice = notice_for(handoff)
    try:
        with smtplib.SMTP(
            config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT"]
        ) as smtp:
            if config["SMTP_STARTTLS"]:
                smtp.starttls()
            if config["SMTP_USERNAME"]:
                smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
            for user_id, name, address in recipients:
                message = compose(
                    notice,
                    recipient_name=name,
                    recipient_email=address,
                    mail_from=config["MAIL_FROM"],
                    base_url=config["BASE_URL"],
                    message_id=message_id(user_id, handoff.id, config["MAIL_FROM"]),
                    date=datetime.now(UTC),
                )
                smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        # The naive design has nowhere to retry from: the email is simply lost.
        log.warning("Inline email for handoff %s failed: %s", handoff.id, error)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
