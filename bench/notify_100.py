"""Measure 2: escalate → `handoff.created` at connected clients, 50 escalations/s, 100 seniors.

    .venv/bin/python bench/notify_100.py [--seniors 100] [--rate 50] [--seconds 10]

The load version of bench/notify_latency.py (one listener, a gentle rate): the same stack
(Redis, the SMTP sink, `python wsgi.py`, the Procfile's Celery worker: prefork x2) and the
same path measured, but with 100 engineers connected (python-socketio AsyncClient over
websocket, all in this process) and escalations fired open-loop at a fixed rate, each at its
scheduled time whether or not earlier ones have answered (no coordinated omission).

Latency is from just before each POST until a client's `handoff.created` for that handoff
arrives, on this process's monotonic clock. Reported over every (handoff, client) pair, and
for one client alone. The account's owner stays offline, so every handoff also sends one
email through the worker, as in production.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    AsyncSeniors,
    BenchStack,
    arg_parser,
    note,
    postgres_base_url,
    raise_open_files_limit,
    report,
    summarize,
    temporary_postgres_database,
)

GOAL_P99_MS = 50.0
REASON = "Spooler keeps crashing after the driver update"


async def drive(web, seeded, rate: float, seconds: float, warmup: int, timeout: float) -> dict:
    import aiohttp

    seniors = AsyncSeniors(web.url, [s["token"] for s in seeded.seniors])
    await seniors.connect()
    await asyncio.sleep(1.0)
    sessions = list(seeded.session_ids)
    started_at: dict[int, float] = {}
    response_ms: list[float] = []
    errors: list[str] = []

    async def escalate(http, session_id: int) -> int | None:
        began = time.monotonic()
        try:
            async with http.post(
                f"{web.url}/api/v1/sessions/{session_id}/escalate",
                json={"reason": REASON},
                headers={"Authorization": f"Bearer {seeded.technician_token}"},
            ) as response:
                body = await response.json()
                if response.status != 201:
                    errors.append(f"{response.status}: {str(body)[:200]}")
                    return None
        except aiohttp.ClientError as error:
            errors.append(repr(error))
            return None
        handoff_id = int(body["id"])
        started_at[handoff_id] = began
        response_ms.append((time.monotonic() - began) * 1000)
        return handoff_id

    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(warmup):
            handoff_id = await escalate(http, sessions.pop(0))
            if handoff_id is not None:
                await seniors.wait_all(handoff_id, timeout)
        started_at.clear()
        response_ms.clear()
        count = int(rate * seconds)
        began = time.monotonic()
        tasks = []
        for n in range(count):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(escalate(http, sessions.pop(0))))
        handoff_ids = [h for h in await asyncio.gather(*tasks) if h is not None]
        sent_seconds = time.monotonic() - began
        for handoff_id in handoff_ids:
            await seniors.wait_all(handoff_id, timeout)
    all_ms: list[float] = []
    one_ms: list[float] = []
    missing = 0
    for handoff_id in handoff_ids:
        got = seniors.received.get(handoff_id, {})
        missing += len(seniors.clients) - len(got)
        for index, at in got.items():
            ms = (at - started_at[handoff_id]) * 1000
            all_ms.append(ms)
            if index == 0:
                one_ms.append(ms)
    await seniors.close()
    every = summarize(all_ms)
    return {
        "seniors_connected": len(seniors.clients),
        "rate_per_second": rate,
        "escalations": len(handoff_ids),
        "achieved_rate_per_second": round(len(handoff_ids) / sent_seconds, 1),
        "errors": errors[:10],
        "notify_every_client": every,
        "notify_one_client": summarize(one_ms),
        "escalate_response": summarize(response_ms),
        "missing_deliveries": missing,
        "duplicates": seniors.duplicates,
        "goal_p99_ms": GOAL_P99_MS,
        "met": every["p99_ms"] is not None
        and every["p99_ms"] <= GOAL_P99_MS
        and missing == 0
        and not errors,
    }


def run(
    seniors: int,
    rate: float,
    seconds: float,
    warmup: int,
    timeout: float,
    database_url: str | None = None,
    worker_concurrency: int = 2,
) -> dict:
    raise_open_files_limit(max(4096, seniors * 4 + 256))
    note("[notify under load] %d seniors connected, %.0f escalations/s for %.0f s",
         seniors, rate, seconds)  # fmt: skip
    with BenchStack("notify-100", database_url=database_url, smtp="process") as stack:
        seeded = stack.seed(seniors=seniors, sessions=int(rate * seconds) + warmup + 10)
        web = stack.start_web()
        stack.start_worker(pool="prefork", concurrency=worker_concurrency)
        result = asyncio.run(drive(web, seeded, rate, seconds, warmup, timeout))
    every, one = result["notify_every_client"], result["notify_one_client"]
    note("  every client: p50 %s ms, p99 %s ms; one client: p50 %s ms, p99 %s ms",
         every["p50_ms"], every["p99_ms"], one["p50_ms"], one["p99_ms"])  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--seniors", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="escalations per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait per event")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="worker processes (Procfile: 2)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rate * args.seconds <= 5000:
        parser.error("rate x seconds must be 1..5000 escalations")
    started = time.monotonic()
    settings = (args.seniors, args.rate, args.seconds, args.warmup, args.timeout)
    if args.database == "postgres":
        base = postgres_base_url()
        if base is None:
            raise SystemExit("PostgreSQL is not available (scripts/test_postgres.sh failed)")
        with temporary_postgres_database(base, prefix="bench_notify") as url:
            result = run(*settings, database_url=url, worker_concurrency=args.worker_concurrency)
    else:
        result = run(*settings, worker_concurrency=args.worker_concurrency)
    result["database"] = args.database
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
