"""FakeAutotask: a threaded http.server on 127.0.0.1 that stands in for the part of the
Autotask PSA REST API (v1.0) this project uses, shaped after Autotask's REST documentation
and third-party clients (autotask-client, django-autotask): the zone look-up, the three
auth headers, TicketNotes (create under a ticket, query with a filter, next-page URLs),
TicketNotes entityInformation and Resources. It records every request and plays faults:

- `fail_next(method, path, status, count, retry_after, message)`: answer `status`
- `hang_next(method, path, seconds)`: accept and answer only after `seconds`
- `drop_after_create_next()`: create the next note, then close the connection unanswered
- `zone_answer`, `next_page_base`: a zone on another site, next-page URLs outside the zone

One server plays both hosts: the zone look-up (`lookup_url`, the `PSA_AUTOTASK_ZONE_URL`
setting) and the zone it names (`zone_url`).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

from tests.psa_fake.http import JsonHandler, StandInServer

ROOT = "/atservicesrest"
API = ROOT + "/v1.0"
PERMISSION = "The logged in Resource does not have the adequate permissions to {what}."


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
    path: str  # a regular expression matched against the path under /v1.0
    kind: str  # status | hang | drop
    status: int = 500
    seconds: float = 0.0
    retry_after: str | None = None
    count: int = 1
    message: str | None = None


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?", value):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    return value


def _matches(item: dict[str, Any], condition: dict[str, Any]) -> bool:
    """One condition of Autotask's query filter: {"op", "field", "value"} or a group
    {"op": "and" | "or", "items": [...]}. Field names are case-insensitive."""
    op = str(condition.get("op") or "").lower()
    if op in {"and", "or"}:
        results = [_matches(item, c) for c in condition.get("items") or []]
        return all(results) if op == "and" else any(results)
    fields = {name.lower(): value for name, value in item.items()}
    have = _parse(fields.get(str(condition.get("field") or "").lower()))
    want = _parse(condition.get("value"))
    if op == "exist":
        return have is not None
    if op == "notexist":
        return have is None
    if have is None:
        return False
    if isinstance(have, int) and isinstance(want, str) and want.isdigit():
        want = int(want)
    comparisons = {
        "eq": lambda: have == want,
        "noteq": lambda: have != want,
        "gt": lambda: have > want,
        "gte": lambda: have >= want,
        "lt": lambda: have < want,
        "lte": lambda: have <= want,
        "contains": lambda: str(want).lower() in str(have).lower(),
    }
    if op not in comparisons:
        raise ValueError(f"Unsupported operator {op!r}")
    return comparisons[op]()


@dataclass
class FakeAutotask(StandInServer):
    username: str = "api-user@acme.example"
    secret: str = "secret-1"
    integration_code: str = "INTEGRATION-CODE-1"
    api_resource_id: int = 29682885
    can_create_notes: bool = True
    # Faults of a different kind: a zone look-up naming another site, next-page URLs elsewhere.
    zone_answer: str | None = None
    next_page_base: str | None = None
    tickets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next_id = 30_000
        self.add_resource(self.api_resource_id, self.username, None)

    @property
    def lookup_url(self) -> str:
        """What `PSA_AUTOTASK_ZONE_URL` is set to in the tests."""
        return self.url + ROOT

    @property
    def zone_url(self) -> str:
        """The zone's REST base, as zoneInformation's `url` names it (without the slash)."""
        return self.url + ROOT

    def connection_body(self, **overrides: str) -> dict[str, str]:
        """What an admin types to connect to this server."""
        return {
            "kind": "autotask",
            "username": self.username,
            "secret": self.secret,
            "integration_code": self.integration_code,
            **overrides,
        }

    # ------------------------------------------------------------------ scenario helpers

    def add_ticket(self, ticket_id: str) -> None:
        self.tickets.setdefault(str(ticket_id), [])

    def add_resource(self, resource_id: int, user_name: str, email: str | None) -> None:
        self.resources[str(resource_id)] = {
            "id": int(resource_id), "userName": user_name, "email": email,
            "email2": None, "email3": None, "resourceType": "Employee", "userDefinedFields": [],
            "firstName": user_name.split("@")[0], "lastName": "", "isActive": True,
        }  # fmt: skip

    def add_note(
        self, ticket_id: str, text: str, resource_id: int, created_at: datetime | None = None
    ) -> dict[str, Any]:
        """A note someone typed in Autotask itself."""
        return self._create_note(str(ticket_id), {"description": text}, resource_id, created_at)

    def notes(self, ticket_id: str) -> list[dict[str, Any]]:
        return list(self.tickets.get(str(ticket_id), []))

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        count: int = 1,
        retry_after: str | None = None,
        message: str | None = None,
    ) -> None:
        self.faults.append(
            Fault(method, path, "status", status, retry_after=retry_after, count=count,
                  message=message)
        )  # fmt: skip

    def hang_next(self, method: str, path: str, seconds: float) -> None:
        self.faults.append(Fault(method, path, "hang", seconds=seconds))

    def drop_after_create_next(self) -> None:
        self.faults.append(Fault("POST", r"/Tickets/\d+/Notes$", "drop"))

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # ------------------------------------------------------------------ internals

    def _create_note(
        self,
        ticket_id: str,
        body: dict[str, Any],
        resource_id: int,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            when = created_at or datetime.now(UTC).replace(tzinfo=None)
            note = {
                "id": self._next_id,
                "ticketID": int(ticket_id),
                "title": body.get("title") or "Note",
                "description": body.get("description"),
                "noteType": body.get("noteType", 1),
                "publish": body.get("publish", 1),
                "createDateTime": _time(when),
                "lastActivityDate": _time(when),
                "creatorResourceID": int(resource_id),
                "createdByContactID": None,
                "impersonatorCreatorResourceID": None,
                "impersonatorUpdaterResourceID": None,
                "userDefinedFields": [],
            }
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

    def _authorized(self, headers: dict[str, str]) -> bool:
        return (
            headers.get("apiintegrationcode") == self.integration_code
            and headers.get("username") == self.username
            and headers.get("secret") == self.secret
        )


def _errors(*messages: str) -> dict[str, Any]:
    return {"errors": list(messages)}


class _Handler(JsonHandler):
    server_state: FakeAutotask
    content_type = "application/json; charset=utf-8"

    def _handle(self, method: str) -> None:
        fake = self.server_state
        parts, body, headers = self._request()
        query = parse_qs(parts.query)
        with fake._lock:
            fake.requests.append(Recorded(method, parts.path, query, headers, body))
        # Autotask's paths are case-insensitive (the documentation writes V1.0 and v1.0).
        if not parts.path.lower().startswith(API.lower()):
            return self._send(404, _errors("No such route"))
        route = parts.path[len(API) :]
        if route.lower() == "/zoneinformation" and method == "GET":
            return self._zone(query)
        if (fault := fake._take_fault(method, route)) is not None:
            if fault.kind == "hang":
                time.sleep(fault.seconds)
            elif fault.kind == "status":
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
                message = fault.message or f"Injected {fault.status}"
                return self._send(fault.status, _errors(message), extra)
        if not fake._authorized(headers):
            # Autotask answers a wrong user, secret or integration code alike.
            return self._send(401, {"message": "Authorization has been denied for this request."})
        self._route(method, route, body, query, fault)

    def _zone(self, query: dict[str, list[str]]) -> None:
        fake = self.server_state
        user = (query.get("user") or [""])[0]
        if user.lower() != fake.username.lower():
            # As django-autotask notes: 500 for a blank or unknown user name.
            return self._send(500, _errors("Zone information could not be determined"))
        return self._send(
            200,
            {"zoneName": "Pre-Release", "url": fake.zone_answer or fake.zone_url + "/",
             "webUrl": fake.url + "/",
             "ci": 0},
        )  # fmt: skip

    def _route(self, method: str, route: str, body: Any, query: dict, fault: Fault | None) -> None:
        fake = self.server_state
        lower = route.lower()
        if method == "GET" and lower == "/ticketnotes/entityinformation":
            return self._send(
                200,
                {"info": {"name": "TicketNote", "canCreate": fake.can_create_notes,
                          "canDelete": False, "canQuery": True, "canUpdate": True,
                          "userAccessForCreate": "All" if fake.can_create_notes else "None",
                          "userAccessForQuery": "All", "userAccessForUpdate": "All",
                          "userAccessForDelete": "None", "hasUserDefinedFields": False,
                          "supportsWebhookCallouts": False}},
            )  # fmt: skip
        if match := re.fullmatch(r"/tickets/(\d+)/notes", lower):
            if method != "POST":
                return self._send(405, _errors("Not allowed"))
            return self._create(match.group(1), body, fault)
        if lower in {"/ticketnotes/query", "/ticketnotes/query/next"}:
            search = body
            if method == "GET" and query.get("search"):
                search = json.loads(query["search"][0])
            offset = int((query.get("paging") or ["0"])[0])
            return self._query(search, offset)
        if method == "GET" and (match := re.fullmatch(r"/resources/(\d+)", lower)):
            return self._send(200, {"item": fake.resources.get(match.group(1))})
        return self._send(404, _errors(f"No route {method} {route}"))

    def _create(self, ticket: str, body: Any, fault: Fault | None) -> None:
        fake = self.server_state
        body = body if isinstance(body, dict) else {}
        if not fake.can_create_notes:
            return self._send(403, _errors(PERMISSION.format(what="create this entity type")))
        if ticket not in fake.tickets:
            return self._send(404, _errors(f"Ticket with id {ticket} was not found."))
        missing = [k for k in ("description", "title", "noteType", "publish") if not body.get(k)]
        if missing:
            return self._send(500, _errors(*(f"Required field {k} is missing." for k in missing)))
        if str(body.get("ticketID", ticket)) != ticket:
            return self._send(500, _errors("ticketID does not match the parent ticket."))
        if len(str(body["title"])) > 250 or len(str(body["description"])) > 32000:
            return self._send(500, _errors("A value is longer than its field allows."))
        note = fake._create_note(ticket, body, fake.api_resource_id)
        if fault is not None and fault.kind == "drop":
            # The note exists; the answer never arrives.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, {"itemId": note["id"]})

    def _query(self, search: Any, offset: int) -> None:
        fake = self.server_state
        conditions = search.get("filter") if isinstance(search, dict) else None
        if not isinstance(conditions, list) or not conditions:
            return self._send(500, _errors("A query needs a filter."))
        size = min(max(int(search.get("MaxRecords") or 500), 1), 500)
        with fake._lock:
            everything = [note for notes in fake.tickets.values() for note in notes]
        try:
            found = [n for n in everything if all(_matches(n, c) for c in conditions)]
        except (ValueError, TypeError) as exc:
            return self._send(500, _errors(str(exc)))
        found.sort(key=lambda note: note["id"])
        page = found[offset : offset + size]
        more = offset + size < len(found)
        next_url = (
            f"{fake.next_page_base or fake.zone_url}/v1.0/TicketNotes/query/next"
            f"?paging={offset + size}"
            f"&search={quote(json.dumps(search))}"
            if more
            else None
        )
        prev_url = None
        self._send(
            200,
            {"items": page, "pageDetails": {"count": len(page), "requestCount": size,
                                            "prevPageUrl": prev_url, "nextPageUrl": next_url}},
        )  # fmt: skip


FakeAutotask.handler = _Handler
