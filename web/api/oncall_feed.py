"""A senior's shifts as an iCalendar document (RFC 5545), for Outlook and Google Calendar."""

from __future__ import annotations

from icalendar import Calendar, Event

from models.clock import now as clock_now
from models.entities import User
from models.oncall_schedule import OVERRIDE, FinalSegment


def calendar_text(owner: User, segments: list[FinalSegment]) -> bytes:
    """One VEVENT per final segment, times in UTC, a UID stable for the segment."""
    calendar = Calendar()
    calendar.add("prodid", "-//Escalation Mode//On call//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"On call: {owner.name}")
    stamp = clock_now()
    for segment in segments:
        event = Event()
        event.add("uid", f"{segment.uid}@escalation-mode")
        event.add("dtstamp", stamp)
        event.add("dtstart", segment.start)
        event.add("dtend", segment.end)
        kind = " (override)" if segment.source == OVERRIDE else ""
        event.add("summary", f"On call: {segment.rotation_name}{kind}")
        calendar.add_component(event)
    return calendar.to_ical()
