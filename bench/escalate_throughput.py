"""Measure 1: escalate throughput and latency beside a one-row floor in the same server.

    .venv/bin/python bench/escalate_throughput.py [--duration 10] [--database sqlite|postgres]

Starts Redis and `python -m bench.web` (the real app plus bench/endpoints.py) on 127.0.0.1,
seeds one account with enough sessions that every escalate hits a fresh one, then drives
both endpoints with wrk at 16 and 64 connections, alternating bare / escalate so both sides
see the same machine state:

- bare:     POST /api/v1/_bench/bare/<session_id>  (authenticate, INSERT one row, COMMIT)
- escalate: POST /api/v1/sessions/<id>/escalate    (the real endpoint: handoff + outbox row
            committed, the dispatch task handed to Redis)

No Celery worker runs: the dispatch tasks wait in Redis, so the figure is the request path
alone and neither side pays for the worker's CPU on this 2-core machine. wrk (C, one thread)
is the load generator because a Python client would need as much CPU as the server it
measures; its closed loop keeps exactly N requests in flight.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BenchStack,
    arg_parser,
    note,
    postgres_base_url,
    report,
    temporary_postgres_database,
)

LUA = Path(__file__).with_name("escalate.lua")
GOAL_RATIO = 0.5
WRK_THREADS = 1
# The bare path has no id in it: give the Lua script a range it never runs out of.
NO_IDS = (0, 10**12)


def run_wrk(
    url: str, template: str, ids: tuple[int, int], token: str, connections: int, seconds: float
) -> dict[str, Any]:
    cmd = [
        "wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
        "-s", str(LUA), url, "--", str(ids[0]), str(ids[1]), template, token, str(WRK_THREADS),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith('{"wrk"'):
            return json.loads(line)["wrk"]
    raise RuntimeError(f"wrk printed no result (exit {out.returncode}):\n{out.stdout}{out.stderr}")


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(web_url: str, web_pid: int, kind: str, template: str, ids, token, c, seconds):
    cpu_before = _cpu_seconds(web_pid)
    raw = run_wrk(web_url, template, ids, token, c, seconds)
    cpu = _cpu_seconds(web_pid) - cpu_before
    requests = raw["requests"]
    ok = raw["statuses"].get("201", 0)
    seconds_run = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    result = {
        "endpoint": kind,
        "connections": c,
        "requests": requests,
        "created_201": ok,
        "non_201": requests - ok,
        "socket_errors": {k: v for k, v in raw["errors"].items() if k != "status" and v},
        "ran_out_of_ids": raw["ran_out_of_ids"],
        "seconds": round(seconds_run, 2),
        "throughput_rps": round(ok / seconds_run, 1),
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "server_cpu_ms_per_request": round(1000 * cpu / max(requests, 1), 3),
    }
    note(
        "  %-8s c=%-3d %7.1f req/s  p50 %6.1f ms  p99 %6.1f ms  server CPU %.2f ms/req"
        "  (%d requests, %d not 201)",
        kind, c, result["throughput_rps"], result["p50_ms"], result["p99_ms"],
        result["server_cpu_ms_per_request"], requests, result["non_201"],
    )  # fmt: skip
    return result


def run(duration: float, concurrencies: list[int], database_url: str | None, label: str) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package 'wrk')")
    with BenchStack("escalate", database_url=database_url, smtp=False) as stack:
        # Enough fresh sessions for the fastest plausible rate, with a wide margin.
        runs = len(concurrencies) + 1
        seeded = stack.seed(sessions=int(runs * duration * 1500) + 2000)
        web = stack.start_web()
        sessions = seeded.session_ids
        bare_session = sessions.pop()
        bare_path = f"/api/v1/_bench/bare/{bare_session}"
        escalate_path = "/api/v1/sessions/%d/escalate"
        token = seeded.technician_token
        cursor = 0

        def escalate_ids(seconds: float) -> tuple[int, int]:
            # A slice of fresh session ids for one wrk run (ids are contiguous per insert).
            nonlocal cursor
            size = int(seconds * 1500) + 500
            chunk = sessions[cursor : cursor + size]
            cursor += size
            return chunk[0], chunk[-1]

        note("[escalate throughput, %s] warming up", label)
        measure(web.url, web.pid, "bare", bare_path, NO_IDS, token, 16, 2)
        measure(web.url, web.pid, "escalate", escalate_path, escalate_ids(2), token, 16, 2)
        results = []
        for c in concurrencies:
            bare = measure(web.url, web.pid, "bare", bare_path, NO_IDS, token, c, duration)
            esc_ids = escalate_ids(duration)
            escalate = measure(
                web.url, web.pid, "escalate", escalate_path, esc_ids, token, c, duration
            )
            floor = bare["throughput_rps"]
            ratio = escalate["throughput_rps"] / floor if floor else None
            results.append(
                {
                    "connections": c,
                    "bare": bare,
                    "escalate": escalate,
                    "ratio": round(ratio, 3) if ratio is not None else None,
                    "goal": f">= {GOAL_RATIO}",
                    "met": ratio is not None and ratio >= GOAL_RATIO and escalate["non_201"] == 0,
                }
            )
    return {"database": label, "duration_s": duration, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.database == "postgres":
        base = postgres_base_url()
        if base is None:
            raise SystemExit("PostgreSQL is not available (scripts/test_postgres.sh failed)")
        with temporary_postgres_database(base, prefix="bench_escalate") as url:
            result = run(args.duration, args.connections, url, "postgresql")
    else:
        result = run(args.duration, args.connections, None, "sqlite")
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
