"""Racing seniors and racing escalations, with real threads and separate connections.

Each racer is a thread with its own app context, so its own SQLAlchemy session and its
own database connection, released together by a barrier. Runs on a file SQLite database
and on PostgreSQL (TEST_POSTGRES_URL; skipped with the reason when it is unset).
"""

from __future__ import annotations

import contextvars
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event, func, select

from models import db, escalations, outbox, tenancy
from models.accounts import create_account, create_user
from models.entities import FlowSession, Handoff, OutboxEvent, User
from models.errors import DomainError
from models.sessions import create_session
from tests.factories import both_databases, make_tenant, with_three_roles

CLAIMERS = 8
TRIALS = int(os.environ.get("CLAIM_RACE_TRIALS", "200"))
ESCALATION_TRIALS = 50
BARRIER_TIMEOUT = 60


@dataclass
class Outcome:
    user_id: int
    code: str  # "won", a DomainError code, or "crashed"
    message: str
    started: float
    finished: float
    claim_updates: list[int]  # row counts of the conditional UPDATEs this claim issued


def run_together(app, workers: list[Callable[[], object]], rounds: int, before_round, record):
    """Run each worker once per round, all released together by a barrier.

    Every worker thread keeps one app context (its own session) for all rounds and
    removes its session after each call, as a request does. `before_round(n)` runs on the
    calling thread while the workers wait; `record(n, index, result)` collects results.
    """
    start = threading.Barrier(len(workers) + 1, timeout=BARRIER_TIMEOUT)
    done = threading.Barrier(len(workers) + 1, timeout=BARRIER_TIMEOUT)

    def loop(index: int, work: Callable[[], object]) -> None:
        with app.app_context():
            for n in range(rounds):
                start.wait()
                try:
                    record(n, index, work())
                finally:
                    db.session.remove()
                done.wait()

    # Each racer works for the caller's tenant, as each request would for its caller's.
    threads = [
        threading.Thread(
            target=contextvars.copy_context().run, args=(loop, i, w), name=f"racer-{i}",
            daemon=True,
        )
        for i, w in enumerate(workers)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        for n in range(rounds):
            before_round(n)
            start.wait()
            done.wait()
    except threading.BrokenBarrierError:
        start.abort()
        done.abort()
        raise
    finally:
        for thread in threads:
            thread.join(timeout=BARRIER_TIMEOUT)


def in_flight_peak(trial: list[Outcome]) -> int:
    """The most claims of one trial that were running at the same moment."""
    edges = sorted([(o.started, 1) for o in trial] + [(o.finished, -1) for o in trial])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- the claim race


@with_three_roles
def test_exactly_one_of_eight_racing_seniors_wins_every_claim(app):
    account, _, _ = create_account("Race MSP", "Race Owner", "owner@race.example")
    tenancy.set_tenant(account.id)  # the rest is the account's work, as its requests are
    technician, _ = create_user(account, "Tina Tech", "tina@race.example", "technician")
    seniors = [
        create_user(account, f"Senior {i}", f"senior{i}@race.example", "engineer")[0]
        for i in range(CLAIMERS)
    ]
    names = {s.id: s.name for s in seniors}
    technician_id, senior_ids = technician.id, [s.id for s in seniors]

    # Every conditional claim UPDATE, with the row count the database reported, per thread.
    issued = threading.local()

    @event.listens_for(db.engine, "after_cursor_execute")
    def spy(_conn, cursor, statement, _params, _context, _executemany):
        if (
            statement.lstrip().upper().startswith("UPDATE HANDOFFS")
            and "claimed_by_id" in statement
        ):
            issued.row_counts.append(cursor.rowcount)

    handoff_ids: list[int] = []
    outcomes: list[list[Outcome | None]] = [[None] * CLAIMERS for _ in range(TRIALS)]

    def new_handoff(n: int) -> None:
        tech = db.session.get(User, technician_id)
        session = create_session(tech, f"Race {n}", {"n": n}, None)
        handoff, created = escalations.escalate(tech, session.id, "Racing")
        assert created
        handoff_ids.append(handoff.id)
        db.session.rollback()  # end this thread's read transaction before the race

    def claimer(user_id: int) -> Callable[[], Outcome]:
        def claim_current() -> Outcome:
            issued.row_counts = []
            user = db.session.get(User, user_id)
            started = time.perf_counter()
            try:
                escalations.claim(user, handoff_ids[-1])
                code, message = "won", ""
            except DomainError as error:
                code, message = error.code, error.message
            except Exception as error:  # noqa: BLE001 - e.g. "database is locked": a failure
                code, message = "crashed", repr(error)
            return Outcome(
                user_id, code, message, started, time.perf_counter(), list(issued.row_counts)
            )

        return claim_current

    def record(n: int, index: int, outcome: Outcome) -> None:
        outcomes[n][index] = outcome

    began = time.perf_counter()
    try:
        run_together(app, [claimer(i) for i in senior_ids], TRIALS, new_handoff, record)
    finally:
        event.remove(db.engine, "after_cursor_execute", spy)
    elapsed = time.perf_counter() - began

    problems: list[str] = []
    overlapping, peaks = 0, []
    for n, (handoff_id, trial) in enumerate(zip(handoff_ids, outcomes, strict=True)):
        winners = [o for o in trial if o.code == "won"]
        if len(winners) != 1:
            problems.append(f"trial {n}: {len(winners)} winners: {trial}")
            continue
        winner = winners[0]
        expected = f"Already claimed by {names[winner.user_id]}"
        for loser in (o for o in trial if o is not winner):
            if (loser.code, loser.message) != ("already_claimed", expected):
                problems.append(
                    f"trial {n}: loser {loser.user_id} got {loser.code} {loser.message}"
                )
        # The database decided: every claimer sent its conditional UPDATE, one row changed.
        if [len(o.claim_updates) for o in trial] != [1] * CLAIMERS:
            problems.append(
                f"trial {n}: claim UPDATEs per claimer {[o.claim_updates for o in trial]}"
            )
        elif sum(o.claim_updates[0] for o in trial) != 1:
            problems.append(f"trial {n}: rows claimed {[o.claim_updates for o in trial]}")
        handoff = db.session.get(Handoff, handoff_id)
        if (handoff.status, handoff.claimed_by_id) != ("claimed", winner.user_id):
            problems.append(f"trial {n}: stored {handoff.status} by {handoff.claimed_by_id}")
        if db.session.get(FlowSession, handoff.session_id).status != "active":
            problems.append(f"trial {n}: the session did not become active again")
        claimed_events = count(
            OutboxEvent,
            OutboxEvent.handoff_id == handoff_id,
            OutboxEvent.event == outbox.HANDOFF_CLAIMED,
        )
        if claimed_events != 1:
            problems.append(f"trial {n}: {claimed_events} handoff.claimed events")
        # At least two claims in flight at once: the trial really raced.
        peak = in_flight_peak(trial)
        peaks.append(peak)
        overlapping += peak >= 2

    assert not problems, f"{len(problems)} problems, first ones:\n" + "\n".join(problems[:20])
    assert len(handoff_ids) == TRIALS
    # A race that never overlapped would prove nothing (measured: about a third on SQLite).
    assert overlapping >= TRIALS // 10, f"only {overlapping}/{TRIALS} trials overlapped"
    latencies = sorted(o.finished - o.started for trial in outcomes for o in trial)
    print(
        f"\n{db.engine.dialect.name}: {TRIALS} trials x {CLAIMERS} claimers in {elapsed:.1f}s, "
        f"one winner in each; {overlapping} trials had two or more claims in flight at once "
        f"(mean peak {statistics.mean(peaks):.1f}); claim p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"
    )


# ---------------------------------------------------------------- racing escalations


def race_escalations(app, tenant, idempotency_key: Callable[[int], str | None]):
    """ESCALATION_TRIALS rounds of CLAIMERS threads POSTing /escalate for one fresh session
    each round, each thread through its own test client (its own app context and
    connection per request). Returns the sessions and each round's responses."""
    clients = [app.test_client() for _ in range(CLAIMERS)]
    session_ids: list[int] = []
    answers: list[list[tuple[int, dict] | None]] = [
        [None] * CLAIMERS for _ in range(ESCALATION_TRIALS)
    ]

    def new_session(n: int) -> None:
        response = clients[0].post(
            "/api/v1/sessions",
            json={"title": f"Race {n}", "snapshot": {"n": n}},
            headers=tenant.auth("tech"),
        )
        session_ids.append(response.get_json()["id"])

    def escalator(index: int) -> Callable[[], tuple[int, dict]]:
        def escalate() -> tuple[int, dict]:
            n = len(session_ids) - 1
            headers = tenant.auth("tech")
            if (key := idempotency_key(n)) is not None:
                headers["Idempotency-Key"] = key
            response = clients[index].post(
                f"/api/v1/sessions/{session_ids[n]}/escalate",
                json={"reason": f"From thread {index}"},
                headers=headers,
            )
            return response.status_code, response.get_json()

        return escalate

    def record(n: int, index: int, answer: tuple[int, dict]) -> None:
        answers[n][index] = answer

    run_together(
        app, [escalator(i) for i in range(CLAIMERS)], ESCALATION_TRIALS, new_session, record
    )
    db.session.rollback()
    return session_ids, answers


@both_databases
def test_racing_replays_of_one_idempotency_key_make_one_handoff(app):
    tenant = make_tenant("Alpha MSP")
    session_ids, answers = race_escalations(app, tenant, lambda n: f"key-{n}")
    for session_id, trial in zip(session_ids, answers, strict=True):
        statuses = sorted(status for status, _ in trial)
        assert statuses == [200] * (CLAIMERS - 1) + [201], trial
        assert len({body["id"] for _, body in trial}) == 1, trial
        assert count(Handoff, Handoff.session_id == session_id) == 1
        handoff_id = trial[0][1]["id"]
        assert count(OutboxEvent, OutboxEvent.handoff_id == handoff_id) == 1


@both_databases
def test_racing_escalations_of_one_session_make_one_handoff(app):
    tenant = make_tenant("Alpha MSP")
    session_ids, answers = race_escalations(app, tenant, lambda n: None)
    for session_id, trial in zip(session_ids, answers, strict=True):
        created = [body for status, body in trial if status == 201]
        refused = [body for status, body in trial if status != 201]
        assert len(created) == 1, trial
        for body in refused:
            assert body["error"]["code"] == "already_escalated", body
            assert body["error"]["details"]["handoff_id"] == created[0]["id"], body
        assert count(Handoff, Handoff.session_id == session_id) == 1
        assert db.session.get(FlowSession, session_id).status == "escalated"
