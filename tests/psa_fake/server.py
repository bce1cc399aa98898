"""FakeConnectWise: a threaded http.server on 127.0.0.1 that implements the part of the
ConnectWise Manage REST API (3.0) this project uses, checks the same auth headers, records
every request, and plays faults on demand. Its answers are built from pyconnectwise's
models (generated from ConnectWise's OpenAPI document): `ServiceNote` for `/notes`,
`ServiceTicketNote` for `/allNotes`, `TimeEntry`, `Member`, `CallbackEntry`.

- `fail_next(method, path, status, count, retry_after)`: answer `status` (429, 500, 401 ...)
- `deny(method, path)`: 403 from now on, as for an API member whose role lacks a permission
- `hang_next(method, path, seconds)`: accept and answer only after `seconds`
- `drop_after_create_next()`: create the next note, then close the connection unanswered
- `rotate_keys(public, private)`: the old keys answer 401 from now on
- `signed_callback(body)`: a callback body and headers signed as ConnectWise signs them
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from pyconnectwise.models.manage import (
    CallbackEntry,
    Member,
    MemberReference,
    ServiceNote,
    ServiceTicketNote,
    TicketReference,
    TimeEntry,
)

from tests.psa_fake.http import JsonHandler, StandInServer

API = "/v4_6_release/apis/3.0"
KEYS = "/callback-signing-keys/"  # where the stand-in serves the keys `Metadata.key_url` names
CONDITION = re.compile(r"^\s*_info/lastUpdated\s*(>=|>)\s*\[([^\]]+)\]\s*$")


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _member(**fields: Any) -> dict[str, Any]:
    """A `Member` with only the fields we set (the model requires dozens more: a name,
    phone, license class... that ConnectWise fills and we never read)."""
    member = Member.model_construct(**fields)
    return member.model_dump(by_alias=True, mode="json", exclude_unset=True)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC, microsecond=0) if when.tzinfo is None else when


def _stamp(when: datetime) -> str:
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    path: str  # a regular expression matched against the path
    kind: str  # status | hang | drop
    status: int = 500
    seconds: float = 0.0
    retry_after: str | None = None
    count: int = 1


@dataclass
class FakeConnectWise(StandInServer):
    company_id: str = "acme"
    public_key: str = "pub-key-1"
    private_key: str = "priv-key-1"
    client_id: str = "client-id-1"
    tickets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    time_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    signing_keys: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    api_member_id: str = "900"
    # False: allNotes rows carry no `_info.dateEntered` (the entry's own record has it)
    all_notes_dates: bool = True
    # True: allNotes refuses any `conditions` (400), as a server that cannot filter on it
    refuse_conditions: bool = False
    # Answer companyinfo with this (content type, body) instead, e.g. a sign-in page
    companyinfo_override: tuple[str, bytes] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next_id = 1000
        self.members.setdefault(
            self.api_member_id, _member(id=int(self.api_member_id), identifier="apimember")
        )

    def connection_body(self, **overrides: str) -> dict[str, str]:
        """What an admin types to connect to this server."""
        return {
            "kind": "connectwise",
            "site_url": self.url,
            "company_id": self.company_id,
            "public_key": self.public_key,
            "private_key": self.private_key,
            "client_id": self.client_id,
            **overrides,
        }

    # ------------------------------------------------------------------ scenario helpers

    def add_ticket(self, ticket_id: str) -> None:
        self.tickets.setdefault(str(ticket_id), [])

    def add_member(self, member_id: str, identifier: str, email: str) -> None:
        self.members[str(member_id)] = _member(
            id=int(member_id), identifier=identifier, primary_email=email
        )

    def add_time_entry(
        self,
        ticket_id: str,
        notes: str,
        member_id: str,
        entered_at: datetime,
        time_start: datetime | None = None,
    ) -> dict[str, Any]:
        """Time a senior logged on the ticket with a note: `timeStart` is when the work
        began (they may set it to any time), `dateEntered` when they entered it."""
        with self._lock:
            self._next_id += 1
            member = self.members.get(str(member_id), {})
            entry = _dump(
                TimeEntry(
                    id=self._next_id,
                    charge_to_id=int(ticket_id),
                    charge_to_type="ServiceTicket",
                    ticket=TicketReference(id=int(ticket_id)),
                    member=MemberReference(
                        id=int(member_id), identifier=member.get("identifier", "")
                    ),
                    notes=notes,
                    time_start=_utc(time_start or entered_at),
                    date_entered=_utc(entered_at),
                    entered_by=member.get("identifier", ""),
                    info={"lastUpdated": _stamp(entered_at)},
                )
            )
            self.time_entries[str(entry["id"])] = entry
            return entry

    def all_notes(self, ticket_id: str) -> list[dict[str, Any]]:
        """`GET /service/tickets/<id>/allNotes`: ticket notes and time entries' notes, in the
        shape of ConnectWise's `ServiceTicketNote`."""
        rows = []
        for note in self.notes(ticket_id):
            info = {"lastUpdated": note["_info"]["lastUpdated"]}
            if self.all_notes_dates:
                info["dateEntered"] = note["dateCreated"]
            rows.append(
                _dump(
                    ServiceTicketNote(
                        id=note["id"],
                        note_type="TicketNote",
                        text=note["text"],
                        ticket=TicketReference(id=note["ticketId"]),
                        member=MemberReference(**note["member"]),
                        internal_analysis_flag=note.get("internalAnalysisFlag"),
                        detail_description_flag=note.get("detailDescriptionFlag"),
                        resolution_flag=note.get("resolutionFlag"),
                        info=info,
                    )
                )
            )
        for entry in self.time_entries.values():
            if entry.get("chargeToId") != int(ticket_id) or not entry.get("notes"):
                continue
            info = {"lastUpdated": entry["_info"]["lastUpdated"]}
            if self.all_notes_dates:
                info["dateEntered"] = entry["dateEntered"]
            rows.append(
                _dump(
                    ServiceTicketNote(
                        id=entry["id"],
                        note_type="TimeEntryNote",
                        text=entry["notes"],
                        ticket=TicketReference(id=int(ticket_id)),
                        member=MemberReference(**entry["member"]),
                        time_start=entry["timeStart"],
                        info=info,
                    )
                )
            )
        return sorted(rows, key=lambda row: row["id"])

    def deny(self, method: str, path: str) -> None:
        """From now on, 403 for this call: the API member's role lacks the permission."""
        self.faults.append(Fault(method, path, "status", 403, count=10**9))

    def new_signing_key(self) -> str:
        """A signing key served at a `key_url` on this site; returns the URL."""
        key_id = secrets.token_hex(8)
        self.signing_keys[key_id] = base64.b64encode(secrets.token_bytes(32)).decode()
        return f"{self.url}{KEYS}{key_id}"

    def signed_callback(
        self, body: dict[str, Any], key_url: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """A callback as ConnectWise sends it: the body with `Metadata.key_url`, and
        `x-content-signature`, the base64 HMAC-SHA256 of the raw body under the key that
        `key_url` serves."""
        key_url = key_url or self.new_signing_key()
        raw = json.dumps({**body, "Metadata": {"key_url": key_url}}).encode()
        key = self.signing_keys[key_url.rsplit("/", 1)[1]]
        digest = hmac.new(key.encode(), raw, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "x-content-signature": base64.b64encode(digest).decode(),
        }
        return raw, headers

    def add_note(
        self, ticket_id: str, text: str, member_id: str, created_at: datetime | None = None
    ) -> dict[str, Any]:
        """A note someone typed in ConnectWise itself."""
        return self._create_note(str(ticket_id), text, member_id, created_at)

    def notes(self, ticket_id: str) -> list[dict[str, Any]]:
        return list(self.tickets.get(str(ticket_id), []))

    def fail_next(
        self, method: str, path: str, status: int, count: int = 1, retry_after: str | None = None
    ) -> None:
        self.faults.append(
            Fault(method, path, "status", status, retry_after=retry_after, count=count)
        )

    def hang_next(self, method: str, path: str, seconds: float) -> None:
        self.faults.append(Fault(method, path, "hang", seconds=seconds))

    def drop_after_create_next(self) -> None:
        self.faults.append(Fault("POST", r"/service/tickets/\d+/notes$", "drop"))

    def rotate_keys(self, public_key: str, private_key: str) -> None:
        self.public_key, self.private_key = public_key, private_key

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # ------------------------------------------------------------------ internals

    def _create_note(
        self, ticket_id: str, text: str, member_id: str, created_at: datetime | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            when = (created_at or datetime.now(UTC).replace(tzinfo=None)).replace(microsecond=0)
            member = self.members.get(str(member_id), {})
            note = _dump(
                ServiceNote(
                    id=self._next_id,
                    ticket_id=int(ticket_id),
                    text=text,
                    detail_description_flag=False,
                    internal_analysis_flag=True,
                    resolution_flag=False,
                    member=MemberReference(
                        id=int(member_id), identifier=member.get("identifier", "")
                    ),
                    date_created=_utc(when),
                    created_by=member.get("identifier", ""),
                    info={"lastUpdated": _stamp(when)},
                )
            )
            self.tickets.setdefault(ticket_id, []).append(note)
            return note

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and re.search(fault.path, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _authorized(self, headers: dict[str, str]) -> tuple[int, str] | None:
        """None if the request may go on, else (status, message) as ConnectWise answers."""
        if headers.get("clientid") != self.client_id:
            return 401, "A valid clientId header is required."
        scheme, _, token = headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(token).decode().partition(":")
        except ValueError:
            return 401, "Authorization header is not valid Basic authentication."
        expected = f"{self.company_id}+{self.public_key}"
        if scheme != "Basic" or user != expected or password != self.private_key:
            return 401, "Authentication failed: invalid company, public key or private key."
        return None


def _error(code: str, message: str, errors: list | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors}


class _Handler(JsonHandler):
    server_state: FakeConnectWise

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.server_state
        parts, body, headers = self._request()
        path = parts.path
        with fake._lock:
            fake.requests.append(Recorded(method, path, parse_qs(parts.query), headers, body))
        if path.startswith(KEYS) and method == "GET":
            key = fake.signing_keys.get(path[len(KEYS) :])
            if key is None:
                return self._send(404, _error("NotFound", "No such key"))
            return self._send(200, {"signing_key": key})
        if path.startswith("/login/companyinfo/") and fake.companyinfo_override is not None:
            content_type, payload = fake.companyinfo_override
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return None
        if path.startswith("/login/companyinfo/"):
            company = path.rsplit("/", 1)[1]
            if company != fake.company_id:
                return self._send(404, _error("NotFound", "Company not found"))
            return self._send(
                200,
                {"CompanyName": "Acme", "CompanyID": company, "Codebase": "v4_6_release/",
                 "VersionCode": "v2025.1", "IsCloud": False, "SiteUrl": fake.url},
            )  # fmt: skip
        if not path.startswith(API):
            return self._send(404, _error("NotFound", "No such route"))
        route = path[len(API) :]
        if (fault := fake._take_fault(method, route)) is not None:
            if fault.kind == "hang":
                time.sleep(fault.seconds)
            elif fault.kind == "status" and fault.status == 403:
                return self._send(
                    403, _error("Forbidden", "You do not have permission to perform this action.")
                )
            elif fault.kind == "status":
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
                return self._send(fault.status, _error("Fault", f"Injected {fault.status}"), extra)
        if (refusal := fake._authorized(headers)) is not None:
            return self._send(refusal[0], _error("Unauthorized", refusal[1]))
        self._route(method, route, body, parse_qs(parts.query), fault)

    def _route(self, method: str, route: str, body: Any, query: dict, fault: Fault | None) -> None:
        fake = self.server_state
        if method == "GET" and route == "/system/info":
            return self._send(
                200, {"version": "v2025.1", "isCloud": False, "serverTimeZone": "UTC"}
            )
        if match := re.fullmatch(r"/service/tickets/(\d+)/notes", route):
            return self._notes(method, match.group(1), body, query, fault)
        all_notes = re.fullmatch(r"(?i)/service/tickets/(\d+)/allnotes", route)
        if method == "GET" and (match := all_notes):
            return self._all_notes(route, match.group(1), query)
        if method == "GET" and (match := re.fullmatch(r"/time/entries/(\d+)", route)):
            entry = fake.time_entries.get(match.group(1))
            if entry is None:
                return self._send(404, _error("NotFound", "Time entry not found"))
            return self._send(200, entry)
        if method == "GET" and route in ("/service/tickets", "/time/entries", "/system/members"):
            return self._send(200, [])  # the permission probes: one row at most, none here
        if method == "GET" and (match := re.fullmatch(r"/system/members/(\d+)", route)):
            member = fake.members.get(match.group(1))
            if member is None:
                return self._send(404, _error("NotFound", "Member not found"))
            return self._send(200, member)
        if method == "POST" and route == "/system/callbacks":
            missing = [k for k in ("url", "objectId", "type", "level") if not (body or {}).get(k)]
            if missing:
                errors = [
                    {"code": "NullValue", "message": f"{k} is required", "field": k}
                    for k in missing
                ]
                return self._send(400, _error("InvalidObject", "Callback invalid", errors))
            with fake._lock:
                fake._next_id += 1
                entry = _dump(CallbackEntry.model_validate({**body, "id": fake._next_id}))
                fake.callbacks[str(entry["id"])] = entry
            return self._send(201, entry)
        if method == "DELETE" and (match := re.fullmatch(r"/system/callbacks/(\d+)", route)):
            if fake.callbacks.pop(match.group(1), None) is None:
                return self._send(404, _error("NotFound", "Callback not found"))
            return self._send(204)
        return self._send(404, _error("NotFound", f"No route {method} {route}"))

    def _all_notes(self, route: str, ticket: str, query: dict) -> None:
        """Paged by `page`/`pageSize` with a `Link` header as ConnectWise sends it; the one
        `conditions` form the connector uses (`_info/lastUpdated >= [date]`) is applied,
        any other is refused as ConnectWise refuses a condition it cannot parse."""
        fake = self.server_state
        if ticket not in fake.tickets:
            return self._send(404, _error("NotFound", f"Ticket {ticket} not found"))
        rows = fake.all_notes(ticket)
        if conditions := (query.get("conditions") or [""])[0]:
            match = None if fake.refuse_conditions else CONDITION.match(conditions)
            if match is None:
                return self._send(400, _error("InvalidCondition", f"Cannot parse {conditions}"))
            bound = match.group(2)
            keep = (lambda v: v >= bound) if match.group(1) == ">=" else (lambda v: v > bound)
            rows = [row for row in rows if keep(row["_info"]["lastUpdated"])]
        page = int((query.get("page") or ["1"])[0])
        size = int((query.get("pageSize") or ["25"])[0])
        last = max(1, -(-len(rows) // size))
        links = []
        for rel, number in (("next", page + 1), ("last", last)):
            if rel == "next" and page >= last:
                continue
            params = {key: values[0] for key, values in query.items()}
            params.update(page=str(number), pageSize=str(size))
            links.append(f'<{fake.url}{API}{route}?{urlencode(params)}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else None
        return self._send(200, rows[(page - 1) * size : page * size], headers)

    def _notes(self, method: str, ticket: str, body: Any, query: dict, fault: Fault | None) -> None:
        fake = self.server_state
        if ticket not in fake.tickets:
            return self._send(404, _error("NotFound", f"Ticket {ticket} not found"))
        if method == "GET":
            page = int((query.get("page") or ["1"])[0])
            size = int((query.get("pageSize") or ["25"])[0])
            notes = fake.notes(ticket)
            return self._send(200, notes[(page - 1) * size : page * size])
        if method != "POST":
            return self._send(405, _error("MethodNotAllowed", "Not allowed"))
        text = (body or {}).get("text")
        if not text:
            errors = [{"code": "NullValue", "message": "text may not be empty", "field": "text"}]
            return self._send(400, _error("InvalidObject", "ServiceNote object is invalid", errors))
        note = fake._create_note(ticket, text, fake.api_member_id)
        if fault is not None and fault.kind == "drop":
            # The note exists; the answer never arrives.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(201, note)


FakeConnectWise.handler = _Handler
