"""Opaque page cursors shared by the API lists and the pages that link to the next page."""

from __future__ import annotations

import base64
import binascii

from web.errors import ApiError


def encode_cursor(position: str | None) -> str | None:
    return base64.urlsafe_b64encode(position.encode()).decode() if position else None


def decode_cursor(cursor: str | None) -> str | None:
    """The page position inside a cursor; models.queue checks it against the sort."""
    if cursor is None:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor.encode()).decode("ascii")
        if 0 < len(value) <= 40:
            return value
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise _bad_cursor()


def encode_id_cursor(after_id: int | None) -> str | None:
    """A cursor for lists paged by id (newest or oldest first)."""
    return encode_cursor(str(after_id)) if after_id else None


def decode_id_cursor(cursor: str | None) -> int | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    if position.isascii() and position.isdigit() and len(position) <= 18:
        return int(position)
    raise _bad_cursor()


def _bad_cursor() -> ApiError:
    return ApiError(
        422,
        "Some fields are invalid.",
        {"cursor": ["Not a cursor from this API."]},
        code="validation_error",
    )
