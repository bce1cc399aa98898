"""Benchmark: who is on call, with 50 rotations and 1,000 overrides in one account.

    .venv/bin/python bench/oncall_bench.py                # SQLite (about 20 s)
    .venv/bin/python bench/oncall_bench.py --backend both --json

Seeds one account with 20 seniors, 50 rotations (4 participants each, daily to weekly
shifts in four time zones, handoffs at various times) and 1,000 overrides of 2 to 48 hours
spread over 120 days around the instant measured. Then, in process:

- `GET /api/v1/oncall/now?at=...` through the Flask test client (authentication, the
  schedule's queries, the computation, the JSON answer; no network), `--requests` times;
- `GET /api/v1/me` the same way, as the baseline of an authenticated request;
- the on-call decision a dispatch makes once: `models.oncall_view.moment_for(account, at)`
  (four queries and the computation over the 50 rotations), `--requests` times;
- the per-recipient decision that follows it: `models.notification_rule.choose` for a new
  handoff with the resolved moment, over the account's 20 seniors.

Goals: GET /oncall/now p99 <= 5 ms; the decision per escalation <= 0.5 ms. The machine may
be shared: the figures are noisy.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("PYTHONWARNINGS", "ignore")

from bench.common import (  # noqa: E402
    arg_parser,
    in_process_app,
    machine_info,
    note,
    on_each_backend,
    report,
    seed_account,
    summarize,
)

GOAL_NOW_P99_MS = 5.0
GOAL_DECISION_MS = 0.5
AT = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)
ZONES = ("America/Chicago", "Europe/London", "Australia/Sydney", "UTC")


def seed_schedule(app, account_id: int, seniors: list[int], rotations: int, overrides: int):
    from models.db import db
    from models.entities import OnCallOverride, Rotation

    rng = random.Random(20)
    with app.app_context():
        rows = []
        for n in range(rotations):
            rows.append(
                Rotation(
                    account_id=account_id,
                    name=f"Rotation {n + 1}",
                    participants=rng.sample(seniors, 4),
                    shift_length_days=rng.choice((1, 2, 7, 7, 14)),
                    handoff_time=f"{rng.randrange(24):02d}:{rng.choice((0, 30)):02d}",
                    start_date=date(2026, 1, 1) + timedelta(days=rng.randrange(60)),
                    timezone=rng.choice(ZONES),
                )
            )
        db.session.add_all(rows)
        db.session.flush()
        naive = AT.replace(tzinfo=None)
        for _ in range(overrides):
            start = naive + timedelta(minutes=rng.randrange(-60 * 24 * 60, 60 * 24 * 60))
            db.session.add(
                OnCallOverride(
                    account_id=account_id,
                    rotation_id=rng.choice(rows).id,
                    user_id=rng.choice(seniors),
                    start_at=start,
                    end_at=start + timedelta(hours=rng.randrange(2, 49)),
                    created_by_id=seniors[0],
                )
            )
        db.session.commit()
        db.session.remove()


def timed(count: int, call) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def run_one(name: str, url: str, requests: int) -> dict[str, Any]:
    from models.db import db
    from models.events import HANDOFF_CREATED
    from models.notification_rule import Audience, choose
    from models.oncall_view import moment_for

    app = in_process_app(url)
    with app.app_context():
        db.create_all()
        db.session.remove()
    seeded = seed_account(url, name="Oncall Bench", seniors=20)
    seniors = [s["id"] for s in seeded.seniors]
    seed_schedule(app, seeded.account_id, seniors, 50, 1000)
    note("%s: seeded 50 rotations and 1,000 overrides", name)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {seeded.admin_token}"}
    path = "/api/v1/oncall/now?at=" + AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    with app.app_context():
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        entries = len(answer.get_json()["on_call"])
        for _ in range(20):  # warm up
            client.get(path, headers=headers)
        now_ms = timed(requests, lambda: client.get(path, headers=headers))
        me_ms = timed(requests, lambda: client.get("/api/v1/me", headers=headers))
        moment_ms = timed(requests, lambda: moment_for(seeded.account_id, AT))
        moment = moment_for(seeded.account_id, AT)
        audience = Audience(_preferences(seeded.account_id), set())
        choose_ms = timed(requests, lambda: choose(HANDOFF_CREATED, audience, moment))
        db.session.remove()
        db.engine.dispose()
    now_summary, moment_summary = summarize(now_ms), summarize(moment_ms)
    return {
        "database": name,
        "rotations": 50,
        "overrides": 1000,
        "on_call_entries": entries,
        "requests": requests,
        "oncall_now": now_summary,
        "moment_for": moment_summary,
        "baseline_get_me": summarize(me_ms),
        "choose_per_escalation": summarize(choose_ms),
        "goal_now_p99_ms": GOAL_NOW_P99_MS,
        "goal_decision_ms": GOAL_DECISION_MS,
        "now_met": now_summary["p99_ms"] is not None and now_summary["p99_ms"] <= GOAL_NOW_P99_MS,
        "decision_met": moment_summary["p50_ms"] is not None
        and moment_summary["p50_ms"] <= GOAL_DECISION_MS,
    }


def _preferences(account_id: int):
    from sqlalchemy import select

    from models.db import db
    from models.email_rules import EmailPreference
    from models.entities import User

    users = db.session.scalars(select(User).where(User.account_id == account_id)).all()
    return [
        EmailPreference(u.id, u.notify_email, u.quiet_hours_start, u.quiet_hours_end, "UTC", u.role)
        for u in users
        if u.is_senior
    ]


def main() -> None:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    results, skipped = on_each_backend(
        args.backend, "oncall-bench", lambda name, url: run_one(name, url, args.requests)
    )
    report({"machine": machine_info(), "results": results, "skipped": skipped}, args.json)


if __name__ == "__main__":
    main()
