"""Measure 3: escalate latency with the SMTP server stalled vs healthy, and vs inline email.

    .venv/bin/python bench/smtp_stall.py [--requests 60] [--blocks 2] [--rate 10]

Starts Redis, the SMTP sink, `python -m bench.web` (the real app plus bench/endpoints.py) and
the Procfile's Celery worker (prefork x2) on 127.0.0.1, with the default SMTP_TIMEOUT
(10 s). One account: the owner and two engineers are offline, so every escalation owes three emails.

- outbox, healthy:  POST /sessions/<id>/escalate while the sink accepts mail;
- outbox, stalled:  the same while the sink accepts TCP connections and never answers, so
  every delivery attempt in the worker hangs until SMTP_TIMEOUT;
- naive, healthy / stalled: POST /_bench/naive-escalate/<id>, which escalates and then
  sends the three emails inside the request with smtplib (the design this replaces).

Outbox requests go one at a time at a steady rate, in alternating healthy/stalled blocks so
both sides see the same machine; each side's p50 is over all its blocks. The naive stalled
side is `--naive-stalled` requests sent together, since each takes the full SMTP timeout.
Goal: outbox p50 stalled / healthy <= 1.2.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench.common import BenchStack, arg_parser, note, report, summarize  # noqa: E402

GOAL_RATIO = 1.2
REASON = "Spooler keeps crashing after the driver update"


def post(http: requests.Session, url: str, token: str) -> float:
    started = time.perf_counter()
    response = http.post(
        url, json={"reason": REASON}, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 201:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return elapsed


def paced(http, urls: list[str], token: str, rate: float) -> list[float]:
    """One request at a time, the n-th starting at n / rate seconds (or at once if late)."""
    latencies = []
    began = time.monotonic()
    for n, url in enumerate(urls):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        latencies.append(post(http, url, token))
    return latencies


def together(urls: list[str], token: str) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def one(url: str) -> None:
        with requests.Session() as http:
            ms = post(http, url, token)
        with lock:
            latencies.append(ms)

    threads = [threading.Thread(target=one, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return latencies


def run(requests_per_block: int, blocks: int, rate: float, naive_stalled: int) -> dict[str, Any]:
    note("[smtp stall] %d blocks x %d requests per side at %.0f/s", blocks, requests_per_block,
         rate)  # fmt: skip
    needed = 2 * blocks * requests_per_block + requests_per_block + naive_stalled + 20
    with BenchStack("smtp-stall") as stack:
        assert stack.smtp is not None
        seeded = stack.seed(seniors=2, sessions=needed)
        web = stack.start_web()
        stack.start_worker(pool="prefork", concurrency=2)
        token = seeded.technician_token
        sessions = iter(seeded.session_ids)

        def escalate_urls(n: int) -> list[str]:
            return [f"{web.url}/api/v1/sessions/{next(sessions)}/escalate" for _ in range(n)]

        def naive_urls(n: int) -> list[str]:
            return [f"{web.url}/api/v1/_bench/naive-escalate/{next(sessions)}" for _ in range(n)]

        sides: dict[str, list[float]] = {"healthy": [], "stalled": []}
        worker_stalled = 0  # SMTP connections the worker opened to the stalled server
        with requests.Session() as http:
            paced(http, escalate_urls(10), token, rate)  # warm-up
            for block in range(blocks):
                for side in ("healthy", "stalled"):
                    stack.smtp.ok() if side == "healthy" else stack.smtp.stall()
                    sides[side] += paced(http, escalate_urls(requests_per_block), token, rate)
                    if side == "stalled":
                        worker_stalled += stack.smtp.stalled_connections
                    note("  block %d %-7s outbox p50 %.1f ms", block + 1, side,
                         summarize(sides[side])["p50_ms"])  # fmt: skip
            stack.smtp.ok()
            naive_healthy = paced(http, naive_urls(requests_per_block), token, rate)
            note("  naive   healthy p50 %.1f ms", summarize(naive_healthy)["p50_ms"])
        stack.smtp.stall()
        naive_stalled_ms = together(naive_urls(naive_stalled), token)
        note("  naive   stalled p50 %.1f ms (%d requests at once)",
             summarize(naive_stalled_ms)["p50_ms"], naive_stalled)  # fmt: skip
        stack.smtp.ok()
        smtp_timeout = float(stack.env.get("SMTP_TIMEOUT") or 10)
    healthy, stalled = summarize(sides["healthy"]), summarize(sides["stalled"])
    naive_h, naive_s = summarize(naive_healthy), summarize(naive_stalled_ms)
    ratio = stalled["p50_ms"] / healthy["p50_ms"]
    return {
        "smtp_timeout_s": smtp_timeout,
        "rate_per_second": rate,
        "outbox_healthy": healthy,
        "outbox_stalled": stalled,
        "naive_healthy": naive_h,
        "naive_stalled": naive_s,
        "worker_connections_to_stalled_smtp": worker_stalled,
        "ratio_stalled_to_healthy_p50": round(ratio, 3),
        "ratio_naive_to_outbox_healthy_p50": round(naive_h["p50_ms"] / healthy["p50_ms"], 2),
        "ratio_naive_to_outbox_stalled_p50": round(naive_s["p50_ms"] / stalled["p50_ms"], 1),
        "goal": f"<= {GOAL_RATIO}",
        "met": ratio <= GOAL_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="requests per block")
    parser.add_argument("--blocks", type=int, default=2, help="healthy/stalled block pairs")
    parser.add_argument("--rate", type=float, default=10.0, help="outbox requests per second")
    parser.add_argument("--naive-stalled", type=int, default=8)
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = run(args.requests, args.blocks, args.rate, args.naive_stalled)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
