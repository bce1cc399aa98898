"""What the product needs from a PSA, whichever it is: post a note to a ticket, list a
ticket's notes, look a member up, and register a callback where the PSA has them.
ConnectWise Manage and Autotask implement it (adapters.psa); each declares its connection
fields and capabilities in a `ConnectorSpec`, which is all the domain, the schema and the
/settings form know of a PSA.

Every failure is one of three kinds, so callers decide without knowing the PSA:
`PsaUnavailable` (try again later: 5xx, 429, timeouts, unreachable), `PsaAuthRejected`
(the keys no longer work: stop and tell an admin) and `PsaRejected` (this request is wrong;
another try fails the same way). `PsaPermissionDenied` is a `PsaRejected`: the keys work,
but the PSA user they belong to may not do this one thing (its message names it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class PsaCredentials:
    """A connection's settings and secrets. ConnectWise's fields are named attributes;
    any connector reads its own fields by name with `get` (all of them are in `values`)."""

    site_url: str = ""
    company_id: str = ""
    public_key: str = ""
    private_key: str = ""
    client_id: str = ""
    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Mapping[str, str]) -> PsaCredentials:
        named = {name: str(values.get(name) or "") for name in _NAMED}
        return cls(**named, values=dict(values))

    def get(self, name: str) -> str:
        return str(self.values.get(name) or getattr(self, name, "") or "")

    def __repr__(self) -> str:  # never print the keys, even in a traceback
        return f"PsaCredentials(site_url={self.site_url!r}, company_id={self.company_id!r})"


_NAMED = ("site_url", "company_id", "public_key", "private_key", "client_id")


@dataclass(frozen=True)
class ConnectorField:
    """One setting an admin types to connect a PSA. `secret` ones are sealed in the vault,
    never answered and never shown back; the others are stored and answered."""

    name: str
    label: str
    max_length: int = 200
    secret: bool = False
    input_type: str = "text"  # the /settings form's <input type>: text, url, password
    placeholder: str = ""
    normalize: Callable[[str], str] | None = None  # raises ValueError with what is wrong
    missing: str | None = None  # what a test of the connection says when it is empty


@dataclass(frozen=True)
class ConnectorSpec:
    """What the product knows of one PSA: its fields, what it can do, and how to reach it.

    `callbacks`: the PSA calls us when a ticket changes (else notes are found by polling
    only). `answered`: the stored fields (typed or discovered) that GET answers.
    `discover`: called on save and test with the typed values, the timeout and the
    `options`; returns settings found from them (Autotask's zone), or raises a PsaError
    saying what is wrong. `options`: server settings the connector reads (environment
    variable → default), such as the zone look-up's base URL.
    `ticket_url`: the ticket's page, from the stored (non-secret) values alone."""

    kind: str
    label: str
    fields: tuple[ConnectorField, ...]
    callbacks: bool
    answered: tuple[str, ...]
    build: Callable[[PsaCredentials, float], PsaConnector]
    ticket_url: Callable[[Mapping[str, str], str], str | None]
    address: str  # the field holding the PSA's API address (stored in `site_url`)
    discover: Callable[[Mapping[str, str], float, Mapping[str, str]], dict[str, str]] | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    member_label: str = "member"
    # How /settings names a saved connection, from its answered fields.
    summary: str = ""

    def form(self) -> dict:
        """What the /settings form's script needs to know of this PSA (no secrets)."""
        return {
            "label": self.label,
            "summary": self.summary or self.label,
            "callbacks": self.callbacks,
            "fields": [f.name for f in self.fields],
            "secret": list(self.secret()),
            "answered": list(self.answered),
        }

    def public(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.secret)

    def secret(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.secret)


class Connectors:
    """The PSA kinds the product can connect to (the edge builds it from adapters.psa);
    called like a factory: `connectors(kind, credentials, timeout)`."""

    def __init__(self, specs: Iterable[ConnectorSpec]) -> None:
        self.specs: dict[str, ConnectorSpec] = {spec.kind: spec for spec in specs}

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def spec(self, kind: str) -> ConnectorSpec:
        try:
            return self.specs[kind]
        except KeyError:
            raise ValueError(f"Unknown PSA kind {kind!r}") from None

    def options(self) -> dict[str, str]:
        """Every connector's server settings and their defaults."""
        return {key: value for spec in self.specs.values() for key, value in spec.options.items()}

    def __call__(self, kind: str, credentials: PsaCredentials, timeout: float) -> PsaConnector:
        return self.spec(kind).build(credentials, timeout)


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
        """The ticket's notes; with `since` (naive UTC), a connector may leave out notes
        created before it (a bounded read) but must return every one after it."""
        ...

    def get_member(self, member_id: str) -> PsaMember | None: ...

    def register_callback(self, url: str, description: str) -> str:
        """Ask the PSA to call `url` when a ticket changes; return the callback's id (only
        called for a spec with `callbacks`)."""
        ...

    def delete_callback(self, callback_id: str) -> None: ...

    def ticket_url(self, ticket_id: str) -> str:
        """Where a person opens the ticket in the PSA."""
        ...
