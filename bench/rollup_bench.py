"""Benchmark: the monthly rollup and the metrics endpoint at 1,000,000 handoffs.

    .venv/bin/python bench/rollup_bench.py                 # SQLite and PostgreSQL
    .venv/bin/python bench/rollup_bench.py --backend sqlite --json

Generates `--handoffs` handoffs across `--accounts` accounts (time zones from UTC-10 to
UTC+10, spread over the last `--span-days` days, 85 % with a first action 0.5 to 120
minutes after escalation) with one INSERT ... SELECT on the database itself, then times:

- scheduled run: `roll_up()` as the beat task runs it on the 3rd of a month, so every
  account gets its current and previous month (first run inserts, the rerun updates);
- backfill: every month the data covers, for every account, in one run (touches every row);
- the endpoint: `--requests` GETs of /api/v1/analytics/escalation-metrics through the Flask
  test client, each with a random account's bearer token, half `?month=`, half `?months=12`.

Goals: scheduled run <= 10 s on SQLite, endpoint p99 <= 20 ms. PostgreSQL uses a database of
its own on TEST_POSTGRES_URL's server (else scripts/test_postgres.sh), dropped afterwards.
Nothing generated is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("PYTHONWARNINGS", "ignore")

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench.common import on_each_backend  # noqa: E402

ZONES = [
    "UTC",
    "America/Chicago",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/New_York",
    "Pacific/Honolulu",
    "Europe/London",
]
GOAL_ROLLUP_SECONDS = 10.0
GOAL_P99_MS = 20.0
FIRST_ACTION_PERCENT = 85


# --------------------------------------------------------------------------- data


def bench_now() -> datetime:
    """12:00 UTC on the 3rd of this month: every zone above is within the grace days, so the
    scheduled run recomputes the current and the previous month for every account."""
    today = datetime.now(UTC)
    return datetime(today.year, today.month, 3, 12, 0)


def token_for(account_id: int) -> str:
    return f"rollup-bench-token-{account_id}"


def seed_accounts(accounts: int) -> None:
    """Accounts 1..N, each with one engineer (id = account id, with an API token) and one
    session (id = account id) that all its handoffs belong to."""
    from models.db import db
    from models.entities import Account, ApiToken, FlowSession, User
    from models.tokens import hash_token

    ids = range(1, accounts + 1)
    db.session.execute(
        insert(Account),
        [
            {
                "id": a,
                "name": f"Bench MSP {a}",
                "timezone": ZONES[a % len(ZONES)],
                "manual_baseline_minutes": 30 + a % 31,
            }
            for a in ids
        ],
    )
    db.session.execute(
        insert(User),
        [
            {
                "id": a,
                "account_id": a,
                "name": f"Engineer {a}",
                "email": f"engineer@bench-{a}.example",
                "role": "engineer",
            }
            for a in ids
        ],
    )
    db.session.execute(
        insert(ApiToken),
        [{"user_id": a, "account_id": a, "token_hash": hash_token(token_for(a))} for a in ids],
    )
    db.session.execute(
        insert(FlowSession),
        [
            {
                "id": a,
                "account_id": a,
                "technician_id": a,
                "title": "Bench session",
                "snapshot": {},
                "ai_assessment": {},
                "status": "resolved",
            }
            for a in ids
        ],
    )
    db.session.commit()


# Per row n: the account cycles; the escalation time is spread over the span by a
# multiplicative hash; TTFA is 30..7199 s; FIRST_ACTION_PERCENT of rows have a first action.
_SQLITE_HANDOFFS = """
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < :count - 1),
rows AS (
    SELECT n,
           n % :accounts + 1 AS account,
           :start + (n * 2654435761) % :span AS created,
           30 + (n * 48271) % 7170 AS ttfa,
           n % 100 < :acted AS acted
    FROM seq
)
INSERT INTO handoffs (account_id, session_id, escalated_by_id, status, title, reason,
                      escalation_package, created_at, claimed_by_id, claimed_at,
                      first_action_at, first_action_kind, time_to_first_action_seconds)
SELECT account, account, account, 'resolved', 'Bench session', 'stuck', '{}',
       strftime('%Y-%m-%d %H:%M:%S', created, 'unixepoch') || '.000000',
       CASE WHEN acted THEN account END,
       CASE WHEN acted THEN strftime('%Y-%m-%d %H:%M:%S', created, 'unixepoch') || '.000000' END,
       CASE WHEN acted
            THEN strftime('%Y-%m-%d %H:%M:%S', created + ttfa, 'unixepoch') || '.000000' END,
       CASE WHEN acted THEN CASE WHEN n % 2 = 0 THEN 'chat' ELSE 'psa_writeback' END END,
       CASE WHEN acted THEN ttfa END
FROM rows
"""

_POSTGRES_HANDOFFS = """
INSERT INTO handoffs (account_id, session_id, escalated_by_id, status, title, reason,
                      escalation_package, created_at, claimed_by_id, claimed_at,
                      first_action_at, first_action_kind, time_to_first_action_seconds)
SELECT account, account, account, 'resolved', 'Bench session', 'stuck', '{}'::json,
       timestamp 'epoch' + created * interval '1 second',
       CASE WHEN acted THEN account END,
       CASE WHEN acted THEN timestamp 'epoch' + created * interval '1 second' END,
       CASE WHEN acted THEN timestamp 'epoch' + (created + ttfa) * interval '1 second' END,
       CASE WHEN acted THEN CASE WHEN n % 2 = 0 THEN 'chat' ELSE 'psa_writeback' END END,
       CASE WHEN acted THEN ttfa::double precision END
FROM (
    SELECT n,
           (n % :accounts + 1)::int AS account,
           :start + (n * 2654435761) % :span AS created,
           30 + (n * 48271) % 7170 AS ttfa,
           n % 100 < :acted AS acted
    FROM generate_series(0::bigint, :count - 1) AS n
) AS generated
"""


def generate_handoffs(count: int, accounts: int, now: datetime, span_days: int) -> None:
    from models.db import db

    dialect = db.session.get_bind().dialect.name
    span = span_days * 86400
    start = int(now.replace(tzinfo=UTC).timestamp()) - span
    sql = _POSTGRES_HANDOFFS if dialect == "postgresql" else _SQLITE_HANDOFFS
    params = {
        "count": count,
        "accounts": accounts,
        "start": start,
        "span": span,
        "acted": FIRST_ACTION_PERCENT,
    }
    db.session.execute(text(sql), params)
    db.session.commit()
    if dialect == "postgresql":
        # What autovacuum does shortly after a bulk load; the planner needs the statistics.
        db.session.execute(text("ANALYZE"))
        db.session.commit()


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # nearest rank
    return ordered[int(rank) - 1]


def time_rollups(now: datetime, span_days: int) -> dict[str, Any]:
    from models import MonthlyRollup
    from models.db import db
    from models.rollup import Month, roll_up

    first = roll_up(now=now)
    rerun = roll_up(now=now)
    assert (first.rows, rerun.rows) == (rerun.rows, first.rows)
    newest = Month(now.year, now.month)
    oldest = Month.of((now - timedelta(days=span_days + 1)).date())
    months = [oldest]
    while months[-1] < newest:
        months.append(months[-1].shifted(1))
    backfill = roll_up(months, now=now)
    # Every handoff is an escalation of exactly one (account, month): a full check.
    escalations = db.session.scalar(select(func.sum(MonthlyRollup.escalations)))
    return {
        "scheduled_rows": first.rows,
        "scheduled_first_s": round(first.seconds, 3),
        "scheduled_rerun_s": round(rerun.seconds, 3),
        "backfill_months": len(months),
        "backfill_rows": backfill.rows,
        "backfill_s": round(backfill.seconds, 3),
        "backfill_escalations": int(escalations or 0),
    }


def check_backfill(result: dict[str, Any]) -> None:
    """The backfill covers every month the data spans: each handoff is counted exactly once."""
    if result["backfill_escalations"] != result["handoffs"]:
        raise SystemExit(
            f"rollup miscounted: {result['backfill_escalations']} escalations "
            f"for {result['handoffs']} handoffs"
        )


def time_endpoint(app, accounts: int, requests: int, now: datetime) -> dict[str, Any]:
    client = app.test_client()
    rng = random.Random(4)
    url = "/api/v1/analytics/escalation-metrics"
    month = f"{now.year:04d}-{now.month:02d}"
    timings: dict[str, list[float]] = {"month": [], "months=12": []}
    for n in range(requests + 50):
        account = rng.randint(1, accounts)
        form = "month" if n % 2 == 0 else "months=12"
        query = {"month": month} if form == "month" else {"months": 12}
        headers = {"Authorization": f"Bearer {token_for(account)}"}
        started = time.perf_counter()
        response = client.get(url, query_string=query, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.get_json()
        if n >= 50:  # the first requests warm caches and the connection pool
            timings[form].append(elapsed)
    result: dict[str, Any] = {}
    for form, values in timings.items():
        key = form.replace("=", "").replace("months12", "history")
        result[f"{key}_p50_ms"] = round(percentile(values, 50), 2)
        result[f"{key}_p99_ms"] = round(percentile(values, 99), 2)
    every = timings["month"] + timings["months=12"]
    result["requests"] = len(every)
    result["p99_ms"] = round(percentile(every, 99), 2)
    return result


def run_backend(backend: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import in_process_app
    from models.db import db

    app = in_process_app(url)
    now = bench_now()
    # Other processes on the machine show up in the tail latencies: say how busy it was.
    result: dict[str, Any] = {
        "backend": backend,
        "handoffs": args.handoffs,
        "load_1m_at_start": round(os.getloadavg()[0], 2),
    }
    with app.app_context():
        db.create_all()
        started = time.perf_counter()
        seed_accounts(args.accounts)
        generate_handoffs(args.handoffs, args.accounts, now, args.span_days)
        result["generate_s"] = round(time.perf_counter() - started, 1)
        result["accounts"] = args.accounts
        result.update(time_rollups(now, args.span_days))
        check_backfill(result)
        result.update(time_endpoint(app, args.accounts, args.requests, now))
        db.session.remove()
        db.engine.dispose()
    result["rollup_goal_met"] = result["scheduled_first_s"] <= GOAL_ROLLUP_SECONDS
    result["p99_goal_met"] = result["p99_ms"] <= GOAL_P99_MS
    return result


# --------------------------------------------------------------------------- databases


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    rows = [
        ("handoffs / accounts", lambda r: f"{r['handoffs']:,} / {r['accounts']:,}"),
        ("generate (s)", lambda r: r["generate_s"]),
        (
            "scheduled run: current + previous month (s), goal <= 10 on SQLite",
            lambda r: f"{r['scheduled_first_s']} ({r['scheduled_rows']:,} rows)",
        ),
        ("scheduled rerun (s)", lambda r: r["scheduled_rerun_s"]),
        (
            "backfill: every month, every account (s)",
            lambda r: (
                f"{r['backfill_s']} ({r['backfill_months']} months, "
                f"{r['backfill_escalations']:,} escalations counted)"
            ),
        ),
        ("endpoint ?month= p50 / p99 (ms)", lambda r: f"{r['month_p50_ms']} / {r['month_p99_ms']}"),
        (
            "endpoint ?months=12 p50 / p99 (ms)",
            lambda r: f"{r['history_p50_ms']} / {r['history_p99_ms']}",
        ),
        ("endpoint p99, all requests (ms), goal <= 20", lambda r: f"{r['p99_ms']}"),
        ("requests timed", lambda r: f"{r['requests']:,}"),
        ("load average (1 min) at start", lambda r: r["load_1m_at_start"]),
    ]
    header = "| | " + " | ".join(r["backend"] for r in results) + " |"
    lines = [header, "|---|" + "---|" * len(results)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(str(cell(r)) for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--handoffs", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--span-days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.handoffs < 1 or not 1 <= args.accounts <= args.handoffs or args.requests < 1:
        parser.error("need 1 <= accounts <= handoffs and requests >= 1")
    args.requests = min(args.requests, 50_000)

    results, skipped = on_each_backend(
        args.backend, "rollup_bench", lambda name, url: run_backend(name, url, args)
    )

    if args.json:
        print(json.dumps({"benchmark": "rollup", "machine": machine(), "results": results,
                          "skipped": skipped}, indent=2))  # fmt: skip
    else:
        info = machine()
        print(f"Rollup benchmark on {info['cpu']} ({info['cores']} cores), "
              f"Python {info['python']}, SQLite {info['sqlite']}\n")  # fmt: skip
        print(markdown(results))
        for backend, reason in skipped.items():
            print(f"\n{backend}: skipped ({reason})")
    met = all(r["p99_goal_met"] for r in results) and all(
        r["rollup_goal_met"] for r in results if r["backend"] == "sqlite"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
