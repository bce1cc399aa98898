"""IANA time zone names, checked once for accounts and users alike."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from models.errors import ValidationFailed


def validate_timezone(name: str) -> str:
    if name not in available_timezones():
        raise ValidationFailed(
            "Unknown time zone.", {"timezone": [f"Not an IANA time zone: {name!r}."]}
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed("Unknown time zone.", {"timezone": [str(exc)]}) from exc
    return name
