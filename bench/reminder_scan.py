"""Benchmark: the unclaimed-handoff scan (beat, every 15 s) over 100,000 open handoffs.

    .venv/bin/python bench/reminder_scan.py                 # SQLite and PostgreSQL
    .venv/bin/python bench/reminder_scan.py --backend sqlite --json

Generates `--open` open, unclaimed handoffs across `--accounts` accounts (the default policy:
reminders at 5 and 10 minutes, the admins at 15), their next steps due evenly over the next
`--spread-minutes`, plus `--closed` resolved handoffs, each on a session of its own, with
INSERT ... SELECT on the database itself. Then, at a fixed clock:

- the scan alone: `models.handoff_steps.due_handoff_ids(now)` for `--ticks` successive 15 s
  ticks, with the statement's query plan (EXPLAIN QUERY PLAN / EXPLAIN ANALYZE);
- whole ticks: `run_due_steps(now)` (scan, then each due step in its own transaction:
  conditional UPDATE, step row, timeline row, outbox row) for the same ticks.

Goal: <= 1 s per tick on SQLite and PostgreSQL. PostgreSQL runs in a database of its own
on TEST_POSTGRES_URL's server (else scripts/test_postgres.sh), dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("PYTHONWARNINGS", "ignore")

from sqlalchemy import func, select, text  # noqa: E402

from bench.common import on_each_backend  # noqa: E402
from bench.rollup_bench import machine, percentile, seed_accounts  # noqa: E402

GOAL_TICK_SECONDS = 1.0
TICK = timedelta(seconds=15)
NOW = datetime(2026, 6, 15, 12, 0, 0)

# Row n: account n % accounts + 1, a session of its own (id offset past the seeded ones);
# open rows (n < open) have their next step due `due` seconds from NOW, evenly spread
# (a multiplicative hash) over the spread; closed rows are resolved, with no next step.
_SQLITE_SESSIONS = """
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < :count - 1)
INSERT INTO flow_sessions (id, account_id, technician_id, title, snapshot, ai_assessment,
                           status, created_at)
SELECT :first + n, n % :accounts + 1, n % :accounts + 1, 'Bench', '{}', '{}',
       CASE WHEN n < :open THEN 'escalated' ELSE 'resolved' END, :now
FROM seq
"""
_SQLITE_HANDOFFS = """
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < :count - 1),
rows AS (SELECT n, n % :accounts + 1 AS account, (n * 2654435761) % :spread AS due FROM seq)
INSERT INTO handoffs (account_id, session_id, escalated_by_id, status, title, reason,
                      escalation_package, created_at, next_step_at, reminders_sent)
SELECT account, :first + n, account,
       CASE WHEN n < :open THEN 'open' ELSE 'resolved' END, 'Bench', 'stuck', '{}',
       strftime('%Y-%m-%d %H:%M:%S', :now_epoch + due - 300, 'unixepoch') || '.000000',
       CASE WHEN n < :open
            THEN strftime('%Y-%m-%d %H:%M:%S', :now_epoch + due, 'unixepoch') || '.000000'
       END,
       0
FROM rows
"""
_POSTGRES_SESSIONS = """
INSERT INTO flow_sessions (id, account_id, technician_id, title, snapshot, ai_assessment,
                           status, created_at)
SELECT :first + n, (n % :accounts + 1)::int, (n % :accounts + 1)::int, 'Bench', '{}'::json,
       '{}'::json, CASE WHEN n < :open THEN 'escalated' ELSE 'resolved' END,
       CAST(:now AS timestamp)
FROM generate_series(0::bigint, :count - 1) AS n
"""
_POSTGRES_HANDOFFS = """
INSERT INTO handoffs (account_id, session_id, escalated_by_id, status, title, reason,
                      escalation_package, created_at, next_step_at, reminders_sent)
SELECT account, :first + n, account,
       CASE WHEN n < :open THEN 'open' ELSE 'resolved' END, 'Bench', 'stuck', '{}'::json,
       timestamp 'epoch' + (:now_epoch + due - 300) * interval '1 second',
       CASE WHEN n < :open THEN timestamp 'epoch' + (:now_epoch + due) * interval '1 second'
       END,
       0
FROM (
    SELECT n, (n % :accounts + 1)::int AS account, (n * 2654435761) % :spread AS due
    FROM generate_series(0::bigint, :count - 1) AS n
) AS generated
"""


def generate(args: argparse.Namespace) -> None:
    from models.db import db

    dialect = db.session.get_bind().dialect.name
    postgres = dialect == "postgresql"
    # Due times from one tick before NOW: the first tick has a tick's worth to do.
    now_epoch = int((NOW - TICK - datetime(1970, 1, 1)).total_seconds())
    params = {
        "count": args.open + args.closed,
        "open": args.open,
        "accounts": args.accounts,
        "first": args.accounts + 1,
        "spread": args.spread_minutes * 60,
        "now": NOW.isoformat(sep=" "),
        "now_epoch": now_epoch,
    }
    db.session.execute(text(_POSTGRES_SESSIONS if postgres else _SQLITE_SESSIONS), params)
    db.session.execute(text(_POSTGRES_HANDOFFS if postgres else _SQLITE_HANDOFFS), params)
    db.session.commit()
    db.session.execute(text("ANALYZE"))
    db.session.commit()


def scan_statement():
    from models.entities import Handoff

    return (
        select(Handoff.id)
        .where(text("handoffs.status = 'open'"), Handoff.next_step_at <= NOW)
        .order_by(Handoff.next_step_at)
        .limit(1000)
    )


def query_plan() -> list[str]:
    from models.db import db

    bind = db.session.get_bind()
    compiled = scan_statement().compile(bind, compile_kwargs={"literal_binds": True})
    if bind.dialect.name == "postgresql":
        rows = db.session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
        return [row[0] for row in rows]
    rows = db.session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
    return [str(row[-1]) for row in rows]


def time_ticks(ticks: int) -> dict[str, Any]:
    from models import handoff_steps
    from models.db import db
    from models.entities import HandoffStep

    scans, runs, steps = [], [], []
    for n in range(ticks):
        now = NOW + n * TICK
        started = time.perf_counter()
        due = handoff_steps.due_handoff_ids(now)
        scans.append(time.perf_counter() - started)
        db.session.rollback()
        started = time.perf_counter()
        taken = handoff_steps.run_due_steps(now)
        runs.append(time.perf_counter() - started)
        steps.append(taken.reminders + taken.admin_steps)
        assert taken.reminders == len(due), (taken, len(due))
    total_steps = db.session.scalar(select(func.count()).select_from(HandoffStep))
    assert total_steps == sum(steps)
    return {
        "ticks": ticks,
        "due_per_tick_mean": round(sum(steps) / ticks, 1),
        "scan_p50_ms": round(percentile(scans, 50) * 1000, 2),
        "scan_max_ms": round(max(scans) * 1000, 2),
        "tick_p50_s": round(percentile(runs, 50), 3),
        "tick_max_s": round(max(runs), 3),
        "per_step_ms": round(sum(runs) / max(sum(steps), 1) * 1000, 2),
    }


def run_backend(backend: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import in_process_app
    from models.db import db

    app = in_process_app(url)
    result: dict[str, Any] = {
        "backend": backend,
        "open": args.open,
        "closed": args.closed,
        "accounts": args.accounts,
        "load_1m_at_start": round(os.getloadavg()[0], 2),
    }
    with app.app_context():
        db.create_all()
        started = time.perf_counter()
        seed_accounts(args.accounts)
        generate(args)
        result["generate_s"] = round(time.perf_counter() - started, 1)
        result["plan"] = query_plan()
        db.session.rollback()
        result.update(time_ticks(args.ticks))
        db.session.remove()
        db.engine.dispose()
    result["goal_met"] = result["tick_max_s"] <= GOAL_TICK_SECONDS
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--closed", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--spread-minutes", type=int, default=120)
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results, skipped = on_each_backend(
        args.backend, "reminder_scan", lambda name, url: run_backend(name, url, args)
    )
    report = {"benchmark": "reminder_scan", "machine": machine(), "results": results,
              "skipped": skipped}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in results:
            print(f"\n{r['backend']}: {r['open']:,} open + {r['closed']:,} closed handoffs, "
                  f"{r['accounts']:,} accounts (generated in {r['generate_s']} s)")  # fmt: skip
            print(f"  scan p50 {r['scan_p50_ms']} ms, max {r['scan_max_ms']} ms")
            print(f"  tick ({r['due_per_tick_mean']} steps) p50 {r['tick_p50_s']} s, "
                  f"max {r['tick_max_s']} s, {r['per_step_ms']} ms per step")  # fmt: skip
            print("  plan:\n    " + "\n    ".join(r["plan"]))
        for backend, reason in skipped.items():
            print(f"\n{backend}: skipped ({reason})")
    return 0 if all(r["goal_met"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
