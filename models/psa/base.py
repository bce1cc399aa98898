"""What the product needs from a PSA, whichever it is: post a note to a ticket, list a
ticket's notes, look a member up, and register a callback. ConnectWise Manage implements
it (adapters.psa.connectwise); Autotask and HaloPSA can join behind the same Protocol.

Every failure is one of three kinds, so callers decide without knowing the PSA:
`PsaUnavailable` (try again later: 5xx, 429, timeouts, unreachable), `PsaAuthRejected`
(the keys no longer work: stop and tell an admin) and `PsaRejected` (this request is wrong;
another try fails the same way). `PsaPermissionDenied` is a `PsaRejected`: the keys work,
but the PSA user they belong to may not do this one thing (its message names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class PsaCredentials:
    site_url: str
    company_id: str
    public_key: str
    private_key: str
    client_id: str

    def __repr__(self) -> str:  # never print the keys, even in a traceback
        return f"PsaCredentials(site_url={self.site_url!r}, company_id={self.company_id!r})"


@dataclass(frozen=True)
class PsaNote:
    id: str
    ticket_id: str
    text: str
    created_at: datetime  # naive UTC, like every timestamp we store
    member_id: str | None  # the PSA member who wrote it (None: a contact, or unknown)
    member_identifier: str | None = None  # their login name in the PSA


@dataclass(frozen=True)
class PsaMember:
    id: str
    identifier: str
    email: str | None


class PsaError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PsaUnavailable(PsaError):
    """Worth another try later. `retry_after`: seconds the PSA asked us to wait, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PsaAuthRejected(PsaError):
    """401: the keys, the company or the client id are not accepted any more."""


class PsaRejected(PsaError):
    """Any other 4xx: the PSA refused this request and says why."""


class PsaPermissionDenied(PsaRejected):
    """403: the credentials work, but the PSA user's role lacks a permission; the message
    says which, in words. The connection stays usable for everything else."""


class PsaConnector(Protocol):
    kind: str

    def check(self) -> str:
        """Call the PSA; return a sentence saying it works, or raise a PsaError whose
        message says in words what is wrong."""
        ...

    def create_note(self, ticket_id: str, text: str) -> PsaNote: ...

    def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[PsaNote]:
        """The ticket's notes; with `since` (naive UTC) the PSA may leave out notes entered
        before it."""
        ...

    def get_member(self, member_id: str) -> PsaMember | None: ...

    def register_callback(self, url: str, description: str) -> str:
        """Ask the PSA to call `url` when a ticket changes; return the callback's id."""
        ...

    def delete_callback(self, callback_id: str) -> None: ...

    def ticket_url(self, ticket_id: str) -> str:
        """Where a person opens the ticket in the PSA."""
        ...
