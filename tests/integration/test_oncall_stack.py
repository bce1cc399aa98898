"""Who is emailed, by business hours and the rotation, across the real processes: the web
process, the Celery worker (dispatch and mail) and Redis presence follow one test clock
(TEST_CLOCK_FILE, APP_ENV=test); the emails are counted at the SMTP server.

The account is in America/Chicago (UTC-6 in December) with business hours Monday to Friday
09:00-17:00; the rotation "Servers" hands off weekly on Monday 09:00 Chicago from Monday
7 December 2026, eng then eng2, so eng is on call from 2026-12-07T15:00Z to
2026-12-14T15:00Z. The seniors are the owner (admin), eng and eng2, all "when offline",
no quiet hours. Instants written by hand:

1. 2026-12-08T03:00Z, Monday 21:00 Chicago, outside: only eng, the on-call senior.
2. 2026-12-08T16:00Z, Tuesday 10:00, inside: every offline senior (admin, eng, eng2).
3. 2026-12-09T03:00Z, Tuesday 21:00, outside, eng connected: nobody (eng sees it live).
4. 2026-12-09T04:00Z, Tuesday 22:00, outside, eng still connected, eng2 covering by an
   override made a moment before through the web process: only eng2 (the worker's next
   decision sees the web's write).

The same again in summer (UTC-5), from Monday 6 July 2026: the instants of `SUMMER`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests
import socketio

from models.clock import set_test_clock
from tests.integration.conftest import THREE_ROLES
from tests.integration.services import create_account, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WEEKDAYS = [
    {"day": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")
]


@dataclass(frozen=True)
class Season:
    """The rotation's first Monday and the four instants of the test, written out in UTC."""

    start_date: str
    outside: datetime
    inside: datetime
    outside_online: datetime
    overridden: datetime
    override: tuple[str, str]


# Winter, Chicago on CST (UTC-6): the instants of the docstring.
WINTER = Season(
    start_date="2026-12-07",
    outside=datetime(2026, 12, 8, 3, 0, tzinfo=UTC),  # Monday 21:00 CST
    inside=datetime(2026, 12, 8, 16, 0, tzinfo=UTC),  # Tuesday 10:00 CST
    outside_online=datetime(2026, 12, 9, 3, 0, tzinfo=UTC),  # Tuesday 21:00 CST
    overridden=datetime(2026, 12, 9, 4, 0, tzinfo=UTC),  # Tuesday 22:00 CST
    override=("2026-12-09T03:30:00Z", "2026-12-09T12:00:00Z"),
)
# Summer, Chicago on CDT (UTC-5): eng is on call from 2026-07-06T14:00Z.
SUMMER = Season(
    start_date="2026-07-06",
    outside=datetime(2026, 7, 7, 3, 0, tzinfo=UTC),  # Monday 22:00 CDT
    inside=datetime(2026, 7, 7, 16, 0, tzinfo=UTC),  # Tuesday 11:00 CDT
    outside_online=datetime(2026, 7, 8, 3, 0, tzinfo=UTC),  # Tuesday 22:00 CDT
    overridden=datetime(2026, 7, 8, 4, 0, tzinfo=UTC),  # Tuesday 23:00 CDT
    override=("2026-07-08T03:30:00Z", "2026-07-08T12:00:00Z"),
)
QUIET = 4.0  # seconds without a further email after the expected ones arrived


class Connected:
    """A senior's Socket.IO connection (so presence says online), noting the handoffs it
    hears of."""

    def __init__(self, url: str, token: str) -> None:
        self.created: set[int] = set()
        self.changed = threading.Condition()
        self.client = socketio.Client(reconnection=False)
        self.client.on("handoff.created", self._created)
        self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def _created(self, data) -> None:
        with self.changed:
            self.created.add(data["id"])
            self.changed.notify_all()

    def heard(self, handoff_id: int, timeout: float = 15.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: handoff_id in self.created, timeout)

    def close(self) -> None:
        self.client.disconnect()


@pytest.mark.parametrize("season", [WINTER, SUMMER], ids=["winter", "summer"])
@THREE_ROLES
def test_outside_business_hours_only_the_offline_on_call_senior_is_emailed(
    stack_env, smtp_sink, web_server, celery_worker, tmp_path, season: Season
):
    clock_file = tmp_path / "clock"
    set_test_clock(clock_file, season.outside)
    stack_env.update({"APP_ENV": "test", "TEST_CLOCK_FILE": str(clock_file)})
    owner = create_account(stack_env, owner_email="owner@oncall.test")
    web = web_server()
    celery_worker()

    def api(method: str, path: str, token: str, **kwargs) -> requests.Response:
        response = requests.request(
            method,
            f"{web.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            **kwargs,
        )
        assert response.status_code < 300, response.text
        return response

    admin = owner["token"]
    api(
        "PATCH",
        "/account",
        admin,
        json={
            "timezone": "America/Chicago",
            "business_hours": {"windows": WEEKDAYS, "holidays": []},
            "renotify_after_minutes": None,
            "escalate_to_admins_after_minutes": None,
        },
    )
    tokens, ids = {"admin": admin}, {"admin": owner["user_id"]}
    for who, role in (("tech", "technician"), ("eng", "engineer"), ("eng2", "engineer")):
        body = {"name": who.title(), "email": f"{who}@oncall.test", "role": role}
        created = api("POST", "/users", admin, json=body).json()
        tokens[who], ids[who] = created["token"], created["user"]["id"]
    rotation = api(
        "POST",
        "/oncall/rotations",
        admin,
        json={
            "name": "Servers",
            "participants": [ids["eng"], ids["eng2"]],
            "shift_length_days": 7,
            "handoff_time": "09:00",
            "start_date": season.start_date,
            "timezone": "America/Chicago",
        },
    ).json()

    def escalate() -> int:
        body = {"title": "Mail down", "snapshot": {}}
        session = api("POST", "/sessions", tokens["tech"], json=body).json()
        path = f"/sessions/{session['id']}/escalate"
        return api("POST", path, tokens["tech"], json={"reason": "Exchange is down"}).json()["id"]

    def recipients() -> list[str]:
        return sorted(m.rcpt_tos[0].split("@")[0] for m in smtp_sink.messages)

    def email_reasons(handoff_id: int) -> list[tuple[str, str]]:
        rows = api("GET", f"/escalations/{handoff_id}/deliveries", admin).json()["items"]
        return sorted(
            (row["recipient"]["email"].split("@")[0], row["reason"])
            for row in rows
            if row["channel"] == "email"
        )

    def expect(names: list[str], message: str) -> None:
        deadline = time.monotonic() + 30
        while recipients() != names and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recipients() == names, message
        time.sleep(QUIET)  # and nothing more
        assert recipients() == names, message

    # 1. Outside business hours: the on-call senior only.
    first = escalate()
    expect(["eng"], "outside business hours, only eng (on call) is emailed")
    assert email_reasons(first) == [("eng", "on_call")]

    # 2. Inside business hours: every offline senior.
    set_test_clock(clock_file, season.inside)
    second = escalate()
    expect(["eng", "eng", "eng2", "owner"], "inside business hours, every offline senior")
    assert email_reasons(second) == [
        ("eng", "business_hours"),
        ("eng2", "business_hours"),
        ("owner", "business_hours"),
    ]

    # 3. Outside again, with eng connected: eng sees it live and nobody is emailed.
    set_test_clock(clock_file, season.outside_online)
    listener = Connected(web.url, tokens["eng"])
    try:
        time.sleep(1.0)  # the connection's presence reaches Redis
        third = escalate()
        assert listener.heard(third), "eng, connected, saw the third handoff live"
        wait_for(
            lambda: any(
                row["channel"] == "socket"
                for row in api("GET", f"/escalations/{third}/deliveries", admin).json()["items"]
            ),
            timeout=30,
            interval=0.2,
            message="the dispatch of the third handoff ran",
        )
        time.sleep(QUIET)
        assert recipients() == ["eng", "eng", "eng2", "owner"], "the on-call senior was online"
        assert email_reasons(third) == []

        # 4. eng2 takes the night in the web process; the worker's next decision sees it.
        set_test_clock(clock_file, season.overridden)
        api(
            "POST",
            "/oncall/overrides",
            tokens["eng2"],
            json={
                "rotation_id": rotation["id"],
                "user_id": ids["eng2"],
                "start": season.override[0],
                "end": season.override[1],
            },
        )
        fourth = escalate()
        expect(["eng", "eng", "eng2", "eng2", "owner"], "the override's senior, eng2, only")
        assert email_reasons(fourth) == [("eng2", "on_call")]
    finally:
        listener.close()
