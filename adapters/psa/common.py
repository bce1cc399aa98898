"""What every PSA's HTTP client does the same way: the request and its transport faults,
Retry-After, and the times PSAs write (ISO 8601, UTC). Declares no `SPEC`."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from models.psa.base import PsaUnavailable


def send(
    http: requests.Session,
    method: str,
    url: str,
    *,
    psa: str,
    where: str,
    timeout: float,
    **kwargs: Any,
) -> requests.Response:
    """One request; a timeout or an unreachable server is `PsaUnavailable` (retried), in
    words that name the PSA (`psa`) and what was asked of it or where (`where`)."""
    try:
        return http.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise PsaUnavailable(f"{psa} did not answer within {timeout:g} s ({where}).") from exc
    except requests.RequestException as exc:
        raise PsaUnavailable(f"Could not reach {psa} ({where}): {exc}") from exc


def rate_limited(psa: str, response: requests.Response, message: str) -> PsaUnavailable:
    """A 429, retried no sooner than the PSA's Retry-After asks."""
    return PsaUnavailable(
        f"{psa} is rate limiting us (429): {message}",
        retry_after=retry_after(response.headers.get("Retry-After")),
    )


def retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def parse_time(value: Any) -> datetime:
    """A PSA's ISO 8601 time as naive UTC (now, when it gave none)."""
    if not isinstance(value, str) or not value:
        return datetime.now(UTC).replace(tzinfo=None)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed
