"""Measure 10: what one escalation costs each process, in CPU and SQL statements.

    .venv/bin/python bench/step_cost.py [--count 200] [--database both]

On a small box the live path shares the cores with everything else an escalation sets off,
so measure 8's latencies follow from these costs. Here each step runs in this process, one
at a time, against a real Redis (message queue and broker, with a subscriber on the
Socket.IO channel as a web node would be) and the in-process SMTP sink:

1. `escalate`: the API request (token check, rate limit, the transaction), with the live
   emit and the dispatch task sent right after the commit, as the web process does;
2. `dispatch`: the worker's half of a `handoff.created` the web already emitted: who is
   offline, one email delivery per offline senior, their send tasks;
3. `emails`: the mailer sending those emails, as one message of the dispatch brings them
   (claim, compose, SMTP, record each).

Each step's CPU is the calling thread's (time.thread_time: the SMTP sink's thread is not
counted), with the SQL statements it sent. On PostgreSQL the database's share is measured
too (`db_cpu_ms`: the CPU of the server processes serving this benchmark's database over
the step's runs, per run). Beside them, the floor: `bare`, one INSERT and one COMMIT
behind the same authentication (bench/endpoints.py), measured the same way in the same
run; `ratio_to_bare` is the three steps' CPU (and the database's) over the floor's.

A fixed pure-Python loop is timed before and after (`calibration_ms`): a virtual
machine's speed can drift, and figures from runs whose calibrations differ compare only
after scaling by them.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    RedisServer,
    SmtpSink,
    arg_parser,
    calibration_ms,
    in_process_app,
    note,
    on_each_backend,
    report,
    seed_account,
)

WARM_UP = 10
STEPS = ("escalate", "dispatch", "emails")
OFFLINE_SENIORS = 2  # with the owner, three emails per escalation


class StatementCounter:
    """Counts the SQL statements an engine sends while `on` is set."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.count = 0
        self.on = False
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        if self.on:
            self.count += 1


class DatabaseCpu:
    """CPU seconds of the PostgreSQL server processes serving one database (its backends
    on this machine); 0 elsewhere (SQLite runs in this thread, so it is counted there)."""

    def __init__(self, engine) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import StaticPool

        self.on = engine.dialect.name == "postgresql"
        # A connection of its own: the app's pool would hand over the very backend measured.
        self.engine = create_engine(engine.url, poolclass=StaticPool) if self.on else None

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def _backends(self) -> list[int]:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            return list(
                connection.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()"
                    )
                )
            )

    def seconds(self) -> dict[int, float]:
        import psutil

        if not self.on:
            return {}
        used = {}
        for pid in self._backends():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            used[pid] = times.user + times.system
        return used


def _measure(
    steps: list[Callable[[], Any]], counter: StatementCounter, database: DatabaseCpu
) -> dict[str, Any]:
    cpu_ms, statements = [], []
    db_before: dict[int, float] = {}
    for index, step in enumerate(steps):
        if index == WARM_UP:
            db_before = database.seconds()
        counter.count, counter.on = 0, True
        began = time.thread_time()
        step()
        cpu_ms.append((time.thread_time() - began) * 1000)
        counter.on = False
        statements.append(counter.count)
    db_after = database.seconds()
    measured = cpu_ms[WARM_UP:]
    # A backend that left during the runs is not counted (the pool keeps its connections).
    db_seconds = sum(db_after[pid] - db_before.get(pid, 0.0) for pid in db_after)
    return {
        "count": len(measured),
        "cpu_ms_median": round(statistics.median(measured), 2),
        "cpu_ms_mean": round(statistics.fmean(measured), 2),
        "db_cpu_ms": round(1000 * db_seconds / len(measured), 2) if database.on else None,
        "statements": round(statistics.fmean(statements[WARM_UP:]), 1),
    }


def _app(database_url: str, redis_server: RedisServer, sink: SmtpSink):
    from devstack.inprocess import wired_app

    redis_url = f"redis://{redis_server.host}:{redis_server.port}"
    app = wired_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": f"{redis_url}/0",
            "SOCKETIO_MESSAGE_QUEUE": f"{redis_url}/0",
            "CELERY_BROKER_URL": f"{redis_url}/1",
            "RATELIMIT_STORAGE_URI": f"{redis_url}/2",
            "API_RATE_LIMIT_PER_TOKEN": "1000000 per minute",
            "SOCKETIO_ASYNC_MODE": "threading",
            "SECRET_KEY": secrets.token_urlsafe(48),
            **sink.env(),
            "SMTP_PORT": sink.port,
            "SMTP_STARTTLS": False,
            "SMTP_TIMEOUT": 5.0,
            "MAIL_FROM": "Escalation Mode <escalations@bench.example>",
        }
    )
    return app


def _create_tables(database_url: str) -> None:
    from models.db import db

    with in_process_app(database_url).app_context():
        db.create_all()
        db.engine.dispose()


def run_backend(name: str, database_url: str, count: int) -> dict[str, Any]:
    from sqlalchemy import select

    from bench.endpoints import register
    from models.db import db
    from models.entities import Delivery, OutboxEvent
    from workers import fanout, mail

    note("[step cost] %s: %s escalations", name, count)
    calibration_before = calibration_ms()
    with RedisServer() as redis_server, SmtpSink() as sink:
        _create_tables(database_url)
        # Seeding wires an app of its own; the tasks run in the last one wired, this one.
        seeded = seed_account(database_url, seniors=OFFLINE_SENIORS, sessions=count + WARM_UP)
        app = _app(database_url, redis_server, sink)
        register(app)  # the floor: POST /api/v1/_bench/bare/<session_id>
        listener = redis_server.client().pubsub()  # a web node on the Socket.IO channel
        listener.subscribe(app.config["SOCKETIO_CHANNEL"])
        client = app.test_client()
        headers = {"Authorization": f"Bearer {seeded.technician_token}"}
        handoff_ids: list[int] = []

        def escalate(session_id: int) -> Callable[[], None]:
            def step() -> None:
                response = client.post(
                    f"/api/v1/sessions/{session_id}/escalate", json={"reason": "Stuck"},
                    headers=headers,
                )  # fmt: skip
                assert response.status_code == 201, response.get_json()
                handoff_ids.append(response.get_json()["id"])

            return step

        def bare(session_id: int) -> Callable[[], None]:
            def step() -> None:
                response = client.post(f"/api/v1/_bench/bare/{session_id}", headers=headers)
                assert response.status_code == 201, response.get_json()

            return step

        with app.app_context():
            counter, database = StatementCounter(db.engine), DatabaseCpu(db.engine)
            result = {"database": name}
            result["bare"] = _measure([bare(s) for s in seeded.session_ids], counter, database)
            result["escalate"] = _measure(
                [escalate(s) for s in seeded.session_ids], counter, database
            )
            events = db.session.scalars(
                select(OutboxEvent.id).where(OutboxEvent.handoff_id.in_(handoff_ids))
            ).all()
            db.session.remove()
            steps = [lambda e=event_id: fanout.dispatch(e, emitted=True) for event_id in events]
            result["dispatch"] = _measure(steps, counter, database)
            planned = db.session.execute(
                select(Delivery.outbox_event_id, Delivery.id)
                .where(Delivery.channel == "email")
                .order_by(Delivery.id)
            ).all()
            db.session.remove()
            by_event: dict[int, list[int]] = {}
            for event_id, delivery_id in planned:
                by_event.setdefault(event_id, []).append(delivery_id)
            steps = [lambda ids=ids: mail.send_emails(ids) for ids in by_event.values()]
            result["emails"] = _measure(steps, counter, database)
            result["emails_received"] = len(sink.messages)
            result["emails_per_escalation"] = round(len(planned) / len(events), 2)
            mail.connections.discard()
            database.close()
            db.session.remove()
            db.engine.dispose()
        listener.close()
    steps = [result[step] for step in STEPS]
    per_escalation = sum(step["cpu_ms_median"] for step in steps)
    result["cpu_ms_per_escalation"] = round(per_escalation, 1)
    bare = result["bare"]["cpu_ms_median"]
    result["ratio_to_bare"] = round(per_escalation / bare, 1)
    if result["bare"]["db_cpu_ms"] is not None:
        with_db = per_escalation + sum(step["db_cpu_ms"] for step in steps)
        result["cpu_ms_per_escalation_with_db"] = round(with_db, 1)
        result["ratio_to_bare_with_db"] = round(with_db / (bare + result["bare"]["db_cpu_ms"]), 1)
    result["calibration_ms"] = [calibration_before, calibration_ms()]
    note("  %s", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="escalations measured")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args(argv)
    results, skipped = on_each_backend(
        args.database, "bench_step_cost", lambda name, url: run_backend(name, url, args.count)
    )
    report({"count": args.count, "results": results, "skipped": skipped}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
