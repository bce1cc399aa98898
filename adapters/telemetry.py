"""Every Prometheus metric the service exports, defined once (docs/deploy.md, "What to watch").

Both edges import this module and add one-line increments where things happen (the domain's
own counts reach it through the listeners `watch_domain` registers); the web
process serves them at GET /metrics (web/observability.py). Counters and histograms live in
the process that counts: with PROMETHEUS_MULTIPROC_DIR set (prefork workers, or web and
worker on one box), prometheus-client writes them to files there and /metrics adds every
process's files up. Gauges that describe shared state (queue depths, outbox backlog, beat's
last tick) are read from the database and Redis when scraped, so any web node reports them.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram

from models import deliveries, escalations
from models.db import utcnow

PREFIX = "escalation"

ESCALATIONS_CREATED = Counter(
    f"{PREFIX}_escalations_created", "Handoffs created (201 answers to escalate)."
)
CLAIM_CONFLICTS = Counter(
    f"{PREFIX}_claim_conflicts", "Claims refused because someone else claimed first (409)."
)
DELIVERIES = Counter(
    f"{PREFIX}_deliveries",
    "Notification deliveries that reached a final state, by channel (socket, email).",
    ["channel", "state"],
)
LIVE_FANOUT_LATENCY = Histogram(
    f"{PREFIX}_live_fanout_latency_seconds",
    "From the handoff event's commit to its Socket.IO emit (by the web process, or by the "
    "worker when that first emit failed).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
EMAIL_LAG = Histogram(
    f"{PREFIX}_email_lag_seconds",
    "From the handoff event's commit to the SMTP server accepting the email.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
SMTP_ERRORS = Counter(
    f"{PREFIX}_smtp_errors", "SMTP attempts that failed, by kind (transient, permanent).", ["kind"]
)
PSA_ERRORS = Counter(
    f"{PREFIX}_psa_errors",
    "Calls to a PSA (ticketing system) that failed, by PSA and operation.",
    ["psa", "operation"],
)
DATABASE_UNAVAILABLE = Counter(
    f"{PREFIX}_database_unavailable",
    "Requests answered 503 because the database could not be reached.",
)

# Scrape-time gauges (web/observability.py collects them from shared state).
OUTBOX_BACKLOG_AGE = f"{PREFIX}_outbox_backlog_age_seconds"
QUEUE_DEPTH = f"{PREFIX}_celery_queue_depth"
BEAT_LAST_TICK = f"{PREFIX}_beat_last_tick_timestamp_seconds"
# Redis key the beat-scheduled relay task stamps on every run (see workers/outbox_relay.py).
BEAT_TICK_KEY = "escalation:beat:last-tick"


def delivery_finished(channel: str, state: str) -> None:
    DELIVERIES.labels(channel=channel, state=state).inc()


def count_claim_conflict() -> None:
    CLAIM_CONFLICTS.inc()


def watch_domain() -> None:
    """Count what the domain reports through its listeners (every process calls this once,
    through `web.observability.init_observability`)."""
    deliveries.on_finished(delivery_finished)
    escalations.on_claim_conflict(count_claim_conflict)


def observe_since(histogram: Histogram, started_at: datetime | None) -> None:
    """Observe the seconds from `started_at` (naive UTC, as stored) until now."""
    if started_at is not None:
        histogram.observe(max(0.0, (utcnow() - started_at).total_seconds()))
