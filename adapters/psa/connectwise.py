"""ConnectWise Manage (PSA) over its REST API, version 3.0 (docs/psa.md).

Authentication is HTTP Basic with `companyId+publicKey` as the user name and the private
key as the password, plus the `clientId` header that ConnectWise requires on every call.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from adapters.psa.common import parse_time, rate_limited, send
from models.psa.base import (
    ConnectorField,
    ConnectorSpec,
    PsaAuthRejected,
    PsaCredentials,
    PsaError,
    PsaMember,
    PsaNote,
    PsaPermissionDenied,
    PsaRejected,
    PsaUnavailable,
)
from models.psa.sites import normalize_site_url, ticket_url

log = logging.getLogger(__name__)

API_PATH = "/v4_6_release/apis/3.0"
PAGE_SIZE = 100
MAX_PAGES = 20  # 2,000 notes on one ticket is far past any real escalation
CALLBACK_TYPE = "Ticket"
CALLBACK_LEVEL = "owner"  # with objectId 1: every ticket of the company
TIME_ENTRY_NOTE = "TimeEntryNote"  # allNotes' noteType of a time entry's note

# What a 403 on each endpoint means, named as ConnectWise's security roles name them
# (System > Security Roles > the API member's role > module > permission).
PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("GET", r"^/service/tickets/[^/]+/(allNotes|notes)", "read ticket notes "
     "(Service Desk > Service Tickets: Inquire; Time & Expense > Time Entry: Inquire "
     "for time entries)"),
    ("POST", r"^/service/tickets/[^/]+/notes", "add notes to tickets "
     "(Service Desk > Service Tickets: Add and Edit)"),
    ("GET", r"^/service/tickets", "read tickets (Service Desk > Service Tickets: Inquire)"),
    ("GET", r"^/time/entries", "read time entries (Time & Expense > Time Entry: Inquire)"),
    ("GET", r"^/system/members", "look members up (System > Member Maintenance: Inquire)"),
    ("POST", r"^/system/callbacks", "register callbacks (System > Table Setup: Add)"),
    ("DELETE", r"^/system/callbacks", "delete callbacks (System > Table Setup: Delete)"),
)  # fmt: skip


# Read by `check()` so that a role without them is said before any poll needs them.
PERMISSION_PROBES = ("/service/tickets", "/time/entries", "/system/members")


def permission_needed(method: str, path: str) -> str:
    """In words, what the API member may not do when ConnectWise answers 403 here."""
    route = path.split("?", 1)[0]
    for verb, pattern, words in PERMISSIONS:
        if verb == method and re.search(pattern, route):
            return words
    return "make this call"


def _message(response: requests.Response) -> str:
    """ConnectWise answers errors as {"code", "message", "errors": [{"message", ...}]}."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(body.get("message") or body.get("code") or "")]
    for error in body.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
    return "; ".join(part for part in parts if part)[:500]


def _note(ticket_id: str, body: dict[str, Any]) -> PsaNote:
    member = body.get("member") or {}
    return PsaNote(
        id=str(body["id"]),
        ticket_id=str(body.get("ticketId") or ticket_id),
        text=str(body.get("text") or ""),
        created_at=parse_time(
            body.get("dateCreated") or (body.get("_info") or {}).get("dateEntered")
        ),
        member_id=str(member["id"]) if isinstance(member, dict) and member.get("id") else None,
        member_identifier=(member.get("identifier") or None) if isinstance(member, dict) else None,
    )


class ConnectWiseConnector:
    kind = "connectwise"

    def __init__(
        self,
        credentials: PsaCredentials,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.credentials = credentials
        self.site = normalize_site_url(credentials.site_url)
        self.base = self.site + API_PATH
        self.timeout = timeout
        self.http = session or requests.Session()

    # ------------------------------------------------------------------ plumbing

    def _headers(self) -> dict[str, str]:
        c = self.credentials
        user = f"{c.company_id}+{c.public_key}:{c.private_key}".encode()
        return {
            "Authorization": "Basic " + base64.b64encode(user).decode(),
            "clientId": c.client_id,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.base + path
        response = send(
            self.http,
            method,
            url,
            psa="ConnectWise",
            where=f"{method} {path} at {self.site}",
            timeout=self.timeout,
            headers=self._headers(),
            **kwargs,
        )
        status = response.status_code
        if status < 400:
            return response
        message = _message(response) or response.reason or "no message"
        if status == 429:
            raise rate_limited("ConnectWise", response, message)
        if status >= 500:
            raise PsaUnavailable(f"ConnectWise answered {status}: {message}")
        if status == 401:
            raise PsaAuthRejected(f"ConnectWise refused our credentials ({status}): {message}")
        if status == 403:
            route = url.removeprefix(self.base).split("?", 1)[0]
            raise PsaPermissionDenied(
                f"Missing permission: the ConnectWise API member's security role may not "
                f"{permission_needed(method, route)} ({method} {route} answered 403: "
                f"{message}). Give the role that permission in ConnectWise (System > "
                "Security Roles); the keys themselves work."
            )
        raise PsaRejected(f"ConnectWise refused the request ({status}): {message}")

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise PsaUnavailable("ConnectWise answered with something that is not JSON.") from exc

    # ------------------------------------------------------------------ the interface

    def check(self) -> str:
        """Company first (ConnectWise says whether a company id exists without any keys),
        then the keys and client id with an authenticated call."""
        c = self.credentials
        if not c.client_id.strip():
            raise PsaRejected(
                "No client id: ConnectWise requires a clientId on every API call. Create one "
                "in the ConnectWise developer portal and paste it here."
            )
        try:
            info = self.http.get(
                f"{self.site}/login/companyinfo/{quote(c.company_id, safe='')}",
                timeout=self.timeout,
                headers={"Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise PsaUnavailable(
                f"Unreachable: could not reach {self.site} ({type(exc).__name__})."
            ) from exc
        body = None
        if info.ok and info.content:
            try:
                body = info.json()
            except ValueError:
                kind = (info.headers.get("Content-Type") or "no content type").split(";")[0]
                raise PsaRejected(
                    f"Not ConnectWise: {self.site}/login/companyinfo/{c.company_id} answered "
                    f"{info.status_code} with {kind}, not JSON. Check the site URL: it must "
                    "be the address of your ConnectWise Manage server (e.g. "
                    "https://na.myconnectwise.net), not a sign-in page or a proxy."
                ) from None
        if not isinstance(body, dict) or not (body.get("CompanyID") or body.get("Codebase")):
            raise PsaRejected(
                f"Wrong company: ConnectWise at {self.site} knows no company id "
                f"{c.company_id!r}. Use the company id you type when signing in."
            )
        try:
            self._call("GET", "/system/info")
        except PsaAuthRejected as exc:
            if "clientid" in exc.message.lower():
                raise PsaAuthRejected(f"The client id was refused: {exc.message}") from exc
            raise PsaAuthRejected(
                f"Bad keys: ConnectWise refused the public/private key pair for company "
                f"{c.company_id!r} ({exc.message})."
            ) from exc
        missing = []
        for probe in PERMISSION_PROBES:  # what the polls and writebacks read, one row each
            try:
                self._call("GET", probe, params={"pageSize": 1, "fields": "id"})
            except PsaPermissionDenied as exc:
                missing.append(exc.message)
        if missing:
            raise PsaPermissionDenied(" ".join(missing))
        return f"Connected to ConnectWise company {c.company_id} at {self.site}."

    def create_note(self, ticket_id: str, text: str) -> PsaNote:
        # An internal analysis note: seen by the MSP's staff, not mailed to the customer.
        body = {
            "text": text,
            "detailDescriptionFlag": False,
            "internalAnalysisFlag": True,
            "resolutionFlag": False,
            "processNotifications": False,
        }
        path = f"/service/tickets/{quote(str(ticket_id), safe='')}/notes"
        return _note(ticket_id, self._json(self._call("POST", path, json=body)))

    def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[PsaNote]:
        """The ticket's notes and its time entries' notes (`allNotes`), following the `Link`
        header's `rel="next"`. With `since` (naive UTC), only rows changed since then are
        asked for (`conditions=_info/lastUpdated >= [...]`): a row is never changed before
        it is entered, so nothing entered since then is left out."""
        path = f"/service/tickets/{quote(str(ticket_id), safe='')}/allNotes"
        params: dict[str, Any] | None = {"page": 1, "pageSize": PAGE_SIZE, "orderBy": "id asc"}
        if since is not None:
            params["conditions"] = f"_info/lastUpdated >= [{since:%Y-%m-%dT%H:%M:%SZ}]"
        notes: list[PsaNote] = []
        url, page = path, 1
        for _ in range(MAX_PAGES):
            try:
                response = self._call("GET", url, params=params)
            except PsaPermissionDenied:
                raise
            except PsaRejected as exc:
                if "(400)" not in exc.message or not params or "conditions" not in params:
                    raise
                # A server that cannot filter this list on that date: read it all instead.
                log.warning("Ticket %s: notes read without conditions (%s)", ticket_id, exc)
                params = {key: value for key, value in params.items() if key != "conditions"}
                response = self._call("GET", url, params=params)
            rows = self._json(response)
            if not isinstance(rows, list):
                raise PsaError("ConnectWise answered the notes list with something else.")
            for row in rows:
                if isinstance(row, dict) and (note := self._all_note(ticket_id, row)):
                    notes.append(note)
            following = self._next_link(response)
            if following is None and "Link" not in response.headers and len(rows) >= PAGE_SIZE:
                page += 1  # no Link header at all: count pages ourselves
                following, params = path, {**(params or {}), "page": page}
            elif following is not None:
                params = None  # the link carries the query
            if following is None:
                break
            url = following
        else:
            log.warning("Ticket %s has more than %s pages of notes; read the first ones only",
                        ticket_id, MAX_PAGES)  # fmt: skip
        return notes

    def _next_link(self, response: requests.Response) -> str | None:
        """The `rel="next"` URL of a `Link` header, only if it stays on the site (our
        credentials go with it)."""
        following = (response.links or {}).get("next", {}).get("url")
        if not following:
            return None
        parts = urlsplit(following)
        if parts.netloc and f"{parts.scheme}://{parts.netloc}" != self.site:
            log.warning("ConnectWise's next-page link leaves the site; not followed")
            return None
        return following if parts.netloc else self.site + following

    def _all_note(self, ticket_id: str, row: dict[str, Any]) -> PsaNote | None:
        """One `allNotes` row (ConnectWise's `ServiceTicketNote`): a ticket note or a time
        entry's note. A time entry counts when it was entered (`dateEntered`), not at the
        work's `timeStart`, which a senior may set to before the claim."""
        if row.get("id") is None:
            return None
        info = row.get("_info") if isinstance(row.get("_info"), dict) else {}
        entered = row.get("dateEntered") or info.get("dateEntered") or row.get("dateCreated")
        if not entered and row.get("noteType") == TIME_ENTRY_NOTE:
            entered = self._time_entry_entered(str(row["id"]))
        entered = entered or info.get("lastUpdated")  # it was entered by then at the latest
        try:
            created_at = parse_time(entered) if isinstance(entered, str) and entered else None
        except ValueError:
            created_at = None
        if created_at is None:
            log.warning("Ticket %s: note %s has no readable date; skipped", ticket_id, row["id"])
            return None
        member = row.get("member") if isinstance(row.get("member"), dict) else {}
        ticket = row.get("ticket") if isinstance(row.get("ticket"), dict) else {}
        return PsaNote(
            id=str(row["id"]),
            ticket_id=str(ticket.get("id") or row.get("ticketId") or ticket_id),
            text=str(row.get("text") or ""),
            created_at=created_at,
            member_id=str(member["id"]) if member.get("id") else None,
            member_identifier=member.get("identifier") or None,
        )

    def _time_entry_entered(self, entry_id: str) -> str | None:
        path = f"/time/entries/{quote(entry_id, safe='')}"
        try:
            body = self._json(self._call("GET", path, params={"fields": "id,dateEntered"}))
        except PsaPermissionDenied:
            raise  # said with the connection, like any refused read
        except PsaRejected:
            return None  # deleted since the list was read
        return body.get("dateEntered") if isinstance(body, dict) else None

    def get_member(self, member_id: str) -> PsaMember | None:
        try:
            body = self._json(self._call("GET", f"/system/members/{quote(member_id, safe='')}"))
        except PsaPermissionDenied:
            raise  # not "no such member": the poll must say it cannot tell who wrote a note
        except PsaRejected:
            return None  # 404: the member is gone
        email = body.get("primaryEmail") or body.get("officeEmail") or None
        return PsaMember(
            id=str(body.get("id")), identifier=str(body.get("identifier")), email=email
        )

    def register_callback(self, url: str, description: str) -> str:
        body = {
            "url": url,
            "objectId": 1,
            "type": CALLBACK_TYPE,
            "level": CALLBACK_LEVEL,
            "description": description[:100],
            "inactiveFlag": False,
        }
        return str(self._json(self._call("POST", "/system/callbacks", json=body))["id"])

    def delete_callback(self, callback_id: str) -> None:
        try:
            self._call("DELETE", f"/system/callbacks/{quote(callback_id, safe='')}")
        except PsaRejected as exc:
            if "(404)" not in exc.message:
                raise

    def ticket_url(self, ticket_id: str) -> str:
        return ticket_url(self.site, self.credentials.company_id, ticket_id)


# ---------------------------------------------------------------------- signing keys


class SigningKeys:
    """The signing keys of callbacks, by (connection, key URL): at most `max_entries`
    (least recently used go first), each kept `ttl` seconds. Keyed by connection so that
    one account's key URL never answers for another's; `clear()` empties it (tests)."""

    def __init__(
        self,
        max_entries: int = 512,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries, self.ttl, self.clock = max_entries, ttl, clock
        self._keys: OrderedDict[tuple[int, str], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, scope: int, key_url: str, fetch: Callable[[], str]) -> str:
        entry = (scope, key_url)
        now = self.clock()
        with self._lock:
            cached = self._keys.get(entry)
            if cached is not None and now - cached[0] < self.ttl:
                self._keys.move_to_end(entry)
                return cached[1]
        key = fetch()  # outside the lock: a slow site holds no other account's callback
        with self._lock:
            self._keys[entry] = (now, key)
            self._keys.move_to_end(entry)
            while len(self._keys) > self.max_entries:
                self._keys.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


SIGNING_KEYS = SigningKeys()
MAX_KEY_BYTES = 16 * 1024


def fetch_signing_key(key_url: str, timeout: float) -> str:
    """`GET <key_url>` → `{"signing_key": "..."}`. No credentials go with it, and no
    redirect is followed (the caller checked the URL's host, not where it redirects)."""
    try:
        response = requests.get(
            key_url, timeout=timeout, allow_redirects=False, headers={"Accept": "application/json"}
        )
    except requests.RequestException as exc:
        raise PsaUnavailable(f"Could not reach {urlsplit(key_url).netloc}: {exc}") from exc
    if response.status_code != 200:
        raise PsaRejected(f"The signing key URL answered {response.status_code}.")
    if len(response.content) > MAX_KEY_BYTES:
        raise PsaRejected("The signing key URL answered something far too large.")
    try:
        body = response.json()
    except ValueError:
        raise PsaRejected("The signing key URL answered with something that is not JSON.") from None
    key = body.get("signing_key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        raise PsaRejected("The signing key URL answered without a signing_key.")
    return key


def signing_key_fetcher(
    connection_id: int, timeout: float, cache: SigningKeys = SIGNING_KEYS
) -> Callable[[str], str]:
    """What `models.psa.signatures.verify` calls for a key URL it has checked."""

    def fetch(key_url: str) -> str:
        return cache.get(connection_id, key_url, lambda: fetch_signing_key(key_url, timeout))

    return fetch


def _ticket_page(values: Mapping[str, str], ticket_id: str) -> str:
    return ticket_url(values["site_url"], values.get("company_id") or "", ticket_id)


NO_CLIENT_ID = (
    "No client id: ConnectWise requires a clientId on every API call. Create one in the "
    "ConnectWise developer portal and paste it here."
)

SPEC = ConnectorSpec(
    kind=ConnectWiseConnector.kind,
    label="ConnectWise Manage",
    fields=(
        ConnectorField(
            "site_url", "Site URL", 300, input_type="url",
            placeholder="https://na.myconnectwise.net", normalize=normalize_site_url,
        ),
        ConnectorField("company_id", "Company id", 100),
        ConnectorField("public_key", "Public key", 200, secret=True, input_type="password"),
        ConnectorField("private_key", "Private key", 200, secret=True, input_type="password"),
        ConnectorField("client_id", "Client id", 100, missing=NO_CLIENT_ID),
    ),
    callbacks=True,
    answered=("site_url", "company_id"),
    build=lambda credentials, timeout: ConnectWiseConnector(credentials, timeout=timeout),
    ticket_url=_ticket_page,
    address="site_url",
    summary="ConnectWise company {company_id} at {site_url}",
)  # fmt: skip
