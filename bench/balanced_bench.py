"""Measure 7: the cost of the load balancer. Escalate throughput and the live path's p99,
direct to one web node and through nginx (deploy/nginx.conf) in front of two, in one run
on PostgreSQL (the plain `postgresql://` URL).

    .venv/bin/python bench/balanced_bench.py [--seconds 5] [--connections 16]
        [--escalations 40] [--rate 5] [--json]

One stack: Redis, PostgreSQL (a fresh database on TEST_POSTGRES_URL's server, or the
throwaway one of scripts/test_postgres.sh), two `python wsgi.py` nodes with
PROXY_FIX_X_FOR=1, a prefork worker, the mail sink in its own process, nginx.

- throughput: a closed loop of N connections (aiohttp, one process) escalating fresh
  sessions for a fixed time, first straight at node A, then at nginx with half the
  connections from another loopback address so ip_hash sends them to node B;
- live path: one senior connected over websocket, escalations at a steady rate, time from
  sending the escalate request to `handoff.created` at the senior (p50/p99), direct to
  node A, then with the senior and the requests through nginx.

The ratio nginx/direct is the figure to read: both sides share the machine at the same
moment of the run. The 2-core machine runs the client, both nodes, the worker, nginx and
PostgreSQL, so two nodes cannot add CPU here; on real hardware each node has its own.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BenchStack,
    arg_parser,
    note,
    postgres_base_url,
    report,
    summarize,
    temporary_postgres_database,
)
from bench.notify_latency import drive  # noqa: E402
from devstack.app import web_command  # noqa: E402
from devstack.net import free_port  # noqa: E402
from devstack.nginx import NginxProxy, session_from  # noqa: E402
from devstack.processes import http_ready  # noqa: E402

PROXY_ENV = {"PROXY_FIX_X_FOR": "1", "PROXY_FIX_X_PROTO": "1"}


async def _closed_loop(
    url: str, token: str, sessions: list[int], connections: int, seconds: float, addresses
) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + seconds

    async def loop(address: str) -> None:
        connector = aiohttp.TCPConnector(limit=1, local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            while time.monotonic() < deadline and sessions:
                session_id = sessions.pop()
                started = time.monotonic()
                async with http.post(
                    f"{url}/api/v1/sessions/{session_id}/escalate", json={"reason": "bench"}
                ) as response:
                    await response.read()
                latencies.append((time.monotonic() - started) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    began = time.monotonic()
    await asyncio.gather(*(loop(addresses[n % len(addresses)]) for n in range(connections)))
    elapsed = time.monotonic() - began
    created = statuses.get(201, 0)
    return {
        "connections": connections,
        "client_addresses": len(addresses),
        "statuses": {str(k): v for k, v in statuses.items()},
        "throughput_rps": round(created / elapsed, 1),
        "latency": summarize(latencies),
    }


def throughput(url: str, token: str, sessions: list[int], connections: int, seconds: float,
               addresses: list[str]) -> dict[str, Any]:  # fmt: skip
    return asyncio.run(_closed_loop(url, token, sessions, connections, seconds, addresses))


def _address_for_other_node(proxy: NginxProxy, node_of_default: str) -> str:
    for octet in range(1, 64):
        address = f"127.0.{octet}.1"
        http = session_from(address)
        node = http.get(f"{proxy.url}/healthz", timeout=5).headers["X-Upstream"]
        if node != node_of_default:
            return address
    raise RuntimeError("ip_hash put every loopback address on one node")


def run(seconds: float, connections: int, escalations: int, rate: float) -> dict[str, Any]:
    base = postgres_base_url()
    if base is None:
        raise SystemExit("PostgreSQL server binaries not found (the 'postgresql' package)")
    with temporary_postgres_database(base, prefix="balanced") as url:
        plain = re.sub(r"^postgresql\+psycopg2://", "postgresql://", url)
        with BenchStack("balanced", database_url=plain, smtp="process", env=PROXY_ENV) as stack:
            return _measure(stack, seconds, connections, escalations, rate)


def _start_second_node(stack: BenchStack):
    port = free_port()
    env = {**stack.env, "PORT": str(port)}
    node = stack.group.start(
        web_command(), env, ready_check=http_ready(f"http://127.0.0.1:{port}/healthz"), name="web"
    )
    node.url = f"http://127.0.0.1:{port}"
    return node


def _measure(stack: BenchStack, seconds, connections, escalations, rate) -> dict[str, Any]:
    per_run = int(seconds * 400) + 200
    seeded = stack.seed(sessions=2 * per_run + 2 * (escalations + 10) + 100, seniors=2)
    node_a = stack.start_web()
    node_b = _start_second_node(stack)
    stack.start_worker(pool="prefork", concurrency=2)
    ports = [int(node_a.url.rsplit(":", 1)[1]), int(node_b.url.rsplit(":", 1)[1])]
    proxy = NginxProxy(ports, stack.tmp / "nginx", debug=True)
    proxy.start(stack.group)
    sessions = list(seeded.session_ids)
    token = seeded.technician_token
    default_node = _address_node(proxy)
    other = _address_for_other_node(proxy, default_node)

    note("[balanced] warming up")
    throughput(node_a.url, token, sessions, 4, 1.0, ["127.0.0.1"])
    throughput(proxy.url, token, sessions, 4, 1.0, ["127.0.0.1", other])
    note("[balanced] throughput: %d connections for %.0f s each", connections, seconds)
    drained(stack)
    direct = throughput(node_a.url, token, sessions, connections, seconds, ["127.0.0.1"])
    drained(stack)
    balanced = throughput(proxy.url, token, sessions, connections, seconds, ["127.0.0.1", other])
    note("  direct   %s", direct)
    note("  nginx    %s", balanced)

    note("[balanced] live path: %d escalations at %.0f/s", escalations, rate)
    live_seeded = SimpleNamespace(
        seniors=seeded.seniors, technician_token=token, session_ids=sessions[: escalations + 5]
    )
    del sessions[: escalations + 5]
    drained(stack)
    live_direct = drive(node_a, live_seeded, escalations, rate, 5, 10.0)
    live_seeded.session_ids = sessions[: escalations + 5]
    del sessions[: escalations + 5]
    drained(stack)
    live_balanced = drive(SimpleNamespace(url=proxy.url), live_seeded, escalations, rate, 5, 10.0)

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    return {
        "database": "postgres",
        "web_nodes_behind_nginx": 2,
        "throughput": {
            "direct_one_node": direct,
            "nginx_two_nodes": balanced,
            "ratio_nginx_over_direct": ratio(balanced["throughput_rps"], direct["throughput_rps"]),
        },
        "live": {
            "direct_one_node": live_direct,
            "nginx_two_nodes": live_balanced,
            "p99_ratio_nginx_over_direct": ratio(
                live_balanced["notify"]["p99_ms"], live_direct["notify"]["p99_ms"]
            ),
        },
    }


def drained(stack: BenchStack, timeout: float = 90.0) -> float:
    """Wait until the worker has worked off what the previous run queued (every Celery queue
    empty), so each run starts from the same state; returns the seconds waited."""
    client = stack.redis.client()
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            if not any(client.llen(q) for q in ("realtime", "email", "maintenance")):
                break
            time.sleep(0.2)
    finally:
        client.close()
    time.sleep(1.0)  # the last tasks taken are running
    return time.monotonic() - started


def _address_node(proxy: NginxProxy) -> str:
    import requests

    return requests.get(f"{proxy.url}/healthz", timeout=5).headers["X-Upstream"]


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--escalations", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0, help="escalations per second")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = run(args.seconds, args.connections, args.escalations, args.rate)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    t, live = result["throughput"], result["live"]
    note(
        "[balanced] escalate %.1f req/s direct, %.1f through nginx (ratio %s); live p99 %s ms "
        "direct, %s ms through nginx (ratio %s); %.0f s",
        t["direct_one_node"]["throughput_rps"], t["nginx_two_nodes"]["throughput_rps"],
        t["ratio_nginx_over_direct"], live["direct_one_node"]["notify"]["p99_ms"],
        live["nginx_two_nodes"]["notify"]["p99_ms"], live["p99_ratio_nginx_over_direct"],
        result["wall_seconds"],
    )  # fmt: skip
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
