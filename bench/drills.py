"""Fault drills against the real stack: nothing lost, nothing duplicated.

    .venv/bin/python bench/drills.py [--only redis,smtp,worker,web] [--json]

Each drill starts its own stack on 127.0.0.1 (Redis, the SMTP sink, `python wsgi.py`, a
Celery worker as the Procfile runs it, beat; SQLite), with short retry settings, and one
account: the owner (admin) and a third engineer stay offline, so each handoff owes them an
email; two engineers are online, each with one Socket.IO client that must receive
`handoff.created` for every handoff. A technician escalates a stream of fresh sessions
while the fault happens:

- redis:  Redis is killed (SIGKILL) mid-stream and restarted empty a few seconds later;
- smtp:   the SMTP server is down (connections refused) for a while, then back;
- worker: the Celery worker is killed with SIGKILL mid-stream and restarted;
- web:    the web process is restarted while the clients are connected; they reconnect and
          re-fetch `GET /api/v1/escalations` as the browser page does.

The escalating client retries a request that got no answer with the same Idempotency-Key,
as a well-behaved API client does, so a request cut off by the fault cannot create two
handoffs.

Counted per drill:
- created: distinct handoffs the API answered 201 for (or 200 for a replayed key);
- lost: a created handoff that never reached a connected senior (by event, or for the web
  drill by event or re-fetch after reconnecting), or an offline recipient's email that never
  arrived, after waiting for the stack to settle;
- duplicated: more than one email per (handoff, recipient), or more than one
  `handoff.created` per handoff per client connection.
Exit status 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchStack, arg_parser, note, report  # noqa: E402
from devstack.app import BEAT_READY, beat_command  # noqa: E402
from devstack.postgres import PrivatePostgres  # noqa: E402
from devstack.processes import log_contains  # noqa: E402

DRILLS = ("redis", "smtp", "smtp-hung", "worker", "web", "postgres", "beat", "redis10")

# Short timings so a drill settles in about a minute (defaults are production values).
FAST_SETTINGS = {
    "OUTBOX_RELAY_AFTER_SECONDS": "2",
    "PRESENCE_TTL_SECONDS": "6",
    "PRESENCE_HEARTBEAT_SECONDS": "2",
    "SMTP_TIMEOUT": "2",
    "EMAIL_FIRST_RETRY_SECONDS": "1",
    "EMAIL_MAX_BACKOFF_SECONDS": "4",
    "DELIVERY_LEASE_SECONDS": "20",
    "DELIVERY_SWEEP_GRACE_SECONDS": "3",
    "PUBLISH_TIMEOUT_SECONDS": "0.5",
}
RATE_PER_SECOND = 5.0
STREAM_SECONDS = 20.0
SETTLE_TIMEOUT = 150.0
QUIET_AFTER_SETTLED = 10.0
REQUEST_TIMEOUT = 5.0
RETRY_FOR_SECONDS = 60.0


# --------------------------------------------------------------------------- clients


class SeniorClient:
    """One connected senior: a Socket.IO client that counts `handoff.created` per handoff
    and, after every reconnect, re-fetches the open handoffs like the queue page does."""

    def __init__(self, name: str, url: str, token: str, refetch: bool) -> None:
        import socketio

        self.name = name
        self.url = url
        self.token = token
        self.refetch_on_reconnect = refetch
        self.events: Counter[int] = Counter()
        self.first_seen: dict[int, float] = {}  # handoff id -> when it arrived
        self.fetched: set[int] = set()
        self.connects = 0
        self.lock = threading.Lock()
        self.sio = socketio.Client(
            reconnection=True,
            reconnection_attempts=0,
            reconnection_delay=0.5,
            reconnection_delay_max=2,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("handoff.created", self._on_created)

    def _on_connect(self) -> None:
        with self.lock:
            self.connects += 1
            reconnect = self.connects > 1
        if reconnect and self.refetch_on_reconnect:
            threading.Thread(target=self.refetch, daemon=True).start()

    def _on_created(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.events[int(data["id"])] += 1
            self.first_seen.setdefault(int(data["id"]), time.monotonic())

    def refetch(self) -> None:
        """GET /api/v1/escalations?status=open, every page (what the queue page shows)."""
        import requests

        cursor = None
        for _ in range(100):
            params = {"status": "open", "limit": 200}
            if cursor:
                params["cursor"] = cursor
            try:
                response = requests.get(
                    f"{self.url}/api/v1/escalations",
                    params=params,
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=REQUEST_TIMEOUT,
                )
                response.raise_for_status()
            except Exception as error:  # noqa: BLE001 - the next reconnect fetches again
                note("    [%s] re-fetch failed: %s", self.name, error)
                return
            page = response.json()
            with self.lock:
                self.fetched.update(int(item["id"]) for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def connect(self) -> None:
        self.sio.connect(
            self.url, auth={"token": self.token}, transports=["websocket"], wait_timeout=10
        )

    def close(self) -> None:
        try:
            self.sio.disconnect()
        except Exception:  # noqa: BLE001
            pass

    def seen(self) -> set[int]:
        with self.lock:
            return set(self.events) | self.fetched


@dataclass
class Stream:
    """The technician escalating fresh sessions at a steady rate; each request retried with
    its Idempotency-Key until it gets an answer (bounded)."""

    url: str
    token: str
    sessions: list[int]
    rate: float
    created: dict[int, str] = field(default_factory=dict)  # handoff id -> title
    sent_at: dict[int, float] = field(default_factory=dict)  # handoff id -> first request
    replays: int = 0
    retried_requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable_ms: list[float] = field(default_factory=list)  # 503 answers' latencies
    unavailable_without_retry_after: int = 0

    def run(self, stop_at: float) -> None:
        import requests

        http = requests.Session()
        headers = {"Authorization": f"Bearer {self.token}"}
        for index, session_id in enumerate(self.sessions):
            due = self.started + index / self.rate
            if due >= stop_at:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            first_sent = time.monotonic()
            key = f"drill-{session_id}"
            give_up = time.monotonic() + RETRY_FOR_SECONDS
            attempts = 0
            while True:
                attempts += 1
                sent = time.monotonic()
                try:
                    response = http.post(
                        f"{self.url}/api/v1/sessions/{session_id}/escalate",
                        json={"reason": "Drill: the line of business app is down"},
                        headers={**headers, "Idempotency-Key": key},
                        timeout=REQUEST_TIMEOUT,
                    )
                except requests.RequestException as error:
                    response, reason = None, repr(error)
                else:
                    reason = f"HTTP {response.status_code}"
                    self._count(response, time.monotonic() - sent)
                if response is not None and response.status_code in (200, 201):
                    body = response.json()
                    self.created[int(body["id"])] = body["title"]
                    self.sent_at.setdefault(int(body["id"]), first_sent)
                    self.replays += response.status_code == 200
                    if attempts == 1:
                        self.latencies_ms.append((time.monotonic() - sent) * 1000)
                    break
                if response is not None and response.status_code < 500:
                    self.failures.append(f"session {session_id}: {reason} {response.text[:200]}")
                    break
                if time.monotonic() > give_up:
                    self.failures.append(f"session {session_id}: gave up after {reason}")
                    break
                if attempts == 1:
                    self.retried_requests += 1
                time.sleep(0.5)
                http = requests.Session()

    def _count(self, response, seconds: float) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code == 503:
            self.unavailable_ms.append(seconds * 1000)
            self.unavailable_without_retry_after += "Retry-After" not in response.headers

    def start(self) -> tuple[threading.Thread, float]:
        self.started = time.monotonic()
        stop_at = self.started + STREAM_SECONDS
        thread = threading.Thread(target=self.run, args=(stop_at,), daemon=True)
        thread.start()
        return thread, stop_at


# --------------------------------------------------------------------------- accounting


def _emails_by_pair(sink, titles: dict[str, int]) -> Counter[tuple[int, str]]:
    """(handoff id, recipient) -> emails received, matched by the title in the subject."""
    pairs: Counter[tuple[int, str]] = Counter()
    for mail in sink.messages:
        match = re.search(r"(Drill [\w-]+ #\d{5})", mail.subject)
        handoff_id = titles.get(match.group(1)) if match else None
        for recipient in mail.rcpt_tos:
            pairs[(handoff_id if handoff_id is not None else -1, recipient.lower())] += 1
    return pairs


def account_for(stream: Stream, clients: list[SeniorClient], sink, offline: list[str]):
    created = set(stream.created)
    titles = {title: handoff_id for handoff_id, title in stream.created.items()}
    pairs = _emails_by_pair(sink, titles)
    missing_events = {c.name: sorted(created - c.seen()) for c in clients}
    missing_emails = sorted(
        (h, r) for h in created for r in offline if pairs.get((h, r.lower()), 0) == 0
    )
    return created, pairs, missing_events, missing_emails


def settle(stream, clients, sink, offline, timeout: float) -> float:
    """Wait until nothing is missing (bounded); return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        _, _, missing_events, missing_emails = account_for(stream, clients, sink, offline)
        if not missing_emails and not any(missing_events.values()):
            return time.monotonic() - started
        time.sleep(0.5)
    return time.monotonic() - started


def summary(name: str, stream: Stream, clients, sink, offline, settle_seconds) -> dict:
    created, pairs, missing_events, missing_emails = account_for(stream, clients, sink, offline)
    offline_set = {r.lower() for r in offline}
    duplicate_emails = {f"{h}:{r}": n for (h, r), n in pairs.items() if n > 1}
    duplicate_events = {
        c.name: {h: n for h, n in c.events.items() if n > 1}
        for c in clients
        if any(n > 1 for n in c.events.values())
    }
    unknown_emails = sum(n for (h, _), n in pairs.items() if h == -1 or h not in created)
    lost_events = sum(len(v) for v in missing_events.values())
    lost = lost_events + len(missing_emails)
    duplicated = sum(n - 1 for n in duplicate_emails.values()) + sum(
        n - 1 for per in duplicate_events.values() for n in per.values()
    )
    return {
        "drill": name,
        "handoffs_created": len(created),
        "replayed_201_as_200": stream.replays,
        "requests_retried": stream.retried_requests,
        "request_failures": stream.failures,
        "escalate_p99_ms_first_try": _p99(stream.latencies_ms),
        "events_received": {c.name: sum(c.events.values()) for c in clients},
        "live_p50_p99_ms": _live_latency(stream, clients),
        "events_distinct": {c.name: len(c.events) for c in clients},
        "refetched_only": {
            c.name: len(c.fetched - set(c.events)) for c in clients if c.refetch_on_reconnect
        },
        "client_connects": {c.name: c.connects for c in clients},
        "emails_received": sum(pairs.values()),
        "emails_to_offline_recipients": sum(n for (_, r), n in pairs.items() if r in offline_set),
        "emails_to_online_seniors": sum(
            n for (_, r), n in pairs.items() if r not in offline_set and n
        ),
        "emails_unmatched": unknown_emails,
        "lost": lost,
        "lost_events": {k: v[:20] for k, v in missing_events.items() if v},
        "lost_emails": [f"{h}:{r}" for h, r in missing_emails[:20]],
        "duplicated": duplicated,
        "duplicate_emails": duplicate_emails,
        "duplicate_events": duplicate_events,
        "settled_after_s": round(settle_seconds, 1),
        "ok": lost == 0 and duplicated == 0 and not stream.failures,
    }


def _live_latency(stream: Stream, clients) -> tuple[float | None, float | None]:
    """Escalate request sent → `handoff.created` at each client (first arrival)."""
    latencies = sorted(
        (c.first_seen[h] - sent) * 1000
        for c in clients
        for h, sent in stream.sent_at.items()
        if h in c.first_seen
    )
    if not latencies:
        return (None, None)
    return (round(latencies[len(latencies) // 2], 1), _p99(latencies))


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)


# --------------------------------------------------------------------------- the faults


def fault_redis(stack: BenchStack, procs: dict, at: float) -> list[str]:
    time.sleep(max(0.0, at + 5 - time.monotonic()))
    process = stack.redis.process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    stack.redis.stop()
    killed = time.monotonic() - at
    time.sleep(7)
    stack.redis.start()  # empty: no persistence, as after a crash of a cache-only Redis
    return [f"Redis killed (SIGKILL) at t={killed:.1f}s, restarted empty 7 s later"]


def fault_smtp(stack: BenchStack, procs: dict, at: float) -> list[str]:
    assert stack.smtp is not None
    time.sleep(max(0.0, at + 3 - time.monotonic()))
    stack.smtp.down()
    down_at = time.monotonic() - at
    time.sleep(12)
    stack.smtp.up()
    return [f"SMTP down (connections refused) at t={down_at:.1f}s, back 12 s later"]


def fault_worker(stack: BenchStack, procs: dict, at: float) -> list[str]:
    worker = procs["worker"]
    time.sleep(max(0.0, at + 6 - time.monotonic()))
    worker.kill(signal.SIGKILL)
    killed = time.monotonic() - at
    time.sleep(3)
    worker.start()
    return [f"worker killed (SIGKILL) at t={killed:.1f}s, restarted 3 s later"]


def fault_web(stack: BenchStack, procs: dict, at: float) -> list[str]:
    web = procs["web"]
    time.sleep(max(0.0, at + 6 - time.monotonic()))
    web.kill(signal.SIGTERM)
    stopped = time.monotonic() - at
    web.start()
    return [f"web stopped (SIGTERM) at t={stopped:.1f}s and started again"]


def fault_smtp_hung(stack: BenchStack, procs: dict, at: float) -> list[str]:
    assert stack.smtp is not None
    time.sleep(max(0.0, at + 3 - time.monotonic()))
    stack.smtp.stall()
    hung_at = time.monotonic() - at
    time.sleep(12)
    stack.smtp.ok()
    return [f"SMTP hung (accepts, never answers) at t={hung_at:.1f}s, healthy 12 s later"]


def fault_postgres(stack: BenchStack, procs: dict, at: float) -> list[str]:
    """PostgreSQL stopped (fast shutdown: connections cut) mid-stream, started 8 s later;
    how long until the web node is ready again."""
    server = procs["postgres"]
    time.sleep(max(0.0, at + 5 - time.monotonic()))
    server.stop()
    stopped = time.monotonic()
    time.sleep(8)
    server.start()
    back = time.monotonic()
    procs["recovery_seconds"] = _seconds_until_ready(procs["web"].url, back)
    return [
        f"PostgreSQL stopped at t={stopped - at:.1f}s, started 8 s later; web ready "
        f"{procs['recovery_seconds']:.1f} s after it was back"
    ]


def _seconds_until_ready(url: str, since: float, timeout: float = 60.0) -> float:
    import requests

    while time.monotonic() - since < timeout:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - since
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return float("inf")


def fault_beat(stack: BenchStack, procs: dict, at: float) -> list[str]:
    """Beat killed (SIGKILL) mid-tick and restarted; then a second beat by mistake for 12 s.
    Every scheduled step is sent twice meanwhile; none may take effect twice."""
    beat = procs["beat"]
    time.sleep(max(0.0, at + 3 - time.monotonic()))
    beat.kill(signal.SIGKILL)
    beat.start()
    time.sleep(max(0.0, at + 6 - time.monotonic()))
    second = stack.group.start(
        beat_command(stack.tmp / "second-beat-schedule"),
        stack.env,
        ready_check=log_contains(BEAT_READY),
        name="beat",
    )
    time.sleep(12)
    second.terminate()
    return ["beat killed (SIGKILL) at t=3s and restarted; a second beat ran from t=6s for 12 s"]


FAULTS = {
    "redis": fault_redis,
    "smtp": fault_smtp,
    "smtp-hung": fault_smtp_hung,
    "worker": fault_worker,
    "web": fault_web,
    "postgres": fault_postgres,
    "beat": fault_beat,
}


# --------------------------------------------------------------------------- Redis, ten times

REDIS_RESTARTS = 10
EMAILS_RESUME_WITHIN = 20.0  # seconds after SMTP and Redis are both back


def run_redis_restarts() -> dict[str, Any]:
    """Ten Redis restarts in a row, each with email retries pending: SMTP goes down, a
    handoff is made (its emails fail and wait on their retry countdown, unacknowledged in
    the worker), Redis restarts, SMTP comes back. Every time, web, worker and beat must
    still be the processes that started, and the emails arrive, once, within seconds."""
    note("[drill redis10] starting the stack")
    with BenchStack("drill-redis10", env=FAST_SETTINGS) as stack:
        seeded = stack.seed(name="Drill redis10", seniors=2, sessions=REDIS_RESTARTS + 2,
                            title_prefix="Drill redis10")  # fmt: skip
        procs = {
            "web": stack.start_web(),
            "worker": stack.start_worker(pool="prefork", concurrency=2),
            "beat": stack.start_beat(),
        }
        offline = sorted(["owner@drill-redis10.example", *(s["email"] for s in seeded.seniors)])
        assert stack.smtp is not None
        stream = Stream(procs["web"].url, seeded.technician_token, seeded.session_ids, 1000.0)
        rounds = []
        for index in range(REDIS_RESTARTS):
            rounds.append(_redis_round(stack, stream, seeded.session_ids[index], offline, procs))
            note("[drill redis10] round %d: %s", index + 1, rounds[-1])
        time.sleep(QUIET_AFTER_SETTLED)
        titles = {title: handoff_id for handoff_id, title in stream.created.items()}
        pairs = _emails_by_pair(stack.smtp, titles)
        expected = {(h, r) for h in stream.created for r in offline}
        lost = len(expected - {pair for pair, n in pairs.items() if n})
        duplicated = sum(n - 1 for n in pairs.values() if n > 1)
        up = {name: proc.alive and proc.starts == 1 for name, proc in procs.items()}
        resumed = [r["emails_after_s"] for r in rounds]
        result = {
            "drill": "redis10",
            "fault": [
                f"Redis restarted (empty) {REDIS_RESTARTS} times in a row, each time with "
                "email retries pending (SMTP down, back after the restart)"
            ],
            "restarts": REDIS_RESTARTS,
            "handoffs_created": len(stream.created),
            "events_received": {},
            "refetched_only": {},
            "requests_retried": stream.retried_requests,
            "emails_received": sum(pairs.values()),
            "lost": lost,
            "duplicated": duplicated,
            "processes_up_never_restarted": up,
            "emails_resumed_after_s": {
                "max": max(resumed), "median": sorted(resumed)[len(resumed) // 2]
            },
            "rounds": rounds,
            "ok": lost == 0 and duplicated == 0 and all(up.values())
            and max(resumed) <= EMAILS_RESUME_WITHIN and not stream.failures,
        }  # fmt: skip
        if not result["ok"]:
            stack.keep_logs = True
            result["logs"] = str(stack.tmp / "logs")
    note("[drill redis10] %s", json.dumps({k: v for k, v in result.items() if k != "rounds"}))
    return result


def _redis_round(stack: BenchStack, stream: Stream, session_id: int, offline, procs) -> dict:
    stack.smtp.down()
    before = len(stack.smtp.messages)
    stream.sessions = [session_id]
    stream.started = time.monotonic()
    stream.run(stop_at=stream.started + 1)
    # The first attempts fail (SMTP refused); their retries now wait on a countdown.
    time.sleep(2.0)
    stack.redis.restart()
    stack.smtp.up()
    back = time.monotonic()
    deadline = back + EMAILS_RESUME_WITHIN * 2
    while len(stack.smtp.messages) - before < len(offline) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {
        "emails": len(stack.smtp.messages) - before,
        "emails_after_s": round(time.monotonic() - back, 2),
        "alive": all(proc.alive for proc in procs.values()),
    }


def run_drill(name: str) -> dict[str, Any]:
    if name == "redis10":
        return run_redis_restarts()
    note("[drill %s] starting the stack", name)
    procs: dict[str, Any] = {}
    database_url = None
    if name == "postgres":
        procs["postgres"] = PrivatePostgres()
        procs["postgres"].start()
        database_url = procs["postgres"].plain_url
    try:
        return _run_drill(name, procs, database_url)
    finally:
        if "postgres" in procs:
            procs["postgres"].destroy()


def _run_drill(name: str, procs: dict[str, Any], database_url: str | None) -> dict[str, Any]:
    with BenchStack(f"drill-{name}", database_url=database_url, env=FAST_SETTINGS) as stack:
        sessions = int(RATE_PER_SECOND * STREAM_SECONDS) + 20
        seeded = stack.seed(
            name=f"Drill {name}", seniors=3, sessions=sessions, title_prefix=f"Drill {name}"
        )
        web = stack.start_web()
        worker = stack.start_worker(pool="prefork", concurrency=2)
        beat = stack.start_beat()
        procs.update(web=web, worker=worker, beat=beat)
        online = seeded.seniors[:2]
        offline_emails = [f"owner@drill-{name}.example", seeded.seniors[2]["email"]]
        clients = [
            SeniorClient(f"senior{n + 1}", web.url, s["token"], refetch=True)
            for n, s in enumerate(online)
        ]
        for client in clients:
            client.connect()
        time.sleep(1.0)  # presence recorded before the first escalation
        stream = Stream(web.url, seeded.technician_token, seeded.session_ids, RATE_PER_SECOND)
        thread, _ = stream.start()
        what = FAULTS[name](stack, procs, stream.started)
        thread.join(timeout=STREAM_SECONDS + RETRY_FOR_SECONDS + 30)
        note("[drill %s] %s; %d handoffs created; settling", name, "; ".join(what),
             len(stream.created))  # fmt: skip
        settled = settle(stream, clients, stack.smtp, offline_emails, SETTLE_TIMEOUT)
        time.sleep(QUIET_AFTER_SETTLED)  # late duplicates would show up here
        result = summary(name, stream, clients, stack.smtp, offline_emails, settled)
        result["fault"] = what
        result.update(_fault_figures(stream, procs))
        for client in clients:
            client.close()
        if not result["ok"]:
            stack.keep_logs = True
            result["logs"] = str(stack.tmp / "logs")
    _print_line(result)
    return result


def _fault_figures(stream: Stream, procs: dict[str, Any]) -> dict[str, Any]:
    """What the operator sees during the fault: answers by status, the 503s' speed, whether
    every process is still up (a supervisor would hide an exit; the drill must not)."""
    figures: dict[str, Any] = {
        "statuses": {str(k): v for k, v in sorted(stream.statuses.items())},
        "processes_up": {k: procs[k].alive for k in ("web", "worker", "beat")},
        "process_starts": {k: procs[k].starts for k in ("web", "worker", "beat")},
    }
    if stream.unavailable_ms:
        figures["unavailable_503"] = len(stream.unavailable_ms)
        figures["unavailable_max_ms"] = round(max(stream.unavailable_ms), 1)
        figures["unavailable_without_retry_after"] = stream.unavailable_without_retry_after
    if "recovery_seconds" in procs:
        figures["recovery_seconds"] = round(procs["recovery_seconds"], 2)
    return figures


def _print_line(r: dict[str, Any]) -> None:
    events = ", ".join(f"{k} {v}" for k, v in r["events_received"].items())
    refetched = sum(r["refetched_only"].values())
    note(
        "[drill %s] created %d | events received: %s | re-fetched after reconnect %d | "
        "emails received %d | requests retried %d (replayed 200: %d) | lost %d | "
        "duplicated %d | %s",
        r["drill"], r["handoffs_created"], events, refetched, r["emails_received"],
        r["requests_retried"], r["replayed_201_as_200"], r["lost"], r["duplicated"],
        "OK" if r["ok"] else "FAILED",
    )  # fmt: skip
    if not r["ok"]:
        for key in ("lost_events", "lost_emails", "duplicate_emails", "duplicate_events",
                    "request_failures"):  # fmt: skip
            if r.get(key):
                note("    %s: %s", key, json.dumps(r[key])[:600])


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DRILLS), help="comma-separated drill names")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(DRILLS)
    if unknown:
        parser.error(f"unknown drills: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    results = []
    for name in names:
        try:
            results.append(run_drill(name))
        except Exception as error:  # noqa: BLE001 - one broken drill must not hide the others
            note("[drill %s] could not run: %r", name, error)
            results.append({"drill": name, "ok": False, "error": repr(error)})
    outcome = {
        "drills": results,
        "all_ok": all(r.get("ok") for r in results),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    note("")
    note("%-9s %8s %20s %10s %8s %6s %11s %16s", "drill", "created", "events (per client)",
         "re-fetched", "emails", "lost", "duplicated", "live p50/p99 ms")  # fmt: skip
    for r in results:
        if "error" in r:
            note("%-9s could not run: %s", r["drill"], r["error"][:100])
            continue
        events = "/".join(str(v) for v in r["events_received"].values())
        refetched = sum(r["refetched_only"].values())
        live = "/".join(str(v) for v in r["live_p50_p99_ms"])
        note("%-9s %8d %20s %10d %8d %6d %11d %16s", r["drill"], r["handoffs_created"], events,
             refetched, r["emails_received"], r["lost"], r["duplicated"], live)  # fmt: skip
    if args.json:
        report(outcome, True)
    return 0 if outcome["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
