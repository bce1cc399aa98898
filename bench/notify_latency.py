"""Latency from escalate to `handoff.created` at a connected Socket.IO client.

    .venv/bin/python bench/notify_latency.py [--escalations 200] [--rate 10] [--json]

Starts the real stack on 127.0.0.1 (redis-server, the SMTP sink, `python wsgi.py` under
eventlet, one Celery worker; devstack launchers via bench/common.py),
seeds one account (admin, technician, two engineers), and connects one engineer with the
python-socketio client over websocket. The other engineer and the admin stay offline, so
every escalation also creates and sends their two emails, as in production.

Then it escalates fresh sessions at a steady rate, one HTTP request at a time, and times
each from just before the POST until the client's `handoff.created` for that handoff
arrives (this process's monotonic clock). The path measured: HTTP request → domain
transaction (handoff + outbox row) → commit → publish to Redis → worker → Socket.IO emit
through the Redis message queue → web node → websocket → client. The POST's own response
time is reported beside it. A few warm-up escalations are not counted.

With --outage it then measures what happens when Redis fails at escalation time (beat runs
too, for the outbox relay): with Redis stopped, and then frozen (SIGSTOP), it escalates
--outage-escalations sessions, timing each response, brings Redis back, and times how long
until the client has received every one of those handoffs' `handoff.created`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BenchStack,
    arg_parser,
    machine_info,
    note,
    report,
    summarize,
)

EVENT = "handoff.created"
REASON = "Spooler keeps crashing after the driver update"


class Listener:
    """One connected senior; remembers when each handoff's event arrived."""

    def __init__(self, url: str, token: str) -> None:
        import socketio

        self.arrived: dict[int, float] = {}
        self.duplicates = 0
        self._changed = threading.Condition()
        self.client = socketio.Client(reconnection=False)
        self.client.on(EVENT, self._on_created)
        self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def _on_created(self, handoff: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._changed:
            if handoff["id"] in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[handoff["id"]] = now
            self._changed.notify_all()

    def wait_for(self, handoff_id: int, timeout: float) -> float | None:
        with self._changed:
            self._changed.wait_for(lambda: handoff_id in self.arrived, timeout)
            return self.arrived.get(handoff_id)

    def close(self) -> None:
        self.client.disconnect()


def escalate(http, url: str, token: str, session_id: int) -> tuple[int, float, float]:
    """POST the escalation; returns (handoff id, start time, response seconds)."""
    started = time.monotonic()
    response = http.post(
        f"{url}/api/v1/sessions/{session_id}/escalate",
        json={"reason": REASON},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    elapsed = time.monotonic() - started
    if response.status_code != 201:
        raise RuntimeError(f"escalate answered {response.status_code}: {response.text[:200]}")
    return int(response.json()["id"]), started, elapsed


def drive(web, seeded, escalations: int, rate: float, warmup: int, timeout: float) -> dict:
    import requests

    listener = Listener(web.url, seeded.seniors[0]["token"])
    sessions = list(seeded.session_ids)
    notify_ms: list[float] = []
    response_ms: list[float] = []
    missing: list[int] = []
    pending: list[tuple[int, float]] = []
    interval = 1.0 / rate
    with requests.Session() as http:
        for _ in range(warmup):
            handoff_id, _, _ = escalate(http, web.url, seeded.technician_token, sessions.pop(0))
            listener.wait_for(handoff_id, timeout)
        began = time.monotonic()
        for n in range(escalations):
            # A steady rate: the n-th request starts at began + n * interval (or at once
            # when the previous one ran late), whatever the event latency.
            delay = began + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            handoff_id, started, elapsed = escalate(
                http, web.url, seeded.technician_token, sessions.pop(0)
            )
            response_ms.append(elapsed * 1000)
            pending.append((handoff_id, started))
            if (n + 1) % 50 == 0:
                note("  %d/%d escalations sent", n + 1, escalations)
        for handoff_id, started in pending:
            arrived = listener.wait_for(handoff_id, timeout)
            if arrived is None:
                missing.append(handoff_id)
            else:
                notify_ms.append((arrived - started) * 1000)
        duration = time.monotonic() - began
    duplicates = listener.duplicates
    listener.close()
    return {
        "escalations": escalations,
        "rate_per_second": rate,
        "achieved_rate_per_second": round(escalations / duration, 1) if duration else None,
        "warmup": warmup,
        "notify": summarize(notify_ms),
        "escalate_response": summarize(response_ms),
        "missing": missing,
        "duplicates": duplicates,
    }


def outage(stack, web, seeded, kind: str, escalations: int, timeout: float) -> dict[str, Any]:
    """Escalate while Redis is `stopped` or `frozen`; then time the recovery."""
    import requests

    listener = Listener(web.url, seeded.seniors[0]["token"])
    sessions = stack.add_sessions(seeded, escalations, title_prefix=f"Outage {kind}")
    response_ms: list[float] = []
    handoff_ids: list[int] = []
    if kind == "stopped":
        stack.redis.stop()
    else:
        os.kill(stack.redis.process.pid, signal.SIGSTOP)
    try:
        with requests.Session() as http:
            for session_id in sessions:
                handoff_id, _, elapsed = escalate(
                    http, web.url, seeded.technician_token, session_id
                )
                response_ms.append(elapsed * 1000)
                handoff_ids.append(handoff_id)
    finally:
        if kind == "stopped":
            stack.redis.start()
        else:
            os.kill(stack.redis.process.pid, signal.SIGCONT)
    back = time.monotonic()
    missing = [
        h for h in handoff_ids if listener.wait_for(h, back + timeout - time.monotonic()) is None
    ]
    arrived = [listener.arrived[h] for h in handoff_ids if h in listener.arrived]
    duplicates = listener.duplicates
    listener.close()
    return {
        "redis": kind,
        "escalate_response": summarize(response_ms),
        "all_201": len(response_ms) == escalations,
        "seconds_until_all_notified": round(max(arrived) - back, 2) if arrived else None,
        "missing": missing,
        "duplicates": duplicates,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [
        ("escalate → `handoff.created` at the client", result["notify"]),
        ("escalate response (201)", result["escalate_response"]),
    ]
    lines = [
        f"{result['escalations']} escalations at {result['rate_per_second']}/s "
        f"(achieved {result['achieved_rate_per_second']}/s), {result['warmup']} warm-up; "
        f"missing {len(result['missing'])}, duplicates {result['duplicates']}",
        "",
        "| measure | count | p50 ms | p90 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['count']} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} "
            f"| {s['max_ms']} |"
        )
    if result.get("outage"):
        lines += [
            "",
            "| Redis at escalation | escalations | response p50 ms | p99 ms | max ms "
            "| all notified after Redis is back | missing | duplicates |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for o in result["outage"]:
            r = o["escalate_response"]
            lines.append(
                f"| {o['redis']} | {r['count']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
                f"| {o['seconds_until_all_notified']} s | {len(o['missing'])} "
                f"| {o['duplicates']} |"
            )
    machine = result["machine"]
    lines += [
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, Python "
        f"{machine['python']}, {machine['redis'] or 'redis ?'}; database {result['database']}; "
        f"worker pool {result['worker']['pool']} x{result['worker']['concurrency']}.",
    ]
    return "\n".join(lines)


def run(
    escalations: int,
    rate: float,
    warmup: int,
    timeout: float,
    pool: str,
    concurrency: int,
    outage_escalations: int,
) -> dict[str, Any]:
    note("[notify latency] %d escalations at %.1f/s", escalations, rate)
    with BenchStack("notify-latency") as stack:
        seeded = stack.seed(seniors=2, sessions=escalations + warmup)
        web = stack.start_web()
        stack.start_worker(pool=pool, concurrency=concurrency)
        result = drive(web, seeded, escalations, rate, warmup, timeout)
        result["database"] = stack.database_url.split(":", 1)[0]
        if outage_escalations:
            stack.start_beat()  # the outbox relay
            result["outage"] = []
            for kind in ("stopped", "frozen"):
                note("  Redis %s: %d escalations ...", kind, outage_escalations)
                measured = outage(stack, web, seeded, kind, outage_escalations, timeout=90)
                result["outage"].append(measured)
    result["worker"] = {"pool": pool, "concurrency": concurrency}
    result["machine"] = machine_info()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--escalations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="escalations per second")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait per event")
    # The Procfile's worker: prefork with two processes.
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--outage", action="store_true", help="also escalate with Redis stopped and frozen"
    )
    parser.add_argument("--outage-escalations", type=int, default=20)
    args = parser.parse_args(argv)
    if not 1 <= args.escalations <= 5000 or not 0 < args.rate <= 100:
        parser.error("--escalations must be 1..5000 and --rate 0..100")
    if not 1 <= args.outage_escalations <= 200:
        parser.error("--outage-escalations must be 1..200")
    result = run(
        args.escalations,
        args.rate,
        args.warmup,
        args.timeout,
        args.pool,
        args.concurrency,
        args.outage_escalations if args.outage else 0,
    )
    if args.json:
        report(result, True)
    else:
        sys.stdout.write(markdown(result) + "\n")
    missing = result["missing"] + [h for o in result.get("outage", []) for h in o["missing"]]
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
