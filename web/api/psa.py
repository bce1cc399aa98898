"""The account's PSA connection, the PSA's callbacks, and the writebacks' delivery state."""

from __future__ import annotations

import json
import logging
import re

from flask import current_app, request
from marshmallow import ValidationError

from adapters.psa import default_connector
from adapters.psa.connectwise import signing_key_fetcher
from models import sessions
from models.psa import connection as connections
from models.psa import inbound, members, signatures
from models.psa.settings import PsaSettings
from web.api.base import ApiBlueprint, parse_json_object
from web.auth import admin_only, authenticated, current_user
from web.errors import ApiError
from web.schemas import (
    PsaConnectionInputSchema,
    PsaConnectionSchema,
    PsaConnectionTestInputSchema,
    PsaMemberLinkInputSchema,
    PsaMemberLinkListSchema,
    PsaMemberLinkSchema,
    PsaTestResultSchema,
    PsaWritebackListSchema,
)

log = logging.getLogger(__name__)

blp = ApiBlueprint("psa", __name__, description="The PSA connection and its callbacks")

MAX_CALLBACK_BYTES = 64 * 1024


def psa_settings() -> PsaSettings:
    return current_app.extensions.get("psa_settings") or PsaSettings.from_config(
        current_app.config, default_connector
    )


@blp.get("/account/psa")
@admin_only
@blp.response(200, PsaConnectionSchema)
@blp.errors(401, 403)
def get_connection():
    """The account's PSA connection (never its keys); with none, `kind` null and `status`
    `not_connected` (an unset connection is a state to show, not a missing page)."""
    connection = connections.get_connection(current_user().account_id)
    if connection is None:
        return {"kind": None, "status": "not_connected", "callback_url": None}
    return connections.view(connection, psa_settings())


@blp.put("/account/psa")
@admin_only
@blp.arguments(PsaConnectionInputSchema)
@blp.response(200, PsaConnectionSchema)
@blp.errors(400, 401, 403, 422, 503)
def put_connection(body):
    """Connect the account to its PSA (admin), with the fields of its `kind`: the secrets
    are stored encrypted and never answered; a PSA with callbacks is asked to call
    `callback_url` when a ticket changes (one without, such as Autotask, is polled and
    answers `callback_url` null)."""
    settings = psa_settings()
    connection = connections.save(current_user(), body, settings)
    return connections.view(connection, settings)


@blp.delete("/account/psa")
@admin_only
@blp.response(204)
@blp.errors(401, 403)
def delete_connection():
    """Disconnect (admin); the PSA's callback is deleted too."""
    connections.delete(current_user(), psa_settings())


@blp.post("/account/psa/test")
@admin_only
@blp.response(200, PsaTestResultSchema)
@blp.errors(400, 401, 403, 422)
def test_connection():
    """Call the PSA with the given settings, or the saved ones when the body is empty, and
    say in words what is wrong."""
    raw = request.get_data(cache=True)
    fields = None
    if raw.strip():
        try:
            loaded = PsaConnectionTestInputSchema().load(parse_json_object(raw))
        except ValidationError as exc:
            raise ApiError(422, "Some fields are invalid.", exc.messages) from exc
        fields = loaded if set(loaded) - {"kind"} else None
    ok, message = connections.test(current_user(), fields, psa_settings())
    return {"ok": ok, "message": message}


@blp.get("/account/psa/members")
@admin_only
@blp.response(200, PsaMemberLinkListSchema)
@blp.errors(401, 403)
def list_member_links():
    """PSA members mapped to users by an admin (others are matched by email)."""
    return {"items": members.links(current_user())}


@blp.put("/account/psa/members")
@admin_only
@blp.arguments(PsaMemberLinkInputSchema)
@blp.response(200, PsaMemberLinkSchema)
@blp.errors(400, 401, 403, 422)
def put_member_link(body):
    """Map a PSA member (their login identifier) to the account's user with `email`."""
    return members.link(current_user(), body["psa_member"], body["email"])


@blp.delete("/account/psa/members/<string:psa_member>")
@admin_only
@blp.response(204)
@blp.errors(401, 403)
def delete_member_link(psa_member: str):
    """Remove a mapping; the member is matched by email again."""
    members.unlink(current_user(), psa_member)


@blp.get("/sessions/<id:session_id>/psa-writebacks")
@authenticated
@blp.response(200, PsaWritebackListSchema)
@blp.errors(401, 403, 404)
def list_writebacks(session_id: int):
    """The session's notes written back to the PSA, with each one's delivery state."""
    session = sessions.get_session(current_user(), session_id)
    return {"items": sessions.writebacks_of(session)}


RECORD_ID = re.compile(r"\d{1,18}\Z")


def _record_in_query() -> str | None:
    """The record id ConnectWise appended to the registered URL (`?id=` or `?recordId=`);
    empty as registered. Anything else is not a record id: 422."""
    values = [request.args.get(name, "").strip() for name in ("id", "recordId")]
    given = [value for value in values if value]
    for value in given:
        if not RECORD_ID.match(value):
            raise ApiError(
                422,
                "The record id appended to the callback URL must be a number.",
                {"id": ["A ConnectWise record id: 1-18 digits."]},
            )
    return given[0] if given else None


def _ticket_named(raw: bytes, record: str | None) -> str | None:
    """ConnectWise posts {"Action", "Type", "ID", "Entity", ...}; only ID (the ticket; else
    the record id appended to the URL) and Type are used. The entity itself is fetched from
    the API, never trusted from here."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    kind = str(body.get("Type") or body.get("type") or "ticket").lower()
    ticket = body.get("ID", body.get("id", record))
    if kind != "ticket" or isinstance(ticket, bool) or not isinstance(ticket, int | str):
        return None
    ticket = str(ticket).strip()
    return ticket if RECORD_ID.match(ticket) else None


@blp.post("/psa/callbacks/<string:key>")
@blp.response(200, PsaTestResultSchema)
@blp.errors(401, 403, 404, 413, 422, 503)
def psa_callback(key: str):
    """Called by the PSA when a ticket changes, at the account's `callback_url` (with the
    record id ConnectWise appends: `?id=<record>`). The secret in it must match (404
    otherwise), and ConnectWise's `x-content-signature` too (401 without one, 403 when it
    does not match), unless the connection switched signature checks off; the ticket's
    notes are then read by a worker."""
    settings = psa_settings()
    connection = connections.for_callback(key, settings)
    account_id = connection.account_id
    if request.content_length and request.content_length > MAX_CALLBACK_BYTES:
        raise ApiError(413, "Callback body too large.")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_CALLBACK_BYTES:
        raise ApiError(413, "Callback body too large.")
    signatures.verify(
        connection,
        raw,
        request.headers.get(signatures.SIGNATURE_HEADER),
        signing_key_fetcher(connection.id, settings.timeout),
    )
    ticket = _ticket_named(raw, _record_in_query())
    if ticket is None or not inbound.linked_sessions(account_id, ticket):
        return {"ok": True, "message": "Nothing to do."}
    try:
        current_app.extensions["celery"].send_task(
            inbound.SYNC_TICKET_TASK, args=[account_id, ticket]
        )
    except Exception:  # the broker is down: the beat's poll reads the ticket later
        log.warning("Could not queue the notes of ticket %s; polling will", ticket, exc_info=True)
    return {"ok": True, "message": f"Ticket {ticket} will be read."}
