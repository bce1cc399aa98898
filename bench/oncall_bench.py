"""Benchmark: who is on call, with 50 rotations and 1,000 overrides in one account.

    .venv/bin/python bench/oncall_bench.py                # SQLite (about 20 s)
    .venv/bin/python bench/oncall_bench.py --backend both --json

Seeds one account with 20 seniors, 50 rotations (4 participants each, daily to weekly
shifts in four time zones, handoffs at various times) and 1,000 overrides of 2 to 48 hours
spread over 120 days around the instant measured. Then, in process, each `--requests`
times at instants a minute apart (so segments end and are found again as they would):

- `GET /api/v1/oncall/now?at=...` through the Flask test client (authentication, the
  schedule, the JSON answer; no network), served from the copy models/schedule_cache.py
  keeps; again with that copy dropped before every request (what the first request after
  a schedule write costs: the copy's wider load and the seniors); and as the route was
  before the copy, loading the schedule for the instant (`oncall.schedule_at`) each time;
- `GET /api/v1/me` the same way, as the baseline of an authenticated request;
- the on-call decision a dispatch makes once: `models.oncall_view.moment_for(account, at)`
  (the version read and the kept copy), and beside it the previous code's path, loading
  the schedule for each call (`oncall.covering_schedules`, four queries, and who is on call
  over the 50 rotations);
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
    for n in range(count):
        began = time.perf_counter()
        call(n)
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def loaded_each_time(account_id: int, at: datetime):
    """The on-call moment as the previous code resolved it: loaded for every call."""
    from models import oncall
    from models.notification_rule import Moment

    schedule = oncall.covering_schedules([account_id], at).get(account_id)
    if schedule is None:
        return Moment(at)
    return Moment(at, schedule.inside_business_hours(at), schedule.on_call_users(at))


def run_one(name: str, url: str, requests: int) -> dict[str, Any]:
    from models import oncall, schedule_cache
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
    kept_schedule_at = schedule_cache.schedule_at
    instants = [AT + timedelta(minutes=n) for n in range(requests)]
    paths = ["/api/v1/oncall/now?at=" + at.strftime("%Y-%m-%dT%H:%M:%SZ") for at in instants]
    with app.app_context():
        answer = client.get(paths[0], headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        entries = len(answer.get_json()["on_call"])
        for path in paths[:20]:  # warm up
            client.get(path, headers=headers)
        now_ms = timed(requests, lambda n: client.get(paths[n], headers=headers))

        def cold(n: int) -> None:
            schedule_cache.clear()
            client.get(paths[n], headers=headers)

        cold_ms = timed(requests, cold)
        schedule_cache.schedule_at = oncall.schedule_at  # the route as it was: loaded each time
        try:
            before_now_ms = timed(requests, lambda n: client.get(paths[n], headers=headers))
        finally:
            schedule_cache.schedule_at = kept_schedule_at
        me_ms = timed(requests, lambda n: client.get("/api/v1/me", headers=headers))
        for n in range(requests):  # the copy and the previous path agree
            moment = moment_for(seeded.account_id, instants[n])
            assert moment == loaded_each_time(seeded.account_id, instants[n]), instants[n]
        moment_ms = timed(requests, lambda n: moment_for(seeded.account_id, instants[n]))
        before_ms = timed(requests, lambda n: loaded_each_time(seeded.account_id, instants[n]))
        moment = moment_for(seeded.account_id, AT)
        audience = Audience(_preferences(seeded.account_id), set())
        choose_ms = timed(requests, lambda n: choose(HANDOFF_CREATED, audience, moment))
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
        "oncall_now_copy_dropped": summarize(cold_ms),
        "oncall_now_loaded_each_time": summarize(before_now_ms),
        "moment_for": moment_summary,
        "moment_loaded_each_time": summarize(before_ms),
        "baseline_get_me": summarize(me_ms),
        "choose_per_escalation": summarize(choose_ms),
        "goal_now_p99_ms": GOAL_NOW_P99_MS,
        "goal_decision_ms": GOAL_DECISION_MS,
        "now_met": now_summary["p99_ms"] is not None and now_summary["p99_ms"] <= GOAL_NOW_P99_MS,
        "decision_met": moment_summary["p99_ms"] is not None
        and moment_summary["p99_ms"] <= GOAL_DECISION_MS,
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
