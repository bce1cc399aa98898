"""Escalate and claim latency, and the claim race, against a real `python wsgi.py`.

    .venv/bin/python bench/lifecycle_bench.py [--requests 300] [--trials 1000]
        [--claimers 8] [--databases sqlite,postgres] [--json]

For each database (a file SQLite database; PostgreSQL when a server is available: the
TEST_POSTGRES_URL server, else scripts/test_postgres.sh's) this starts a throwaway
redis-server and the web process on 127.0.0.1 (no Celery worker: dispatch tasks wait in
Redis, so the figures are the request path, including the hand-off to the broker), seeds
one account with a technician and the claimers, then measures over HTTP with keep-alive
connections:

- GET /me:   the floor (authentication and one query), one request at a time;
- escalate: POST /sessions/<id>/escalate, one request at a time, each on a fresh session;
- claim:    POST /escalations/<id>/claim of those handoffs, one at a time, uncontended;
- race:     `--trials` rounds in which `--claimers` threads (one connection each),
            released together by a barrier, claim the same fresh handoff. Counted per
            round: winners (200), losers (409 already_claimed naming the winner), anything
            else; afterwards every handoff is read back to check the stored claimer.

Prints a markdown table, or with --json one JSON object (for `make bench`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench.common import (  # noqa: E402
    BenchStack,
    arg_parser,
    machine_info,
    note,
    postgres_base_url,
    report,
    summarize,
    temporary_postgres_database,
)

API = "/api/v1"
TIMEOUT = 30.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, (time.perf_counter() - started) * 1000


def read_me(base: str, token: str, count: int) -> list[float]:
    """GET /me: authentication and one query, the floor under every request."""
    http = requests.Session()
    latencies = []
    for _ in range(count):
        response, ms = timed(lambda: http.get(f"{base}{API}/me", headers=bearer(token)))
        if response.status_code != 200:
            raise RuntimeError(f"GET /me answered {response.status_code}: {response.text}")
        latencies.append(ms)
    http.close()
    return latencies


def escalate_all(base: str, token: str, session_ids: list[int]) -> tuple[list[int], list[float]]:
    """Escalate each session in turn; the handoff ids and each request's milliseconds."""
    http = requests.Session()
    handoff_ids, latencies = [], []
    for session_id in session_ids:
        response, ms = timed(
            lambda session_id=session_id: http.post(
                f"{base}{API}/sessions/{session_id}/escalate",
                json={"reason": "Spooler keeps crashing after the driver update"},
                headers=bearer(token),
                timeout=TIMEOUT,
            )
        )
        if response.status_code != 201:
            raise RuntimeError(f"escalate answered {response.status_code}: {response.text}")
        handoff_ids.append(response.json()["id"])
        latencies.append(ms)
    http.close()
    return handoff_ids, latencies


def claim_all(base: str, token: str, handoff_ids: list[int]) -> list[float]:
    http = requests.Session()
    latencies = []
    for handoff_id in handoff_ids:
        response, ms = timed(
            lambda handoff_id=handoff_id: http.post(
                f"{base}{API}/escalations/{handoff_id}/claim",
                headers=bearer(token),
                timeout=TIMEOUT,
            )
        )
        if response.status_code != 200:
            raise RuntimeError(f"claim answered {response.status_code}: {response.text}")
        latencies.append(ms)
    http.close()
    return latencies


def race(base: str, tokens: list[str], handoff_ids: list[int]) -> dict[str, Any]:
    """Each round, every claimer thread POSTs /claim for the same handoff at once."""
    claimers = len(tokens)
    start = threading.Barrier(claimers + 1, timeout=TIMEOUT)
    done = threading.Barrier(claimers + 1, timeout=TIMEOUT)
    answers: list[list[tuple[int, dict, float] | None]] = [[None] * claimers for _ in handoff_ids]
    current = [0]

    def claimer(index: int) -> None:
        http = requests.Session()  # one keep-alive connection per claimer
        try:
            for n in range(len(handoff_ids)):
                start.wait()
                try:
                    response, ms = timed(
                        lambda: http.post(
                            f"{base}{API}/escalations/{handoff_ids[current[0]]}/claim",
                            headers=bearer(tokens[index]),
                            timeout=TIMEOUT,
                        )
                    )
                    answers[n][index] = (response.status_code, response.json(), ms)
                except (requests.RequestException, ValueError) as exc:
                    answers[n][index] = (0, {"exception": repr(exc)}, 0.0)
                done.wait()
        finally:
            http.close()

    threads = [threading.Thread(target=claimer, args=(i,), daemon=True) for i in range(claimers)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    for n in range(len(handoff_ids)):
        current[0] = n
        start.wait()
        done.wait()
    seconds = time.perf_counter() - began
    for thread in threads:
        thread.join(timeout=TIMEOUT)

    winners_per_round: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    bad_rounds: list[dict[str, Any]] = []
    winner_ids: list[int | None] = []
    latencies: list[float] = []
    for n, round_answers in enumerate(answers):
        wins = [body for status, body, _ in round_answers if status == 200]
        winners_per_round[len(wins)] += 1
        winner = wins[0]["handoff"]["claimed_by"] if len(wins) == 1 else None
        winner_ids.append(winner["id"] if winner else None)
        expected = f"Already claimed by {winner['name']}" if winner else None
        round_ok = winner is not None
        for status, body, ms in round_answers:
            latencies.append(ms)
            if status == 200:
                outcomes["won"] += 1
            elif status == 409 and body["error"]["message"] == expected:
                outcomes["lost: already_claimed naming the winner"] += 1
            else:
                outcomes[f"other: {status}"] += 1
                round_ok = False
        if not round_ok and len(bad_rounds) < 5:
            bad_rounds.append({"round": n, "answers": round_answers})
    return {
        "rounds": len(handoff_ids),
        "claimers": claimers,
        "seconds": round(seconds, 2),
        "winners_per_round": {str(k): v for k, v in sorted(winners_per_round.items())},
        "outcomes": dict(outcomes),
        "claim_under_race": summarize(latencies),
        "bad_rounds": bad_rounds,
        "winner_ids": winner_ids,
    }


def stored_claimers_match(base: str, token: str, handoff_ids: list[int], winners) -> int:
    """Read every raced handoff back; the number whose stored claimer is not the winner."""
    http = requests.Session()
    mismatches = 0
    for handoff_id, winner_id in zip(handoff_ids, winners, strict=True):
        body = http.get(
            f"{base}{API}/escalations/{handoff_id}", headers=bearer(token), timeout=TIMEOUT
        ).json()
        stored = (body.get("claimed_by") or {}).get("id")
        mismatches += stored is None or stored != winner_id
    http.close()
    return mismatches


def run_database(label: str, database_url: str | None, args) -> dict[str, Any]:
    with BenchStack(f"lifecycle-{label}", database_url=database_url, smtp=False) as stack:
        seeded = stack.seed(seniors=args.claimers, sessions=args.requests + args.trials)
        web = stack.start_web()
        base = web.url
        measured, raced = seeded.session_ids[: args.requests], seeded.session_ids[args.requests :]
        note("[%s] reading /me %d times", label, args.requests)
        me_ms = read_me(base, seeded.technician_token, args.requests)
        note("[%s] escalating %d sessions", label, len(measured))
        handoffs, escalate_ms = escalate_all(base, seeded.technician_token, measured)
        note("[%s] claiming %d handoffs", label, len(handoffs))
        claim_ms = claim_all(base, seeded.seniors[0]["token"], handoffs)
        note("[%s] preparing %d race rounds", label, len(raced))
        race_handoffs, _ = escalate_all(base, seeded.technician_token, raced)
        note("[%s] racing: %d rounds x %d claimers", label, len(race_handoffs), args.claimers)
        result = race(base, [s["token"] for s in seeded.seniors], race_handoffs)
        winners = result.pop("winner_ids")
        result["stored_claimer_mismatches"] = stored_claimers_match(
            base, seeded.admin_token, race_handoffs, winners
        )
        web_log = web.log_text()
    return {
        "database": label,
        "me": summarize(me_ms),
        "escalate": summarize(escalate_ms),
        "claim": summarize(claim_ms),
        "race": result,
        "web_log_database_locked": web_log.count("database is locked"),
        "web_log_tracebacks": web_log.count("Traceback"),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| database | GET /me p50 / p99 (ms) | escalate p50 / p99 (ms) | claim p50 / p99 (ms) "
        "| race rounds x claimers | winners per round | losers told the winner "
        "| claim under race p50 / p99 (ms) | stored claimer wrong |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        race_ = r["race"]
        winners = ", ".join(f"{k}: {v}" for k, v in race_["winners_per_round"].items())
        told = race_["outcomes"].get("lost: already_claimed naming the winner", 0)
        losers = race_["rounds"] * race_["claimers"] - race_["outcomes"].get("won", 0)
        lines.append(
            f"| {r['database']} "
            f"| {r['me']['p50_ms']} / {r['me']['p99_ms']} "
            f"| {r['escalate']['p50_ms']} / {r['escalate']['p99_ms']} "
            f"| {r['claim']['p50_ms']} / {r['claim']['p99_ms']} "
            f"| {race_['rounds']} x {race_['claimers']} "
            f"| {winners} "
            f"| {told} of {losers} "
            f"| {race_['claim_under_race']['p50_ms']} / {race_['claim_under_race']['p99_ms']} "
            f"| {race_['stored_claimer_mismatches']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="escalates and claims timed")
    parser.add_argument("--trials", type=int, default=1000, help="race rounds")
    parser.add_argument("--claimers", type=int, default=8, help="racing claimers per round")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    args = parser.parse_args()
    wanted = [d.strip() for d in args.databases.split(",") if d.strip()]

    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for label in wanted:
        if label == "sqlite":
            context = nullcontext(None)
        elif label == "postgres":
            base = postgres_base_url()
            if base is None:
                skipped[label] = "no PostgreSQL server available"
                note("[postgres] skipped: no PostgreSQL server available")
                continue
            context = temporary_postgres_database(base, prefix="bench_lifecycle")
        else:
            parser.error(f"unknown database {label!r}")
        with context as database_url:
            results.append(run_database(label, database_url, args))

    ok = all(
        r["race"]["winners_per_round"] == {"1": r["race"]["rounds"]}
        and r["race"]["stored_claimer_mismatches"] == 0
        for r in results
    )
    if args.json:
        report(
            {
                "benchmark": "lifecycle",
                "ok": ok,
                "settings": vars(args),
                "machine": {**machine_info(), "load_average": os.getloadavg()},
                "results": results,
                "skipped": skipped,
            },
            as_json=True,
        )
    else:
        sys.stdout.write(markdown(results) + "\n")
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        sys.stdout.write(f"\nload average at the end: {load} ({os.cpu_count()} cores)\n")
        for label, reason in skipped.items():
            sys.stdout.write(f"\n{label}: skipped ({reason})\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
