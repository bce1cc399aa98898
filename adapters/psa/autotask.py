"""Autotask PSA (Datto, Kaseya) over its REST API, version 1.0 (docs/psa.md).

An API user's zone (the data centre that holds the company) is found from the user name
(`zoneInformation`); every call then goes to that zone with the `ApiIntegrationCode`,
`UserName` and `Secret` headers. Autotask calls nobody back when a note is added, so notes
are found by polling `TicketNotes` with a filter on `createDateTime`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from adapters.psa.common import parse_time, rate_limited, send
from models.psa.base import (
    ConnectorField,
    ConnectorSpec,
    PsaAuthRejected,
    PsaCredentials,
    PsaMember,
    PsaNote,
    PsaPermissionDenied,
    PsaRejected,
    PsaUnavailable,
)

log = logging.getLogger(__name__)

#: Where a user's zone is looked up; a setting so that tests reach a stand-in.
ZONE_LOOKUP_SETTING = "PSA_AUTOTASK_ZONE_URL"
ZONE_LOOKUP_DEFAULT = "https://webservices.autotask.net/atservicesrest"
API_VERSION = "v1.0"
MAX_RECORDS = 500  # Autotask's largest page
MAX_PAGES = 20
NOTE_TITLE = "Escalation Mode"
NOTE_TYPE = 1  # the first ticket note type of the picklist
PUBLISH_INTERNAL = 1  # "Internal Only": the MSP's staff, not the customer
# Autotask answers some permission refusals with 500 and this sentence instead of 403.
PERMISSION_SENTENCE = "does not have the adequate permissions"


def _message(response: requests.Response) -> str:
    """Autotask answers errors as {"errors": ["...", ...]} (sometimes with "message")."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(body["message"])] if body.get("message") else []
    parts += [str(error) for error in body.get("errors") or [] if error]
    return "; ".join(parts)[:500]


def _time(value: datetime) -> str:
    """A naive UTC time as Autotask's filters take it."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _ticket_number(ticket_id: str) -> int:
    text = str(ticket_id).strip()
    if not text.isdigit() or len(text) > 18:
        raise PsaRejected(
            f"Autotask ticket ids are numbers (the ticket's id, not its T2026… number); "
            f"{ticket_id!r} is not one."
        )
    return int(text)


def _same_site(zone_url: str, lookup_url: str) -> bool:
    """The zone must be on the look-up's own domain (webservicesN.autotask.net for
    webservices.autotask.net): the secret is never sent anywhere else."""
    zone, lookup = urlsplit(zone_url), urlsplit(lookup_url)
    if zone.scheme not in {"http", "https"} or not zone.hostname or not lookup.hostname:
        return False
    if zone.hostname == lookup.hostname:
        return True
    parent = lookup.hostname.split(".", 1)[-1]
    return "." in parent and zone.hostname.endswith("." + parent) and zone.scheme == "https"


def discover_zone(
    values: Mapping[str, str], timeout: float, options: Mapping[str, str]
) -> dict[str, str]:
    """The API user's zone: `zone_url` (the REST API's base) and `web_url` (the pages)."""
    lookup = (options.get(ZONE_LOOKUP_SETTING) or ZONE_LOOKUP_DEFAULT).rstrip("/")
    username = values["username"]
    try:
        response = requests.get(
            f"{lookup}/{API_VERSION}/zoneInformation",
            params={"user": username},
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise PsaUnavailable(
            f"Unreachable: could not reach Autotask's zone look-up at {lookup} "
            f"({type(exc).__name__})."
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code in {429} or response.status_code >= 502:
        raise PsaUnavailable(
            f"Unreachable: Autotask's zone look-up answered {response.status_code}; try again."
        )
    url = body.get("url") if isinstance(body, dict) else None
    if not response.ok or not isinstance(url, str) or not url:
        # Autotask answers 500 (or 404) for a user name it does not know.
        raise PsaRejected(
            f"Unknown user: Autotask has no API user named {username!r}. Use the API user's "
            "user name (an email address) from Admin › Resources/Users › API users."
        )
    if not _same_site(url, lookup):
        raise PsaRejected(f"Autotask's zone look-up named a zone on another site ({url}).")
    web_url = body.get("webUrl") if isinstance(body.get("webUrl"), str) else ""
    return {"zone_url": url.rstrip("/"), "web_url": (web_url or "").rstrip("/")}


def _note(ticket_id: str, body: dict[str, Any], text: str | None = None) -> PsaNote:
    creator = body.get("creatorResourceID")
    return PsaNote(
        id=str(body.get("id") or body.get("itemId")),
        ticket_id=str(body.get("ticketID") or ticket_id),
        text=text if text is not None else str(body.get("description") or ""),
        created_at=parse_time(body.get("createDateTime")),
        member_id=str(creator) if creator not in (None, "", 0) else None,
    )


class AutotaskConnector:
    kind = "autotask"

    def __init__(
        self,
        credentials: PsaCredentials,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.username = credentials.get("username")
        self.secret = credentials.get("secret")
        self.integration_code = credentials.get("integration_code")
        self.zone_url = credentials.get("zone_url").rstrip("/")
        self.web_url = credentials.get("web_url").rstrip("/")
        self.base = f"{self.zone_url}/{API_VERSION}"
        self.timeout = timeout
        self.http = session or requests.Session()

    def __repr__(self) -> str:  # never the secret
        return f"AutotaskConnector(username={self.username!r}, zone_url={self.zone_url!r})"

    # ------------------------------------------------------------------ plumbing

    def _headers(self) -> dict[str, str]:
        return {
            "ApiIntegrationCode": self.integration_code,
            "UserName": self.username,
            "Secret": self.secret,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = path if path.startswith("http") else self.base + path
        if not url.startswith(self.zone_url + "/"):  # a next-page URL elsewhere: refuse
            raise PsaRejected(f"Autotask pointed us at {url}, outside the zone {self.zone_url}.")
        response = send(
            self.http,
            method,
            url,
            psa="Autotask",
            where=f"{method} {path} at {self.zone_url}",
            timeout=self.timeout,
            headers=self._headers(),
            **kwargs,
        )
        status = response.status_code
        message = "" if status < 400 else (_message(response) or response.reason or "no message")
        if status == 429:
            raise rate_limited("Autotask", response, message)
        if status == 401:
            raise PsaAuthRejected(
                f"Bad credentials: Autotask refused the API user {self.username!r} (401): the "
                f"user name, secret or integration code is wrong, or the user is inactive "
                f"({message})."
            )
        if status == 403 or (status == 500 and PERMISSION_SENTENCE in message.lower()):
            raise PsaPermissionDenied(
                f"Missing permission: the credentials work, but the API user {self.username!r} may "
                f"not do this ({method} {path}, {status}): give its security level access to "
                f"tickets, ticket notes and resources ({message})."
            )
        if status >= 500:
            raise PsaUnavailable(f"Autotask answered {status}: {message}")
        if status >= 400:
            raise PsaRejected(f"Autotask refused the request ({status}): {message}")
        try:
            return response.json()
        except ValueError as exc:
            raise PsaUnavailable("Autotask answered with something that is not JSON.") from exc

    # ------------------------------------------------------------------ the interface

    def check(self) -> str:
        """The credentials (an authenticated call), then whether the API user may create
        and read ticket notes."""
        try:
            body = self._call("GET", "/TicketNotes/entityInformation")
        except PsaUnavailable as exc:
            raise PsaUnavailable(f"Unreachable: {exc.message}") from exc
        info = body.get("info") if isinstance(body, dict) else None
        if isinstance(info, dict):
            missing = [
                what
                for what, flag in (("create", "canCreate"), ("read", "canQuery"))
                if info.get(flag) is False
            ]
            if missing:
                raise PsaPermissionDenied(
                    f"Missing permission: the API user {self.username!r} may not "
                    f"{' or '.join(missing)} ticket notes; change its security level."
                )
        return f"Connected to Autotask as {self.username} (zone {self.zone_url})."

    def create_note(self, ticket_id: str, text: str) -> PsaNote:
        number = _ticket_number(ticket_id)
        body = {
            "ticketID": number,
            "title": NOTE_TITLE,
            "description": text,
            "noteType": NOTE_TYPE,
            "publish": PUBLISH_INTERNAL,
        }
        answer = self._call("POST", f"/Tickets/{number}/Notes", json=body)
        if not isinstance(answer, dict) or answer.get("itemId") in (None, ""):
            raise PsaUnavailable("Autotask answered the new note without its itemId.")
        return PsaNote(
            id=str(answer["itemId"]),
            ticket_id=str(number),
            text=text,
            created_at=datetime.now(UTC).replace(tzinfo=None),
            member_id=None,
        )

    def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[PsaNote]:
        """The ticket's notes created at or after `since` (all of them without it), page by
        page through `pageDetails.nextPageUrl`."""
        number = _ticket_number(ticket_id)
        conditions: list[dict[str, Any]] = [{"op": "eq", "field": "ticketID", "value": number}]
        if since is not None:
            conditions.append({"op": "gte", "field": "createDateTime", "value": _time(since)})
        query = {"MaxRecords": MAX_RECORDS, "filter": conditions}
        url: str | None = "/TicketNotes/query"
        notes: list[PsaNote] = []
        for _ in range(MAX_PAGES):
            if not url:
                break
            page = self._call("POST", url, json=query)
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise PsaUnavailable("Autotask answered the notes query with something else.")
            notes += [_note(ticket_id, item) for item in items if isinstance(item, dict)]
            url = ((page.get("pageDetails") or {}).get("nextPageUrl")) or None
        return notes

    def get_member(self, member_id: str) -> PsaMember | None:
        if not str(member_id).isdigit():
            return None
        try:
            body = self._call("GET", f"/Resources/{quote(str(member_id), safe='')}")
        except PsaRejected as exc:
            if "(404)" in exc.message:
                return None
            raise
        item = body.get("item") if isinstance(body, dict) else None
        if not isinstance(item, dict):
            return None
        return PsaMember(
            id=str(item.get("id")),
            identifier=str(item.get("userName") or ""),
            email=item.get("email") or None,
        )

    def register_callback(self, url: str, description: str) -> str:
        raise PsaRejected("Autotask has no callbacks for ticket notes; they are polled.")

    def delete_callback(self, callback_id: str) -> None:
        return None

    def ticket_url(self, ticket_id: str) -> str:
        return ticket_page({"web_url": self.web_url}, ticket_id) or ""


def ticket_page(values: Mapping[str, str], ticket_id: str) -> str | None:
    """Autotask's documented link that opens a ticket (ExecuteCommand, OpenTicketDetail)."""
    web_url = (values.get("web_url") or "").rstrip("/")
    if not web_url:
        return None
    return (
        f"{web_url}/Autotask/AutotaskExtend/ExecuteCommand.aspx?Code=OpenTicketDetail"
        f"&TicketID={quote(str(ticket_id), safe='')}"
    )


SPEC = ConnectorSpec(
    kind=AutotaskConnector.kind,
    label="Autotask PSA",
    fields=(
        ConnectorField(
            "username", "API user name", 100, placeholder="api-user@example.com",
            missing="Missing: the API user's user name (an email address).",
        ),
        ConnectorField("secret", "Secret", 200, secret=True, input_type="password"),
        ConnectorField(
            "integration_code", "Integration code", 100, secret=True, input_type="password",
            missing="Missing: the API tracking identifier (integration code) of the API user.",
        ),
    ),
    callbacks=False,
    answered=("username", "zone_url"),
    build=lambda credentials, timeout: AutotaskConnector(credentials, timeout=timeout),
    ticket_url=ticket_page,
    address="zone_url",
    discover=discover_zone,
    options={ZONE_LOOKUP_SETTING: ZONE_LOOKUP_DEFAULT},
    member_label="resource",
    summary="Autotask as {username} (zone {zone_url})",
)  # fmt: skip
