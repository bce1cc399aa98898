"""Who gets an email now: preference, presence and quiet hours in the user's own zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.email_rules import EmailPreference, plan_emails, quiet_hours_end

# 23:30 in Chicago on 1 December (05:30 UTC on the 2nd).
LATE_EVENING = datetime(2026, 12, 2, 5, 30, tzinfo=UTC)
NIGHT = {"quiet_start": "22:00", "quiet_end": "07:00", "timezone": "America/Chicago"}


def pref(user_id: int, notify_email: str = "when_offline", **quiet) -> EmailPreference:
    return EmailPreference(user_id, notify_email, **quiet)


def test_preference_decides_with_presence():
    people = [pref(1, "always"), pref(2, "when_offline"), pref(3, "never"), pref(4)]
    plan = plan_emails(people, online={1, 2}, at=LATE_EVENING)
    assert plan.now == [1, 4]  # online but "always"; offline default; never is never
    assert plan.held_until == {}


def test_quiet_hours_over_midnight_hold_until_their_end_in_the_users_zone():
    plan = plan_emails([pref(1, **NIGHT)], online=set(), at=LATE_EVENING)
    assert plan.now == []
    # 07:00 Chicago on 2 December is 13:00 UTC.
    assert plan.held_until == {1: datetime(2026, 12, 2, 13, 0, tzinfo=UTC)}


def test_the_same_moment_outside_quiet_hours_in_another_zone_sends():
    tokyo = {**NIGHT, "timezone": "Asia/Tokyo"}  # 14:30 in Tokyo
    assert plan_emails([pref(1, **tokyo)], set(), LATE_EVENING).now == [1]


@pytest.mark.parametrize(
    ("utc_hour", "utc_minute", "quiet"),
    [
        (13, 0, False),  # 07:00 Chicago: the window has just ended
        (12, 59, True),  # 06:59
        (4, 0, True),  # 22:00: starts
        (3, 59, False),  # 21:59
    ],
)
def test_the_window_edges(utc_hour: int, utc_minute: int, quiet: bool):
    at = datetime(2026, 12, 2, utc_hour, utc_minute, tzinfo=UTC)
    assert (quiet_hours_end(pref(1, **NIGHT), at) is not None) is quiet


def test_a_daytime_window_and_equal_ends():
    day = {"quiet_start": "09:00", "quiet_end": "17:00", "timezone": "UTC"}
    noon = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert quiet_hours_end(pref(1, **day), noon) == datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    assert quiet_hours_end(pref(1, **{**day, "quiet_end": "09:00"}), noon) is None


def test_daylight_saving_uses_the_zones_offset_on_that_day():
    # 22:30 in New York on 1 July is 02:30 UTC (EDT, -4), inside 22:00-07:00.
    summer = datetime(2026, 7, 2, 2, 30, tzinfo=UTC)
    quiet = {"quiet_start": "22:00", "quiet_end": "07:00", "timezone": "America/New_York"}
    assert quiet_hours_end(pref(1, **quiet), summer) == datetime(2026, 7, 2, 11, 0, tzinfo=UTC)
