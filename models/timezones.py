"""IANA time zone names, checked once for accounts and users alike."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
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


def _tab(name: str) -> str | None:
    """One of the tz database's tables, from the tzdata package, else the system's copy."""
    try:
        return resources.files("tzdata").joinpath("zoneinfo", name).read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        system = Path("/usr/share/zoneinfo") / name
        return system.read_text() if system.exists() else None


@lru_cache(maxsize=1)
def canonical_timezones() -> tuple[str, ...]:
    """The zones a person picks from: those the tz database lists per country
    (zone.tab, zone1970.tab: America/Chicago, Europe/Amsterdam), plus UTC; no "Factory",
    no legacy aliases (US/Central, EST5EDT, Etc/GMT+6)."""
    names = {"UTC"}
    tables = [text for text in map(_tab, ("zone.tab", "zone1970.tab")) if text]
    for text in tables:
        names |= {
            parts[2].strip()
            for line in text.splitlines()
            if not line.startswith("#") and len(parts := line.split("\t")) >= 3
        }
    if not tables:
        names |= {n for n in available_timezones() if "/" in n and not n.startswith("Etc/")}
    known = available_timezones()
    return tuple(sorted(name for name in names if name in known))
