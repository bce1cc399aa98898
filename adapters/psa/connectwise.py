"""ConnectWise Manage (PSA) over its REST API, version 3.0 (docs/psa.md).

Authentication is HTTP Basic with `companyId+publicKey` as the user name and the private
key as the password, plus the `clientId` header that ConnectWise requires on every call.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

from models.psa.base import (
    ConnectorField,
    ConnectorSpec,
    PsaAuthRejected,
    PsaCredentials,
    PsaError,
    PsaMember,
    PsaNote,
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


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.now(UTC).replace(tzinfo=None)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _retry_after(value: str | None) -> float | None:
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
        created_at=_parse_time(
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
        try:
            response = self.http.request(
                method, url, headers=self._headers(), timeout=self.timeout, **kwargs
            )
        except requests.Timeout as exc:
            raise PsaUnavailable(
                f"ConnectWise did not answer within {self.timeout:g} s ({method} {path})."
            ) from exc
        except requests.RequestException as exc:
            raise PsaUnavailable(f"Could not reach ConnectWise at {self.site}: {exc}") from exc
        status = response.status_code
        if status < 400:
            return response
        message = _message(response) or response.reason or "no message"
        if status == 429:
            raise PsaUnavailable(
                f"ConnectWise is rate limiting us (429): {message}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise PsaUnavailable(f"ConnectWise answered {status}: {message}")
        if status in {401, 403}:
            raise PsaAuthRejected(f"ConnectWise refused our credentials ({status}): {message}")
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
        body = info.json() if info.ok and info.content else None
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
        path = f"/service/tickets/{quote(str(ticket_id), safe='')}/notes"
        notes: list[PsaNote] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"page": page, "pageSize": PAGE_SIZE, "orderBy": "id asc"}
            rows = self._json(self._call("GET", path, params=params))
            if not isinstance(rows, list):
                raise PsaError("ConnectWise answered the notes list with something else.")
            notes += [_note(ticket_id, row) for row in rows if isinstance(row, dict)]
            if len(rows) < PAGE_SIZE:
                break
        return notes

    def get_member(self, member_id: str) -> PsaMember | None:
        try:
            body = self._json(self._call("GET", f"/system/members/{quote(member_id, safe='')}"))
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
