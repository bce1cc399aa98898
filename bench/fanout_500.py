"""Measure 5: one escalation to 500 connected seniors, and the web process's memory.

    .venv/bin/python bench/fanout_500.py [--seniors 500] [--trials 5]

Starts Redis, the SMTP sink, `python wsgi.py` and a Celery worker on 127.0.0.1, seeds one
account with 500 engineers (each with an API token), and connects one Socket.IO client per
engineer (python-socketio AsyncClient over websocket, all in this one asyncio process).
Then, one at a time, it escalates a fresh session and times from just before the POST until
the last of the 500 clients has received `handoff.created` for that handoff. The clock is
this process's monotonic clock, so the figure includes this process handling 500 incoming
frames: an upper bound on what the server needs.

RSS is the web process's resident set (psutil) before the clients connect, with all 500
connected, and after the trials.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    AsyncSeniors,
    BenchStack,
    arg_parser,
    note,
    raise_open_files_limit,
    report,
    summarize,
)

GOAL_LAST_MS = 1000.0
GOAL_RSS_MB = 250.0


def rss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def escalate(http, url: str, token: str, session_id: int) -> tuple[int, float]:
    started = time.monotonic()
    async with http.post(
        f"{url}/api/v1/sessions/{session_id}/escalate",
        json={"reason": "Spooler keeps crashing after the driver update"},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        body = await response.json()
        if response.status != 201:
            raise RuntimeError(f"escalate answered {response.status}: {body}")
    return int(body["id"]), started


async def drive(web, seeded, trials: int, timeout: float) -> dict[str, Any]:
    import aiohttp

    tokens = [s["token"] for s in seeded.seniors]
    seniors = AsyncSeniors(web.url, tokens)
    rss_idle = rss_mb(web.pid)
    note("  connecting %d clients ...", len(tokens))
    connect_seconds = await seniors.connect()
    await asyncio.sleep(1.0)  # let the server settle after the connect burst
    rss_connected = rss_mb(web.pid)
    note("  %d connected in %.1f s; web RSS %.1f MB", len(tokens), connect_seconds, rss_connected)
    sessions = list(seeded.session_ids)
    results = []
    async with aiohttp.ClientSession() as http:
        # Warm-up: the worker's first task and the first room emit pay one-off costs.
        handoff_id, _ = await escalate(http, web.url, seeded.technician_token, sessions.pop(0))
        await seniors.wait_all(handoff_id, timeout)
        for trial in range(trials):
            session_id = sessions.pop(0)
            handoff_id, started = await escalate(http, web.url, seeded.technician_token, session_id)
            complete = await seniors.wait_all(handoff_id, timeout)
            times = sorted(
                (t - started) * 1000 for t in seniors.received.get(handoff_id, {}).values()
            )
            results.append(
                {
                    "trial": trial + 1,
                    "received_by": len(times),
                    "complete": complete,
                    "first_ms": round(times[0], 1) if times else None,
                    "median_ms": round(times[len(times) // 2], 1) if times else None,
                    "last_ms": round(times[-1], 1) if times else None,
                }
            )
            note(
                "  trial %d: %d/%d received, first %.1f ms, last %.1f ms",
                trial + 1, len(times), len(tokens), times[0] if times else -1,
                times[-1] if times else -1,
            )  # fmt: skip
            await asyncio.sleep(0.5)
    rss_after = rss_mb(web.pid)
    connected_at_end = sum(1 for c in seniors.clients if c.connected)
    await seniors.close()
    lasts = [r["last_ms"] for r in results if r["last_ms"] is not None]
    worst_last = max(lasts) if lasts else None
    all_complete = all(r["complete"] for r in results)
    rss_peak = max(rss_connected, rss_after)
    return {
        "seniors_connected": len(tokens),
        "connected_at_end": connected_at_end,
        "connect_seconds": round(connect_seconds, 1),
        "trials": results,
        "last_receive": summarize(lasts),
        "worst_last_ms": worst_last,
        "duplicates": seniors.duplicates,
        "rss_mb": {"idle": rss_idle, "connected": rss_connected, "after_trials": rss_after},
        "rss_per_connection_kb": round((rss_connected - rss_idle) * 1024 / len(tokens), 1),
        "goal_last_ms": GOAL_LAST_MS,
        "goal_rss_mb": GOAL_RSS_MB,
        "met_last": all_complete and worst_last is not None and worst_last <= GOAL_LAST_MS,
        "met_rss": rss_peak <= GOAL_RSS_MB,
    }


def run(seniors: int, trials: int, timeout: float) -> dict[str, Any]:
    limit = raise_open_files_limit(max(4096, seniors * 4 + 256))
    note("[fanout to %d seniors] open-files limit %d", seniors, limit)
    with BenchStack("fanout") as stack:
        seeded = stack.seed(seniors=seniors, sessions=trials + 1)
        web = stack.start_web()
        stack.start_worker()
        result = asyncio.run(drive(web, seeded, trials, timeout))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--seniors", type=int, default=500)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait per trial")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = run(args.seniors, args.trials, args.timeout)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
