"""Measure 8: the live path under the mix users live with, while email is slow, hung or down.

    .venv/bin/python bench/live_mix.py [--rate 50] [--seconds 10] [--online 100]
                                       [--conditions slow,stalled,refusing]
                                       [--designs worker-emits,web-emits] [--database sqlite]

100 seniors connected (python-socketio AsyncClients over websocket, in this process) and 2
offline (the owner and one engineer), so 50 escalations/s also queue 100 emails/s, to an
SMTP server in a process of its own that is, per condition:
- slow: healthy, but takes 50 ms to accept each message;
- stalled: accepts connections and never answers (SMTP_TIMEOUT stays at its default 10 s);
- refusing: nothing listens on its port.

For each design and condition, on a fresh stack, in one run:
1. the floor: a bare publish of an event of the same size on the Socket.IO message queue
   (the Redis channel every web node listens on) → the same clients, at the same rate;
2. the load: escalations fired open-loop at the rate (each at its scheduled time),
   latency from just before each POST until each client's `handoff.created`;
3. recovery: the server turns healthy (50 ms per message), and every email is counted at
   the server: each (handoff, offline senior) once, none twice. Email lag (escalate →
   message accepted) is reported for the slow condition.

Designs: `worker-emits` is the earlier shape (the Celery worker emits every event, and the
same two prefork processes send the emails, one connection per message); `web-emits` is
today's processes with the Procfile's pools (the web process emits right after the commit;
email runs in the mailer pool) all at one CPU priority; `web-first` is the Procfile as
shipped: the same processes, with the background pools (worker, mailer) under `nice`, so on
a shared box the web process, which serves the live path, gets the CPU first and email
waits instead.

Each run also reports the CPU seconds every process used while the load ran (the web, each
pool, beat, Redis, the SMTP sink and this process's clients): on one small box they all
share the same cores.
Email retries follow the shipped policy (first after about 15 s, then doubling): shortened
retries would turn a refusing server into a retry storm no deployment sees.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    AsyncSeniors,
    BenchStack,
    arg_parser,
    calibration_ms,
    note,
    percentile,
    postgres_base_url,
    process_tree_cpu,
    procfile_niceness,
    procfile_pool,
    raise_open_files_limit,
    report,
    summarize,
    temporary_postgres_database,
)
from devstack.smtp_sink import SinkProcess  # noqa: E402

GOAL_P99_MS = 50.0
GOAL_FLOOR_RATIO = 2.0
GOAL_EMAIL_LAG_P99_S = 5.0
CONDITIONS = {"slow": "ok", "stalled": "stall", "refusing": "down"}
DESIGNS = ("worker-emits", "web-emits", "web-first")
REASON = "Spooler keeps crashing after the driver update"
SLOW_SMTP_SECONDS = 0.05


class Fired:
    """What the load sent: handoff id → (monotonic start, wall-clock start)."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[float, float]] = {}
        self.response_ms: list[float] = []
        self.errors: list[str] = []


async def _escalate(http, web_url: str, token: str, session_id: int, fired: Fired) -> None:
    import aiohttp

    began, wall = time.monotonic(), time.time()
    try:
        async with http.post(
            f"{web_url}/api/v1/sessions/{session_id}/escalate",
            json={"reason": REASON},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            body = await response.json()
            if response.status != 201:
                fired.errors.append(f"{response.status}: {str(body)[:200]}")
                return
    except aiohttp.ClientError as error:
        fired.errors.append(repr(error))
        return
    fired.response_ms.append((time.monotonic() - began) * 1000)
    fired.started[int(body["id"])] = (began, wall)


async def _open_loop(rate: float, count: int, fire) -> float:
    """Call `fire(n)` at n / rate seconds for n in range(count); return the seconds taken."""
    began = time.monotonic()
    tasks = []
    for n in range(count):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result = fire(n)
        if asyncio.iscoroutine(result):
            tasks.append(asyncio.create_task(result))
    await asyncio.gather(*tasks)
    return time.monotonic() - began


def _latencies(seniors: AsyncSeniors, started: dict[int, float]) -> tuple[list[float], int]:
    latencies, missing = [], 0
    for event_id, at in started.items():
        got = seniors.received.get(event_id, {})
        missing += len(seniors.clients) - len(got)
        latencies += [(received - at) * 1000 for received in got.values()]
    return latencies, missing


async def _floor(stack, seeded, seniors, payload, rate, seconds, timeout) -> dict:
    """A bare publish on the Socket.IO message queue → the same clients."""
    from adapters.broadcast import broadcaster
    from models.rooms import seniors_room

    queue = broadcaster(stack.env["REDIS_URL"], "escalation-mode-socketio")
    room = seniors_room(seeded.account_id)
    started: dict[int, float] = {}

    def publish(n: int) -> None:
        event_id = -(n + 1)
        started[event_id] = time.monotonic()
        queue.emit("handoff.created", {**payload, "id": event_id}, to=[room])

    await _open_loop(rate, int(rate * seconds), publish)
    for event_id in started:
        await seniors.wait_all(event_id, timeout)
    latencies, missing = _latencies(seniors, started)
    return {**summarize(latencies), "missing": missing}


def _cpu_now(stack: BenchStack, sink: SinkProcess) -> dict[str, float]:
    import psutil

    used = stack.cpu_seconds()
    used["smtp-sink"] = process_tree_cpu(sink.pid)
    own = psutil.Process().cpu_times()  # the clients and the load (the sink is a child)
    used["clients"] = own.user + own.system
    return used


PROFILED = ("web", "worker", "mailer")


def _start_profilers(stack: BenchStack, profile: tuple | None, seconds: float) -> list:
    """py-spy, sampling the web, the worker and the mailer (each with its pool's children)
    for the load's seconds; `profile`: (directory, label, gil), an SVG flame graph per
    process as `<directory>/<process>-<label>.svg`; `gil`: only samples holding the GIL
    (Python running, not a thread waiting in C on a socket)."""
    import subprocess

    if profile is None:
        return []
    profile_dir, label, gil = profile
    profile_dir.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    started = []
    for managed in stack.group.processes:
        if managed.name not in PROFILED or managed.pid is None:
            continue
        out = profile_dir / f"{managed.name}-{label}.svg"
        cmd = [str(py_spy), "record", "--pid", str(managed.pid), "--subprocesses",
               "--duration", str(int(seconds)), "--nonblocking",
               "--format", "flamegraph", "--output", str(out)]  # fmt: skip
        if gil:
            cmd.append("--gil")
        started.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    return started


def _wait_profilers(profilers: list) -> None:
    for profiler in profilers:
        _, errors = profiler.communicate(timeout=60)
        if profiler.returncode:
            note("  py-spy failed: %s", errors.decode(errors="replace")[-500:])


async def _drive(stack, sink, seeded, online: int, rate: float, seconds: float,
                 profile: tuple | None = None) -> dict:  # fmt: skip
    import aiohttp

    web_url, token = stack.base_url, seeded.technician_token
    seniors = AsyncSeniors(web_url, [s["token"] for s in seeded.seniors[:online]])
    await seniors.connect()
    await asyncio.sleep(1.0)
    sessions = list(seeded.session_ids)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        warm = Fired()
        await _escalate(http, web_url, token, sessions.pop(), warm)
        [warm_id] = warm.started
        await seniors.wait_all(warm_id, 15)
        async with http.get(
            f"{web_url}/api/v1/escalations?status=all&limit=1",
            headers={"Authorization": f"Bearer {seeded.admin_token}"},
        ) as response:
            payload = (await response.json())["items"][0]
        floor = await _floor(stack, seeded, seniors, payload, rate, min(seconds, 5), 15)
        fired = Fired()
        count = int(rate * seconds)
        profilers = _start_profilers(stack, profile, seconds)
        cpu_before, load_began = _cpu_now(stack, sink), time.monotonic()
        took = await _open_loop(
            rate, count, lambda n: _escalate(http, web_url, token, sessions.pop(), fired)
        )
        # One bound for the whole load, not per event: a design that falls behind (the
        # earlier one with SMTP hung) must not stretch the run by a timeout per event.
        deadline = time.monotonic() + 45
        for handoff_id in fired.started:
            await seniors.wait_all(handoff_id, max(0.0, deadline - time.monotonic()))
        cpu_after, load_seconds = _cpu_now(stack, sink), time.monotonic() - load_began
        _wait_profilers(profilers)
        # Stay connected until the worker has planned every email ("offline at dispatch"):
        # clients that left early would be emailed, rightly, and muddle the count.
        await _planned(http, web_url, seeded.admin_token, list(fired.started), 60)
    latencies, missing = _latencies(seniors, {h: s[0] for h, s in fired.started.items()})
    duplicates = seniors.duplicates
    await seniors.close()
    return {
        "floor": floor,
        "live": {**summarize(latencies), "missing": missing, "duplicates": duplicates},
        "escalate_response": summarize(fired.response_ms),
        # From the first escalation until every client had every event.
        "cpu_seconds": {
            "window_s": round(load_seconds, 1),
            **{
                name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2)
                for name in sorted(cpu_after)
            },
        },
        "escalations": len(fired.started) + 1,
        "achieved_rate_per_second": round(len(fired.started) / took, 1),
        "errors": fired.errors[:5],
        "handoffs": {h: s[1] for h, s in {**warm.started, **fired.started}.items()},
    }


async def _planned(http, web_url: str, token: str, handoff_ids: list[int], wait: float) -> None:
    deadline = time.monotonic() + wait
    pending = sorted(handoff_ids)
    while pending and time.monotonic() < deadline:
        async with http.get(
            f"{web_url}/api/v1/escalations/{pending[-1]}/deliveries",
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            items = (await response.json())["items"]
        if any(item["channel"] == "email" for item in items):
            pending.pop()
        else:
            await asyncio.sleep(0.5)


def _start_processes(stack: BenchStack, design: str) -> None:
    stack.start_web(extra_env={"EMIT_FROM_WEB": "0" if design == "worker-emits" else "1"})
    if design == "worker-emits":  # one pool for every queue, as before the mailer existed
        stack.start_worker(pool="prefork", concurrency=2, extra_env={"EMIT_FROM_WEB": "0"})
        stack.start_beat()
        return
    # The Procfile's worker and mailer; `web-first` also at the Procfile's niceness.
    nice = design == "web-first"
    pool, concurrency = procfile_pool("worker")
    stack.start_worker(
        pool=pool,
        concurrency=concurrency,
        queues=["realtime", "maintenance"],
        niceness=procfile_niceness("worker") if nice else 0,
    )
    pool, concurrency = procfile_pool("mailer")
    stack.start_worker(
        pool=pool,
        concurrency=concurrency,
        queues=["email"],
        niceness=procfile_niceness("mailer") if nice else 0,
        label="mailer",
    )
    stack.start_beat()


def _emails(sink: SinkProcess, handoffs: dict[int, float], offline: list[str], wait: float):
    """Wait (bounded) until every expected email arrived; count them and their lag."""
    expected = {(str(h), address) for h in handoffs for address in offline}
    deadline = time.monotonic() + wait
    while True:
        stats = sink.stats()
        arrived = Counter((h, rcpt) for h, rcpt, _ in stats["messages"])
        if expected <= set(arrived) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    time.sleep(3.0)  # a late duplicate (a retry, a sweep) would show up by now
    stats = sink.stats()
    arrived = Counter((h, rcpt) for h, rcpt, _ in stats["messages"] if (h, rcpt) in expected)
    first_at: dict[tuple[str, str], float] = {}
    for h, rcpt, at in stats["messages"]:
        first_at.setdefault((h, rcpt), at)
    lag = [first_at[key] - handoffs[int(key[0])] for key in expected if key in first_at]
    return {
        "expected": len(expected),
        "delivered_once": sum(1 for key in expected if arrived[key] == 1),
        "lost": sum(1 for key in expected if arrived[key] == 0),
        "doubled": sum(1 for key in expected if arrived[key] > 1),
        # Email to someone who was online (or about another handoff): should be none.
        "unexpected": sum(1 for h, rcpt, _ in stats["messages"] if (h, rcpt) not in expected),
        "smtp_connections": stats["greetings"],
        "messages_accepted": len(stats["messages"]),
        "lag_p50_s": round(percentile(lag, 50) or 0, 2),
        "lag_p99_s": round(percentile(lag, 99) or 0, 2),
    }


def run_one(design: str, condition: str, args, postgres: str | None) -> dict:
    """One design under one SMTP condition on a fresh stack (and a fresh database)."""
    if postgres is None:
        return _run_one(design, condition, args, None)
    with temporary_postgres_database(postgres, prefix="bench_live_mix") as url:
        return _run_one(design, condition, args, url)


def _run_one(design: str, condition: str, args, database_url: str | None) -> dict:
    note("[live mix] %s, SMTP %s", design, condition)
    calibration = calibration_ms()
    with SinkProcess(delay_seconds=SLOW_SMTP_SECONDS) as sink:
        env = sink.env()
        with BenchStack(
            f"live-mix-{design}-{condition}", database_url=database_url, smtp=False, env=env
        ) as stack:
            seeded = stack.seed(seniors=args.online + 1, sessions=int(args.rate * args.seconds) + 5)
            offline = ["owner@bench-msp.example", seeded.seniors[-1]["email"]]
            _start_processes(stack, design)
            sink.set_mode(CONDITIONS[condition])
            result = asyncio.run(
                _drive(
                    stack,
                    sink,
                    seeded,
                    args.online,
                    args.rate,
                    args.seconds,
                    (args.profile, args.profile_label, args.profile_gil) if args.profile else None,
                )
            )
            recovered_at = time.monotonic()
            sink.set_mode("ok")
            result["email"] = _emails(sink, result.pop("handoffs"), offline, args.recovery)
            result["email"]["recovery_s"] = round(time.monotonic() - recovered_at, 1)
    result["calibration_ms"] = calibration
    live, floor = result["live"], result["floor"]
    result["live_to_floor_p99"] = (
        round(live["p99_ms"] / floor["p99_ms"], 2) if live["p99_ms"] and floor["p99_ms"] else None
    )
    note("  live p50 %s / p99 %s ms (floor p99 %s ms, x%s), missing %s, doubled %s; "
         "escalate p50 %s ms; emails lost %s doubled %s, lag p99 %s s, %s connections",
         live["p50_ms"], live["p99_ms"], floor["p99_ms"], result["live_to_floor_p99"],
         live["missing"], live["duplicates"], result["escalate_response"]["p50_ms"],
         result["email"]["lost"], result["email"]["doubled"], result["email"]["lag_p99_s"],
         result["email"]["smtp_connections"])  # fmt: skip
    note("  CPU seconds during the load: %s", result["cpu_seconds"])
    return result


def verdict(design_runs: dict[str, dict]) -> dict:
    """The goals of the live path, checked on one design's runs."""
    slow = design_runs.get("slow")
    stalled = design_runs.get("stalled")
    checks = {
        "live_p99_within_50ms": all(
            r["live"]["p99_ms"] is not None and r["live"]["p99_ms"] <= GOAL_P99_MS
            for r in design_runs.values()
        ),
        "live_within_2x_floor": all(
            (r["live_to_floor_p99"] or 99) <= GOAL_FLOOR_RATIO for r in design_runs.values()
        ),
        "every_event_once": all(
            r["live"]["missing"] == 0 and r["live"]["duplicates"] == 0 for r in design_runs.values()
        ),
        "every_email_once": all(
            r["email"]["lost"] == 0 and r["email"]["doubled"] == 0 for r in design_runs.values()
        ),
    }
    if slow:
        checks["email_lag_p99_within_5s"] = slow["email"]["lag_p99_s"] <= GOAL_EMAIL_LAG_P99_S
    if slow and stalled:
        ratio = stalled["escalate_response"]["p50_ms"] / slow["escalate_response"]["p50_ms"]
        checks["escalate_p50_stalled_over_slow"] = round(ratio, 2)
        checks["creation_unchanged"] = ratio <= 1.2
    return checks


def run(args, postgres: str | None = None) -> dict:
    """Every design under every condition; `postgres`: the server's URL (else SQLite)."""
    raise_open_files_limit(max(4096, args.online * 4 + 256))
    results: dict[str, dict] = {}
    for design in args.designs:
        runs = {c: run_one(design, c, args, postgres) for c in args.conditions}
        results[design] = {"runs": runs, "goals": verdict(runs)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--online", type=int, default=100, help="seniors connected")
    parser.add_argument("--rate", type=float, default=50.0, help="escalations per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--recovery", type=float, default=90.0, help="seconds to wait for mail")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--profile", type=Path, default=None,
        help="directory: py-spy flame graphs (web, worker, mailer) of the load, as SVG",
    )  # fmt: skip
    parser.add_argument("--profile-label", default="profile", help="suffix of each SVG's name")
    parser.add_argument("--profile-gil", action="store_true", help="py-spy --gil")
    args = parser.parse_args(argv)
    args.conditions = [c for c in args.conditions.split(",") if c]
    args.designs = [d for d in args.designs.split(",") if d]
    if set(args.conditions) - set(CONDITIONS) or set(args.designs) - set(DESIGNS):
        parser.error(f"conditions: {', '.join(CONDITIONS)}; designs: {', '.join(DESIGNS)}")
    if not 1 <= args.rate * args.seconds <= 2000:
        parser.error("rate x seconds must be 1..2000 escalations")
    started = time.monotonic()
    if args.database == "postgres":
        base = postgres_base_url()
        if base is None:
            raise SystemExit("PostgreSQL is not available (scripts/test_postgres.sh failed)")
        result = run(args, postgres=base)
    else:
        result = run(args)
    report({"database": args.database, "rate_per_second": args.rate, "online": args.online,
            "seconds": args.seconds, "designs": result,
            "wall_seconds": round(time.monotonic() - started, 1)}, args.json)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
