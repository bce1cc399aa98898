"""The schedule's arithmetic against boundaries worked out by hand (UTC instants written out,
not computed by the code under test)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from models.oncall_schedule import (
    GAP,
    OVERRIDE,
    ROTATION,
    OverrideRule,
    RotationRule,
    final_segments,
    inside_business_hours,
    segment_at,
    shift_start,
)

A, B, C = 11, 12, 13


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rotation(days: int, handoff: str, start: date, zone: str, people=(A, B)) -> RotationRule:
    return RotationRule(1, "Servers", tuple(people), days, handoff, start, zone)


def spans(segments):
    return [(s.source, s.user_id, s.start, s.end) for s in segments]


def test_weekly_chicago_monday_0900_across_both_changes():
    weekly = rotation(7, "09:00", date(2026, 3, 2), "America/Chicago")
    # 2 March is CST (UTC-6), 9 March CDT (UTC-5): the week across 8 March lasts 167 hours.
    assert shift_start(weekly, 0) == utc(2026, 3, 2, 15, 0)
    assert shift_start(weekly, 1) == utc(2026, 3, 9, 14, 0)
    assert shift_start(weekly, 2) == utc(2026, 3, 16, 14, 0)
    # 26 October is CDT, 2 November CST: the week across 1 November lasts 169 hours.
    assert shift_start(weekly, 34) == utc(2026, 10, 26, 14, 0)
    assert shift_start(weekly, 35) == utc(2026, 11, 2, 15, 0)
    got = final_segments(weekly, [], {A, B}, utc(2026, 3, 1), utc(2026, 3, 17))
    assert spans(got) == [
        (GAP, None, utc(2026, 3, 1), utc(2026, 3, 2, 15, 0)),
        (ROTATION, A, utc(2026, 3, 2, 15, 0), utc(2026, 3, 9, 14, 0)),
        (ROTATION, B, utc(2026, 3, 9, 14, 0), utc(2026, 3, 16, 14, 0)),
        (ROTATION, A, utc(2026, 3, 16, 14, 0), utc(2026, 3, 17)),
    ]
    autumn = final_segments(weekly, [], {A, B}, utc(2026, 10, 27), utc(2026, 11, 3))
    assert spans(autumn) == [
        (ROTATION, A, utc(2026, 10, 27), utc(2026, 11, 2, 15, 0)),
        (ROTATION, B, utc(2026, 11, 2, 15, 0), utc(2026, 11, 3)),
    ]


def test_daily_london_0130_across_both_changes():
    daily = rotation(1, "01:30", date(2026, 3, 27), "Europe/London")
    # 29 March: 01:00 GMT jumps to 02:00 BST, so 01:30 does not exist and happens at
    # 02:30 BST (01:30Z); from 30 March 01:30 is BST (00:30Z).
    assert shift_start(daily, 1) == utc(2026, 3, 28, 1, 30)
    assert shift_start(daily, 2) == utc(2026, 3, 29, 1, 30)
    assert shift_start(daily, 3) == utc(2026, 3, 30, 0, 30)
    # 25 October: 01:30 happens twice; the first, 01:30 BST (00:30Z), counts.
    oct24 = (date(2026, 10, 24) - date(2026, 3, 27)).days
    assert shift_start(daily, oct24) == utc(2026, 10, 24, 0, 30)
    assert shift_start(daily, oct24 + 1) == utc(2026, 10, 25, 0, 30)
    assert shift_start(daily, oct24 + 2) == utc(2026, 10, 26, 1, 30)
    at = utc(2026, 10, 25, 12)
    segment = segment_at(daily, [], {A, B}, at)
    assert (segment.start, segment.end) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30))


def test_handoff_inside_the_spring_forward_gap_happens_later_by_the_gap():
    daily = rotation(1, "02:30", date(2026, 3, 7), "America/Chicago")
    # 8 March 02:30 CST does not exist: it happens at 03:30 CDT = 08:30Z.
    assert shift_start(daily, 0) == utc(2026, 3, 7, 8, 30)
    assert shift_start(daily, 1) == utc(2026, 3, 8, 8, 30)
    assert shift_start(daily, 2) == utc(2026, 3, 9, 7, 30)


def test_none_before_start_date_and_range_clipped_at_both_ends():
    daily = rotation(1, "09:00", date(2026, 1, 10), "UTC", people=(A, B, C))
    got = final_segments(daily, [], {A, B, C}, utc(2026, 1, 9, 12), utc(2026, 1, 11, 15))
    assert spans(got) == [
        (GAP, None, utc(2026, 1, 9, 12), utc(2026, 1, 10, 9)),
        (ROTATION, A, utc(2026, 1, 10, 9), utc(2026, 1, 11, 9)),
        (ROTATION, B, utc(2026, 1, 11, 9), utc(2026, 1, 11, 15)),
    ]
    assert segment_at(daily, [], {A, B, C}, utc(2026, 1, 9)).source == GAP


def test_override_spanning_a_handoff_cuts_both_shifts():
    daily = rotation(1, "09:00", date(2026, 1, 1), "UTC")
    cover = OverrideRule(5, 1, C, utc(2026, 1, 2, 6), utc(2026, 1, 2, 12))
    got = final_segments(daily, [cover], {A, B, C}, utc(2026, 1, 2), utc(2026, 1, 3))
    assert spans(got) == [
        (ROTATION, A, utc(2026, 1, 2), utc(2026, 1, 2, 6)),
        (OVERRIDE, C, utc(2026, 1, 2, 6), utc(2026, 1, 2, 12)),
        (ROTATION, B, utc(2026, 1, 2, 12), utc(2026, 1, 3)),
    ]
    now = segment_at(daily, [cover], {A, B, C}, utc(2026, 1, 2, 10))
    assert (now.source, now.user_id, now.start, now.end) == (
        OVERRIDE,
        C,
        utc(2026, 1, 2, 6),
        utc(2026, 1, 2, 12),
    )
    after = segment_at(daily, [cover], {A, B, C}, utc(2026, 1, 2, 20))
    assert (after.user_id, after.start, after.end) == (B, utc(2026, 1, 2, 12), utc(2026, 1, 3, 9))


def test_overlapping_overrides_the_later_created_wins():
    daily = rotation(7, "09:00", date(2026, 1, 5), "UTC")
    first = OverrideRule(5, 1, B, utc(2026, 1, 6, 0), utc(2026, 1, 6, 12))
    later = OverrideRule(9, 1, C, utc(2026, 1, 6, 6), utc(2026, 1, 6, 18))
    got = final_segments(daily, [later, first], {A, B, C}, utc(2026, 1, 6), utc(2026, 1, 7))
    assert spans(got) == [
        (OVERRIDE, B, utc(2026, 1, 6, 0), utc(2026, 1, 6, 6)),
        (OVERRIDE, C, utc(2026, 1, 6, 6), utc(2026, 1, 6, 18)),
        (ROTATION, A, utc(2026, 1, 6, 18), utc(2026, 1, 7)),
    ]
    # The earlier one created later instead: it wins inside itself.
    swapped = OverrideRule(10, 1, B, utc(2026, 1, 6, 0), utc(2026, 1, 6, 12))
    got = final_segments(daily, [later, swapped], {A, B, C}, utc(2026, 1, 6), utc(2026, 1, 7))
    assert spans(got)[:2] == [
        (OVERRIDE, B, utc(2026, 1, 6, 0), utc(2026, 1, 6, 12)),
        (OVERRIDE, C, utc(2026, 1, 6, 12), utc(2026, 1, 6, 18)),
    ]


def test_deactivated_participant_leaves_a_gap_and_the_others_keep_their_turns():
    daily = rotation(1, "09:00", date(2026, 1, 1), "UTC", people=(A, B, C))
    got = final_segments(daily, [], {A, C}, utc(2026, 1, 1, 9), utc(2026, 1, 4, 9))
    assert spans(got) == [
        (ROTATION, A, utc(2026, 1, 1, 9), utc(2026, 1, 2, 9)),
        (GAP, None, utc(2026, 1, 2, 9), utc(2026, 1, 3, 9)),
        (ROTATION, C, utc(2026, 1, 3, 9), utc(2026, 1, 4, 9)),
    ]
    gone = OverrideRule(3, 1, B, utc(2026, 1, 1, 12), utc(2026, 1, 1, 13))
    got = final_segments(daily, [gone], {A, C}, utc(2026, 1, 1, 9), utc(2026, 1, 2, 9))
    assert [s.source for s in got] == [ROTATION, GAP, ROTATION]


def test_business_hours_in_the_accounts_zone_with_holidays():
    hours = {
        "windows": [
            {"day": "mon", "start": "09:00", "end": "17:00"},
            {"day": "sat", "start": "00:00", "end": "24:00"},
        ],
        "holidays": ["2026-12-28"],
    }
    chicago = "America/Chicago"
    # Monday 7 December 2026, CST: 09:00 local is 15:00Z, 17:00 local 23:00Z.
    assert inside_business_hours(hours, chicago, utc(2026, 12, 7, 15, 0))
    assert not inside_business_hours(hours, chicago, utc(2026, 12, 7, 14, 59))
    assert not inside_business_hours(hours, chicago, utc(2026, 12, 7, 23, 0))
    # Monday 6 July 2026, CDT: 09:00 local is 14:00Z.
    assert inside_business_hours(hours, chicago, utc(2026, 7, 6, 14, 0))
    assert not inside_business_hours(hours, chicago, utc(2026, 7, 6, 13, 59))
    # Saturday all day up to midnight; the holiday Monday is outside.
    assert inside_business_hours(hours, chicago, utc(2026, 12, 13, 5, 59))  # Sat 23:59
    assert not inside_business_hours(hours, chicago, utc(2026, 12, 28, 16))
    assert inside_business_hours(None, chicago, utc(2026, 12, 28, 16))
    assert not inside_business_hours({"windows": [], "holidays": []}, chicago, utc(2026, 7, 6, 15))


def test_who_at_agrees_with_the_final_schedule_at_every_hour():
    from models.oncall_schedule import who_at

    daily = rotation(1, "01:30", date(2026, 3, 27), "Europe/London", people=(A, B, C))
    overrides = [
        OverrideRule(5, 1, C, utc(2026, 3, 28, 6), utc(2026, 3, 29, 12)),
        OverrideRule(9, 1, B, utc(2026, 3, 29, 0), utc(2026, 3, 29, 3)),
        OverrideRule(12, 1, A, utc(2026, 3, 30, 0), utc(2026, 3, 30, 2)),  # A inactive
    ]
    active = {B, C}
    segments = final_segments(daily, overrides, active, utc(2026, 3, 26), utc(2026, 4, 1))
    for hour in range(6 * 24):
        at = utc(2026, 3, 26) + (utc(2026, 1, 1, 1) - utc(2026, 1, 1)) * hour
        (segment,) = [s for s in segments if s.start <= at < s.end]
        assert who_at(daily, overrides, active, at) == (segment.source, segment.user_id), at
        if utc(2026, 3, 26) < segment.start and segment.end < utc(2026, 4, 1):  # not clipped
            assert segment_at(daily, overrides, active, at) == segment
