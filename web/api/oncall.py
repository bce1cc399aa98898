"""On call: rotations, overrides, who is on call now, the final schedule and the calendar
feed. The schedule itself is computed in models/oncall.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import Response, current_app, request

from models import oncall, schedule_cache
from models.clock import now as clock_now
from models.entities import OnCallOverride, Rotation
from models.errors import NotFound, ValidationFailed
from models.oncall_schedule import FinalSegment
from web.api.base import ApiBlueprint, parse_json_object
from web.api.oncall_feed import calendar_text
from web.auth import admin_only, authenticated, current_user, engineer_or_admin

blp = ApiBlueprint("oncall", __name__, description="On call: rotations, overrides, schedule")

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_SPACE_FOR_PLUS = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})? \d{2}:\d{2}$")


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed("Some fields are invalid.", {field: [message]})


def parse_instant(value: object, field: str) -> datetime:
    """An RFC 3339 time with an offset, as an aware UTC datetime; else 422 saying why."""
    if not isinstance(value, str) or not value:
        raise _bad(field, "Required: an RFC 3339 time with an offset, e.g. 2026-03-09T14:00:00Z.")
    if _SPACE_FOR_PLUS.match(value):
        raise _bad(
            field,
            "The offset's '+' arrived as a space: in a query string send '+' as %2B, or use Z.",
        )
    if not _RFC3339.match(value):
        raise _bad(field, "Must be an RFC 3339 time with an offset, e.g. 2026-03-09T14:00:00Z.")
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    try:
        parsed = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    except ValueError:
        raise _bad(field, "Not a valid date and time.") from None
    return parsed.astimezone(UTC)


@lru_cache(maxsize=8192)
def instant_text(at: datetime) -> str:
    """RFC 3339 in UTC (remembered: GET /oncall/now writes the same segment bounds for
    every request while they last)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _person(user_id: int | None, names: dict[int, str]) -> dict | None:
    return None if user_id is None else {"id": user_id, "name": names.get(user_id, "")}


def rotation_body(rotation: Rotation, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": rotation.id,
        "name": rotation.name,
        "participants": [_person(user, names) for user in rotation.participants],
        "shift_length_days": rotation.shift_length_days,
        "handoff_time": rotation.handoff_time,
        "start_date": rotation.start_date.isoformat(),
        "timezone": rotation.timezone,
    }


def override_body(override: OnCallOverride) -> dict[str, Any]:
    return {
        "id": override.id,
        "rotation_id": override.rotation_id,
        "user": {"id": override.user.id, "name": override.user.name},
        "start": instant_text(override.start_at.replace(tzinfo=UTC)),
        "end": instant_text(override.end_at.replace(tzinfo=UTC)),
        "reason": override.reason,
        "created_by": {"id": override.created_by.id, "name": override.created_by.name},
    }


def segment_body(segment: FinalSegment, names: dict[int, str]) -> dict[str, Any]:
    return {
        "rotation": {"id": segment.rotation_id, "name": segment.rotation_name},
        "user": _person(segment.user_id, names),
        "source": segment.source,
        "start": instant_text(segment.start),
        "end": instant_text(segment.end),
    }


def _body() -> dict[str, Any]:
    return parse_json_object(request.get_data(cache=True))


def _rotations_answer(account, rotations) -> list[dict]:
    names = oncall.participant_names(account, rotations)
    return [rotation_body(rotation, names) for rotation in rotations]


@blp.get("/oncall/rotations")
@authenticated
@blp.response(200)
@blp.errors(401)
def list_rotations():
    """The account's rotations."""
    account = current_user().account
    return {"items": _rotations_answer(account, oncall.list_rotations(account))}


@blp.post("/oncall/rotations")
@admin_only
@blp.response(201)
@blp.errors(400, 401, 403, 422)
def create_rotation():
    """A rotation (admin): participants in turn, shift length, handoff time, start date."""
    account = current_user().account
    rotation = oncall.create_rotation(account, _body())
    return _rotations_answer(account, [rotation])[0]


@blp.patch("/oncall/rotations/<id:rotation_id>")
@admin_only
@blp.response(200)
@blp.errors(400, 401, 403, 404, 422)
def update_rotation(rotation_id: int):
    """Change a rotation (admin); its shifts, past ones too, follow the new definition."""
    account = current_user().account
    rotation = oncall.update_rotation(account, rotation_id, _body())
    return _rotations_answer(account, [rotation])[0]


@blp.delete("/oncall/rotations/<id:rotation_id>")
@admin_only
@blp.response(204)
@blp.errors(401, 403, 404)
def delete_rotation(rotation_id: int):
    """Delete a rotation and its overrides (admin)."""
    oncall.delete_rotation(current_user().account, rotation_id)


def _id_field(body: dict, field: str) -> int:
    value = body.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(field, "Required: an id.")
    return value


@blp.post("/oncall/overrides")
@engineer_or_admin
@blp.response(201)
@blp.errors(400, 401, 403, 422)
def create_override():
    """Cover part of a rotation: an admin for any active senior, an engineer for themselves."""
    body = _body()
    fields = {
        "rotation_id": _id_field(body, "rotation_id"),
        "user_id": _id_field(body, "user_id"),
        "start": parse_instant(body.get("start"), "start"),
        "end": parse_instant(body.get("end"), "end"),
        "reason": body.get("reason"),
    }
    if fields["reason"] is not None and not isinstance(fields["reason"], str):
        raise _bad("reason", "Must be text or null.")
    return override_body(oncall.create_override(current_user(), fields))


def _optional_instant(name: str) -> datetime | None:
    value = request.args.get(name)
    return None if value is None else parse_instant(value, name)


@blp.get("/oncall/overrides")
@authenticated
@blp.response(200)
@blp.errors(401, 422)
def list_overrides():
    """The account's overrides, those overlapping [from, to) when given."""
    start, end = _optional_instant("from"), _optional_instant("to")
    items = oncall.list_overrides(current_user().account, start, end)
    return {"items": [override_body(override) for override in items]}


@blp.delete("/oncall/overrides/<id:override_id>")
@engineer_or_admin
@blp.response(204)
@blp.errors(401, 403, 404)
def delete_override(override_id: int):
    """Delete an override (an admin, or the override's senior)."""
    oncall.delete_override(current_user(), override_id)


def _names(account_id: int) -> dict[int, str]:
    return oncall.user_names(account_id)


@blp.get("/oncall/now")
@authenticated
@blp.response(200)
@blp.errors(401, 422)
def on_call_now():
    """Inside business hours or not, and who is on call, now or at `at`."""
    user = current_user()
    at = _optional_instant("at") or clock_now()
    schedule = schedule_cache.schedule_at(user.account_id, at)
    return {
        "at": instant_text(at),
        "business_hours": schedule.inside_business_hours(at),
        "on_call": [segment_body(s, schedule.names) for s in schedule.on_call(at)],
    }


def _optional_id(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise _bad(name, "Must be an id.")
    return int(value)


@blp.get("/oncall/shifts")
@authenticated
@blp.response(200)
@blp.errors(401, 422)
def shifts():
    """The final schedule over [from, to) (at most 93 days), gaps included."""
    user = current_user()
    start = parse_instant(request.args.get("from"), "from")
    end = parse_instant(request.args.get("to"), "to")
    rotation_id, user_id = _optional_id("rotation_id"), _optional_id("user_id")
    if rotation_id is not None:
        oncall.get_rotation(user.account, rotation_id)  # another account's: 404
    segments = oncall.final_schedule(user.account_id, start, end, rotation_id, user_id)
    names = _names(user.account_id)
    return {"items": [segment_body(segment, names) for segment in segments]}


@blp.post("/me/calendar")
@engineer_or_admin
@blp.response(201)
@blp.errors(401, 403)
def create_calendar():
    """A secret calendar feed URL for the caller's shifts, shown once; again rotates it."""
    secret = oncall.create_feed(current_user())
    return {"url": feed_url(secret)}


def feed_url(secret: str) -> str:
    return f"{current_app.config['BASE_URL']}/api/v1/oncall/calendar/{secret}.ics"


@blp.delete("/me/calendar")
@engineer_or_admin
@blp.response(204)
@blp.errors(401, 403)
def revoke_calendar():
    """Revoke the caller's calendar feed URL."""
    oncall.revoke_feed(current_user())


@blp.get("/oncall/calendar/<secret>.ics")
@blp.response(200)
@blp.errors(404)
def calendar_feed(secret: str):
    """The feed (no other authentication): the senior's final shifts, -15 to +180 days."""
    owner = oncall.feed_owner(secret)
    if owner is None:
        raise NotFound("No such calendar feed.")
    text = calendar_text(owner, oncall.feed_segments(owner))
    return Response(text, mimetype="text/calendar", headers={"Cache-Control": "no-store"})
