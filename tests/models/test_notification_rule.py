"""The notification rule on its own (pure): who is emailed about each event, why, and who is
held by quiet hours until when, at a summer and a winter date. Every expected instant is
written out by hand: Chicago is UTC-5 (CDT) in July and UTC-6 (CST) in December.

People: 1 the admin (quiet hours 22:00-07:00 Chicago), 2 an engineer who chose `never`,
3 an engineer with no preferences, 4 a second admin who chose `never`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.email_rules import EmailPreference
from models.events import (
    HANDOFF_CLAIMED,
    HANDOFF_CREATED,
    HANDOFF_REASSIGNED,
    HANDOFF_RELEASED,
    HANDOFF_REMINDER,
    HANDOFF_RESOLVED,
    HANDOFF_UNCLAIMED,
    MESSAGE_CREATED,
    SHIFT_START,
    WRITEBACK_CREATED,
)
from models.notification_rule import (
    NOT_SENT_CLAIMED,
    RULES,
    Audience,
    Moment,
    choose,
    delivery_key,
    rule_for,
    stale_reason,
)

NIGHT = {"quiet_start": "22:00", "quiet_end": "07:00", "timezone": "America/Chicago"}
PEOPLE = [
    EmailPreference(1, "when_offline", role="admin", **NIGHT),
    EmailPreference(2, "never", timezone="America/Chicago", role="engineer"),
    EmailPreference(3, "when_offline", timezone="America/Chicago", role="engineer"),
    EmailPreference(4, "never", timezone="America/Chicago", role="admin"),
]

# 23:30 in Chicago (inside the admin's quiet hours), and when those end (07:00 Chicago).
SEASONS = {
    "summer": (datetime(2026, 7, 16, 4, 30, tzinfo=UTC), datetime(2026, 7, 16, 12, 0, tzinfo=UTC)),
    "winter": (
        datetime(2026, 12, 10, 5, 30, tzinfo=UTC),
        datetime(2026, 12, 10, 13, 0, tzinfo=UTC),
    ),
}
# 14:00 in Chicago the same days: outside the quiet hours.
AFTERNOON = {
    "summer": datetime(2026, 7, 15, 19, 0, tzinfo=UTC),
    "winter": datetime(2026, 12, 9, 20, 0, tzinfo=UTC),
}
seasons = pytest.mark.parametrize("season", ["summer", "winter"])


def audience(online=(), targets=None) -> Audience:
    return Audience(PEOPLE, set(online), targets)


@seasons
@pytest.mark.parametrize("event", [HANDOFF_CREATED, HANDOFF_REMINDER])
def test_inside_business_hours_every_offline_senior_by_their_preferences(season, event):
    late, quiet_end = SEASONS[season]
    chosen = choose(event, audience(online={3}), Moment(late, business_hours=True))
    # 3 is online, 2 and 4 said never; the admin is held until 07:00 Chicago.
    assert chosen.now == {}
    assert chosen.held == {1: (quiet_end, "business_hours")}

    afternoon = choose(event, audience(), Moment(AFTERNOON[season], business_hours=True))
    assert afternoon.now == {1: "business_hours", 3: "business_hours"}
    assert afternoon.held == {}


@seasons
@pytest.mark.parametrize("event", [HANDOFF_CREATED, HANDOFF_REMINDER])
def test_outside_business_hours_only_the_offline_on_call_seniors_whatever_they_chose(season, event):
    late, _ = SEASONS[season]
    # On call: the admin inside quiet hours, and 2 who said never. Both are emailed now.
    chosen = choose(event, audience(), Moment(late, False, frozenset({1, 2})))
    assert chosen.now == {1: "on_call", 2: "on_call"}
    assert chosen.held == {}


@seasons
def test_an_on_call_senior_who_is_online_gets_no_email_and_nobody_else_does(season):
    late, _ = SEASONS[season]
    chosen = choose(HANDOFF_CREATED, audience(online={3}), Moment(late, False, frozenset({3})))
    assert (chosen.now, chosen.held) == ({}, {})


@seasons
def test_outside_business_hours_with_nobody_on_call_every_admin_online_or_not(season):
    late, _ = SEASONS[season]
    # Admin 1 is in quiet hours and online; admin 4 said never: both are emailed now.
    chosen = choose(HANDOFF_CREATED, audience(online={1}), Moment(late, False, frozenset()))
    assert chosen.now == {1: "nobody_on_call", 4: "nobody_on_call"}
    assert chosen.held == {}


@seasons
def test_never_is_emailed_while_on_call_and_not_otherwise(season):
    late, _ = SEASONS[season]
    on_call = choose(HANDOFF_CREATED, audience(), Moment(late, False, frozenset({2})))
    assert 2 in on_call.now
    inside = choose(HANDOFF_CREATED, audience(), Moment(AFTERNOON[season], True, frozenset({2})))
    assert 2 not in inside.now and 2 not in inside.held
    off_duty = choose(HANDOFF_CREATED, audience(), Moment(late, False, frozenset({3})))
    assert 2 not in off_duty.now and 2 not in off_duty.held


@seasons
@pytest.mark.parametrize("business_hours", [True, False])
def test_the_admin_step_goes_to_every_admin_whatever_their_preferences(season, business_hours):
    late, _ = SEASONS[season]
    chosen = choose(HANDOFF_UNCLAIMED, audience(online={1}), Moment(late, business_hours))
    assert chosen.now == {1: "admin_step", 4: "admin_step"}
    assert chosen.held == {}


@seasons
def test_a_reassignment_emails_its_target_by_their_preferences_unless_on_call_after_hours(
    season,
):
    late, quiet_end = SEASONS[season]
    target = {1: None}
    inside = choose(HANDOFF_REASSIGNED, audience(targets=target), Moment(late, True))
    assert (inside.now, inside.held) == ({}, {1: (quiet_end, "reassigned")})
    on_call = choose(
        HANDOFF_REASSIGNED, audience(targets=target), Moment(late, False, frozenset({1}))
    )
    assert (on_call.now, on_call.held) == ({1: "reassigned"}, {})
    online = choose(HANDOFF_REASSIGNED, audience({1}, target), Moment(late, False, frozenset({1})))
    assert (online.now, online.held) == ({}, {})
    never = choose(HANDOFF_REASSIGNED, audience(targets={2: None}), Moment(late, True))
    assert (never.now, never.held) == ({}, {})


@seasons
def test_the_claimed_follow_up_goes_under_the_rule_of_each_first_email(season):
    late, quiet_end = SEASONS[season]
    # The admin's first email went by preference (now in quiet hours: held); 2 was on
    # call (never does not hold then); admin 4 (never) was told as nobody was on call.
    first = {1: "business_hours", 2: "on_call", 4: "nobody_on_call"}
    chosen = choose(HANDOFF_CLAIMED, audience(targets=first), Moment(late, True))
    assert chosen.now == {2: "claimed_follow_up", 4: "claimed_follow_up"}
    assert chosen.held == {1: (quiet_end, "claimed_follow_up")}  # 3 was never emailed


@seasons
def test_a_shift_notice_goes_to_its_senior_always(season):
    late, _ = SEASONS[season]
    chosen = choose(SHIFT_START, audience(online={2}, targets={2: None}), Moment(late, True))
    assert (chosen.now, chosen.held) == ({2: "shift_start"}, {})


@pytest.mark.parametrize("event", [HANDOFF_RELEASED, HANDOFF_RESOLVED])
def test_a_release_or_a_resolution_emails_nobody(event):
    assert rule_for(event).email is None
    chosen = choose(event, audience(), Moment(SEASONS["winter"][0], False))
    assert (chosen.now, chosen.held) == ({}, {})


@seasons
def test_when_the_live_event_failed_everyone_counts_as_offline(season):
    late, quiet_end = SEASONS[season]
    inside = choose(HANDOFF_CREATED, audience(online={1, 3}), Moment(late, True), fallback=True)
    # 3 was online, counted offline now; the admin's quiet hours still hold.
    assert (inside.now, inside.held) == ({3: "fallback"}, {1: (quiet_end, "fallback")})
    on_call = choose(
        HANDOFF_CREATED, audience(online={3}), Moment(late, False, frozenset({3})), fallback=True
    )
    assert on_call.now == {3: "fallback"}


def test_one_entry_per_event_and_keys_unique_per_recipient():
    assert set(RULES) == {
        HANDOFF_CREATED,
        HANDOFF_REMINDER,
        HANDOFF_UNCLAIMED,
        HANDOFF_RELEASED,
        HANDOFF_REASSIGNED,
        HANDOFF_CLAIMED,
        HANDOFF_RESOLVED,
        MESSAGE_CREATED,
        WRITEBACK_CREATED,
        SHIFT_START,
    }
    # A session's events are live only: to the session's room, nobody emailed.
    assert [(RULES[e].rooms, RULES[e].email) for e in (MESSAGE_CREATED, WRITEBACK_CREATED)] == [
        (("session",), None),
        (("session",), None),
    ]
    assert delivery_key(HANDOFF_CREATED, 3, handoff_id=7) == "email:7:3"
    assert delivery_key(HANDOFF_REMINDER, 3, 7, step="reminder-2") == "email:7:reminder-2:3"
    assert delivery_key(HANDOFF_UNCLAIMED, 3, 7, step="admins") == "email:7:admins:3"
    assert delivery_key(HANDOFF_REASSIGNED, 3, 7, event_id=40) == "email:7:reassigned-40:3"
    assert delivery_key(HANDOFF_CLAIMED, 3, 7) == "email-claimed:7:3"
    with pytest.raises(ValueError):
        rule_for("handoff.exploded")


def test_what_is_still_worth_sending():
    # A held first email of a handoff claimed meanwhile; the same email not held still goes.
    assert stale_reason(HANDOFF_CREATED, "claimed", 5, 3, held=True) == NOT_SENT_CLAIMED
    assert stale_reason(HANDOFF_CREATED, "claimed", 5, 3) is None
    assert stale_reason(HANDOFF_CREATED, "open", None, 3, held=True) is None
    assert stale_reason(HANDOFF_REMINDER, "claimed", 5, 3, held=True) == NOT_SENT_CLAIMED
    assert stale_reason(HANDOFF_REMINDER, "claimed", 5, 3).startswith("Not sent: the esc")
    assert stale_reason(HANDOFF_REASSIGNED, "claimed", 5, 5, held=True) is None
    assert stale_reason(HANDOFF_REASSIGNED, "claimed", 6, 5).startswith("Not sent:")
    # A follow-up is news once claimed.
    assert stale_reason(HANDOFF_CLAIMED, "claimed", 5, 3, held=True) is None
