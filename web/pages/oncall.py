"""/oncall: the rotations, two weeks of the final schedule (gaps shown), the overrides, "take
this shift" for seniors, and the caller's calendar link. Changes go through the JSON API
from static/oncall.js."""

from __future__ import annotations

from datetime import timedelta

from flask import g, render_template

from models import clock, oncall
from models.entities import SENIOR_ROLES
from web.api.oncall import instant_text, override_body, rotation_body, segment_body
from web.pages.blueprint import blp
from web.pages.views import page_login

SCHEDULE_DAYS = 14


@blp.get("/oncall")
@page_login()
def oncall_page():
    user = g.user
    now = clock.now()
    end = now + timedelta(days=SCHEDULE_DAYS)
    rotations = oncall.list_rotations(user.account)
    names = oncall.user_names(user.account_id)
    schedule = oncall.schedule_for(user.account_id, now, end)
    overrides = oncall.list_overrides(user.account, now, None)
    return render_template(
        "pages/oncall.html",
        active="oncall",
        now=instant_text(now),
        rotations=[rotation_body(r, names) for r in rotations],
        segments=[segment_body(s, names) for s in schedule.segments(now, end)],
        on_call=[segment_body(s, names) for s in schedule.on_call(now)],
        business_hours=schedule.inside_business_hours(now),
        overrides=[override_body(o) for o in overrides],
        can_take=user.role in SENIOR_ROLES,
        is_admin=user.role == "admin",
    )
